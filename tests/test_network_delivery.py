"""Delivery by network pull on a real guest: the device fetches from the host's
payload server and refuses bytes that are not the payload before its update
client ever sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.delivery import NetworkPull
from harness.delivery.push import REFUSED_ON_DELIVERY
from harness.targets.matrix import capabilities, unmet
from harness.targets.target import default_targets_dir, load_target

NET = "qemu-arm64-uboot-net"


@pytest.mark.qemu
@pytest.mark.ab_target(NET)
def test_a_payload_corrupted_on_the_way_is_refused_by_the_device(booted, push, observe, payloads):
    before = observe.env_device("before")
    assert isinstance(push.delivery, NetworkPull)
    push.delivery.inject("v2", "corrupt", 1 << 20, length=16)

    report = push.install(payloads["v2"])

    assert report.exit_code == REFUSED_ON_DELIVERY and report.attached is None, report.output
    assert "not payload 'v2'" in report.output
    (served,) = push.delivery.servers[-1].wait_served(1)
    assert served.fault == f"corrupt 16 B at {1 << 20}"  # the fault did land in the stream
    assert served.bytes_sent == payloads["v2"].size
    assert observe.env_device("after").vars == before.vars  # nothing was installed


def test_the_network_target_has_a_network_and_the_reference_one_does_not(tmp_path: Path):
    net, ref = load_target(NET), load_target("qemu-arm64-uboot")
    assert (net.delivery, ref.delivery) == ("network", "hotplug")
    assert {"network", "hotplug"} <= capabilities(net)
    assert "network" not in capabilities(ref)
    # The reference machine asked to pull over a network it does not have: a
    # skip with the reason, decided from the YAML alone.
    text = (default_targets_dir() / "qemu-arm64-uboot.yaml").read_text()
    no_nic = tmp_path / "no-nic.yaml"
    no_nic.write_text(
        text.replace("  boot_timeout_s: 60\n", "  boot_timeout_s: 60\n  delivery: network\n")
    )
    why = unmet(load_target(str(no_nic)), sorted(NetworkPull.needs))
    assert why is not None and why.startswith("target no-nic lacks network (")


def test_a_delivery_the_harness_does_not_know_is_one_line(tmp_path: Path):
    from harness.errors import HarnessConfigError

    text = (default_targets_dir() / "qemu-arm64-uboot.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        text.replace("  boot_timeout_s: 60\n", "  boot_timeout_s: 60\n  delivery: carrier-pigeon\n")
    )
    with pytest.raises(HarnessConfigError) as info:
        load_target(str(bad))
    assert "'ab-harness.delivery' is 'carrier-pigeon'; supported: hotplug, network" in str(
        info.value
    )
