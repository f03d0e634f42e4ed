"""supervisor's own parser accepts the rendered programs and reads what the spec asks."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from beanfleet import fleet

supervisor_options = pytest.importorskip("supervisor.options")


def parse(conf_d: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    # The programs run as user beanfleet, which this machine need not have.
    real = supervisor_options.name_to_uid
    monkeypatch.setattr(
        supervisor_options,
        "name_to_uid",
        lambda name: 4242 if name == "beanfleet" else real(name),
    )
    main = tmp_path / "supervisord.conf"
    main.write_text(
        f"[supervisord]\nlogfile={tmp_path}/supervisord.log\n[include]\nfiles = {conf_d}/*.conf\n"
    )
    options = supervisor_options.ServerOptions()
    options.configfile = str(main)
    options.process_config(do_usage=False)
    return options


def test_programs_parse(
    rendered_example: dict[str, Path],
    example_fleet: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf_d = rendered_example["supervisor"] / "etc/supervisor/conf.d"
    options = parse(conf_d, tmp_path, monkeypatch)
    model = fleet.validate(example_fleet, offline=True)
    groups = {g.name: g for g in options.process_group_configs}
    # The worker metrics endpoint is a program of its own, outside the workers' group.
    assert sorted(groups) == ["beanfleet", "beanfleet-metrics"]
    (endpoint,) = groups["beanfleet-metrics"].process_configs
    # Started as root to load its firewall table, then the workers' user (setpriv): no
    # table, no endpoint.
    assert endpoint.uid is None and endpoint.autorestart is not False
    assert endpoint.command == (
        f"/bin/sh -c '{fleet.NFT} -f {fleet.METRICS_NFT_FILE} && exec {fleet.SETPRIV} "
        f"--reuid={fleet.USER} --regid={fleet.USER} --init-groups "
        f"{fleet.VENV}/bin/beanfleet metrics-endpoint --dir {fleet.METRICS_DIR} "
        "--listen 0.0.0.0:9651'"
    )
    group = groups["beanfleet"]
    by_name = {p.name: p for p in group.process_configs}
    expected = [
        f"beanfleet-{p['name']}_{n:02d}"
        for p in model.present_pools
        for n in range(1, p["processes"] + 1)
    ]
    assert sorted(by_name) == sorted(expected)
    for pool in model.present_pools:
        for n in range(1, pool["processes"] + 1):
            proc = by_name[f"beanfleet-{pool['name']}_{n:02d}"]
            assert proc.stopsignal == signal.SIGTERM
            assert proc.stopwaitsecs > pool["timeout"]
            assert proc.stopasgroup and proc.killasgroup
            assert proc.uid == 4242
            assert proc.autorestart is not False
            for key, value in pool["env"].items():
                assert proc.environment[key] == str(value)
            assert proc.environment["HOME"] == fleet.STATE_DIR
            assert f"--timeout {pool['timeout']} " in proc.command
            assert proc.command.startswith(f"{fleet.VENV}/bin/beanfleet work --server ")
        mode = (conf_d / f"beanfleet-{pool['name']}.conf").stat().st_mode & 0o777
        assert mode == 0o600  # secrets: not world-readable


def test_odd_values_survive_supervisors_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from beanfleet.fleet.render import render

    secret = "p,a%s$w:o;rd#1 \\x=y"
    description = {
        "beanfleet_server": "q:11300",
        "beanfleet_manager": "supervisor",
        "beanstalkd_firewall": False,
        "beanfleet_pools": [
            {"name": "p", "tubes": {";semi": "m:f", "a$b": "m:g"}, "env": {"S": secret}}
        ],
    }
    render(description, tmp_path / "out", "supervisor")
    options = parse(tmp_path / "out/etc/supervisor/conf.d", tmp_path, monkeypatch)
    (proc,) = options.process_group_configs[0].process_configs
    assert proc.environment["S"] == secret
    argv = options.process_group_configs[0].process_configs[0].command
    assert "--tube ';semi=m:f'" in argv and "--tube 'a$b=m:g'" in argv
