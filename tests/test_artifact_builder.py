"""The builder writes real artifacts with mender-artifact; bad inputs are one line each."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from artifact_kit import Keys, needs_mender_artifact, run
from menderread import mender_read

from harness.artifacts import Signature, read_artifact
from harness.artifacts.builder import (
    ArtifactBuildError,
    ArtifactSpec,
    write_module_image,
    write_rootfs_image,
)
from harness.errors import EnvironmentMissing, HarnessConfigError

pytestmark = needs_mender_artifact


def test_rootfs_image_signed_with_scripts_reads_back_as_mender_reads_it(
    inputs: dict[str, Path], keys: dict[str, Keys], tmp_path: Path
) -> None:
    spec = ArtifactSpec(
        name="v2-good",
        device_types=("qemu-arm64", "qemu-x86_64"),
        provides={"harness.build": "42"},
        depends={"harness.slot": "a"},
        state_scripts=(inputs["ArtifactInstall_Enter_05_check"],),
        signing_key=keys["rsa"].private,
    )
    out = tmp_path / "v2-good.mender"

    built = write_rootfs_image(spec, inputs["rootfs.ext4"], out)

    assert built == read_artifact(out)
    verified = read_artifact(out, keys["rsa"].public)
    assert verified.signature is Signature.VALID
    theirs = mender_read(out, keys["rsa"].public)
    assert (theirs["name"], theirs["signature"]) == ("v2-good", "valid")
    assert tuple(theirs["device_types"]) == built.device_types == spec.device_types
    assert theirs["state_scripts"] == ["ArtifactInstall_Enter_05_check"]
    payload = built.payloads[0]
    assert payload.type == "rootfs-image"
    assert payload.provides == theirs["payloads"][0]["provides"]
    assert payload.provides["harness.build"] == "42"
    assert payload.depends == {"harness.slot": "a"}
    rootfs_sha = hashlib.sha256(inputs["rootfs.ext4"].read_bytes()).hexdigest()
    assert [(f.name, f.sha256) for f in payload.files] == [("rootfs.ext4", rootfs_sha)]


def test_module_image_with_files_and_meta_data(
    inputs: dict[str, Path], keys: dict[str, Keys], tmp_path: Path
) -> None:
    spec = ArtifactSpec(name="cfg-1", device_types=("board",), signing_key=keys["ecdsa"].private)
    out = tmp_path / "cfg.mender"
    files = [inputs["config.txt"], inputs["app.bin"]]

    built = write_module_image(spec, "single-file", files, out, meta_data={"dest": "/etc"})

    theirs = mender_read(out, keys["ecdsa"].public)
    assert theirs["signature"] == "valid"
    assert built.payloads[0].type == theirs["payloads"][0]["type"] == "single-file"
    assert built.payloads[0].meta_data == theirs["payloads"][0]["meta_data"] == {"dest": "/etc"}
    assert [f.to_json() for f in built.payloads[0].files] == theirs["payloads"][0]["files"]
    assert read_artifact(out).signature is Signature.UNCHECKED
    assert built.compression == "gzip"


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and " — fix: " in text, text
    return text


def test_bad_inputs_are_one_line(inputs: dict[str, Path], tmp_path: Path) -> None:
    rootfs, out = inputs["rootfs.ext4"], tmp_path / "x.mender"
    good = ArtifactSpec(name="x", device_types=("d",))
    bad_script = tmp_path / "Install_Now"
    bad_script.write_text("#!/bin/sh\n")
    cases: list[tuple[ArtifactSpec, Path, str]] = [
        (good, tmp_path / "missing.ext4", "rootfs image"),
        (ArtifactSpec(name="x", device_types=()), rootfs, "no device type"),
        (ArtifactSpec(name=" ", device_types=("d",)), rootfs, "no name"),
        (ArtifactSpec(name="x", device_types=("d",), state_scripts=(bad_script,)), rootfs,
         "Install_Now"),
        (ArtifactSpec(name="x", device_types=("d",), provides={"a:b": "c"}), rootfs, "'a:b'"),
    ]  # fmt: skip
    for spec, payload, mention in cases:
        with pytest.raises(HarnessConfigError) as refused:
            write_rootfs_image(spec, payload, out)
        assert mention in one_line(refused.value)
    with pytest.raises(HarnessConfigError) as refused:
        write_module_image(good, "m", [inputs["app.bin"], inputs["app.bin"]], out)
    assert "share a name" in one_line(refused.value)
    assert not out.exists()


def test_pkcs8_rsa_key_is_refused_by_debian_tool_with_the_conversion_as_fix(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    key = tmp_path / "pkcs8.pem"
    run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", key)
    spec = ArtifactSpec(name="x", device_types=("d",), signing_key=key)

    with pytest.raises(ArtifactBuildError) as refused:
        write_rootfs_image(spec, inputs["rootfs.ext4"], tmp_path / "x.mender")

    text = one_line(refused.value)
    assert "mender-artifact write rootfs-image failed" in text and "-traditional" in text


def test_missing_tool_and_deadline(
    inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = ArtifactSpec(name="x", device_types=("d",))
    with pytest.raises(ArtifactBuildError) as late:
        write_rootfs_image(spec, inputs["rootfs.ext4"], tmp_path / "x.mender", timeout_s=0.001)
    assert "did not finish within" in one_line(late.value)

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EnvironmentMissing) as missing:
        write_rootfs_image(spec, inputs["rootfs.ext4"], tmp_path / "x.mender")
    assert "apt-get install" in one_line(missing.value)
