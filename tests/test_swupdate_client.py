"""The SWUpdate adapter, read from what SWUpdate and libubootenv print, and the
.swu files the harness writes for it, held against Debian's `swupdate -c`.

tests/swupdate_output/ holds console output captured on the SWUpdate image
(qemu-arm64-uboot-swupdate) as the harness's shell saw it: `swupdate -v -e
stable,mmcblk0p2 -i update.swu` installing v2 (ANSI colours and all), and
`fw_printenv` after a confirmed update and after U-Boot's fallback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.artifacts.bundle import BundleError
from harness.artifacts.model import Signature
from harness.artifacts.swu import read_swu
from harness.artifacts.swu_writer import (
    Copy,
    Signer,
    compress_rootfs,
    dual_copy_description,
    write_swu,
)
from harness.bootloaders import BootEnv, UBootSwupdateEnv, read_under
from harness.clients import SwupdateClient, client_for, with_client
from harness.clients.swupdate import install_succeeded, log_lines, parse_env, sw_versions
from harness.errors import HarnessConfigError
from harness.judge.findings import FINDINGS, Stack
from harness.targets.target import load_target
from tests.bundle_kit import Signer as KitSigner
from tests.bundle_kit import flip, need, payload, run, sha256

OUTPUT = Path(__file__).parent / "swupdate_output"
COPIES = (
    Copy("mmcblk0p2", "/dev/mmcblk0p3", {"bootpart": "0:3", "upgrade_available": "1"}),
    Copy("mmcblk0p3", "/dev/mmcblk0p2", {"bootpart": "0:2", "upgrade_available": "1"}),
)


class CapturedShell:
    """Answers each command with the output captured for it on the device."""

    def __init__(self, answers: dict[str, tuple[int, str]]) -> None:
        self.answers = answers

    def exec(self, cmd: str, timeout_s: float = 30.0) -> tuple[int, str]:
        return self.answers[cmd]

    def exec0(self, cmd: str, timeout_s: float = 30.0) -> str:
        code, out = self.exec(cmd, timeout_s)
        assert code == 0
        return out


def captured(name: str) -> str:
    return (OUTPUT / name).read_text()


def test_the_install_log_says_what_swupdate_did_in_its_own_words() -> None:
    out = captured("install-v2.log")

    lines = log_lines(out)

    assert install_succeeded(out)
    assert {line.level for line in lines} >= {"TRACE", "INFO", "WARN"}
    said = [(line.where, line.message) for line in lines]
    assert ("main", "Using bootloader interface: uboot") in said
    assert ("main", "software set: stable mode: mmcblk0p2") in said
    assert ("swupdate_verify_file", "Verified OK") in said
    assert ("_parse_bootloader", "Bootloader var: bootpart = 0:3") in said
    assert ("_parse_bootloader", "Bootloader var: upgrade_available = 1") in said
    assert ("read_sw_version_file", "Installed rootfs: Version ab-harness-v1") in said
    assert any(
        m.startswith("Found compressed Image rootfs ab-harness-v2") and "/dev/mmcblk0p3" in m
        for _, m in said
    )
    # The one way a success can be told: its log; a failure line anywhere undoes it.
    assert not install_succeeded(out + "\n[ERROR] : SWUPDATE failed [0] ERROR core/stream.c")


def test_a_zero_exit_with_a_failed_log_is_a_failed_install() -> None:
    result = SwupdateClient._result("swupdate -i x", 0, "[INFO ] : SWUPDATE failed !")

    assert (result.ok, result.exit_code) == (False, 1)
    assert SwupdateClient._result("swupdate -i x", 0, captured("install-v2.log")).ok


@pytest.mark.parametrize(
    ("output", "pending", "state", "slot", "release"),
    [
        ("fw_printenv-confirmed.txt", False, "ustate=0 (OK)", "/dev/mmcblk0p3", "ab-harness-v2"),
        (
            "fw_printenv-rolled-back.txt",
            False,
            "ustate=3 (FAILED)",
            "/dev/mmcblk0p2",
            "ab-harness-v1",
        ),
    ],
    ids=["confirmed", "rolled-back"],
)
def test_the_belief_is_read_from_swupdate_and_fw_printenv(
    output: str, pending: bool, state: str, slot: str, release: str
) -> None:
    shell = CapturedShell(
        {
            "swupdate -g": (0, f"{slot}\n"),
            "cat /etc/sw-versions": (0, f"rootfs {release}\n"),
            "fw_printenv": (0, captured(output)),
        }
    )

    belief = SwupdateClient().believes(shell)

    assert (belief.installed, belief.pending, belief.next_ok) == (release, pending, True)
    assert belief.note == state
    assert SwupdateClient().slot_release(shell) == release
    assert belief.disagreement(release, pending=False) is None


def test_a_cut_install_leaves_swupdate_saying_an_install_is_running() -> None:
    """The env a power cut in the middle of the rootfs write left (the quick
    crash-point sweep, k=94649): SWUpdate's markers still say IN_PROGRESS on a
    device back on A with nothing pending; the belief cannot call that pending
    or settled, and the finding's words are in its evidence."""
    shell = CapturedShell(
        {
            "swupdate -g": (0, "/dev/mmcblk0p2\n"),
            "cat /etc/sw-versions": (0, "rootfs ab-harness-v2\n"),
            "fw_printenv": (0, captured("fw_printenv-cut-install.txt")),
        }
    )

    belief = SwupdateClient().believes(shell)

    assert (belief.pending, belief.next_ok) == (None, True)
    assert belief.note == "ustate=7 (IN_PROGRESS); recovery_status=in_progress"
    why = belief.disagreement("ab-harness-v2", pending=False)
    assert why == "client: cannot tell whether an update is pending"
    evidence = "\n".join(f"$ {r.command}\n{r.output}" for r in belief.evidence)
    finding = FINDINGS["swupdate-cut-install-stays-in-progress"]
    assert finding.shows_in(evidence)
    assert finding.applies(Stack("stock", "swupdate", "uboot-swupdate"))
    assert not finding.applies(Stack("stock", "mender", "uboot-mender"))
    assert not finding.shows_in(captured("fw_printenv-confirmed.txt"))


