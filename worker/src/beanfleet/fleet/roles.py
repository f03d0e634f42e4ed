"""The roles' ``defaults/main.yml`` and ``meta/argument_specs.yml``, written from the table.

``make render`` runs ``python -m beanfleet.fleet.roles ansible/roles``; tests/deploy compares
:func:`render` with the committed files.  The YAML is written as text (not ``yaml.dump``) so
that each default keeps its comment above it, the argument specs keep their anchors, and the
files read as if written by hand (geerlingguy style).

May import: the standard library and :mod:`.schema`, :mod:`.table`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from beanfleet.fleet.schema import Setting
from beanfleet.fleet.table import ROLES, role_settings

FILES = ("defaults/main.yml", "meta/argument_specs.yml")
# Plain scalars YAML would read as something else than the string.
_NOT_PLAIN = re.compile(
    r"^$|^[-?:,\[\]{}#&*!|>'\"%@`~]|: | #|^(true|false|yes|no|on|off|null|y|n)$"
    r"|^[-+]?((?=\.?[0-9])[0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?|\.inf|\.nan)$"
    r"|^0[xo][0-9a-f_]+$|^[0-9]+(:[0-5]?[0-9])+$",
    re.IGNORECASE,
)


def scalar(value: Any) -> str:
    """``value`` as a YAML scalar in flow style, quoted only when it must be."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return f"[{', '.join(scalar(v) for v in value)}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {scalar(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _NOT_PLAIN.search(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _comment(text: str, indent: str = "") -> list[str]:
    return [f"{indent}# {line}".rstrip() for line in text.splitlines()]


def defaults(role: str) -> str:
    """The role's ``defaults/main.yml``: each default under the paragraph that explains it."""
    doc = ROLES[role]
    lines = ["---", *_comment(doc.defaults_header)]
    for setting in role_settings(role):
        value = setting.ansible_default or setting.default
        lines += ["", *_comment(setting.comment), f"{setting.name}: {scalar(value)}"]
    return "\n".join(lines) + "\n"


def _item(text: str, indent: str) -> list[str]:
    """One list item, its continuation lines under its text."""
    first, *rest = text.splitlines()
    return [f"{indent}- {first}", *(f"{indent}  {line}" for line in rest)]


def _option(setting: Setting, indent: str) -> list[str]:
    inner = indent + "  "
    lines = [f"{indent}{setting.name}:", f"{inner}type: {setting.type}"]
    if setting.elements:
        lines.append(f"{inner}elements: {setting.elements}")
    if setting.choices:
        lines.append(f"{inner}choices: {scalar(setting.choices)}")
    if setting.has_default:
        lines.append(f"{inner}default: {scalar(setting.default)}")
    if setting.no_log:
        lines.append(f"{inner}no_log: true")
    if setting.required:
        lines.append(f"{inner}required: true")
    if isinstance(setting.doc, tuple):
        lines.append(f"{inner}description:")
        for line in setting.doc:
            lines += _item(line, inner + "  ")
    else:
        lines.append(f"{inner}description: {setting.doc}")
    if setting.options:
        anchor = f" &{setting.options_anchor}" if setting.options_anchor else ""
        lines.append(f"{inner}options:{anchor}")
        for option in setting.options:
            lines += _option(option, inner + "  ")
        if setting.options_merge:
            lines.append(f"{inner}  <<: *{setting.options_merge}")
    return lines


def argument_specs(role: str) -> str:
    """The role's ``meta/argument_specs.yml`` (Ansible checks it before the first task)."""
    doc = ROLES[role]
    anchor = f" &{doc.anchor}" if doc.anchor else ""
    lines = [
        "---",
        *_comment(doc.specs_header),
        "argument_specs:",
        f"  main:{anchor}",
        f"    short_description: {doc.short_description}",
        "    description:",
    ]
    for item in doc.description:
        lines += _item(item, "      ")
    lines += ["    author:", "      - beanfleet", "    options:"]
    for setting in role_settings(role):
        lines += _option(setting, "      ")
    if doc.anchor:
        lines.append(f"  validate: *{doc.anchor}")
    return "\n".join(lines) + "\n"


def render(role: str) -> dict[str, str]:
    """The role's generated files: relative path to text."""
    return {FILES[0]: defaults(role), FILES[1]: argument_specs(role)}


def write(roles_dir: Path) -> list[Path]:
    """Write every role's generated files under ``roles_dir`` (only those that changed)."""
    written = []
    for role in ROLES:
        for name, text in render(role).items():
            path = roles_dir / role / name
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
                written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m beanfleet.fleet.roles ROLES_DIR", file=sys.stderr)
        return 2
    for path in write(Path(args[0])):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
