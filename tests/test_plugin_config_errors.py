"""A configuration error ends a pytest run once, in one line, before any test runs.

Each case runs an inner pytest (a subprocess, the plugin loaded by its entry
point) over several tests that all need the target: the error must appear
exactly once, with no traceback, and no test may run.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest
from test_image_cache import RECIPE
from test_plugin import DEFAULT_CACHE, copy_target, run

from harness.images import ensure_image
from harness.options import option

THREE_TESTS = """
def test_one(ab_target_spec): print("RAN one")
def test_two(target): print("RAN two")
def test_three(booted): print("RAN three")
"""


def assert_once(result: pytest.RunResult, line: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    errors = [x for x in result.errlines if x.startswith("ERROR: ab-harness: ")]
    assert len(errors) == 1, errors
    assert fnmatch.fnmatchcase(errors[0], line), errors[0]
    everything = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in everything
    assert "RAN " not in everything


@pytest.fixture
def image_cache(pytestconfig: pytest.Config) -> str:
    """The image cache of the outer run, so inner runs reuse the built image."""
    return option(pytestconfig, "ab_cache") or str(DEFAULT_CACHE)


def test_unknown_target_is_one_line_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(THREE_TESTS)

    result = run(pytester, "-s", "--ab-target=nope")

    assert_once(result, "ERROR: ab-harness: unknown target 'nope' — fix: use one of: *")


def test_unknown_target_under_xdist_is_one_line_not_an_internal_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(THREE_TESTS)

    result = run(pytester, "-n", "2", "--ab-target=nope")

    assert_once(result, "ERROR: ab-harness: unknown target 'nope' — fix: use one of: *")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_unknown_target_is_named_even_if_no_test_needs_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain(): print('RAN plain')")

    result = run(pytester, "-s", "--ab-target=nope")

    assert_once(result, "ERROR: ab-harness: unknown target 'nope' — fix: use one of: *")


def test_plain_tests_build_and_check_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No test needs a target: the (default) target's image is neither built nor checked.
    monkeypatch.setenv("AB_CACHE_DIR", str(pytester.path / "empty-cache"))
    pytester.makepyfile("def test_plain(): pass")

    result = run(pytester)

    result.assert_outcomes(passed=1)
    assert not (pytester.path / "empty-cache").exists()


def test_slot_map_that_does_not_fit_the_disk_is_one_line_once(
    pytester: pytest.Pytester,
    image_cache: str,
) -> None:
    target = copy_target(pytester, "x", replace=("slots: {A: 2, B: 3}", "slots: {A: 2, B: 5}"))
    pytester.makepyfile(THREE_TESTS)

    result = run(pytester, "-s", f"--ab-target={target}", f"--ab-cache={image_cache}")

    assert_once(
        result,
        f"ERROR: ab-harness: {target}: ab-harness.slots.B is partition 5 but disk.img has "
        "partitions 1-4 — fix: *",
    )


def test_corrupt_image_cache_is_one_line_once(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipes = pytester.path / "recipes"
    (recipes / "tiny").mkdir(parents=True)
    (recipes / "tiny" / "recipe.py").write_text(RECIPE)
    monkeypatch.setenv("AB_RECIPES_DIR", str(recipes))
    cache = pytester.path / "cache"
    disk = ensure_image("tiny", cache=cache, progress=lambda _: None).file("disk")
    os.truncate(disk, 0)
    target = copy_target(pytester, "x", replace=("image: arm64-uboot", "image: tiny"))
    pytester.makepyfile(THREE_TESTS)

    result = run(pytester, "-s", f"--ab-target={target}", f"--ab-cache={cache}")

    assert_once(
        result,
        f"ERROR: ab-harness: image cache entry for 'tiny' is bad: {Path(disk)} is 0 bytes, "
        "built as * — fix: run 'ab-harness images build tiny --force' to rebuild it",
    )


def test_a_results_folder_that_cannot_be_written_is_one_line_once(
    pytester: pytest.Pytester,
) -> None:
    blocker = pytester.path / "not-a-folder"
    blocker.write_text("a file where the results folder should be\n")
    pytester.makepyfile(THREE_TESTS)

    result = run(pytester, "-s", f"--ab-results={blocker / 'results'}")

    assert_once(
        result,
        f"ERROR: ab-harness: cannot write evidence to {blocker / 'results'}: Not a directory"
        " — fix: free space there, or choose another folder with --ab-results / AB_RESULTS",
    )