def test_an_unreadable_env_leaves_pending_unknown_and_the_next_command_failing() -> None:
    shell = CapturedShell(
        {
            "swupdate -g": (0, "/dev/mmcblk0p2\n"),
            "cat /etc/sw-versions": (0, "rootfs ab-harness-v1\n"),
            "fw_printenv": (1, "Cannot read environment, using default\nCannot read default"),
        }
    )

    belief = SwupdateClient().believes(shell)

    assert (belief.pending, belief.next_ok) == (None, False)
    assert "fw_printenv: exit 1" in (belief.disagreement("ab-harness-v1", False) or "")


def test_a_captured_env_reads_under_swupdates_contract() -> None:
    contract = UBootSwupdateEnv(load_target("qemu-arm64-uboot-swupdate").env)
    slots = {"A": 2, "B": 3}

    confirmed = read_under(
        contract, BootEnv(parse_env(captured("fw_printenv-confirmed.txt")), "device"), slots
    )
    back = read_under(
        contract, BootEnv(parse_env(captured("fw_printenv-rolled-back.txt")), "device"), slots
    )

    assert (confirmed.boot_part, confirmed.pending, confirmed.get("ustate")) == (3, False, "0")
    assert (back.boot_part, back.pending, back.get("ustate"), back.bootcount) == (2, False, "3", 2)
    assert "bootcmd" in parse_env(captured("fw_printenv-confirmed.txt"))
    assert sw_versions("rootfs ab-harness-v2\nkernel 6.1\n") == {
        "rootfs": "ab-harness-v2",
        "kernel": "6.1",
    }


def test_swupdate_needs_its_own_target_and_that_target_names_it() -> None:
    spec = load_target("qemu-arm64-uboot-swupdate")
    assert isinstance(client_for(spec.update_client), SwupdateClient)
    assert with_client(spec, None).image == "arm64-uboot-swupdate"

    with pytest.raises(
        HarnessConfigError, match=r"keeps its own bootloader contract \(uboot-swupdate\)"
    ):
        with_client(load_target("qemu-arm64-uboot-stock"), "swupdate")


