"""Every Python example in README.md runs as it is written: extracted, put in
a test file of its own, and run by pytest on the QEMU reference target
(the examples together boot at most twice)."""

from __future__ import annotations

import re
import shutil

import pytest

from harness.images import default_cache_dir
from harness.targets.target import default_targets_dir

README = default_targets_dir().parent / "README.md"
DEFAULT_CACHE = default_cache_dir()


def python_examples() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)


def test_readme_has_complete_examples() -> None:
    examples = python_examples()
    assert examples, "README.md has no ```python example"
    for code in examples:
        compile(code, "README.md example", "exec")  # complete: no '...' fragments
        assert "\n    ...\n" not in code


@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-system-aarch64") is None, reason="QEMU not installed")
def test_readme_examples_pass_on_the_qemu_target(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AB_CACHE_DIR", str(DEFAULT_CACHE))
    monkeypatch.delenv("LG_ENV", raising=False)
    files = {f"test_readme_{i}": code for i, code in enumerate(python_examples())}
    pytester.makepyfile(**files)

    result = pytester.runpytest_subprocess(
        "-p", "no:labgrid", "--ab-target=qemu-arm64-uboot", "-p", "no:cacheprovider", timeout=300
    )

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-4000:]
    tests = sum(len(re.findall(r"^def test_", code, re.MULTILINE)) for code in files.values())
    result.assert_outcomes(passed=tests)
    boots = int(re.search(r"passed, (\d+) boots", result.stdout.str()).group(1))  # type: ignore[union-attr]
    assert 1 <= boots <= 2
