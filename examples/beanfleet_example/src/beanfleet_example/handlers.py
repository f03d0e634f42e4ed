"""Example handlers: ``handler(data, job)``, ``data`` the decoded JSON body, ``job`` with
``.id``, ``.tube`` and ``.attempt``.

Output locations come from environment variables (a pool's ``env``), else a directory under
``$STATE_DIRECTORY`` (systemd's StateDirectory=) or the working directory.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import mailbox
import os
import re
import tempfile
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Protocol

from beanfleet import PermanentFailure
from PIL import Image, UnidentifiedImageError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
DEFAULT_SENDER = "beanfleet@localhost"


class Job(Protocol):
    id: int
    tube: str
    attempt: int


def _output(env_name: str, default_leaf: str) -> Path:
    configured = os.environ.get(env_name)
    if configured:
        return Path(configured)
    base = os.environ.get("STATE_DIRECTORY", "").split(":")[0] or os.getcwd()
    return Path(base) / default_leaf


def _mapping(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PermanentFailure(f"job body must be a JSON object, got {type(data).__name__}")
    return data


def _name(data: dict[str, Any], job: Job) -> str:
    name = data.get("name", f"job-{job.id}")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise PermanentFailure(f"invalid output name {name!r}")
    return name


def _write_atomically(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def send_email(data: Any, job: Job) -> str:
    """Render an email into the Maildir ``$EXAMPLE_MAILDIR``; returns the message key."""
    body = _mapping(data)
    recipient = body.get("to")
    if not isinstance(recipient, str) or "@" not in recipient:
        raise PermanentFailure(f"'to' must be an email address, got {recipient!r}")
    message = EmailMessage()
    message["From"] = str(body.get("from", DEFAULT_SENDER))
    message["To"] = recipient
    message["Subject"] = str(body.get("subject", ""))
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(idstring=f"beanfleet-{job.id}")
    message["X-Beanfleet-Job"] = f"{job.tube}/{job.id}/{job.attempt}"
    message.set_content(str(body.get("body", "")))
    box = mailbox.Maildir(_output("EXAMPLE_MAILDIR", "maildir"), create=True)
    try:
        return str(box.add(message))
    finally:
        box.close()


def make_thumbnail(data: Any, job: Job) -> str:
    """Thumbnail of ``path`` or base64 ``image`` (longest side ``size``, default 128) as PNG."""
    body = _mapping(data)
    size = body.get("size", 128)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 4096:
        raise PermanentFailure(f"'size' must be an integer 1-4096, got {size!r}")
    if "image" in body:
        try:
            source: Any = io.BytesIO(base64.b64decode(str(body["image"]), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise PermanentFailure(f"'image' is not valid base64: {exc}") from None
    elif "path" in body:
        source = Path(str(body["path"]))
        if not source.is_file():
            raise PermanentFailure(f"no such image file: {source}")
    else:
        raise PermanentFailure("job body needs 'path' or 'image'")
    try:
        with Image.open(source) as image:
            image.thumbnail((size, size))
            out = io.BytesIO()
            image.save(out, format="PNG")
    except (UnidentifiedImageError, OSError) as exc:
        raise PermanentFailure(f"cannot read the image: {exc}") from None
    target = _output("EXAMPLE_THUMBNAIL_DIR", "thumbnails") / f"{_name(body, job)}.png"
    _write_atomically(target, out.getvalue())
    return str(target)


def write_report(data: Any, job: Job) -> str:
    """Write ``rows`` (under ``columns``) as ``$EXAMPLE_REPORT_DIR/<name>.csv``."""
    body = _mapping(data)
    columns = body.get("columns", [])
    rows = body.get("rows", [])
    if not isinstance(columns, list) or not isinstance(rows, list):
        raise PermanentFailure("'columns' and 'rows' must be lists")
    if not all(isinstance(row, list) for row in rows):
        raise PermanentFailure("every row must be a list")
    if columns and any(len(row) != len(columns) for row in rows):
        raise PermanentFailure(f"every row must have {len(columns)} values")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    if columns:
        writer.writerow(columns)
    writer.writerows(rows)
    target = _output("EXAMPLE_REPORT_DIR", "reports") / f"{_name(body, job)}.csv"
    _write_atomically(target, text.getvalue().encode("utf-8"))
    return str(target)


def fail(data: Any, job: Job) -> None:
    """Always fails: the worker retries the job (max_retries), then buries it."""
    raise RuntimeError(f"fail handler: job {job.id} attempt {job.attempt} fails on purpose")


def record(data: Any, job: Job) -> None:
    """Append ``"<job id> <seq>\\n"`` to ``$EXAMPLE_RECORD_FILE`` in one O_APPEND write.

    Each line is one write(2) to a file opened with O_APPEND, so lines of concurrent
    workers never interleave: the fleet tests count lost and doubled jobs from it.
    """
    body = _mapping(data)
    seq = body.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise PermanentFailure(f"'seq' must be an integer, got {seq!r}")
    path = _output("EXAMPLE_RECORD_FILE", "record/record.log")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, f"{job.id} {seq}\n".encode("ascii"))
    finally:
        os.close(fd)
