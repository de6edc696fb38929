"""`mender install http://...`: the real client pulls the artifact itself from
the harness's PayloadServer over QEMU's user network (10.0.2.2 is the host),
on the reference target with a NIC. A connection dropped mid-download and a
corrupted byte on the way are the server's faults, each proven by its count."""

from __future__ import annotations

import time

import pytest

from harness.clients.mender import artifact_for
from harness.delivery.http_server import PayloadServer

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.nightly,
    pytest.mark.ab_client("mender"),
    pytest.mark.ab_target("qemu-arm64-uboot-net"),
]

HOST = "10.0.2.2"  # the host's loopback, as a QEMU user-network guest sees it


def test_mender_pulls_the_artifact_over_http_and_refuses_a_corrupted_one(
    booted, shell, observe, update_client, payloads
):
    payload = payloads["v2"]
    artifact = artifact_for(payload)
    env_before = observe.env_host("before")

    with PayloadServer({"update.mender": artifact}) as server:
        corrupt = server.inject("update.mender", "corrupt", artifact.stat().st_size // 2)
        refused = update_client.install_url(shell, server.url("update.mender", HOST))
        assert corrupt.fired == 1
        assert not refused.ok, refused.output
        assert observe.env_host("after the corrupted download").vars == env_before.vars

        drop = server.inject("update.mender", "drop", artifact.stat().st_size // 3)
        result = update_client.install_url(shell, server.url("update.mender", HOST))
        assert drop.fired == 1

    # Mender 3.4 resumes a download that broke off (HTTP Range), so the drop
    # costs a retry, not the update -- after a fixed minute's wait.
    assert result.ok, result.output
    said = [line.message for line in update_client.log_lines(result)]
    assert any(m.startswith("Attempting to resume artifact download") for m in said), said
    assert observe.slot_sha256("B", payload.size) == payload.sha256
    boots = booted.reboot()
    assert [(b.running_slot, b.version, b.health) for b in boots] == [("B", "2", "pass")]


def test_a_stalled_download_waits_and_completes_with_the_same_bytes(
    booted, shell, observe, update_client, payloads
):
    """The server stops sending for 20 s at 40 % of the artifact: the client
    waits (Mender 3.4 has no shorter read timeout) and finishes; the slot holds
    exactly the release, and the stall is proven by the server's count and by
    the install taking at least that long."""
    payload = payloads["v2"]
    artifact = artifact_for(payload)
    with PayloadServer({"update.mender": artifact}) as server:
        at = artifact.stat().st_size * 2 // 5
        stall = server.inject("update.mender", "stall", at, seconds=20)
        started = time.monotonic()
        result = update_client.install_url(shell, server.url("update.mender", HOST))
        took = time.monotonic() - started
        assert stall.fired == 1
    assert result.ok, result.output
    assert took >= 20, took
    assert observe.slot_sha256("B", payload.size) == payload.sha256
