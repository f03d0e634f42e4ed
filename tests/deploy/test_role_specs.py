"""The roles' defaults, argument specs and internal constants agree with beanfleet.fleet."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from beanfleet import fleet
from beanfleet.errors import ConfigError
from beanfleet.fleet import roles
from deploy_helpers import ANSIBLE_DIR, ROLES, load_yaml

ROLE_PREFIX = {"beanstalkd": "beanstalkd_", "beanfleet": "beanfleet_", "monitoring": "monitoring_"}
PY_TYPES = {
    "str": str,
    "int": int,
    "float": (int, float),
    "bool": bool,
    "list": list,
    "dict": dict,
}


def role_file(role: str, name: str) -> Any:
    return load_yaml(ANSIBLE_DIR / "roles" / role / name)


def spec(role: str) -> dict[str, Any]:
    options: dict[str, Any] = role_file(role, "meta/argument_specs.yml")["argument_specs"]["main"][
        "options"
    ]
    return options


@pytest.mark.parametrize("role", ROLES)
def test_role_layout(role: str) -> None:
    base = ANSIBLE_DIR / "roles" / role
    for name in (
        "README.md",
        "defaults/main.yml",
        "meta/main.yml",
        "meta/argument_specs.yml",
        "tasks/main.yml",
        "handlers/main.yml",
        "vars/main.yml",
    ):
        assert (base / name).is_file(), f"{role}: {name} missing"
    readme = (base / "README.md").read_text(encoding="utf-8")
    assert "```yaml" in readme
    # Every default is documented by a comment right above it.
    lines = (base / "defaults/main.yml").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-z_]+:", line):
            assert lines[i - 1].startswith("#"), f"{role}: {line} has no comment above it"
            assert line.split(":")[0] in readme, f"{role}: README does not mention {line}"


@pytest.mark.parametrize("role", sorted(ROLE_PREFIX))
def test_role_defaults_equal_the_fleet_model(role: str) -> None:
    defaults = role_file(role, "defaults/main.yml")
    expected = {k: v for k, v in fleet.FLEET_DEFAULTS.items() if k.startswith(ROLE_PREFIX[role])}
    assert sorted(defaults) == sorted(expected)
    for key, value in expected.items():
        if key in fleet.ANSIBLE_COMPUTED:
            assert "{{" in str(defaults[key]), key
            continue
        assert defaults[key] == value, key
        assert type(defaults[key]) is type(value), key


@pytest.mark.parametrize("role", sorted(ROLE_PREFIX))
def test_argument_specs_equal_the_fleet_model(role: str) -> None:
    options = spec(role)
    defaults = role_file(role, "defaults/main.yml")
    assert sorted(options) == sorted(defaults)
    for key, option in options.items():
        assert option["type"] == fleet.FLEET_TYPES[key], key
        if key in fleet.ANSIBLE_COMPUTED:
            assert "default" not in option, key
        else:
            assert option.get("default") == fleet.FLEET_DEFAULTS[key], key
        if key in fleet.CHOICES:
            assert tuple(option["choices"]) == fleet.CHOICES[key], key
        else:
            assert "choices" not in option, key


def test_pool_settings_equal_the_fleet_model() -> None:
    options = spec("beanfleet")
    pool_options = options["beanfleet_pools"]["options"]
    default_options = options["beanfleet_pool_defaults"]["options"]
    assert options["beanfleet_pools"]["elements"] == "dict"
    assert sorted(pool_options) == sorted(fleet.POOL_KEYS)
    assert sorted(default_options) == sorted(fleet.POOL_DEFAULTS)
    for key, option in pool_options.items():
        assert option["type"] == fleet.POOL_TYPES[key], key
        if key in fleet.POOL_DEFAULTS:
            assert option["default"] == fleet.POOL_DEFAULTS[key], key
            assert default_options[key] == option, key
        else:
            assert option["required"] is True, key
        if key in fleet.CHOICES:
            assert tuple(option["choices"]) == fleet.CHOICES[key], key
        else:
            assert "choices" not in option, key
    assert pool_options["env"]["no_log"] is True
    assert isinstance(fleet.POOL_DEFAULTS["timeout"], PY_TYPES["float"])


def test_retry_defaults_equal_the_worker() -> None:
    from beanfleet.work import outcome as retry

    assert fleet.POOL_DEFAULTS["max_retries"] == retry.DEFAULT_MAX_RETRIES
    assert fleet.POOL_DEFAULTS["backoff_base"] == retry.DEFAULT_BACKOFF_BASE
    assert fleet.POOL_DEFAULTS["backoff_cap"] == retry.DEFAULT_BACKOFF_CAP


@pytest.mark.parametrize("role", ROLES)
def test_role_vars_hold_no_rules_or_derivations(role: str) -> None:
    """vars/main.yml keeps plain constants only: beanfleet.fleet knows the rest."""
    text = (ANSIBLE_DIR / "roles" / role / "vars/main.yml").read_text(encoding="utf-8")
    assert "{{" not in text and "{%" not in text
    allowed = {f"{r}": {f"__{r}_root"} for r in ROLE_PREFIX}
    values = role_file(role, "vars/main.yml")
    if role in allowed:
        assert set(values) == allowed[role]


def test_one_pattern_per_name() -> None:
    """Tube and handler names have one pattern each (beanfleet.names), which the fleet's
    checks use and the worker's own parsers agree with."""
    from beanfleet import names as address
    from beanfleet.work.handlers import HandlerSpec

    assert fleet.TUBE_PATTERN is address.TUBE_PATTERN
    assert fleet.HANDLER_PATTERN is address.HANDLER_PATTERN
    for name in ["a", "x" * 200, "x" * 201, "-a", "a-", "a b", "a$b;c", "(x)", "é", ""]:
        ok = bool(re.match(fleet.TUBE_PATTERN, name))
        assert ok == _accepts(address.check_tube, name), name
    for target in ["m:f", "a.b:c.d", "_m:_f", "m:", ":f", "m.:f", "1m:f", "m:f:g", "é:f"]:
        if re.match(fleet.HANDLER_PATTERN, target):
            assert _accepts(HandlerSpec.parse, f"t={target}"), target


