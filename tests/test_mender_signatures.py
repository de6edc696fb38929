"""Signed artifacts on the device: with a verify key configured, the real
Mender client installs an artifact signed with its key and refuses an
unsigned one, one signed with another key, and a signed one whose manifest
was changed afterwards, each before it touches slot B or the env."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from artifact_kit import flip_byte, retar

from harness.artifacts.builder import ArtifactSpec
from harness.clients.mender import artifact_for, key_for, log_lines, mender_target

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.nightly,
    pytest.mark.ab_client("mender"),
    pytest.mark.ab_target("qemu-arm64-uboot"),
]

VERIFY_KEY = "/data/mender/verify.pem"


def put_file(shell, path: str, data: bytes) -> None:
    shell.exec0(f"echo {base64.b64encode(data).decode()} | base64 -d > {path} && sync")


def test_only_artifacts_signed_with_the_devices_key_are_installed(
    booted, push, observe, shell, update_client, payloads, keys, tmp_path: Path
):
    # The fallback config on /data (/var/lib/mender/mender.conf) adds the key:
    # /etc/mender/mender.conf sets none, and the client merges both files.
    put_file(shell, VERIFY_KEY, keys["rsa"].public.read_bytes())
    put_file(
        shell,
        "/data/mender/mender.conf",
        json.dumps({"ArtifactVerifyKey": VERIFY_KEY}).encode(),
    )
    payload = payloads["v2"]
    device_type = mender_target(payload).device_type

    def signed_with(key: Path | None, tag: str) -> Path:
        spec = ArtifactSpec("ab-harness-v2", (device_type,), signing_key=key)
        return artifact_for(payload, spec, tag=tag)

    good = signed_with(keys["rsa"].private, "-signed")
    tampered = tmp_path / "tampered.mender"
    retar(good, tampered, lambda name, body: flip_byte(body, 20) if name == "manifest" else None)
    refused = {
        "unsigned": signed_with(None, "-unsigned"),
        "other key": signed_with(keys["other"].private, "-other-key"),
        "manifest changed after signing": tampered,
    }

    env_before, slot_b = observe.env_host("before"), observe.slot_sha256("B")
    for what, artifact in refused.items():
        attached = push.attach(key_for(artifact, what))
        result = update_client.install(shell, attached.device_path, payload.sha256, 180.0)
        assert not result.ok, (what, result.output)
        errors = [line.message for line in log_lines(result.output) if line.level == "error"]
        assert errors, (what, result.output)
        assert observe.env_host(f"after {what}").vars == env_before.vars, what
        assert observe.slot_sha256("B") == slot_b, what

    attached = push.attach(key_for(good, "signed"))
    result = update_client.install(shell, attached.device_path, payload.sha256, 180.0)
    assert result.ok, result.output
    assert observe.slot_sha256("B", payload.size) == payload.sha256
    boots = booted.reboot()
    assert [(b.running_slot, b.version, b.health) for b in boots] == [("B", "2", "pass")]
    assert observe.env_host("committed").upgrade_available is False
