"""What a setting of the fleet description is: :class:`Setting` (one row of the table:
name, role, type, default, range, choices, pattern, one-line doc, the comment of its
``defaults/main.yml``), :class:`RoleDoc` (what a role's generated files say besides), and
the name patterns and constants the rows use.

The rows and the views derived from them (``FLEET_DEFAULTS``, ``POOL_DEFAULTS``, ...) are in
:mod:`.table`; the checks (:mod:`.validate`, :mod:`.monitoring`) read ranges, choices and
patterns from the rows; :mod:`.roles` writes the roles' ``defaults/main.yml`` and
``meta/argument_specs.yml`` from them (``make render``).

May import: the standard library, :mod:`beanfleet.bounds` (the one set of setting checks)
and :mod:`beanfleet.names` (the name patterns).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from beanfleet import bounds
from beanfleet.names import HANDLER_PATTERN, TUBE_PATTERN

__all__ = [
    "DURATION_PATTERN",
    "ENV_NAME_PATTERN",
    "GROUP_PATTERN",
    "HANDLER_PATTERN",
    "LOG_FORMATS",
    "MANAGERS",
    "MAX_JOB_SIZE_LIMIT",
    "PARTS",
    "POOL_NAME_PATTERN",
    "POOL_STATES",
    "RESERVED_ENV",
    "TUBE_PATTERN",
    "RoleDoc",
    "Setting",
]

Role = Literal["beanfleet", "beanstalkd", "monitoring", "supervisor", "pool"]
Type = Literal["str", "int", "float", "bool", "list", "dict"]

MANAGERS = ("systemd", "supervisor")
POOL_STATES = ("present", "absent")
LOG_FORMATS = ("text", "json")
PARTS = ("workers", "queue")

# Pool names become unit instance names (``beanfleet-worker@NAME-1``), supervisor program
# names and file names.
POOL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Inventory group names (Ansible's rule: letters, digits, underscores).
GROUP_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# A Prometheus duration: 30s, 5m, 1h30m, 0s.
DURATION_PATTERN = r"^(0|([0-9]+(ms|s|m|h|d|w|y))+)$"
# Environment names the templates set themselves.
RESERVED_ENV = ("BEANFLEET_SERVER",)
MAX_JOB_SIZE_LIMIT = 1073741824  # beanstalkd -z: "max allowed is 1073741824 bytes"


@dataclass(frozen=True)
class Setting:
    """One variable of a role (or one setting of a pool, role ``pool``).

    ``doc``: the argument spec's description (a tuple: a list of lines); ``comment``: the
    paragraph above the key in ``defaults/main.yml`` (lines as written).  ``low``/``high``/
    ``low_open``/``noun``/``text``: the range of a number (``text``: a string of digits
    counts, as Ansible may template one); ``pattern`` and ``rule``: what a string must match
    and how the message says it; ``check``: the name of a rule of :mod:`.validate` that
    the table cannot say (lists, mappings, paths).  ``ansible_default``: the default of
    ``defaults/main.yml`` when Ansible computes it (none in the spec, ``default`` is "");
    ``inventory_default``: what the inventory gives when the value is null.
    """

    name: str
    role: Role
    type: Type
    default: Any
    doc: str | tuple[str, ...]
    comment: str = ""
    elements: str | None = None
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    text: bool = True
    noun: str | None = None
    pattern: str | None = None
    rule: str = ""
    check: str | None = None
    # A mapping's values: their type (the range, pattern and noun above are theirs).
    item_type: Type | None = None
    required: bool = False
    no_log: bool = False
    ansible_default: str | None = None
    inventory_default: str | None = None
    # Emit ``options: &ANCHOR`` (the pool settings) or ``<<: *ANCHOR`` after these options.
    options: tuple[Setting, ...] = ()
    options_anchor: str | None = None
    options_merge: str | None = None

    def check_value(self, name: str, value: Any) -> Any:
        """``value`` checked against the row (type, range, choices, pattern) with
        :mod:`beanfleet.bounds`; ``name`` is how the message names it.  ConfigError if not."""
        if self.choices:
            return bounds.setting_choice(name, value, self.choices)
        if self.type in ("int", "float"):
            return bounds.setting_number(
                name,
                value,
                low=self.low or 0,
                high=self.high,
                low_open=self.low_open,
                text=self.text,
                integer=self.type == "int",
                noun=self.noun,
            )
        if self.type == "bool":
            return bounds.setting_bool(name, value)
        if self.type == "str" and self.pattern:
            return bounds.setting_match(name, value, self.pattern, self.rule)
        if self.type == "str":
            return bounds.setting_str(name, value)
        return value

    def check_item(self, name: str, value: Any) -> Any:
        """One value of a mapping setting (``item_type``), checked like a row of that type."""
        return replace(self, type=self.item_type or "str").check_value(name, value)

    @property
    def has_default(self) -> bool:
        """Whether the role's defaults give a value of its own (and the spec a default)."""
        return not self.required and self.ansible_default is None and self.default is not None


@dataclass(frozen=True)
class RoleDoc:
    """What a role's two generated files say besides the settings."""

    name: str
    defaults_header: str
    specs_header: str
    short_description: str
    description: tuple[str, ...]
    # ``main: &ANCHOR`` and ``validate: *ANCHOR`` (the spec checked again by the role).
    anchor: str | None = None
