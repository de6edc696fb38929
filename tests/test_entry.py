"""The `ab-harness` command's entry point: `--version` answers without importing
the subcommands, and a reader that closes the pipe ends the command quietly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_version_imports_none_of_the_subcommands() -> None:
    code = (
        "import sys; from harness.entry import main; rc = main(['--version']); "
        "heavy = [m for m in ('labgrid', 'harness.cli', 'qemu.qmp') if m in sys.modules]; "
        "print('heavy:', heavy); sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [done.stdout.splitlines()[0], "heavy: []"]
    assert done.stdout.startswith("ab-harness ")


@pytest.fixture
def long_env(tmp_path: Path) -> Path:
    """An env image whose listing is larger than a pipe holds (64 KiB), so the
    command is still writing when its reader goes away."""
    text = tmp_path / "env.txt"
    text.write_text("".join(f"var{n:04d}={'x' * 60}\n" for n in range(3000)))
    out = tmp_path / "env.bin"
    subprocess.run(["mkenvimage", "-s", "0x40000", "-o", out, text], check=True, timeout=30)
    return out


def test_a_closed_pipe_ends_the_command_quietly(long_env: Path) -> None:
    cmd = [sys.executable, "-c", "from harness.entry import main; raise SystemExit(main())"]
    reader = subprocess.Popen(
        [*cmd, "env", "show", str(long_env)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert reader.stdout is not None and reader.stderr is not None
    first = reader.stdout.readline()
    reader.stdout.close()  # as `| head -1` does
    err = reader.stderr.read()
    code = reader.wait(timeout=60)
    assert first.startswith(b"var0000=")
    assert (code, err) == (141, b"")
