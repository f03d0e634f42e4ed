"""``beanfleet render``: the files Ansible installs, rendered offline from a fleet description.

The templates are the top-level ``templates/`` of the repository (shipped in the wheel as
``beanfleet/templates``), the same files the Ansible roles use.  They are core Jinja2 only,
rendered here with the settings of Ansible's ``template`` module (``trim_blocks``, no
``lstrip_blocks``, ``\\n`` newlines, the template's trailing newlines kept), so both ways give
byte-identical files; a test compares them.

The output mirrors the hosts' file system (``OUT/etc/systemd/system/...``), with the modes
the roles set; the worker files of one manager (``systemd`` or ``supervisor``) plus the
queue host's (beanstalkd's drop-in and firewall).  A manifest (:data:`MANIFEST`) lists what
was written, so rendering again into the same directory removes files that are no longer
part of the fleet, and rendering never deletes anything it did not write.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import yaml

from beanfleet import fleet as fleet_model
from beanfleet.errors import ConfigError

MANIFEST = ".beanfleet-render"
POOL_DIR = "/etc/beanfleet/pools"
NFT_FILE = "etc/beanfleet/beanstalkd.nft"
BEANSTALKD_DROPIN = "etc/systemd/system/beanstalkd.service.d/beanfleet.conf"


@dataclass(frozen=True)
class Output:
    """One file to write: ``template`` rendered to ``path`` (relative to the root), or a link."""

    path: str
    mode: int
    template: str | None = None
    pool: Mapping[str, Any] | None = None
    link: str | None = None


def templates_dir() -> Path:
    """The packaged templates, else the source checkout's ``templates/``."""
    packaged = resources.files("beanfleet") / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[3] / "templates"
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


def template_vars(fleet: fleet_model.Fleet) -> dict[str, Any]:
    """The variables the templates see; the roles define the same names (vars/main.yml)."""
    v = fleet.template_vars()
    full_pools = v.pop("beanfleet_pools_full")
    v.update(
        {
            "__beanfleet_pools": full_pools,
            "__beanfleet_server": v["beanfleet_server"],
            "__beanfleet_venv": fleet_model.VENV,
            "__beanfleet_state_dir": fleet_model.STATE_DIR,
            "__beanfleet_user": fleet_model.USER,
            "__beanfleet_pool_dir": POOL_DIR,
            "__beanstalkd_firewall": bool(v["beanstalkd_firewall"]),
        }
    )
    return v


def outputs(fleet: fleet_model.Fleet, manager: str) -> list[Output]:
    """Every file of the fleet for ``manager``, in the order the roles write them."""
    out = [Output(BEANSTALKD_DROPIN, 0o644, "beanstalkd/beanfleet.conf.j2")]
    if fleet.vars["beanstalkd_firewall"]:
        out.append(Output(NFT_FILE, 0o644, "beanstalkd/beanstalkd.nft.j2"))
    pools = fleet.present_pools
    if manager == "systemd":
        for unit in ("beanfleet-worker@.service", "beanfleet.target"):
            out.append(Output(f"etc/systemd/system/{unit}", 0o644, f"beanfleet/systemd/{unit}.j2"))
        for pool in pools:
            name = pool["name"]
            conf = f"{POOL_DIR}/{name}.conf".lstrip("/")
            out.append(Output(conf, 0o644, "beanfleet/systemd/pool.conf.j2", pool))
            out.append(
                Output(
                    f"{POOL_DIR}/{name}.env".lstrip("/"),
                    0o600,
                    "beanfleet/systemd/pool.env.j2",
                    pool,
                )
            )
            for instance in fleet_model.instances(pool):
                dropin = f"etc/systemd/system/beanfleet-worker@{instance}.service.d/pool.conf"
                target = os.path.relpath(conf, os.path.dirname(dropin))
                out.append(Output(dropin, 0o777, link=target))
    elif manager == "supervisor":
        if pools:
            out.append(
                Output(
                    "etc/supervisor/conf.d/beanfleet.conf",
                    0o644,
                    "beanfleet/supervisor/beanfleet.conf.j2",
                )
            )
        for pool in pools:
            out.append(
                Output(
                    f"etc/supervisor/conf.d/beanfleet-{pool['name']}.conf",
                    0o600,
                    "beanfleet/supervisor/pool.conf.j2",
                    pool,
                )
            )
    else:  # validate() rejects it first; kept for direct callers
        raise ConfigError(f"beanfleet_manager must be one of: systemd, supervisor, got {manager!r}")
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
) -> list[Path]:
    """Render the fleet described by ``config`` (FLEET.yml or its mapping) into ``out_dir``.

    ``manager`` (``systemd``/``supervisor``) overrides ``beanfleet_manager``.  Everything is
    validated and rendered in memory first: an invalid description raises
    :class:`ConfigError` (one line) before ``out_dir`` is touched.  Returns the paths written.
    """
    description = dict(load_description(config) if isinstance(config, Path) else config)
    if manager is not None:
        description["beanfleet_manager"] = manager
    fleet = validate_for_render(description)
    env = environment(templates or templates_dir())
    variables = template_vars(fleet)
    rendered: list[tuple[Output, str | None]] = []
    for item in outputs(fleet, fleet.manager):
        if item.template is None:
            rendered.append((item, None))
            continue
        context = dict(variables)
        if item.pool is not None:
            context["beanfleet_pool"] = item.pool
        try:
            text = _render_like_ansible(env, item.template, context)
        except jinja2.TemplateError as exc:
            raise ConfigError(f"template {item.template}: {exc}") from None
        rendered.append((item, text))

    _clean_previous(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for item, content in rendered:
        path = out_dir / item.path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        if item.link is not None:
            path.symlink_to(item.link)
        else:
            assert content is not None
            path.write_bytes(content.encode("utf-8"))
            path.chmod(item.mode)
        written.append(path)
    (out_dir / MANIFEST).write_text(
        "".join(f"{item.path}\n" for item, _ in rendered), encoding="utf-8"
    )
    return written


def validate_for_render(description: Mapping[str, Any]) -> fleet_model.Fleet:
    return fleet_model.validate(description, offline=True)
