"""``beanfleet render``: the files Ansible installs, rendered offline from a fleet description.

The templates are the top-level ``templates/`` of the repository (shipped in the wheel as
``beanfleet/templates``), the same files the Ansible roles use.  They are core Jinja2 only,
rendered here with the settings of Ansible's ``template`` module (``trim_blocks``, no
``lstrip_blocks``, ``\\n`` newlines, the template's trailing newlines kept), so both ways give
byte-identical files; a test compares them.

The files, modes and links are those of :func:`beanfleet.fleet.queue_plan` and
:func:`beanfleet.fleet.worker_plan`, the same lists the roles' file tasks loop over, and each
template sees the same variables as under Ansible (the plan's ``as_vars()`` as
``__beanstalkd_model`` / ``__beanfleet_model``, the file as ``beanstalkd_file`` /
``beanfleet_file``).  The output
mirrors the hosts' file system (``OUT/etc/systemd/system/...``): the worker files of one
manager (``systemd`` or ``supervisor``) plus the queue host's (beanstalkd's drop-in and
firewall).  A manifest (:data:`MANIFEST`) lists what
was written, so rendering again into the same directory removes files that are no longer
part of the fleet, and rendering never deletes anything it did not write.

The one module of :mod:`beanfleet.fleet` that may import jinja2 and yaml (the package's
``__init__`` does not import it); besides them: the standard library, :mod:`beanfleet.errors`
and the fleet's modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import yaml

from beanfleet.errors import ConfigError
from beanfleet.fleet.inventory import Fleet
from beanfleet.fleet.plan_hosts import monitor_plan, queue_plan
from beanfleet.fleet.plan_workers import worker_plan
from beanfleet.fleet.plans import Plan
from beanfleet.fleet.validate import validate

MANIFEST = ".beanfleet-render"
# The variable each role's templates read the plan from (the role registers it so).
PLAN_VARS = {
    "beanstalkd": "__beanstalkd_model",
    "beanfleet": "__beanfleet_model",
    "prometheus": "__monitoring_model",
}
FILE_VARS = {
    "beanstalkd": "beanstalkd_file",
    "beanfleet": "beanfleet_file",
    "prometheus": "monitoring_file",
}


@dataclass(frozen=True)
class Output:
    """One file to write: ``text`` to ``path`` (relative to the root), or a link."""

    path: str
    mode: int
    text: str | None = None
    link: str | None = None


def templates_dir() -> Path:
    """The packaged templates, else the source checkout's ``templates/``."""
    packaged = resources.files("beanfleet") / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[4] / "templates"
    if checkout.is_dir():
        return checkout
    raise ConfigError(f"templates not found (not in the package, nor in {checkout})")


def environment(directory: Path) -> jinja2.Environment:
    """A Jinja2 environment configured like Ansible's ``template`` module (its defaults)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        trim_blocks=True,
        lstrip_blocks=False,
        newline_sequence="\n",
        keep_trailing_newline=False,
        autoescape=False,  # noqa: S701 - config files, not HTML
        undefined=jinja2.StrictUndefined,
    )


def _render_like_ansible(env: jinja2.Environment, name: str, variables: Mapping[str, Any]) -> str:
    source, _, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
    result = env.get_template(name).render(variables)
    # Ansible appends the newlines Jinja dropped so the output ends with as many newlines as
    # the template source does (ansible/_internal/_templating/_engine.py).
    missing = (len(source) - len(source.rstrip("\n"))) - (len(result) - len(result.rstrip("\n")))
    return result + "\n" * max(0, missing)


def outputs(
    fleet: Fleet, manager: str, templates: Path, *, prometheus: bool = False
) -> list[Output]:
    """Every file of the fleet's hosts for ``manager`` (the plans' file lists), rendered;
    with ``prometheus``, the Prometheus host's files instead."""
    out: list[Output] = []
    plans: tuple[tuple[str, Plan], ...] = (
        ("beanstalkd", queue_plan(fleet)),
        ("beanfleet", worker_plan(fleet, manager)),
    )
    if prometheus:
        plans = (("prometheus", monitor_plan(fleet)),)
    for role, typed in plans:
        plan = typed.as_vars()
        env = environment(templates / role)
        for item in plan["files"]:
            context = {PLAN_VARS[role]: plan, FILE_VARS[role]: item}
            try:
                text = _render_like_ansible(env, item["template"], context)
            except jinja2.TemplateError as exc:
                raise ConfigError(f"template {role}/{item['template']}: {exc}") from None
            out.append(Output(item["path"].lstrip("/"), int(item["mode"], 8), text))
        for link in plan.get("links", []):
            out.append(Output(link["path"].lstrip("/"), 0o777, link=link["src"]))
    return out


def load_description(path: Path) -> dict[str, Any]:
    """Read FLEET.yml: a mapping of inventory variable names (like group_vars)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of variable names to values")
    for key, value in data.items():
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            raise ConfigError(
                f"{path}: {key} is a Jinja expression; offline rendering needs plain values"
            )
    return data


def _clean_previous(out_dir: Path) -> None:
    manifest = out_dir / MANIFEST
    if not out_dir.exists():
        return
    if not manifest.exists():
        if any(out_dir.iterdir()):
            raise ConfigError(
                f"refusing to render into {out_dir}: not empty and not a previous render "
                f"(no {MANIFEST})"
            )
        return
    for line in manifest.read_text(encoding="utf-8").splitlines():
        rel = line.strip()
        if not rel or rel.startswith("/") or ".." in Path(rel).parts:
            continue
        target = out_dir / rel
        if target.is_symlink() or target.is_file():
            target.unlink()
        parent = target.parent
        while parent != out_dir and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    manifest.unlink()


def render(
    config: Path | Mapping[str, Any],
    out_dir: Path,
    manager: str | None = None,
    *,
    templates: Path | None = None,
    prometheus: bool = False,
) -> list[Path]:
    """Render the fleet described by ``config`` (FLEET.yml or its mapping) into ``out_dir``.

    ``manager`` (``systemd``/``supervisor``) overrides ``beanfleet_manager``.  Everything is
    validated and rendered in memory first: an invalid description raises
    :class:`ConfigError` (one line) before ``out_dir`` is touched.  Returns the paths written.
    ``prometheus``: the scrape config and alert rules (a Prometheus host's files) instead.
    """
    description = dict(load_description(config) if isinstance(config, Path) else config)
    if manager is not None:
        description["beanfleet_manager"] = manager
    fleet = validate_for_render(description)
    rendered = outputs(fleet, fleet.manager, templates or templates_dir(), prometheus=prometheus)

    _clean_previous(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for item in rendered:
        path = out_dir / item.path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        if item.link is not None:
            path.symlink_to(item.link)
        else:
            assert item.text is not None
            path.write_bytes(item.text.encode("utf-8"))
            path.chmod(item.mode)
        written.append(path)
    (out_dir / MANIFEST).write_text(
        "".join(f"{item.path}\n" for item in rendered), encoding="utf-8"
    )
    return written


def validate_for_render(description: Mapping[str, Any]) -> Fleet:
    return validate(description, offline=True)
