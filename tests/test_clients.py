"""Update clients are adapters chosen by the target YAML or --ab-client."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.clients import ShellAgent, client_for
from harness.errors import HarnessConfigError
from harness.images import default_cache_dir
from harness.targets.target import default_targets_dir, load_target

REFERENCE = default_targets_dir() / "qemu-arm64-uboot.yaml"
CACHE = default_cache_dir()


def test_the_reference_client_is_the_shell_agent():
    assert isinstance(client_for("ab-update"), ShellAgent)
    assert load_target(str(REFERENCE)).update_client == "ab-update"


def test_an_unknown_client_lists_the_known_ones():
    with pytest.raises(HarnessConfigError, match="no update client named 'swupd'") as err:
        client_for("swupd")
    assert "ab-update" in str(err.value)


def test_a_target_naming_an_unknown_client_is_one_line(tmp_path: Path):
    broken = tmp_path / "t.yaml"
    broken.write_text(REFERENCE.read_text() + "  update_client: swupd\n")
    with pytest.raises(HarnessConfigError, match="update_client' is 'swupd'; supported: ab-update"):
        load_target(str(broken))


def test_an_unknown_ab_client_is_a_usage_error(pytester: pytest.Pytester):
    pytester.makepyfile("def test_x(update_client): pass")
    result = pytester.runpytest_subprocess(
        "-p", "no:labgrid", "--ab-client=swupd", f"--ab-cache={CACHE}",
        f"--ab-results={pytester.path}/r", timeout=120,
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ab-harness: no update client named 'swupd'*ab-update*"])
