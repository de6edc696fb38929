"""GRUB env block reader/writer, cross-checked with grub-editenv."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.envformat.grub import (
    GRUB_HEADER,
    GrubEnv,
    GrubEnvCorrupt,
    detect_format,
    encode_grubenv,
    parse_grubenv,
)
from harness.envformat.uboot import encode_env
from harness.errors import HarnessConfigError

VARS = {
    "saved_entry": "slot-a",
    "boot_success": "0",
    "path": "C:\\dir\\",  # backslashes, one at the very end
    "multi": "line1\nline2",
    "empty": "",
}


def editenv(block: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    tool = shutil.which("grub-editenv")
    if tool is None:
        pytest.skip("grub-editenv not installed (Debian: grub-common)")
    return subprocess.run([tool, str(block), *args], check=check, capture_output=True)


def listed(block: Path) -> str:
    return editenv(block, "list").stdout.decode("utf-8", "surrogateescape")


def created(tmp_path: Path) -> Path:
    block = tmp_path / "grubenv"
    editenv(block, "create")
    return block


def test_reads_and_writes_exactly_what_grub_editenv_writes(tmp_path: Path) -> None:
    block = created(tmp_path)
    editenv(block, "set", *(f"{k}={v}" for k, v in VARS.items()))
    raw = block.read_bytes()

    assert dict(parse_grubenv(raw).vars) == VARS
    assert encode_grubenv(VARS) == raw
    # Proof the escapes were exercised: grub-editenv wrote them.
    assert b"path=C:\\\\dir\\\\\n" in raw
    assert b"multi=line1\\\nline2\n" in raw


def test_empty_block_from_grub_editenv_create(tmp_path: Path) -> None:
    raw = created(tmp_path).read_bytes()

    assert parse_grubenv(raw).vars == {}
    assert encode_grubenv({}) == raw
    assert len(raw) == 1024


def test_grub_editenv_lists_what_we_encode(tmp_path: Path) -> None:
    block = tmp_path / "grubenv"
    block.write_bytes(encode_grubenv(VARS))

    assert listed(block) == "".join(f"{k}={v}\n" for k, v in VARS.items())


def test_unset_and_rewrite_in_place(tmp_path: Path) -> None:
    block = created(tmp_path)
    editenv(block, "set", "a=1", "b=2", "c=3")
    editenv(block, "unset", "b")
    editenv(block, "set", "a=a much longer value")
    raw = block.read_bytes()

    # grub-editenv keeps a in its place and pads the gap b left with '#'.
    assert list(parse_grubenv(raw).vars.items()) == [("a", "a much longer value"), ("c", "3")]
    assert encode_grubenv({"a": "a much longer value", "c": "3"}) == raw


def test_comment_lines_are_skipped_like_grub_does(tmp_path: Path) -> None:
    body = GRUB_HEADER + b"# a=commented out\nx=1\n#\\\ny=not a variable\nz=2\n"
    block = tmp_path / "grubenv"
    block.write_bytes(body + b"#" * (1024 - len(body)))

    env = parse_grubenv(block.read_bytes())

    assert dict(env.vars) == {"x": "1", "z": "2"}
    assert listed(block) == "x=1\nz=2\n"


def test_entry_cut_off_by_the_block_end_is_dropped_like_grub_does(tmp_path: Path) -> None:
    block = tmp_path / "grubenv"
    block.write_bytes(GRUB_HEADER + b"x=1\ny=never terminated")

    assert dict(parse_grubenv(block.read_bytes()).vars) == {"x": "1"}
    assert listed(block) == "x=1\n"


def test_size_limit_is_the_same_as_grub_editenv(tmp_path: Path) -> None:
    empty = len(encode_grubenv({}).rstrip(b"#"))
    longest = 1024 - empty - len("k=\n")
    block = created(tmp_path)

    editenv(block, "set", "k=" + "v" * longest)
    too_long = editenv(block, "set", "k=" + "v" * (longest + 1), check=False)

    assert encode_grubenv({"k": "v" * longest}) == block.read_bytes()
    assert too_long.returncode != 0
    with pytest.raises(ValueError, match="1024"):
        encode_grubenv({"k": "v" * (longest + 1)})


@pytest.mark.parametrize(
    "env",
    [{"a=b": "c"}, {"": "x"}, {"#k": "x"}, {"new\nline": "x"}, {"k": "nul\0"}],
    ids=["equals", "empty", "comment", "newline", "nul-in-value"],
)
def test_encode_rejects_what_grub_could_not_read_back(env: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        encode_grubenv(env)


def test_block_without_header_is_a_config_error_naming_the_source() -> None:
    with pytest.raises(GrubEnvCorrupt, match=r"grubenv\.bak") as info:
        parse_grubenv(b"saved_entry=a\n" + b"#" * 1010, "grubenv.bak")

    assert isinstance(info.value, HarnessConfigError)
    assert "grub-editenv" in str(info.value)


def test_detect_format() -> None:
    assert detect_format(encode_grubenv(VARS)) == "grub"
    assert detect_format(encode_env({"bootcmd": "boot"}, 0x1000)) == "uboot"
    assert detect_format(b"") == "uboot"


def test_vars_are_read_only() -> None:
    env = GrubEnv({"a": "1"})

    with pytest.raises(TypeError):
        env.vars["a"] = "2"  # type: ignore[index]
