"""The roles' defaults, argument specs and internal constants agree with beanfleet.fleet."""

from __future__ import annotations

import re
from typing import Any

import pytest
from beanfleet import fleet, render
from deploy_helpers import ANSIBLE_DIR, ROLES, load_yaml

ROLE_PREFIX = {"beanstalkd": "beanstalkd_", "beanfleet": "beanfleet_"}
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


@pytest.mark.parametrize("role", ["beanstalkd", "beanfleet"])
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


@pytest.mark.parametrize("role", ["beanstalkd", "beanfleet"])
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
    builtin = role_file("beanfleet", "vars/main.yml")["__beanfleet_pool_builtin"]
    assert builtin == fleet.POOL_DEFAULTS
    for key, value in fleet.POOL_DEFAULTS.items():
        assert type(builtin[key]) is type(value), key
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
    assert pool_options["env"]["no_log"] is True
    assert isinstance(fleet.POOL_DEFAULTS["timeout"], PY_TYPES["float"])


def test_internal_constants_equal_the_fleet_model() -> None:
    v = role_file("beanfleet", "vars/main.yml")
    assert v["__beanfleet_venv"] == fleet.VENV
    assert v["__beanfleet_state_dir"] == fleet.STATE_DIR
    assert v["__beanfleet_user"] == fleet.USER
    assert v["__beanfleet_pool_dir"] == render.POOL_DIR
    assert v["__beanfleet_pool_name_pattern"] == fleet.POOL_NAME_PATTERN
    assert v["__beanfleet_handler_pattern"] == fleet.HANDLER_PATTERN
    assert v["__beanfleet_tube_pattern"] == fleet.TUBE_PATTERN
    assert v["__beanfleet_env_name_pattern"] == fleet.ENV_NAME_PATTERN
    b = role_file("beanstalkd", "vars/main.yml")
    assert b["__beanstalkd_nft_file"] == "/" + render.NFT_FILE
    assert b["__beanstalkd_dropin"] == "/" + render.BEANSTALKD_DROPIN


def test_tube_pattern_agrees_with_the_worker() -> None:
    from beanfleet.address import _TUBE_RE

    for name in ["a", "x" * 200, "x" * 201, "-a", "a-", "a b", "a$b;c", "(x)", "é", ""]:
        assert bool(re.match(fleet.TUBE_PATTERN, name)) == bool(_TUBE_RE.match(name)), name
