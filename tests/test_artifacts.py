"""The artifact reader agrees with ``mender-artifact read`` on artifacts it did not make.

Every artifact here is written by Debian's mender-artifact with options the
harness's builder never uses (xz and no compression, format 2, several
device types, name and group depends, clears-provides, augmented payloads,
RSA and ECDSA signatures). ``ab-harness artifact inspect`` and
``mender-artifact read`` read each one and must say the same, field by field.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from artifact_kit import (
    CATALOG_KEYS,
    SIGNED_BY,
    Keys,
    flip_byte,
    needs_mender_artifact,
    recompress_zstd,
    retar,
)
from menderread import mender_read

from harness.artifacts import Signature, read_artifact
from harness.cli import main
from harness.errors import EnvironmentMissing

pytestmark = needs_mender_artifact


def inspect(path: Path, capsys: pytest.CaptureFixture[str], *key: Path) -> dict[str, Any]:
    argv = ["artifact", "inspect", str(path)] + [a for k in key for a in ("--verify-key", str(k))]
    status = main(argv)
    out, err = capsys.readouterr()
    assert (status, err) == (0, ""), err
    value: dict[str, Any] = json.loads(out)
    return value


@pytest.mark.parametrize(
    ("name", "with_key"),
    [(n, False) for n in CATALOG_KEYS] + [(n, True) for n in sorted(SIGNED_BY)],
)
def test_inspect_agrees_with_mender_artifact_read(
    name: str,
    with_key: bool,
    catalog: dict[str, Path],
    keys: dict[str, Keys],
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = [keys[SIGNED_BY[name]].public] if with_key else []
    ours = inspect(catalog[name], capsys, *key)
    theirs = mender_read(catalog[name], *key)

    for field in ("name", "format", "version", "device_types", "signed", "state_scripts"):
        assert ours[field] == theirs[field], field
    assert ours["signature"] == ("valid" if key else "unchecked")
    assert theirs["signature"] == ("valid" if key else "unchecked" if ours["signed"] else None)
    if ours["version"] == 3:
        assert ours["provides"].get("artifact_group", "") == theirs["provides_group"]
        assert ours["depends"].get("artifact_name", []) == theirs["depends_artifacts"]
        assert ours["depends"].get("artifact_group", []) == theirs["depends_groups"]
    assert len(ours["payloads"]) == len(theirs["payloads"]) == 1
    for mine, other in zip(ours["payloads"], theirs["payloads"], strict=True):
        for field in ("type", "provides", "depends", "clears_provides", "meta_data", "files"):
            assert mine[field] == other[field], field


def test_catalog_covers_what_it_claims(
    catalog: dict[str, Path], keys: dict[str, Keys], inputs: dict[str, Path]
) -> None:
    """The comparison above is only worth something if the artifacts really vary."""
    read = {n: read_artifact(p) for n, p in catalog.items()}
    assert {a.compression for a in read.values()} == {"lzma", "none", "gzip"}
    assert {a.version for a in read.values()} == {2, 3}
    xz = read["rootfs-xz-rsa"]
    assert xz.device_types == ("board-a", "board-b", "board-c")
    # In no fixed order: mender-artifact 3.9 writes them from a Go map.
    assert sorted(xz.state_scripts) == [
        "ArtifactCommit_Leave_90_report",
        "ArtifactInstall_Enter_05_check",
    ]
    assert xz.depends["artifact_name"] == ["release-1", "release-1.1"]
    assert "app.*" in xz.payloads[0].clears_provides
    rootfs_sha = hashlib.sha256(inputs["rootfs.ext4"].read_bytes()).hexdigest()
    assert xz.payloads[0].files[0].sha256 == rootfs_sha
    assert xz.payloads[0].provides["rootfs-image.checksum"] == rootfs_sha
    module = read["module-none-ecdsa"].payloads[0]
    assert [f.name for f in module.files] == ["app.bin", "config.txt", "empty"]
    assert module.meta_data["restart"] == ["app", "web"]
    augmented = read["augmented-rsa"].payloads[0]
    assert augmented.type == "delta"  # the augment header overrides "full"
    assert [f.name for f in augmented.files] == ["config.txt", "delta.bin"]
    assert augmented.provides["delta.base"] == "1"
    assert read["rootfs-bare"].payloads[0].provides == {}


@pytest.mark.parametrize("name", sorted(SIGNED_BY))
def test_signature_valid_invalid_unchecked(
    name: str, catalog: dict[str, Path], keys: dict[str, Keys]
) -> None:
    signer = SIGNED_BY[name]
    wrong = "ecdsa" if signer == "rsa" else "rsa"
    path = catalog[name]

    assert read_artifact(path, keys[signer].public).signature is Signature.VALID
    assert read_artifact(path, keys[signer].private).signature is Signature.VALID
    assert read_artifact(path).signature is Signature.UNCHECKED
    for other in (wrong, "other"):
        result = read_artifact(path, keys[other].public)
        assert result.signature is Signature.INVALID
        assert mender_read(path, keys[other].public)["signature"] == "invalid"


def test_invalid_signature_prints_json_and_exits_1(
    catalog: dict[str, Path], keys: dict[str, Keys], capsys: pytest.CaptureFixture[str]
) -> None:
    path = catalog["rootfs-xz-rsa"]
    status = main(["artifact", "inspect", str(path), "--verify-key", str(keys["other"].public)])
    out, err = capsys.readouterr()

    assert status == 1
    assert json.loads(out)["signature"] == "invalid"
    assert err.count("\n") == 1 and "signature" in err and str(path) in err


def test_unsigned_artifact_with_a_key_is_refused(
    catalog: dict[str, Path], keys: dict[str, Keys], capsys: pytest.CaptureFixture[str]
) -> None:
    """A device holding a key refuses unsigned artifacts; so does inspect --verify-key."""
    path = catalog["rootfs-v2"]
    status = main(["artifact", "inspect", str(path), "--verify-key", str(keys["rsa"].public)])
    out, err = capsys.readouterr()

    assert status == 1
    assert json.loads(out)["signed"] is False
    assert "not signed" in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def zstd_artifact(catalog: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("zstd") is None:
        pytest.skip("zstd not installed (apt-get install zstd)")
    path = tmp_path_factory.mktemp("zstd") / "rootfs-zstd.mender"
    recompress_zstd(catalog["rootfs-xz-rsa"], path)
    return path


def test_zstd_artifact_reads_as_its_xz_original(
    zstd_artifact: Path, catalog: dict[str, Path]
) -> None:
    original, zstd = read_artifact(catalog["rootfs-xz-rsa"]), read_artifact(zstd_artifact)

    assert (zstd.compression, zstd.signed) == ("zstd", False)
    assert zstd.payloads == original.payloads
    assert (zstd.name, zstd.device_types, zstd.state_scripts) == (
        original.name,
        original.device_types,
        original.state_scripts,
    )


@pytest.mark.parametrize("damage", ["flip", "cut"])
def test_damaged_zstd_payload_names_it(
    damage: str, zstd_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = tmp_path / "tampered.mender"

    def edit(name: str, body: bytes) -> bytes | None:
        if name != "data/0000.tar.zst":
            return None
        return flip_byte(body, len(body) // 2) if damage == "flip" else body[: len(body) // 2]

    retar(zstd_artifact, tampered, edit)
    status = main(["artifact", "inspect", str(tampered)])
    out, err = capsys.readouterr()

    assert (status, out) == (1, "")
    assert err.count("\n") == 1 and "data/0000" in err, err


def test_zstd_without_the_tool_is_one_line(
    zstd_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EnvironmentMissing) as missing:
        read_artifact(zstd_artifact)
    assert "apt-get install" in str(missing.value) and "\n" not in str(missing.value)
