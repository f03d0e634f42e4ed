"""The committed systemd/, supervisor/ and prometheus/ trees are the example fleet rendered
from templates/.

Regenerate them after changing templates/ or the example inventory (`make render`):
    beanfleet render --config ansible/inventories/example/group_vars/all.yml \\
        --manager systemd --out systemd
    (and --manager supervisor --out supervisor, and --prometheus --out prometheus)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_helpers import REPO, tree


@pytest.mark.parametrize("manager", ["systemd", "supervisor", "prometheus"])
def test_committed_files_match_the_templates(
    rendered_example: dict[str, Path], manager: str
) -> None:
    committed = tree(REPO / manager)
    committed.pop("README.md")
    fresh = tree(rendered_example[manager])
    hint = f"{manager}/ is stale: run `make render` (see this test's docstring)"
    assert sorted(committed) == sorted(fresh), hint
    for path, (kind, mode, content) in fresh.items():
        assert committed[path][0] == kind, f"{hint}: {path}"
        assert committed[path][2] == content, f"{hint}: {path} differs"
        if kind == "file":
            # git keeps only the executable bit; compare that much.
            assert committed[path][1] & 0o100 == mode & 0o100, f"{hint}: {path} mode"
