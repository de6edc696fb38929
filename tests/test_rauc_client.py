"""The RAUC adapter: `rauc status --output-format=json` as RAUC 1.8 printed it
on the x86_64-grub-rauc device (captured, tests/data/), what the adapter
believes from it, and the bundles it builds with `rauc bundle`, held against
`rauc info` and the harness's own reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.artifacts.model import Signature
from harness.artifacts.rauc_bundle import read_rauc_bundle
from harness.clients import RaucClient, client_for, with_client
from harness.clients.rauc import bundle_for, parse_status, write_bundle
from harness.errors import DeviceError, HarnessConfigError
from harness.images import Payload
from harness.targets.target import load_target
from tests.bundle_kit import Signer, payload, rauc_info, sha256
from tests.test_client_belief import ScriptedShell
from tests.test_rauc_bundles import info_fields

DATA = Path(__file__).parent / "data"
FACTORY = (DATA / "rauc-status-factory.json").read_text()
INSTALLED = (DATA / "rauc-status-installed.json").read_text()


def test_status_of_a_factory_device_names_the_booted_slot_and_no_bundle() -> None:
    status = parse_status(FACTORY)
    assert (status.compatible, status.booted, status.primary) == (
        "ab-harness x86_64-grub-rauc",
        "A",
        "A",
    )
    a, b = status.slot("A"), status.slot("B")
    assert a is not None and b is not None
    assert (a.name, a.device, a.state, a.boot_status) == ("rootfs.0", "/dev/vda2", "booted", "good")
    assert (b.name, b.device, b.state) == ("rootfs.1", "/dev/vda3", "inactive")
    assert a.bundle_version is None and b.bundle_version is None


def test_status_after_an_install_points_at_the_other_slot_with_its_bundle() -> None:
    # A warning line before the JSON, as the client prints on stderr, is skipped.
    status = parse_status("rauc-WARNING: something\n" + INSTALLED)
    assert (status.booted, status.primary) == ("A", "B")
    b = status.slot("B")
    assert b is not None and (b.bundle_version, b.boot_status) == ("2-bad", "good")


def test_status_without_json_is_the_device_s_fault() -> None:
    with pytest.raises(DeviceError, match="printed no JSON"):
        parse_status("Connection to the system bus can't be made for de.pengutronix.rauc\n")


def test_belief_on_a_factory_device_is_its_slot_s_release_nothing_pending() -> None:
    shell = ScriptedShell([(r"rauc status", 0, FACTORY), (r"cat /etc/version", 0, "1\n")])
    belief = RaucClient().believes(shell)
    assert (belief.installed, belief.pending, belief.next_ok) == ("1", False, True)
    assert "no bundle recorded" in belief.note
    assert belief.disagreement("1", pending=False) is None


def test_belief_after_an_install_is_pending_until_the_other_slot_runs() -> None:
    shell = ScriptedShell([(r"rauc status", 0, INSTALLED), (r"cat /etc/version", 0, "1\n")])
    belief = RaucClient().believes(shell)
    assert (belief.pending, belief.next_ok) == (True, True)
    assert belief.disagreement("1", pending=False) is not None


def test_a_status_that_fails_is_a_belief_that_cannot_tell() -> None:
    shell = ScriptedShell([(r"rauc status", 1, "D-Bus error\n")])
    belief = RaucClient().believes(shell)
    assert (belief.installed, belief.pending, belief.next_ok) == ("", None, False)


def test_rauc_is_a_client_the_target_yaml_can_name() -> None:
    client = client_for("rauc")
    assert isinstance(client, RaucClient) and client.image_flavour == "rauc"


@pytest.mark.parametrize("fmt", ["plain", "verity"])
def test_a_bundle_the_adapter_builds_reads_as_rauc_info_reads_it(
    tmp_path: Path, signers: dict[str, Signer], fmt: str
) -> None:
    image = tmp_path / "rootfs.img"
    image.write_bytes(payload(7, 256 * 1024))
    signer = signers["test"]
    out = write_bundle(
        image,
        tmp_path / f"update-{fmt}.raucb",
        compatible="ab-harness test device",
        version="2",
        fmt=fmt,
        slot_class="rootfs",
        cert=signer.cert,
        key=signer.key,
    )

    code, text = rauc_info(out, signer.ca)
    assert code == 0, text
    rauc = info_fields(text)
    assert (rauc["compatible"], rauc["version"], rauc["format"]) == (
        "ab-harness test device",
        "2",
        fmt,
    )
    digest = sha256(image.read_bytes())
    assert rauc["images"] == [("rootfs", "rootfs.ext4", digest, image.stat().st_size)]

    read = read_rauc_bundle(out, signer.ca)
    assert (read.format, read.version, read.compatible) == (fmt, "2", ("ab-harness test device",))
    assert [(i.name, i.sha256, i.size) for i in read.images] == [
        ("rootfs", digest, image.stat().st_size)
    ]
    assert read.signature is Signature.VALID
    assert read_rauc_bundle(out, signers["other"].ca).signature is Signature.INVALID


def test_a_payload_s_bundle_is_built_once_for_its_image_s_compatible(
    tmp_path: Path, signers: dict[str, Signer]
) -> None:
    entry = tmp_path / "images" / "dev-0123"
    entry.mkdir(parents=True)
    image = entry / "rootfs-v2.img"
    image.write_bytes(payload(8, 128 * 1024))
    signer = signers["test"]
    manifest = {
        "name": "dev",
        "rauc": {
            "compatible": "ab-harness dev",
            "slot_class": "rootfs",
            "versions": {"v2": "2"},
            "cert": str(signer.cert),
            "key": str(signer.key),
            "keyring": str(signer.ca),
        },
    }
    (entry / "manifest.json").write_text(json.dumps(manifest))
    release = Payload("v2", image, sha256(image.read_bytes()), "2")

    first = bundle_for(release, "verity")
    assert first.parent == tmp_path / "artifacts" / "dev-0123"
    assert bundle_for(release, "verity") == first
    assert first.stat().st_mtime_ns == bundle_for(release, "verity").stat().st_mtime_ns
    code, text = rauc_info(first, signer.ca)
    assert code == 0 and "'ab-harness dev'" in text and "'2'" in text


def test_a_payload_of_an_image_without_rauc_names_the_fix(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "plain"}))
    image = tmp_path / "rootfs-v2.img"
    image.write_bytes(b"x")
    with pytest.raises(HarnessConfigError, match="has no RAUC system"):
        bundle_for(Payload("v2", image, sha256(b"x"), "2"))


def test_rauc_on_a_target_of_another_contract_names_the_target_to_use() -> None:
    with pytest.raises(HarnessConfigError, match="qemu-x86_64-grub-rauc"):
        with_client(load_target("qemu-x86_64-grub"), "rauc")
    spec = with_client(load_target("qemu-x86_64-grub-rauc"), None)
    assert (spec.update_client, spec.image, spec.bootloader) == (
        "rauc",
        "x86_64-grub-rauc",
        "grub-rauc",
    )
