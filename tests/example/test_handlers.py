"""The example handlers (examples/beanfleet_example) do their work with their env settings."""

from __future__ import annotations

import base64
import csv
import io
import mailbox
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from beanfleet import PermanentFailure
from beanfleet_example import handlers
from PIL import Image


@dataclass
class Job:
    id: int = 7
    tube: str = "t"
    attempt: int = 1


@pytest.fixture(autouse=True)
def outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MAILDIR", "THUMBNAIL_DIR", "REPORT_DIR", "RECORD_FILE"):
        monkeypatch.delenv(f"EXAMPLE_{name}", raising=False)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    return tmp_path


def png_bytes(size: tuple[int, int] = (300, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "blue").save(out, format="JPEG")
    return out.getvalue()


def test_send_email_lands_in_the_maildir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_MAILDIR", str(tmp_path / "mail"))
    key = handlers.send_email(
        {"to": "ann@example.org", "subject": "Hello", "body": "Hi Ann"}, Job(id=42)
    )
    box = mailbox.Maildir(tmp_path / "mail", create=False)
    message = box[key]
    assert message["To"] == "ann@example.org"
    assert message["Subject"] == "Hello"
    assert message["X-Beanfleet-Job"] == "t/42/1"
    assert message.get_payload().strip() == "Hi Ann"


def test_send_email_rejects_bad_input_permanently() -> None:
    with pytest.raises(PermanentFailure):
        handlers.send_email({"subject": "no recipient"}, Job())
    with pytest.raises(PermanentFailure):
        handlers.send_email(["not", "a", "mapping"], Job())


def test_default_output_is_under_the_state_directory(outputs: Path) -> None:
    handlers.write_report({"name": "r", "rows": [[1]]}, Job())
    assert (outputs / "state/reports/r.csv").read_text() == "1\n"


def test_thumbnail_from_base64(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_THUMBNAIL_DIR", str(tmp_path / "thumbs"))
    body = {"image": base64.b64encode(png_bytes()).decode(), "size": 64}
    path = Path(handlers.make_thumbnail(body, Job(id=3)))
    assert path == tmp_path / "thumbs/job-3.png"
    with Image.open(path) as image:
        assert image.size == (64, 43)
        assert image.format == "PNG"


def test_thumbnail_from_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_THUMBNAIL_DIR", str(tmp_path / "thumbs"))
    source = tmp_path / "in.jpg"
    source.write_bytes(png_bytes((100, 400)))
    path = Path(handlers.make_thumbnail({"path": str(source), "name": "tall"}, Job()))
    with Image.open(path) as image:
        assert image.size == (32, 128)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"image": "!!not base64!!"},
        {"image": base64.b64encode(b"not an image").decode()},
        {"path": "/nonexistent.png"},
        {"image": "", "size": 0},
        {"image": "", "name": "../escape"},
    ],
)
def test_thumbnail_bad_input(body: dict[str, object]) -> None:
    with pytest.raises(PermanentFailure):
        handlers.make_thumbnail(body, Job())


def test_report_is_a_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_REPORT_DIR", str(tmp_path / "reports"))
    rows = [["north", 3], ["south, east", 5]]
    path = Path(
        handlers.write_report({"name": "sales", "columns": ["region", "n"], "rows": rows}, Job())
    )
    with path.open(newline="") as f:
        assert list(csv.reader(f)) == [
            ["region", "n"],
            ["north", "3"],
            ["south, east", "5"],
        ]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left
    with pytest.raises(PermanentFailure):
        handlers.write_report({"columns": ["a", "b"], "rows": [[1]]}, Job())


def test_fail_always_raises() -> None:
    with pytest.raises(RuntimeError, match="attempt 2"):
        handlers.fail({}, Job(attempt=2))


def test_record_appends_whole_lines_concurrently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_file = tmp_path / "rec/record.log"
    monkeypatch.setenv("EXAMPLE_RECORD_FILE", str(record_file))

    def writer(start: int) -> None:
        for seq in range(start, start + 200):
            handlers.record({"seq": seq}, Job(id=seq))

    threads = [threading.Thread(target=writer, args=(n * 1000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = record_file.read_text().splitlines()
    assert sorted(lines) == sorted(
        f"{s} {s}" for n in range(4) for s in range(n * 1000, n * 1000 + 200)
    )
    assert os.stat(record_file).st_mode & 0o777 == 0o640 & ~_umask()
    with pytest.raises(PermanentFailure):
        handlers.record({"seq": "1"}, Job())


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
