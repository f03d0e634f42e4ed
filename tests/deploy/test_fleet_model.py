"""beanfleet.fleet: defaults, and one clear one-line error per invalid setting."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from beanfleet import fleet
from beanfleet.errors import ConfigError
from beanfleet.fleet.render import MANIFEST, render

GOOD_POOL = {"name": "emails", "tubes": {"emails": "app.handlers:send"}}


def description(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "beanfleet_server": "10.0.0.1:11300",
        "beanstalkd_firewall_allow": ["10.0.0.0/24"],
        "beanfleet_pools": [dict(GOOD_POOL)],
    }
    base.update(overrides)
    return base


def pool(**overrides: Any) -> dict[str, Any]:
    out = copy.deepcopy(GOOD_POOL)
    out.update(overrides)
    return out


def test_defaults_fill_in_every_pool_setting() -> None:
    result = fleet.validate(description())
    assert result.manager == "systemd"
    (full,) = result.pools
    assert full == {**fleet.POOL_DEFAULTS, **GOOD_POOL}
    assert fleet.instances(full) == ["emails-1"]


def test_pool_defaults_can_be_overridden_fleet_wide() -> None:
    result = fleet.validate(description(beanfleet_pool_defaults={"processes": 4}))
    assert result.pools[0]["processes"] == 4
    assert result.pools[0]["timeout"] == fleet.POOL_DEFAULTS["timeout"]


def test_absent_pools_are_kept_but_not_present() -> None:
    result = fleet.validate(
        description(beanfleet_pools=[GOOD_POOL, pool(name="old", state="absent")])
    )
    assert [p["name"] for p in result.pools] == ["emails", "old"]
    assert [p["name"] for p in result.present_pools] == ["emails"]


BAD = [
    (
        {"beanfleet_pools": [pool(processes=-1)]},
        "beanfleet_pools[0] (emails): processes must be an integer >= 1, got -1",
    ),
    (
        {"beanfleet_pools": [pool(processes=0)]},
        "beanfleet_pools[0] (emails): processes must be an integer >= 1, got 0",
    ),
    (
        {"beanfleet_manager": "upstart"},
        "beanfleet_manager must be one of: systemd, supervisor, got 'upstart'",
    ),
    (
        {"beanfleet_pools": [pool(tubes={"emails": "app.handlers"})]},
        (
            "beanfleet_pools[0] (emails): handler of tube 'emails' must be MODULE:FUNCTION, "
            "got 'app.handlers'"
        ),
    ),
    (
        {"beanfleet_pools": [pool(tubes={"emails": "app handlers:send"})]},
        (
            "beanfleet_pools[0] (emails): handler of tube 'emails' must be MODULE:FUNCTION, "
            "got 'app handlers:send'"
        ),
    ),
    (
        {"beanfleet_pools": [GOOD_POOL, pool(processes=2)]},
        "beanfleet_pools[1] (emails): duplicate pool name 'emails'",
    ),
    (
        {"beanfleet_pools": [pool(tubes={"-bad": "a:b"})]},
        (
            "beanfleet_pools[0] (emails): invalid tube name '-bad': 1-200 characters of "
            "letters, digits and -+/;.$_(), not starting with '-'"
        ),
    ),
    (
        {"beanfleet_pools": [pool(tubes={"a b": "a:b"})]},
        "beanfleet_pools[0] (emails): invalid tube name 'a b'",
    ),
    ({"beanfleet_pools": [pool(tubes={"x" * 201: "a:b"})]}, "invalid tube name"),
    ({"beanfleet_pools": [pool(tubes={})]}, "tubes must be a non-empty mapping"),
    ({"beanfleet_pools": [pool(name="bad name")]}, "invalid pool name 'bad name'"),
    ({"beanfleet_pools": [pool(name="-x")]}, "invalid pool name '-x'"),
    (
        {"beanfleet_pools": [{"tubes": {"a": "a:b"}}]},
        "beanfleet_pools[0]: name is required",
    ),
    ({"beanfleet_pools": [{"name": "x"}]}, "beanfleet_pools[0] (x): tubes is required"),
    ({"beanfleet_pools": [pool(procs=2)]}, "unknown setting 'procs'"),
    (
        {"beanfleet_pools": [pool(max_retries=-1)]},
        "max_retries must be an integer >= 0, got -1",
    ),
    ({"beanfleet_pools": [pool(timeout=0)]}, "timeout must be a number > 0, got 0"),
    (
        {"beanfleet_pools": [pool(max_memory=-5)]},
        "max_memory must be a number >= 0, got -5",
    ),
    ({"beanfleet_pools": [pool(max_jobs=1.5)]}, "max_jobs must be an integer, got 1.5"),
    ({"beanfleet_pools": [pool(prefetch="yes")]}, "prefetch must be true or false, got 'yes'"),
    (
        {"beanfleet_pools": [pool(processes=True)]},
        "processes must be an integer, got True",
    ),
    (
        {"beanfleet_pools": [pool(backoff_base=10, backoff_cap=5)]},
        "backoff_cap (5) must be >= backoff_base (10)",
    ),
    (
        {"beanfleet_pools": [pool(state="gone")]},
        "state must be one of: present, absent",
    ),
    ({"beanfleet_pools": [pool(env={"1X": "v"})]}, "env: invalid variable name '1X'"),
    ({"beanfleet_pools": [pool(env={"A": "x\ny"})]}, "env: A must be one line"),
    (
        {"beanfleet_pools": [pool(env={"A": 'say "hi"'})]},
        "env: A must not contain quotes",
    ),
    ({"beanfleet_pools": [pool(env={"BEANFLEET_SERVER": "x"})]}, "is set by beanfleet"),
    (
        {"beanfleet_pools": [pool(env={"A": "x #y"})]},
        "env: A must not contain ' ;' or ' #'",
    ),
    (
        {"beanfleet_server": "nohost"},
        "beanfleet_server: invalid server address 'nohost'",
    ),
    (
        {"beanfleet_log_format": "xml"},
        "beanfleet_log_format must be one of: text, json",
    ),
    ({"beanfleet_packages": "beanfleet-example"}, "beanfleet_packages must be a list"),
    ({"beanfleet_pools": {"name": "x"}}, "beanfleet_pools must be a list of pools"),
    (
        {"beanstalkd_port": 70000},
        "beanstalkd_port must be an integer between 1 and 65535",
    ),
    ({"beanstalkd_port": "http"}, "beanstalkd_port must be an integer, got 'http'"),
    (
        {"beanstalkd_fsync_ms": -1},
        "beanstalkd_fsync_ms must be an integer >= 0, got -1",
    ),
    (
        {"beanstalkd_binlog_dir": "var/lib"},
        "beanstalkd_binlog_dir must be an absolute path",
    ),
    (
        {"beanstalkd_max_job_size": 2**31},
        "beanstalkd_max_job_size must be an integer between",
    ),
    (
        {"beanstalkd_firewall": "yes"},
        "beanstalkd_firewall must be true or false, got 'yes'",
    ),
    (
        {"beanstalkd_firewall_allow": ["10.0.0.300"]},
        "'10.0.0.300' is not an IP address",
    ),
    (
        {"beanstalkd_listen_adress": "0.0.0.0"},
        "unknown setting 'beanstalkd_listen_adress'",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[m for _, m in BAD])
def test_invalid_settings_are_rejected_in_one_line(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        fleet.validate(description(**overrides))
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_every_problem_is_reported_one_line_each() -> None:
    bad = description(
        beanfleet_pools=[pool(processes=0, timeout=0), pool(name="x y")],
        beanstalkd_port=0,
    )
    result, problems = fleet.check(bad)
    assert result is None
    assert problems == [
        "beanfleet_pools[0] (emails): processes must be an integer >= 1, got 0",
        "beanfleet_pools[0] (emails): timeout must be a number > 0, got 0",
        "beanfleet_pools[1] (x y): invalid pool name 'x y': 1-64 letters, digits, '_' and '-', "
        "starting with a letter or digit",
        "beanstalkd_port must be an integer between 1 and 65535, got 0",
    ]
    with pytest.raises(fleet.FleetError) as info:
        fleet.validate(bad)
    assert str(info.value).splitlines() == problems


def test_a_part_checks_only_its_role() -> None:
    bad = description(beanstalkd_port=0, beanfleet_stop_grace=0)
    _, workers = fleet.check(bad, part="workers")
    _, queue = fleet.check(bad, part="queue")
    assert workers == ["beanfleet_stop_grace must be an integer >= 1, got 0"]
    assert queue == ["beanstalkd_port must be an integer between 1 and 65535, got 0"]


def test_inventory_defaults() -> None:
    queue = {"inventory_hostname": "q", "beanfleet_host_address": "10.0.0.5"}
    inventory = fleet.Inventory(queues=(queue,), addresses=("10.0.0.5", "10.0.0.6", "10.0.0.5"))
    result = fleet.validate(
        {"beanfleet_pools": [GOOD_POOL], "beanstalkd_port": 11301}, inventory=inventory
    )
    assert result.server == "10.0.0.5:11300"
    assert result.firewall_allow == ["10.0.0.5", "10.0.0.6"]
    v6 = fleet.Inventory(queues=({"inventory_hostname": "q", "ansible_host": "fd00::5"},))
    assert fleet.validate({}, inventory=v6).server == "[fd00::5]:11300"
    listen = fleet.Inventory(
        queues=(
            {
                "inventory_hostname": "q",
                "beanstalkd_listen_address": "10.9.9.9",
                "beanstalkd_port": 1,
            },
        )
    )
    assert fleet.validate({}, inventory=listen).server == "10.9.9.9:1"
    with pytest.raises(ConfigError, match="has no group 'queue'"):
        fleet.validate({}, inventory=fleet.Inventory())


def test_several_queue_hosts_make_one_server_list() -> None:
    # Every host of group queue, in inventory order, each with its own port: the pools and
    # the tools get the whole list (BEANFLEET_SERVER=a,b).
    queues = (
        {"inventory_hostname": "q1", "beanfleet_host_address": "10.0.0.5"},
        {"inventory_hostname": "q2", "beanfleet_host_address": "10.0.0.7", "beanstalkd_port": 114},
    )
    result = fleet.validate({"beanfleet_pools": [GOOD_POOL]}, inventory=fleet.Inventory(queues))
    assert result.server == "10.0.0.5:11300,10.0.0.7:114"
    pools = fleet.worker_plan(result).as_vars()["pools"]
    assert all("--server 10.0.0.5:11300,10.0.0.7:114 " in p["command"] for p in pools.values())
    # Two queue hosts that resolve to one address would get every job twice in every sum.
    twice = (queues[0], {"inventory_hostname": "q3", "beanfleet_host_address": "10.0.0.5"})
    with pytest.raises(ConfigError, match=r"group 'queue': .*10\.0\.0\.5:11300 given twice"):
        fleet.validate({}, inventory=fleet.Inventory(twice))


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("a:11300,", "an empty entry"),
        ("a:11300,a:11300", "a:11300 given twice"),
        ("a:11300,b", "invalid server address 'b'"),
    ],
)
def test_a_bad_server_list_is_one_line(server: str, message: str) -> None:
    problems = fleet.check({"beanfleet_server": server}, part="workers")[1]
    assert len(problems) == 1
    assert problems[0].startswith("beanfleet_server: ") and message in problems[0], problems


def test_host_address_order() -> None:
    facts = {"ansible_default_ipv4": {"address": "10.0.0.2"}, "ansible_host": "h.example"}
    assert fleet.host_address("h", {**facts, "beanfleet_host_address": "10.0.0.1"}) == "10.0.0.1"
    assert fleet.host_address("h", facts) == "10.0.0.2"
    assert fleet.host_address("h", {"ansible_host": "h.example"}) == "h.example"
    assert fleet.host_address("h", {}) == "h"


def test_plans_list_every_file_once() -> None:
    result = fleet.validate(description(beanfleet_pools=[pool(processes=2)]))
    systemd = fleet.worker_plan(result, "systemd").as_vars()
    paths = [f["path"] for f in systemd["files"]] + [link["path"] for link in systemd["links"]]
    assert len(paths) == len(set(paths)) == 2 + 2 + 2
    assert systemd["pools"]["emails"]["stop_timeout"] == 60 + 30
    assert systemd["instances"] == ["emails-1", "emails-2"]
    env = next(f for f in systemd["files"] if f["path"].endswith(".env"))
    assert (env["mode"], env["secret"], env["restarts"]) == ("0600", True, ["emails-1", "emails-2"])
    supervisor = fleet.worker_plan(result, "supervisor").as_vars()
    assert [f["mode"] for f in supervisor["files"]] == ["0644", "0600"]
    assert "'emails=app.handlers:send'" in supervisor["pools"]["emails"]["command"]
    queue = fleet.queue_plan(result).as_vars()
    assert [f["path"] for f in queue["files"]] == [fleet.BEANSTALKD_DROPIN, fleet.NFT_FILE]


def test_importing_the_model_needs_no_greenstalk() -> None:
    """The controller's Ansible imports beanfleet.fleet: no client, no exporter; and only
    beanfleet.fleet.render (which it does not import) needs jinja2 and yaml."""
    code = (
        "import sys, beanfleet.fleet; first = {m for m in ('jinja2', 'yaml') if m in sys.modules}; "
        "import beanfleet.fleet.render; "
        "print(sorted(first), 'greenstalk' in sys.modules, 'prometheus_client' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] False False"


def test_wheelhouse_digest(tmp_path: Path) -> None:
    assert fleet.wheelhouse_digest(str(tmp_path / "none"), ["beanfleet"]) == ""
    (tmp_path / "a.whl").write_bytes(b"1")
    first = fleet.wheelhouse_digest(str(tmp_path), ["beanfleet"])
    assert first == fleet.wheelhouse_digest(str(tmp_path), ["beanfleet"])
    assert first != fleet.wheelhouse_digest(str(tmp_path), ["beanfleet", "x"])
    (tmp_path / "a.whl").write_bytes(b"2")
    assert first != fleet.wheelhouse_digest(str(tmp_path), ["beanfleet"])


def test_env_values_are_never_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        fleet.validate(description(beanfleet_pools=[pool(env={"TOKEN": "s3cret\n"})]))
    assert "s3cret" not in str(info.value)


def test_valid_edge_values() -> None:
    fleet.validate(
        description(
            beanfleet_pools=[
                pool(
                    name="a-b_c9",
                    tubes={"x" * 200: "a.b.c:d", "q+/;.$_()-z": "m:Cls.method"},
                    max_jobs=0,
                    max_time=0,
                    max_memory=0,
                    backoff_base=0,
                    backoff_cap=0,
                    env={"A_1": "p@ss w0rd$%\\`", "N": 3},
                )
            ],
            beanstalkd_binlog_dir="",
            beanstalkd_fsync_ms=0,
            beanstalkd_firewall_allow=["10.0.0.1", "fd00::/8"],
            beanfleet_server="[fd00::1]:11300",
        )
    )


def test_offline_rendering_needs_the_inventory_defaults_spelled_out() -> None:
    with pytest.raises(ConfigError, match="beanfleet_server must be set for offline"):
        fleet.validate({"beanstalkd_firewall_allow": []}, offline=True)
    with pytest.raises(ConfigError, match="beanstalkd_firewall_allow must be set for offline"):
        fleet.validate({"beanfleet_server": "q:1", "beanstalkd_firewall_allow": None}, offline=True)
    with pytest.raises(ConfigError, match="beanstalkd_firewall_allow must be set for offline"):
        fleet.validate({"beanfleet_server": "q:11300"}, offline=True)
    fleet.validate({"beanfleet_server": "q:11300", "beanstalkd_firewall": False}, offline=True)


# --- render(): what it writes, and that it writes nothing for a bad description ---


def test_render_rejects_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="processes must be an integer >= 1"):
        render(description(beanfleet_pools=[pool(processes=-2)]), out, "systemd")
    assert not out.exists()


def test_render_refuses_a_foreign_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "precious").write_text("keep me")
    with pytest.raises(ConfigError, match="refusing to render"):
        render(description(), tmp_path, "systemd")
    assert (tmp_path / "precious").read_text() == "keep me"


def test_render_again_removes_what_the_fleet_no_longer_has(tmp_path: Path) -> None:
    render(description(beanfleet_pools=[pool(processes=2)]), tmp_path, "systemd")
    second = tmp_path / "etc/systemd/system/beanfleet-worker@emails-2.service.d/pool.conf"
    assert second.is_symlink()
    assert second.resolve() == (tmp_path / "etc/beanfleet/pools/emails.conf").resolve()
    render(description(), tmp_path, "systemd")
    assert not second.parent.exists()
    assert (tmp_path / "etc/systemd/system/beanfleet-worker@emails-1.service.d").is_dir()
    assert (tmp_path / MANIFEST).exists()
    render(description(), tmp_path, "supervisor")
    assert not (tmp_path / "etc/beanfleet/pools").exists()
    assert (
        tmp_path / "etc/supervisor/conf.d/beanfleet-emails.conf"
    ).stat().st_mode & 0o777 == 0o600


def test_render_reads_fleet_yaml_and_rejects_jinja(tmp_path: Path) -> None:
    config = tmp_path / "fleet.yml"
    config.write_text("beanfleet_server: '{{ groups.queue[0] }}:11300'\n")
    with pytest.raises(ConfigError, match="Jinja expression"):
        render(config, tmp_path / "out", "systemd")
    config.write_text("beanfleet_pools: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        render(config, tmp_path / "out", "systemd")


def test_secrets_files_are_private_and_quoted(tmp_path: Path) -> None:
    env = {"TOKEN": "a$b\\c`d", "PLAIN": "x"}
    render(description(beanfleet_pools=[pool(env=env)]), tmp_path, "systemd")
    env_file = tmp_path / "etc/beanfleet/pools/emails.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert 'TOKEN="a\\$b\\\\c\\`d"\n' in env_file.read_text()


# -- monitoring (beanfleet.fleet.monitoring) ------------------------------------------------

MONITORING_BAD = [
    ({"monitoring_enabled": "yes"}, "monitoring_enabled must be true or false, got 'yes'"),
    ({"monitoring_scrape_group": "a b"}, "monitoring_scrape_group must be an inventory group"),
    ({"monitoring_worker_port": 0}, "monitoring_worker_port must be an integer between 1"),
    ({"monitoring_exporter_port": "9650"}, "monitoring_exporter_port must be an integer"),
    ({"monitoring_scrape_interval": "15"}, "monitoring_scrape_interval must be a Prometheus"),
    ({"monitoring_oldest_ready_age": 0}, "monitoring_oldest_ready_age must be a whole number"),
    (
        {"monitoring_tube_oldest_ready_age": {"-x": 5}},
        "monitoring_tube_oldest_ready_age: '-x' is not a tube name",
    ),
    (
        {"monitoring_tube_oldest_ready_age": {"x": 1.5}},
        "monitoring_tube_oldest_ready_age[x] must be a whole number of seconds >= 1, got 1.5",
    ),
    ({"monitoring_failure_rate": 0}, "monitoring_failure_rate must be a ratio > 0 and <= 1"),
    (
        {"monitoring_pool_failure_rate": {"nope": 0.2}},
        "monitoring_pool_failure_rate: 'nope' is not a pool of the fleet (emails)",
    ),
    ({"monitoring_binlog_free_ratio": 2}, "monitoring_binlog_free_ratio must be a ratio"),
    (
        {"monitoring_alert_for": {"BeanstalkdDown": "soon"}},
        "monitoring_alert_for[BeanstalkdDown] must be a Prometheus duration",
    ),
    ({"monitoring_alert_for": {"Nope": "1m"}}, "monitoring_alert_for: 'Nope' is not an alert"),
    ({"monitoring_scrape_allow": ["x"]}, "monitoring_scrape_allow: 'x' is not an IP address"),
    ({"monitoring_worker_hosts": ["a b"]}, "monitoring_worker_hosts must be a list of host"),
    ({"monitoring_enable": True}, "unknown setting 'monitoring_enable'"),
]


@pytest.mark.parametrize(
    ("overrides", "message"), MONITORING_BAD, ids=[m for _, m in MONITORING_BAD]
)
def test_invalid_monitoring_settings_are_rejected_in_one_line(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        fleet.validate(description(**overrides))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_monitoring_is_off_by_default_and_changes_nothing() -> None:
    model = fleet.validate(description())
    assert model.monitoring["enabled"] is False
    workers = fleet.worker_plan(model).as_vars()
    assert "--metrics-dir" not in workers["pools"]["emails"]["command"]
    assert not [f for f in workers["files"] if "metrics" in f["path"]]
    assert not [f for f in fleet.queue_plan(model).as_vars()["files"] if "exporter" in f["path"]]
    with pytest.raises(ConfigError, match="monitoring_enabled is false"):
        fleet.monitor_plan(model)


def test_monitoring_defaults_and_the_inventory_groups() -> None:
    inventory = fleet.Inventory(
        queues=(
            {"inventory_hostname": "q", "beanfleet_host_address": "10.0.0.5"},
            {"inventory_hostname": "q2", "beanfleet_host_address": "10.0.0.8"},
        ),
        addresses=("10.0.0.5",),
        groups={"monitor": ("10.0.0.9",), "workers": ("10.0.0.6", "10.0.0.7")},
    )
    model = fleet.validate(
        {"beanfleet_pools": [GOOD_POOL], "monitoring_enabled": True}, inventory=inventory
    )
    assert model.monitoring["scrape_allow"] == ["10.0.0.9"]
    plan = fleet.monitor_plan(model).as_vars()
    # Each queue host's exporter is a target of its own.
    assert plan["exporter_targets"] == ["10.0.0.5:9650", "10.0.0.8:9650"]
    assert plan["worker_targets"] == ["10.0.0.6:9651", "10.0.0.7:9651"]
    assert plan["alert_for"] == fleet.monitoring.ALERT_FOR
    assert plan["pools"] == [{"name": "emails", "processes": 1, "failure_rate": 0.1}]
    assert plan["oldest_ready_default_selector"] == "beanfleet_tube_oldest_ready_age_seconds"
    assert fleet.worker_plan(model).as_vars()["metrics"]["scrape_allow"] == ["10.0.0.9"]
    # Offline, the inventory's defaults must be spelled out.
    _, problems = fleet.check(description(monitoring_enabled=True), offline=True)
    assert [p.split(" must")[0] for p in problems] == [
        "monitoring_scrape_allow",
        "monitoring_worker_hosts",
    ]
