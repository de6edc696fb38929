"""The pytest plugin seen from outside: a pytest run inside the test (pytester).

Inner runs are subprocesses, so the plugin loads through its entry point as
it does for a user, and a booted QEMU is a real process of the inner run.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from harness.images import default_cache_dir
from harness.options import option
from harness.targets.target import default_targets_dir

REFERENCE_TARGET = default_targets_dir() / "qemu-arm64-uboot.yaml"
# Read now: pytester points HOME at its own directory, which moves ~/.cache.
DEFAULT_CACHE = default_cache_dir()
AB_FLAGS = (
    "--ab-target",
    "--ab-accel",
    "--ab-results",
    "--ab-keep-runs",
    "--ab-cache",
    "--ab-sweep",
    "--ab-client",
    "--ab-boot-timeout",
    "--ab-pace",
    "--ab-build-progress",
)

needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-system-aarch64") is None, reason="qemu-system-aarch64 not installed"
)


@pytest.fixture
def image_cache(pytestconfig: pytest.Config) -> str:
    """The image cache of the outer run, so inner runs reuse the built image."""
    return option(pytestconfig, "ab_cache") or str(DEFAULT_CACHE)


def copy_target(
    pytester: pytest.Pytester, name: str, replace: tuple[str, str] | None = None
) -> Path:
    """The reference target YAML under another file name (and so another target name)."""
    text = REFERENCE_TARGET.read_text()
    if replace is not None:
        assert replace[0] in text
        text = text.replace(*replace)
    path = pytester.path / f"{name}.yaml"
    path.write_text(text)
    return path


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """An inner pytest run. Give ab options as --ab-x=VALUE: before the plugin is
    loaded pytest takes a separate VALUE for a test path when it picks rootdir."""
    return pytester.runpytest_subprocess("-p", "no:labgrid", *args, timeout=120)


def test_options_are_prefixed_and_grouped_in_help(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--help")

    assert result.ret == pytest.ExitCode.OK
    lines = result.outlines
    start = lines.index("A/B update rollback harness:")  # the "ab-harness" group
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].strip())
    group = "\n".join(lines[start:end])
    found = re.findall(r"^  (--ab-[\w-]+)", group, flags=re.MULTILINE)
    assert tuple(found) == AB_FLAGS
    # Each says which environment variable sets it (help text wraps anywhere).
    words = " ".join(group.split())
    for env in (
        "AB_TARGET",
        "AB_ACCEL",
        "AB_RESULTS",
        "AB_KEEP_RUNS",
        "AB_CACHE_DIR",
        "AB_BOOT_TIMEOUT",
        "AB_PACE",
    ):
        assert f"(env {env})" in words
    # The same settings are ini keys.
    result.stdout.fnmatch_lines(["*ab_target (string):*", "*ab_boot_timeout (string):*"])


PRECEDENCE_TESTS = """
    import pytest

    def test_unmarked(ab_target_spec):
        print("RESOLVED unmarked", ab_target_spec.name)

    @pytest.mark.ab_target({marker!r})
    def test_marked(ab_target_spec):
        print("RESOLVED marked", ab_target_spec.name)
