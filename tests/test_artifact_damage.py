"""A tampered, truncated or foreign file is exit 1 and one line naming what is wrong.

The damage is done for real to artifacts mender-artifact wrote: a payload
byte changed and the tars rebuilt around it, a byte flipped in a
compressed stream, a header edited, a manifest forged to match, files cut
short at several points. mender-artifact's own reader is asked too where
it has an opinion, so the reader is not the only judge of "damaged".
"""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
from pathlib import Path

import pytest
from artifact_kit import (
    Edit,
    Keys,
    flip_byte,
    needs_mender_artifact,
    retar,
    rewrite_inner_tar,
)
from menderread import MenderReadFailed, mender_read

from harness.cli import main

pytestmark = needs_mender_artifact


def inspect_fails(path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run inspect, expect exit 1 with exactly one error line and no JSON; return the line."""
    status = main(["artifact", "inspect", str(path), *argv])
    out, err = capsys.readouterr()
    assert status == 1, out
    assert out == ""
    assert err.startswith("ab-harness: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and " — fix: " in err
    return err


def mender_read_refuses(path: Path) -> str:
    with pytest.raises(MenderReadFailed) as refused:
        mender_read(path)
    return refused.value.output


def change_payload_file(body: bytes, mode: str, target: str) -> bytes:
    def edit(name: str, content: bytes) -> bytes | None:
        return flip_byte(content, len(content) // 2) if name == target else None

    return rewrite_inner_tar(body, mode, edit)


def test_changed_rootfs_in_xz_payload_names_the_file(
    catalog: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = tmp_path / "tampered.mender"

    def edit(name: str, body: bytes) -> bytes | None:
        if name == "data/0000.tar.xz":
            return change_payload_file(body, "xz", "rootfs.ext4")
        return None

    retar(catalog["rootfs-xz-rsa"], tampered, edit)

    err = inspect_fails(tampered, capsys)
    assert "data/0000/rootfs.ext4" in err and "does not match its manifest" in err
    assert "rootfs.ext4" in mender_read_refuses(tampered)


def test_changed_file_in_uncompressed_module_payload_names_it(
    catalog: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = tmp_path / "tampered.mender"

    def edit(name: str, body: bytes) -> bytes | None:
        return flip_byte(body, 512 + 100) if name == "data/0000.tar" else None  # inside app.bin

    retar(catalog["module-none-ecdsa"], tampered, edit)

    err = inspect_fails(tampered, capsys)
    assert "data/0000/app.bin" in err
    mender_read_refuses(tampered)


@pytest.mark.parametrize("where", [0.3, 0.6, 0.97])
def test_flipped_byte_in_gzip_payload_names_it(
    where: float, catalog: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = tmp_path / "tampered.mender"

    def edit(name: str, body: bytes) -> bytes | None:
        return flip_byte(body, int(len(body) * where)) if name == "data/0000.tar.gz" else None

    retar(catalog["rootfs-bare"], tampered, edit)
    assert tampered.read_bytes() != catalog["rootfs-bare"].read_bytes()

    assert "data/0000" in inspect_fails(tampered, capsys)


def test_edited_header_names_it(
    catalog: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = tmp_path / "tampered.mender"

    def header_info(name: str, content: bytes) -> bytes | None:
        return content.replace(b"board-a", b"board-z") if name == "header-info" else None

    def edit(name: str, body: bytes) -> bytes | None:
        return rewrite_inner_tar(body, "xz", header_info) if name == "header.tar.xz" else None

    retar(catalog["rootfs-xz-rsa"], tampered, edit)

    assert "header.tar.xz" in inspect_fails(tampered, capsys)
    mender_read_refuses(tampered)


def test_forged_manifest_passes_checksums_but_not_the_signature(
    catalog: dict[str, Path],
    keys: dict[str, Keys],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Changing a payload and its manifest line together is what the signature is for."""
    forged = tmp_path / "forged.mender"
    new_sha = {}

    def payload(name: str, content: bytes) -> bytes | None:
        if name != "config.txt":
            return None
        changed = b"mode=evil\n"
        new_sha["data/0000/config.txt"] = hashlib.sha256(changed).hexdigest()
        return changed

    def edit(name: str, body: bytes) -> bytes | None:
        if name == "data/0000.tar":
            return rewrite_inner_tar(body, "", payload)
        return None

    retar(catalog["module-none-ecdsa"], forged, edit)  # first pass: learn the new sha
    staged = tmp_path / "staged.mender"
    forged.rename(staged)

    def manifest(name: str, body: bytes) -> bytes | None:
        if name != "manifest":
            return None
        lines = []
        for line in body.decode().splitlines():
            digest, listed = line.split("  ", 1)
            lines.append(f"{new_sha.get(listed, digest)}  {listed}")
        return ("\n".join(lines) + "\n").encode()

    retar(staged, forged, manifest)

    assert main(["artifact", "inspect", str(forged)]) == 0  # checksums agree, nothing to verify
    capsys.readouterr()
    status = main(["artifact", "inspect", str(forged), "--verify-key", str(keys["ecdsa"].public)])
    _, err = capsys.readouterr()
    assert status == 1 and "signature" in err and "invalid" in err


def _payload_edit(drop: str | None = None, add: str | None = None) -> Edit:
    """An edit of the first payload's tar: `drop` a member, `add` one (3 bytes)."""

    def edit(name: str, body: bytes) -> bytes | None:
        if name != "data/0000.tar":
            return None
        buffer = io.BytesIO()
        with (
            tarfile.open(fileobj=io.BytesIO(body)) as old,
            tarfile.open(fileobj=buffer, mode="w") as new,
        ):
            for member in old:
                if member.name != drop:
                    new.addfile(member, old.extractfile(member))
            if add is not None:
                extra = tarfile.TarInfo(add)
                extra.size = 3
                new.addfile(extra, io.BytesIO(b"hi\n"))
        return buffer.getvalue()

    return edit


def test_file_not_in_manifest_is_named(
    catalog: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = tmp_path / "tampered.mender"
    retar(catalog["module-none-ecdsa"], tampered, _payload_edit(add="backdoor.sh"))

    assert "data/0000/backdoor.sh" in inspect_fails(tampered, capsys)


def test_file_missing_from_payload_is_named(
    catalog: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = tmp_path / "tampered.mender"
    retar(catalog["module-none-ecdsa"], tampered, _payload_edit(drop="config.txt"))

    assert "data/0000/config.txt" in inspect_fails(tampered, capsys)


@pytest.mark.parametrize("keep", [0.02, 0.1, 0.5, 0.9, 0.99])
def test_truncated_artifact_is_one_line(
    keep: float, catalog: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("rootfs-xz-rsa", "module-none-ecdsa"):
        whole = catalog[name].read_bytes()
        cut = tmp_path / f"{name}-cut.mender"
        cut.write_bytes(whole[: int(len(whole) * keep)])
        err = inspect_fails(cut, capsys)
        assert str(cut) in err
        mender_read_refuses(cut)


def test_artifact_cut_between_header_and_data_names_the_missing_payload(
    catalog: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cut exactly at a member boundary, a tar reads as shorter, not as broken."""
    whole = catalog["rootfs-xz-rsa"]
    with tarfile.open(whole) as tar:
        data = tar.getmember("data/0000.tar.xz")
    cut = tmp_path / "cut.mender"
    cut.write_bytes(whole.read_bytes()[: data.offset])

    assert "data/0000/rootfs.ext4" in inspect_fails(cut, capsys)


def plain_tar(path: Path) -> Path:
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    return path


@pytest.mark.parametrize(
    ("what", "mention"),
    [
        ("random bytes", "not a Mender artifact"),
        ("empty file", "not a Mender artifact"),
        ("plain tar", "not a Mender artifact"),
        ("missing file", "cannot open"),
        ("directory", "cannot open"),
        ("wrong version", "version 9"),
    ],
)
def test_not_an_artifact_is_one_line(
    what: str, mention: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "input.mender"
    if what == "random bytes":
        path.write_bytes(random.Random(5).randbytes(4096))
    elif what == "empty file":
        path.write_bytes(b"")
    elif what == "plain tar":
        plain_tar(path)
    elif what == "directory":
        path.mkdir()
    elif what == "wrong version":
        with tarfile.open(path, "w") as tar:
            body = b'{"format":"mender","version":9}'
            info = tarfile.TarInfo("version")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))

    assert mention in inspect_fails(path, capsys)


def test_unreadable_key_is_one_line(
    catalog: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_key = tmp_path / "key.pem"
    not_a_key.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    err = inspect_fails(catalog["rootfs-bare"], capsys, "--verify-key", str(not_a_key))
    assert str(not_a_key) in err
    err = inspect_fails(catalog["rootfs-bare"], capsys, "--verify-key", str(tmp_path / "none"))
    assert "cannot read verification key" in err


def test_end_of_archive_marker_is_checked_like_mender_artifact_does(
    catalog: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No marker at all is a clean end (Go's tar reader agrees); half a marker or junk is not."""
    whole = catalog["rootfs-xz-rsa"].read_bytes()
    assert whole.endswith(bytes(1024))
    body = whole[:-1024]
    unmarked, half, junk = (tmp_path / f"{n}.mender" for n in ("unmarked", "half", "junk"))
    unmarked.write_bytes(body)
    half.write_bytes(body + bytes(700))
    junk.write_bytes(body + b"not a tar block " * 64 + bytes(1024))

    assert main(["artifact", "inspect", str(unmarked)]) == 0
    capsys.readouterr()
    assert mender_read(unmarked)["name"] == "release-2"
    for damaged in (half, junk):
        assert f"at byte {len(body)}" in inspect_fails(damaged, capsys)
        mender_read_refuses(damaged)


def test_second_data_file_for_one_payload_is_named(
    catalog: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A payload smuggled in twice must not pass because both copies match the manifest."""
    doubled = tmp_path / "doubled.mender"
    with tarfile.open(catalog["rootfs-bare"]) as old, tarfile.open(doubled, "w") as new:
        members = [(m, old.extractfile(m).read()) for m in old]  # type: ignore[union-attr]
        members.append(members[-1])
        for member, body in members:
            new.addfile(member, io.BytesIO(body))

    assert "data/0000.tar.gz: a second data file" in inspect_fails(doubled, capsys)


def test_edited_version_file_is_named(
    catalog: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same meaning, other bytes: the manifest covers 'version' byte for byte."""
    tampered = tmp_path / "tampered.mender"
    retar(catalog["rootfs-bare"], tampered, lambda n, b: b + b"\n" if n == "version" else None)

    assert "version in" in inspect_fails(tampered, capsys)


def test_header_before_manifest_is_refused(
    catalog: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reordered = tmp_path / "reordered.mender"
    with tarfile.open(catalog["rootfs-bare"]) as old, tarfile.open(reordered, "w") as new:
        members = [(m, old.extractfile(m).read()) for m in old]  # type: ignore[union-attr]
        header = next(i for i, (m, _) in enumerate(members) if m.name.startswith("header"))
        members.insert(1, members.pop(header))
        for member, body in members:
            new.addfile(member, io.BytesIO(body))

    assert "header.tar.gz comes before the manifest" in inspect_fails(reordered, capsys)
