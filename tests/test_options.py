"""The --ab-* options seen from outside (pytester): defaults shown in
`pytest --help`, bad values as one usage-error line whichever place they
come from, and an unknown payload name that lists the valid ones."""

from __future__ import annotations

import re

import pytest

from harness.errors import HarnessConfigError, blame
from harness.images import ImageSet, UnknownPayload, default_cache_dir
from harness.options import OPTIONS

DEFAULT_CACHE = default_cache_dir()


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:labgrid", *args, timeout=120)


def test_every_ab_option_shows_its_default_in_help(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--help")
    assert result.ret == pytest.ExitCode.OK
    text = result.stdout.str()
    start = text.index("A/B update rollback harness:")
    group = " ".join(text[start : text.index("\n\n", start)].split())
    for opt in OPTIONS:
        shown = opt.default if opt.default is not None else opt.shown_default
        assert f"{opt.flag}=" in group or f"{opt.flag} " in group
        assert f"(default: {shown})" in group, (opt.flag, group)
    assert "(default: qemu-arm64-uboot)" in group
    assert "(default: auto)" in group


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["--ab-boot-timeout=abc"],
            {},
            "ERROR: ab-harness: --ab-boot-timeout is 'abc' (from --ab-boot-timeout): "
            "it must be a number of seconds, e.g. 120 — fix: *",
        ),
        (
            ["--ab-boot-timeout=-5"],
            {},
            "ERROR: ab-harness: --ab-boot-timeout is '-5' *: it must be a positive number *",
        ),
        (
            [],
            {"AB_ACCEL": "fast"},
            "ERROR: ab-harness: --ab-accel is 'fast' (from environment variable AB_ACCEL): "
            "it must be one of: auto, kvm, tcg — fix: *",
        ),
        (
            ["--ab-sweep=all"],
            {},
            "ERROR: ab-harness: --ab-sweep is 'all' *: it must be one of: quick, full — fix: *",
        ),
        (
            [],
            {"AB_PACE": "off"},
            "ERROR: ab-harness: --ab-pace is 'off' (from environment variable AB_PACE): "
            "it must be one of: measured, fixed — fix: *",
        ),
    ],
)
def test_bad_values_are_one_usage_error_line(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    expected: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile("def test_x(): pass")

    result = run(pytester, *args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert "1 passed" not in result.stdout.str()  # nothing ran


def test_good_values_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = run(
        pytester, "--ab-boot-timeout=90.5", "--ab-accel=tcg", "--ab-sweep=quick", "--ab-pace=fixed"
    )
    assert result.ret == pytest.ExitCode.OK


def test_unknown_payload_lists_the_valid_ones(tmp_path: pytest.TempPathFactory) -> None:
    manifest = {
        "payloads": {
            name: {"file": f"{name}.img", "sha256": "0" * 64, "version": name}
            for name in ("v2", "v2-bad")
        }
    }
    payloads = ImageSet("arm64-uboot", tmp_path, manifest).payloads  # type: ignore[arg-type]

    assert payloads["v2"].name == "v2"
    with pytest.raises(UnknownPayload) as raised:
        payloads["v3"]
    assert str(raised.value) == (
        "image 'arm64-uboot' has no payload 'v3' — fix: use one of: v2, v2-bad"
    )
    assert isinstance(raised.value, KeyError)  # `in`, .get() and except KeyError keep working
    assert isinstance(raised.value, HarnessConfigError) and blame(raised.value) == "configuration"
    assert payloads.get("v3") is None and "v3" not in payloads


def test_unknown_payload_in_a_scenario_names_them(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the `payloads` fixture of the real reference image (no boot)."""
    monkeypatch.setenv("AB_CACHE_DIR", str(DEFAULT_CACHE))
    pytester.makepyfile("def test_x(payloads):\n    payloads['v9']\n")

    result = run(pytester)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    line = next(ln for ln in result.outlines if "has no payload 'v9'" in ln)
    assert re.search(r"fix: use one of: v2, v2-bad, v2-broken-kernel, .*v2-panic-init.*, v3", line)