# --- the .swu files the harness writes, against swupdate -c ------------------


def swupdate_check(swu: Path, ca: Path, selection: str, tmp: Path) -> tuple[bool, str]:
    """Debian's `swupdate -c` on the host, as the device would select: its
    verdict from its log (its exit status races its threads in check mode)."""
    done = run(
        need("swupdate", "swupdate"),
        *("-c", "-v", "-i", swu, "-k", ca, "-e", selection, "-H", "ab-harness-arm64:1.0"),
        env={"TMPDIR": str(tmp), "PATH": "/usr/bin:/bin"},
    )
    log = done.stdout + done.stderr
    return install_succeeded(log), log


@pytest.fixture
def written(tmp_path: Path, signers: dict[str, KitSigner]) -> tuple[Path, Signer, bytes]:
    need("zstd", "zstd")
    rootfs = payload(5, 300_000)
    image = tmp_path / "rootfs.ext4.zst"
    raw = tmp_path / "rootfs.img"
    raw.write_bytes(rootfs)
    digest = compress_rootfs(raw, image)
    kit = signers["test"]
    signer = Signer(kit.cert, kit.key, kit.ca)
    text = dual_copy_description("2", "ab-harness-v2", image.name, digest, COPIES, ("1.0",))
    write_swu(text, {image.name: image}, tmp_path / "update.swu", signer)
    return tmp_path / "update.swu", signer, image.read_bytes()


@pytest.mark.parametrize(
    ("running", "device", "bootpart"),
    [("mmcblk0p2", "/dev/mmcblk0p3", "0:3"), ("mmcblk0p3", "/dev/mmcblk0p2", "0:2")],
)
def test_the_written_swu_is_what_swupdate_checks_and_selects(
    written: tuple[Path, Signer, bytes], tmp_path: Path, running: str, device: str, bootpart: str
) -> None:
    swu, signer, image = written

    accepted, log = swupdate_check(swu, signer.ca, f"stable,{running}", tmp_path)
    bundle = read_swu(swu, signer.ca)

    assert accepted, log
    assert "Verified OK" in log and "Accepted Hw Revision : 1.0" in log
    found = re.search(r"Found compressed Image rootfs ab-harness-v2: (\S+) in device : (\S+)", log)
    assert found and found.groups() == ("rootfs.ext4.zst", device), log
    assert f"Bootloader var: bootpart = {bootpart}" in log
    assert f"size {len(image)} required" in log
    assert bundle.signature is Signature.VALID
    mine = {i.target: (i.size, i.sha256) for i in bundle.images}
    assert mine[device] == (len(image), sha256(image))


def test_a_tampered_written_swu_is_refused_by_swupdate_and_by_the_reader(
    written: tuple[Path, Signer, bytes], tmp_path: Path
) -> None:
    swu, signer, _ = written
    at = swu.read_bytes().find(b"0:3")
    bad = flip(swu, at + 2, tmp_path / "tampered.swu")

    accepted, log = swupdate_check(bad, signer.ca, "stable,mmcblk0p2", tmp_path)

    assert not accepted, log
    # The crc format's per-member checksum refuses it before the signature is read.
    with pytest.raises(BundleError, match="sw-description does not match its CPIO checksum"):
        read_swu(bad, signer.ca)


def test_debians_swupdate_writes_no_bootloader_env_unless_told_to(
    written: tuple[Path, Signer, bytes], tmp_path: Path
) -> None:
    """Debian's build registers U-Boot's interface but defaults to "none" (an
    env in RAM): without `bootloader = "uboot"` in swupdate.cfg (or `-B uboot`)
    an install succeeds and its bootenv is lost, so the image names it."""
    swu, signer, _ = written

    accepted, log = swupdate_check(swu, signer.ca, "stable,mmcblk0p2", tmp_path)

    assert accepted, log
    assert "Using default bootloader interface: none" in log
    assert re.search(r"\tuboot\s+loaded\.", log), log
    image_cfg = Path(__file__).parent.parent / "qemu-images/arm64-uboot-swupdate/rootfs/etc"
    assert 'bootloader = "uboot";' in (image_cfg / "swupdate.cfg").read_text()
