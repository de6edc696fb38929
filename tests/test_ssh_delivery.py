"""Delivery over SSH on a real guest: labgrid's SSHDriver copies the payload
to the device's sshd (dropbear, reached through a forwarded host port), and
the device refuses a copy whose bytes are not the payload before its update
client ever sees it. The rollback scenario runs on this target unchanged in
`make test` (SMOKE_TARGETS), every scenario in `make nightly`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from harness.delivery import SshCopy
from harness.delivery.push import REFUSED_ON_DELIVERY
from harness.targets.hostports import fill_host_ports
from harness.targets.matrix import capabilities
from harness.targets.target import load_target, materialize

SSH = "qemu-arm64-uboot-ssh"


@pytest.mark.qemu
@pytest.mark.nightly
@pytest.mark.ab_target(SSH)
def test_a_copy_damaged_over_ssh_is_refused_and_nothing_is_installed(
    booted, push, observe, shell, payloads
):
    before = observe.env_device("before")
    assert isinstance(push.delivery, SshCopy)
    push.delivery.corrupt("v2", 1 << 20)

    report = push.install(payloads["v2"])

    assert report.exit_code == REFUSED_ON_DELIVERY and report.attached is None, report.output
    assert "not payload 'v2'" in report.output
    # The fault landed: the device hashed all the bytes it got, and they were not v2's.
    got = re.search(r"holds (\d+) bytes, sha256 ([0-9a-f]{16})", report.output)
    assert got is not None, report.output
    assert int(got[1]) == payloads["v2"].size
    assert got[2] != payloads["v2"].sha256[:16]
    code, _ = shell.exec("test -e /tmp/ab-payload-v2")
    assert code != 0  # the damaged copy was deleted on the device
    assert observe.env_device("after").vars == before.vars  # nothing was installed


def test_the_ssh_target_forwards_one_free_port_to_its_sshd(tmp_path: Path):
    spec = load_target(SSH)
    assert spec.delivery == "ssh" and "network" in capabilities(spec)
    files = {key: tmp_path / key for key in ("uboot", "disk", "factory-env")}
    written = materialize(spec, tmp_path, None, writable=(), overrides=files)
    config = yaml.safe_load(written.labgrid_config.read_text())
    main = config["targets"]["main"]
    port = main["resources"]["NetworkService"]["port"]
    assert isinstance(port, int) and port != 2222  # the placeholder was replaced
    assert f"hostfwd=tcp:127.0.0.1:{port}-:22" in main["drivers"]["ABQEMUDriver"]["nic"]


def test_a_placeholder_port_becomes_one_free_port_everywhere_it_stands_alone():
    config = {"a": 2222, "b": ["x=2222-:22,y=8080,z=22220"], "c": 8080, "d": 7, "e": True}
    filled = fill_host_ports(config, (2222, 8080))
    assert isinstance(filled["a"], int) and filled["a"] != 2222 and filled["d"] == 7
    assert filled["b"] == [f"x={filled['a']}-:22,y={filled['c']},z=22220"]
    assert filled["a"] != filled["c"] and filled["e"] is True


@pytest.mark.qemu
@pytest.mark.nightly
@pytest.mark.ab_target("qemu-arm64-uboot")
def test_the_reference_machine_without_a_nic_carries_dropbear_but_does_not_start_it(booted, shell):
    assert shell.exec("test -x /usr/sbin/dropbear")[0] == 0  # the same image as the SSH target
    assert shell.exec("pidof dropbear")[0] != 0
    assert shell.exec("test -e /run/ssh")[0] != 0  # rcS never reached its SSH block