"""


def resolved(result: pytest.RunResult) -> dict[str, str]:
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    found = re.findall(r"RESOLVED (\w+) (\S+)", result.stdout.str())
    return dict(found)


def test_target_precedence_is_marker_cli_env_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    layers = {
        name: copy_target(pytester, f"from-{name}") for name in ("marker", "cli", "env", "ini")
    }
    pytester.makepyfile(PRECEDENCE_TESTS.format(marker=str(layers["marker"])))
    monkeypatch.delenv("AB_TARGET", raising=False)
    monkeypatch.setenv("AB_CACHE_DIR", str(DEFAULT_CACHE))  # the built image, not a new build

    # Nothing set: the default target, by name from targets/.
    assert resolved(run(pytester, "-s")) == {
        "unmarked": "qemu-arm64-uboot",
        "marked": "from-marker",
    }

    pytester.makeini(f"[pytest]\nab_target = {layers['ini']}\n")
    assert resolved(run(pytester, "-s")) == {"unmarked": "from-ini", "marked": "from-marker"}

    monkeypatch.setenv("AB_TARGET", str(layers["env"]))
    assert resolved(run(pytester, "-s")) == {"unmarked": "from-env", "marked": "from-marker"}

    cli = run(pytester, "-s", f"--ab-target={layers['cli']}")
    assert resolved(cli) == {"unmarked": "from-cli", "marked": "from-marker"}


def test_labgrid_plugin_loaded_is_a_usage_error_naming_the_fix(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")

    result = pytester.runpytest_subprocess(timeout=60)  # labgrid's plugin loads by entry point

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ab-harness: labgrid's own pytest plugin is loaded*"])
    assert "'-p no:labgrid'" in result.stderr.str()


def test_malformed_target_yaml_is_a_one_line_config_error(pytester: pytest.Pytester) -> None:
    broken = pytester.path / "path" / "to" / "broken.yaml"
    broken.parent.mkdir(parents=True)
    broken.write_text("targets:\n  main: [drivers\n  images: {}\n")
    pytester.makepyfile("def test_x(ab_target_spec): pass")

    result = run(pytester, "--ab-target=path/to/broken.yaml")

    # One line naming the file, the line and the fix, once for the session.
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: ab-harness: {broken}: invalid YAML at line 3: * — fix: fix the YAML *"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_missing_qemu_binary_says_what_to_install(
    pytester: pytest.Pytester, image_cache: str
) -> None:
    target = copy_target(
        pytester,
        "no-qemu",
        replace=("qemu-aarch64: qemu-system-aarch64", "qemu-aarch64: qemu-system-doesnotexist"),
    )
    pytester.makepyfile("def test_x(target): pass")

    result = run(pytester, f"--ab-target={target}", f"--ab-cache={image_cache}")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: ab-harness: target 'no-qemu' needs 'qemu-system-doesnotexist' "
            "(tools.qemu-aarch64), which is not installed — fix: apt-get install *"
        ]
    )


@needs_qemu
@pytest.mark.qemu
def test_summary_and_evidence_of_a_booting_test(
    pytester: pytest.Pytester, image_cache: str
) -> None:
    results = pytester.path / "results"
    pytester.makepyfile(
        test_boot="""
        def test_boots_slot_a(booted, observe):
            assert observe.booted_slot().slot == "A"
        """
    )

    result = run(pytester, f"--ab-results={results}", f"--ab-cache={image_cache}")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= ab-harness summary =*",
            "scenario*outcome*boots*seconds",
            "test_boots_slot_a*passed*1*.*",
            "1/1 passed, 1 boots, * s, accelerator: *(*)",
            "*= ab-harness oracle =*",
            "1 boots judged, 0 could not be judged",
        ]
    )
    evidence = results / "latest" / "test_boot.py-test_boots_slot_a"
    names = {p.name for p in evidence.iterdir()}
    assert {"serial.log", "boot-01.log", "timeline.txt"} <= names
    assert "boot-02.log" not in names
    assert any(re.fullmatch(r"env-\d\d-.+\.json", n) for n in names)
    assert (evidence / "boot-01.log").read_text().lstrip().startswith("U-Boot 20")
    assert b"ab-init: ready slot=A version=1" in (evidence / "serial.log").read_bytes()
    timeline = (evidence / "timeline.txt").read_text()
    assert "begin power on" in timeline
    assert re.search(r"boot #1 at .*bootloader chose A.*running A v1.*ready after", timeline)


@needs_qemu
@pytest.mark.qemu
def test_a_fault_that_never_fired_is_an_error_in_the_summary_and_the_matrix(
    pytester: pytest.Pytester, image_cache: str
) -> None:
    """The fault's check runs in the `faults` fixture's teardown, after the
    test body passed: the summary and the matrix must not say "passed"."""
    second = copy_target(pytester, "second-target")
    pytester.makepyfile(
        test_fault="""
        def test_armed_a_cut_that_never_fires(booted, faults):
            faults.power_cut_after("B", nbytes=1 << 20)  # never entered: it cannot fire
        """
    )

    result = run(
        pytester,
        f"--ab-target={REFERENCE_TARGET},{second}",
        f"--ab-results={pytester.path / 'results'}",
        f"--ab-cache={image_cache}",
    )

    result.assert_outcomes(passed=2, errors=2)  # pytest: the body passed, the teardown erred
    result.stdout.fnmatch_lines(["*FaultNotInjected: fault not injected: power-cut-after*"])
    result.stdout.fnmatch_lines(
        [
            "*= ab-harness summary =*",
            "scenario*outcome*boots*seconds",
            "test_armed_a_cut_that_never_fires*error*1*",
            "test_armed_a_cut_that_never_fires*error*1*",
            "0/2 passed, 2 errors, 2 boots, *",
            "(pytest's line counts 2 of the errors as passed too: their body passed, "
            "the teardown failed)",
            "*= ab-harness matrix: scenarios x targets =*",
            "scenario*qemu-arm64-uboot*second-target*",
            "test_armed_a_cut_that_never_fires*error*error",
            "qemu-arm64-uboot: 0/1 passed, 0 skipped",
            "second-target: 0/1 passed, 0 skipped",
        ]
    )
