"""An update module on the device: a `single-file` module-image artifact (the
module Debian's mender-client ships) replaces one file on /data, and one whose
ArtifactCommit_Enter fails is rolled back by the module (the file restored
from its backup). Neither touches a slot or the bootloader env."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.artifacts.builder import ArtifactSpec, write_module_image
from harness.clients.mender import key_for

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.nightly,
    pytest.mark.ab_client("mender"),
    pytest.mark.ab_target("qemu-arm64-uboot"),
]

DEST = "/data/app"


def single_file(
    folder: Path, device_type: str, name: str, content: str, fail_commit: bool = False
) -> Path:
    """A single-file artifact putting `content` into DEST/config.txt."""
    folder.mkdir(parents=True)
    files = []
    for file, text in (
        ("config.txt", content),
        ("dest_dir", DEST),
        ("filename", "config.txt"),
        ("permissions", "644"),
    ):
        (folder / file).write_text(text)
        files.append(folder / file)
    scripts: tuple[Path, ...] = ()
    if fail_commit:
        script = folder / "ArtifactCommit_Enter_10_refuse"
        script.write_text("#!/bin/sh\necho 'ab-test: refusing the commit'\nexit 1\n")
        scripts = (script,)
    spec = ArtifactSpec(name, (device_type,), state_scripts=scripts)
    out = folder / f"{name}.mender"
    write_module_image(spec, "single-file", files, out)
    return out


def test_a_single_file_update_installs_and_a_failed_commit_restores_the_file(
    booted, push, observe, shell, update_client, ab_image, tmp_path
):
    device_type = ab_image.manifest["mender"]["device_type"]
    shell.exec0(f"mkdir -p {DEST} && echo v1 > {DEST}/config.txt && sync")
    env_before, slots = (
        observe.env_host("before"),
        (observe.slot_sha256("A"), observe.slot_sha256("B")),
    )

    def install(artifact: Path, what: str):
        attached = push.attach(key_for(artifact, what))
        return update_client.install(shell, attached.device_path, "", 180.0)

    good = single_file(tmp_path / "v2", device_type, "app-config-v2", "v2")
    assert install(good, "config v2").ok
    assert shell.exec0(f"cat {DEST}/config.txt").strip() == "v2"
    commit = update_client.commit(shell)
    assert commit.ok, commit.output
    assert update_client.show_artifact(shell) == "app-config-v2"

    bad = single_file(tmp_path / "v3", device_type, "app-config-v3", "v3", fail_commit=True)
    assert install(bad, "config v3, commit refused").ok
    assert shell.exec0(f"cat {DEST}/config.txt").strip() == "v3"
    refused = update_client.commit(shell)
    assert not refused.ok, refused.output
    assert "ab-test: refusing the commit" in refused.output
    assert shell.exec0(f"cat {DEST}/config.txt").strip() == "v2"
    assert update_client.show_artifact(shell) == "app-config-v2"

    assert observe.env_host("after").vars == env_before.vars
    assert (observe.slot_sha256("A"), observe.slot_sha256("B")) == slots