def _accepts(func: Any, value: str) -> bool:
    try:
        func(value)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", roles.FILES)
def test_role_files_are_generated(role: str, name: str) -> None:
    """defaults/main.yml and meta/argument_specs.yml are written from beanfleet.fleet.table."""
    committed = (ANSIBLE_DIR / "roles" / role / name).read_text(encoding="utf-8")
    assert committed == roles.render(role)[name], (
        f"ansible/roles/{role}/{name} differs from beanfleet.fleet.table: run `make render`"
    )


def test_plans_as_vars_equal_the_frozen_plans() -> None:
    """The typed plans give Ansible and `render` the variables the dict plans gave (frozen
    from the commit before the plans became dataclasses, the sandbox text left out: it is
    the templates' include now)."""
    frozen = json.loads((Path(__file__).parent / "plans" / "example.json").read_text())
    example = load_yaml(ANSIBLE_DIR / "inventories" / "example" / "group_vars" / "all.yml")
    cases = {
        "example": example,
        "example-no-monitoring": {**example, "monitoring_enabled": False},
        "example-supervisor": {
            **example,
            "beanfleet_manager": "supervisor",
            "beanstalkd_binlog_dir": "",
            "beanstalkd_firewall": False,
        },
    }
    for case, description in cases.items():
        model = fleet.validate(description, offline=True)
        got = {
            "workers-systemd": fleet.worker_plan(model, "systemd").as_vars(),
            "workers-supervisor": fleet.worker_plan(model, "supervisor").as_vars(),
            "queue": fleet.queue_plan(model).as_vars(),
        }
        if model.monitoring["enabled"]:
            got["monitor"] = fleet.monitor_plan(model).as_vars()
        assert json.dumps(got, indent=1) == json.dumps(frozen[case], indent=1), case
