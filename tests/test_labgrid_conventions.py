"""labgrid's conventions, honoured or refused in one line (harness.labgrid_glue):
--lg-env / LG_ENV pick the target, --lg-log gets the console through
labgrid's own logger, --lg-coordinator reaches the target's labgrid
options, and the shipped target YAMLs load with plain labgrid."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.images import default_cache_dir
from harness.targets.target import default_targets_dir

TARGETS = default_targets_dir()
REFERENCE = TARGETS / "qemu-arm64-uboot.yaml"
DEFAULT_CACHE = default_cache_dir()  # read before pytester moves HOME
REPO = TARGETS.parent

needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-system-aarch64") is None, reason="qemu-system-aarch64 not installed"
)


@pytest.fixture(autouse=True)
def _no_lab_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LG_ENV", "AB_TARGET", "LG_COORDINATOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AB_CACHE_DIR", str(DEFAULT_CACHE))


def board_copy(pytester: pytest.Pytester, name: str = "board-x") -> Path:
    path = pytester.path / f"{name}.yaml"
    path.write_text(REFERENCE.read_text())
    return path


@needs_qemu
@pytest.mark.qemu
def test_lg_env_is_the_target_and_lg_log_gets_the_console_live(pytester: pytest.Pytester) -> None:
    """One boot: the --lg-env file is what runs (not the default target), the
    harness's `target` is the one it boots, its boot log is on disk while
    the test still runs, and labgrid's --lg-log console logger heard the boot."""
    board = board_copy(pytester)
    pytester.makepyfile(
        """
        def test_x(booted, ab_target_spec, evidence, target, ab_live):
            print("SPEC", ab_target_spec.path)
            assert target is ab_live.target
            live = (evidence.directory / "boot-01.log").read_text()
            assert "ab-init: ready" in live, live[-300:]
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "labgrid", f"--lg-env={board}", "--lg-log=lglogs", "-s", timeout=180
    )

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines([f"*SPEC {board}"])
    logged = (pytester.path / "lglogs" / "console_main").read_text(errors="replace")
    assert "U-Boot 20" in logged and "ab-init: ready" in logged


def test_lg_env_and_another_ab_target_is_one_usage_error(pytester: pytest.Pytester) -> None:
    board = board_copy(pytester)
    pytester.makepyfile("def test_x(ab_target_spec): pass")

    result = pytester.runpytest_subprocess(
        "-p", "labgrid", f"--lg-env={board}", "--ab-target=qemu-arm64-uboot", timeout=60
    )

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: ab-harness: --lg-env names {board} but --ab-target*"])
    assert "Traceback" not in result.stderr.str()


def test_lg_env_without_ab_harness_section_is_refused(pytester: pytest.Pytester) -> None:
    plain = pytester.path / "plain.yaml"
    text = REFERENCE.read_text()
    plain.write_text(text[: text.index("\nab-harness:")] + "\n")
    pytester.makepyfile("def test_x(ab_target_spec): pass")

    result = pytester.runpytest_subprocess("-p", "labgrid", f"--lg-env={plain}", timeout=60)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: ab-harness: --lg-env names *plain.yaml, a labgrid environment without an "
            "'ab-harness:' section*— fix: add the section*"
        ]
    )


def test_lg_initial_state_is_refused(pytester: pytest.Pytester) -> None:
    board = board_copy(pytester)
    pytester.makepyfile("def test_x(): pass")

    result = pytester.runpytest_subprocess(
        "-p", "labgrid", f"--lg-env={board}", "--lg-initial-state=shell", timeout=60
    )

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ab-harness: --lg-initial-state cannot be honoured*"])


def test_LG_ENV_picks_the_target_without_labgrids_plugin_and_coordinator_reaches_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = board_copy(pytester, "from-lg-env")
    pytester.makepyfile(
        """
        def test_x(ab_target_spec):
            print("SPEC", ab_target_spec.name, ab_target_spec.labgrid.get("options"))
        """
    )
    monkeypatch.setenv("LG_ENV", str(board))

    plain = pytester.runpytest_subprocess("-p", "no:labgrid", "-s", timeout=60)
    assert plain.ret == pytest.ExitCode.OK, plain.stdout.str()
    plain.stdout.fnmatch_lines(["*SPEC from-lg-env None"])

    with_plugin = pytester.runpytest_subprocess(
        "-p", "labgrid", "--lg-coordinator=127.0.0.1:20999", "-s", timeout=60
    )
    assert with_plugin.ret == pytest.ExitCode.OK, with_plugin.stdout.str()
    with_plugin.stdout.fnmatch_lines(
        ["*SPEC from-lg-env {'coordinator_address': '127.0.0.1:20999'}"]
    )


PLAIN_LABGRID = """
import sys
import labgrid
env = labgrid.Environment(sys.argv[1])
target = env.get_target("main")
print(type(target.get_driver("Strategy")).__name__,
      sorted(type(d).__name__ for d in target.drivers))
"""


@pytest.mark.parametrize("path", sorted(TARGETS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_targets_load_with_plain_labgrid(path: Path, tmp_path: Path) -> None:
    """A fresh interpreter that imports only labgrid: `imports:` registers the drivers."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN_LABGRID, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("ABBootStrategy ")


def test_without_the_imports_key_plain_labgrid_does_not_know_the_drivers(tmp_path: Path) -> None:
    """The check above can fail: the same YAML without `imports:` is rejected."""
    text = REFERENCE.read_text()
    stripped = tmp_path / "no-imports.yaml"
    stripped.write_text(text.replace("imports:\n  - harness.labgrid_glue\n", ""))
    assert "imports:" not in stripped.read_text()
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN_LABGRID, str(stripped)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "unknown driver class ABQEMUDriver" in proc.stderr
