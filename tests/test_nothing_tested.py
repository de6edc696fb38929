"""Nothing passes by testing nothing: a run in which no test could run on its
target fails with one line naming what the target lacks, and the summary
counts every test of the run as pytest does, with the run's wall time.

Inner pytest runs (pytester) on a target YAML in a temporary folder that
names no image recipe and no tools: nothing is built and nothing boots.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

BARE_TARGET = """\
imports:
  - harness.labgrid_glue
targets:
  main:
    drivers:
      ABQEMUDriver:
        qemu_bin: qemu-aarch64
        machine: virt
        disk: disk
      ShellDriver:
        prompt: 'ab-shell# '
        login_prompt: ' login: '
        username: root
      ABBootStrategy: {}
ab-harness:
  bootloader: uboot
  env: {partition: 1, files: [uboot.env, uboot-redund.env], size: 0x4000}
  slots: {A: 2, B: 3}
"""

# A scenario that installs a release, and one that needs a watchdog: neither can
# run on the bare target (no recipe, so no releases; no watchdog in its machine).
UNRUNNABLE = """
    import pytest

    def test_update_commits(ab_target_spec, payloads):
        raise AssertionError("must not run: the target has no releases")

    @pytest.mark.ab_needs("watchdog")
    def test_watchdog_resets(ab_target_spec):
        raise AssertionError("must not run: the target has no watchdog")
"""


def bare_target(pytester: pytest.Pytester) -> Path:
    path = pytester.path / "bare.yaml"
    path.write_text(BARE_TARGET)
    return path


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    results = pytester.path / "results"
    return pytester.runpytest_subprocess(
        "-p", "no:labgrid", f"--ab-results={results}", *args, timeout=120
    )


def test_a_run_where_every_test_is_skipped_fails_naming_what_the_target_lacks(
    pytester: pytest.Pytester,
) -> None:
    target = bare_target(pytester)
    pytester.makepyfile(test_scenarios=UNRUNNABLE)

    result = run(pytester, f"--ab-target={target}", "-rs")

    result.assert_outcomes(skipped=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    said = [ln for ln in result.outlines if "nothing was tested" in ln]
    assert said == [
        "ab-harness: nothing was tested on target "
        f"{target}: all 2 of its tests were skipped, so the run fails (exit status 1); it "
        "lacks: target bare lacks watchdog (a hardware watchdog that resets the board "
        "(ABQEMUDriver `watchdog:`)) (1 test); target has no releases (ab-harness.releases) and no "
        "image recipe, so no payloads "
        f"(1 test) — fix: give the target what the scenarios need ('ab-harness target check "
        f"{target}' says what each one lacks)"
    ]
    # The summary lists both, each with the reason it was skipped.
    result.stdout.fnmatch_lines(
        [
            "*= ab-harness summary =*",
            "test_update_commits * skipped * 0 * target has no releases (ab-harness.releases)*",
            "test_watchdog_resets * skipped * 0 * target bare lacks watchdog (*",
            "0/2 passed, 2 skipped, 0 boots, * s",
        ]
    )


def test_a_run_that_tested_something_on_the_target_passes(pytester: pytest.Pytester) -> None:
    """The check can pass: the same skips beside one test that ran are a green run."""
    target = bare_target(pytester)
    pytester.makepyfile(
        test_scenarios=UNRUNNABLE
        + """
    def test_target_loads(ab_target_spec):
        assert ab_target_spec.slots == {"A": 2, "B": 3}
"""
    )

    result = run(pytester, f"--ab-target={target}")

    result.assert_outcomes(passed=1, skipped=2)
    assert result.ret == pytest.ExitCode.OK
    assert "nothing was tested" not in result.stdout.str()
    result.stdout.fnmatch_lines(["1/3 passed, 2 skipped, 0 boots, * s"])


def test_one_untested_target_of_two_fails_the_run(pytester: pytest.Pytester) -> None:
    """With a target that has a watchdog beside one that has not, only the bare
    one is named: the watchdog scenario ran on the other."""
    bare = bare_target(pytester)
    guarded = pytester.path / "guarded.yaml"
    guarded.write_text(
        BARE_TARGET.replace(
            "        disk: disk\n", "        disk: disk\n        watchdog: i6300esb\n"
        )
    )
    pytester.makepyfile(
        test_watchdog="""
        import pytest

        @pytest.mark.ab_needs("watchdog")
        def test_watchdog_resets(ab_target_spec):
            assert ab_target_spec.name == "guarded"
        """
    )

    result = run(pytester, f"--ab-target={bare},{guarded}")

    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    said = [ln for ln in result.outlines if "nothing was tested" in ln]
    assert len(said) == 1
    assert said[0].startswith(f"ab-harness: nothing was tested on target {bare}: its only test")


SUMMED = """
    import time
    import pytest

    @pytest.fixture
    def broken():
        raise RuntimeError("setup fails")

    @pytest.mark.parametrize("n", range(4))
    def test_sleeps(ab_target_spec, n):
        time.sleep(2)

    def test_fails(ab_target_spec):
        assert False

    def test_errs(ab_target_spec, broken):
        pass

    @pytest.mark.xfail(reason="known")
    def test_xfails(ab_target_spec):
        assert False

    @pytest.mark.ab_needs("watchdog")
    def test_skipped(ab_target_spec):
        pass

    def test_without_a_target():
        pass
"""


def counts(line: str) -> dict[str, int]:
    found = {word: int(n) for n, word in re.findall(r"(\d+) ([a-z]+)", line)}
    if "errors" in found:
        found["error"] = found.pop("errors")
    return {k: v for k, v in found.items() if k not in ("boots", "warnings", "s")}


def test_the_summary_counts_every_test_as_pytest_does_with_the_wall_time(
    pytester: pytest.Pytester,
) -> None:
    target = bare_target(pytester)
    pytester.makepyfile(test_mixed=SUMMED)

    result = run(pytester, f"--ab-target={target}", "-n", "2")

    result.assert_outcomes(passed=5, failed=1, errors=1, skipped=1, xfailed=1)
    lines = result.outlines
    start = next(i for i, ln in enumerate(lines) if "= ab-harness summary =" in ln)
    total = next(ln for ln in lines[start:] if re.match(r"\d+/\d+ passed", ln))
    ours = counts(total.split(" boots")[0].replace("/9 passed", " passed"))
    pytest_line = lines[-1]
    assert ours == counts(pytest_line.split(" in ")[0]), (total, pytest_line)
    assert total.startswith("5/9 passed, ")
    assert "(1 of the 9 tests use no target and have no row above)" in lines
    # Wall time, as pytest's own line gives it (worker start-up included); not the
    # sum of the tests' seconds over the workers (8 s of sleep, on two workers).
    wall = float(re.search(r"boots, ([\d.]+) s", total).group(1))  # type: ignore[union-attr]
    pytest_wall = float(re.search(r" in ([\d.]+)s", pytest_line).group(1))  # type: ignore[union-attr]
    rows = [ln for ln in lines[start:] if ln.startswith("test_sleeps[")]
    summed = sum(float(ln.split()[3]) for ln in rows)
    assert len(rows) == 4 and summed >= 8
    assert abs(wall - pytest_wall) < 1.0, (wall, pytest_wall, summed)
