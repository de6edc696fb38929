"""The Mender adapter without a device: its image flavour, its log lines, and
the artifact + FAT key it hands the device, made with the real tools."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from harness.artifacts.reader import read_artifact
from harness.clients import MenderClient, ShellAgent, client_for, with_client
from harness.clients.mender import (
    ARTIFACT_FILE,
    COMMIT_BOTH_COPIES,
    artifact_for,
    log_lines,
    mender_target,
)
from harness.errors import HarnessConfigError
from harness.images import Payload, recipe_dir
from harness.targets.target import default_targets_dir, load_target


@pytest.mark.parametrize(
    ("target", "flavoured"),
    [("qemu-arm64-uboot", "arm64-uboot-mender"), ("qemu-x86_64-grub", "x86_64-grub-mender")],
)
def test_the_mender_client_runs_the_targets_image_in_its_flavour(target, flavoured):
    spec = load_target(str(default_targets_dir() / f"{target}.yaml"))
    mender = with_client(spec, "mender")
    assert (mender.update_client, mender.image) == ("mender", flavoured)
    assert mender.boot_timeout_s == spec.boot_timeout_s + MenderClient().boot_extra_s
    assert recipe_dir(flavoured).is_dir()
    # The shell agent keeps the reference image, untouched.
    assert with_client(spec, None) == spec
    assert with_client(spec, "ab-update") == spec
    assert isinstance(client_for("mender"), MenderClient)


def test_the_shell_agent_is_handed_its_payload_as_it_is(tmp_path: Path):
    payload = Payload("v2", tmp_path / "rootfs-v2.img", "0" * 64, "2")
    assert ShellAgent().medium(payload) is payload


def test_log_lines_read_both_logrus_formats_and_skip_the_rest():
    output = (
        "\x1b[36mINFO\x1b[0m[0007] Enabling partition with new image installed: 3 \n"
        "Installing Artifact of size 22653440...\n"
        "ERRO[0007] fw_setenv returned failure:  exit status 2   \n"
        'time="2026-11-28T12:00:00Z" level=warning msg="say \\"hi\\""\n'
    )
    assert [(line.level, line.message) for line in log_lines(output)] == [
        ("info", "Enabling partition with new image installed: 3"),
        ("error", "fw_setenv returned failure:  exit status 2"),
        ("warning", 'say "hi"'),
    ]


def _image(tmp_path: Path, mender: dict[str, object] | None) -> Payload:
    """A stand-in image folder: a manifest and a 1 MiB payload of known bytes."""
    entry = tmp_path / "cache" / "images" / "fake-mender-0123"
    entry.mkdir(parents=True)
    manifest: dict[str, object] = {"name": "fake-mender"}
    if mender is not None:
        manifest["mender"] = mender
    (entry / "manifest.json").write_text(json.dumps(manifest))
    data = bytes(range(256)) * 4096
    path = entry / "rootfs-v2.img"
    path.write_bytes(data)
    return Payload("v2", path, hashlib.sha256(data).hexdigest(), "2")


def test_the_key_holds_a_rootfs_artifact_of_the_payload_for_the_images_device_type(
    tmp_path: Path,
):
    payload = _image(
        tmp_path, {"device_type": "fake-mender", "artifact_names": {"v2": "ab-harness-v2"}}
    )
    key = MenderClient().medium(payload)

    artifact = artifact_for(payload)
    assert artifact.parent == tmp_path / "cache" / "artifacts" / "fake-mender-0123"
    read = read_artifact(artifact)
    assert (read.name, read.device_types) == ("ab-harness-v2", ("fake-mender",))
    assert COMMIT_BOTH_COPIES in str(read.state_scripts)
    files = [f for p in read.payloads for f in p.files]
    assert [(f.size, f.sha256) for f in files] == [(payload.size, payload.sha256)]
    # On the key, as update.mender: the same bytes, read back with mtools.
    out = tmp_path / "from-key.mender"
    subprocess.run(["mcopy", "-i", str(key.path), f"::{ARTIFACT_FILE}", str(out)], check=True)
    assert out.read_bytes() == artifact.read_bytes()
    assert key.size % 512 == 0  # a disk QEMU can plug in
    # Built once: the second call finds both in the cache.
    assert MenderClient().medium(payload).path == key.path
    assert key.path.stat().st_mtime == MenderClient().medium(payload).path.stat().st_mtime


def test_an_image_without_the_client_names_the_fix(tmp_path: Path):
    payload = _image(tmp_path, None)
    with pytest.raises(HarnessConfigError, match=r"has no Mender client.*--ab-client mender"):
        mender_target(payload)
