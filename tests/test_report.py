"""Evidence: env snapshots, steps, per-boot serial logs, timeline and the run summary.

These run without --alluredir, so every allure.attach/step here also proves
that reporting is harmless when no Allure report is being written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.bootloaders import BootEnv, UBootFileEnv
from harness.device.boot import BootRecord
from harness.device.serial_log import SerialRecorder
from harness.judge.judgement import Decision
from harness.report import Evidence, ScenarioSummary, format_boot, safe_name, summary_table
from harness.report.summary import RunTotals

SOURCE = "host:disk.img p1:uboot.env+uboot-redund.env"


def boot_env(**vars: str) -> BootEnv:
    base = {"mender_boot_part": "2", "upgrade_available": "0", "bootcount": "0"}
    return BootEnv({**base, **vars}, SOURCE, {"copy": "uboot.env", "flags": "3"})


def events(evidence: Evidence) -> list[str]:
    return [what for _at, what in evidence.timeline]


def test_record_env_writes_numbered_json(tmp_path: Path) -> None:
    evidence = Evidence(tmp_path / "evidence")

    first = evidence.record_env("after install", boot_env(upgrade_available="1"))
    second = evidence.record_env("after reboot/rollback", boot_env(bootcount="a"))

    assert first == tmp_path / "evidence" / "env-01-after_install.json"
    assert second == tmp_path / "evidence" / "env-02-after_reboot_rollback.json"
    body = json.loads(first.read_text())
    assert body["label"] == "after install"
    assert body["source"] == SOURCE
    assert body["detail"] == {"copy": "uboot.env", "flags": "3"}
    assert body["vars"] == {"bootcount": "0", "mender_boot_part": "2", "upgrade_available": "1"}
    assert list(body["vars"]) == sorted(body["vars"])
    assert body["at_s"] >= 0
    assert json.loads(second.read_text())["vars"]["bootcount"] == "a"
    assert events(evidence) == [
        f"env snapshot 'after install' from {SOURCE}: "
        "mender_boot_part=2 upgrade_available=1 bootcount=0",
        f"env snapshot 'after reboot/rollback' from {SOURCE}: "
        "mender_boot_part=2 upgrade_available=0 bootcount=a",
    ]


def test_safe_name_keeps_file_names_tame() -> None:
    assert safe_name("before push payload 'v2'") == "before_push_payload_v2"
    assert safe_name("///") == "step"
    assert len(safe_name("x" * 500)) == 120


class Snapshots:
    """A snapshot_env callback that reads a (changing) env and records it as evidence."""

    def __init__(self) -> None:
        self.evidence: Evidence | None = None
        self.bootcount = 0
        self.labels: list[str] = []

    def __call__(self, label: str) -> None:
        assert self.evidence is not None
        self.labels.append(label)
        self.evidence.record_env(label, boot_env(bootcount=str(self.bootcount)))


def test_step_snapshots_before_and_after(tmp_path: Path) -> None:
    snapshots = Snapshots()
    evidence = Evidence(tmp_path, snapshot_env=snapshots)
    snapshots.evidence = evidence

    with evidence.step("install v2"):
        evidence.event("pushing payload")
        snapshots.bootcount = 1

    assert snapshots.labels == ["before install v2", "after install v2"]
    assert sorted(p.name for p in tmp_path.glob("env-*.json")) == [
        "env-01-before_install_v2.json",
        "env-02-after_install_v2.json",
    ]
    assert (
        json.loads((tmp_path / "env-02-after_install_v2.json").read_text())["vars"]["bootcount"]
        == "1"
    )
    assert [e.split(" from ")[0] for e in events(evidence)] == [
        "env snapshot 'before install v2'",
        "begin install v2",
        "pushing payload",
        "end install v2",
        "env snapshot 'after install v2'",
    ]
    stamps = [at for at, _what in evidence.timeline]
    assert stamps == sorted(stamps)


def test_step_that_raises_keeps_the_before_snapshot(tmp_path: Path) -> None:
    snapshots = Snapshots()
    evidence = Evidence(tmp_path, snapshot_env=snapshots)
    snapshots.evidence = evidence

    with pytest.raises(RuntimeError, match="device vanished"), evidence.step("reboot"):
        raise RuntimeError("device vanished")

    assert snapshots.labels == ["before reboot"]
    assert [p.name for p in tmp_path.glob("env-*.json")] == ["env-01-before_reboot.json"]
    assert events(evidence)[-1] == "begin reboot"


def test_step_without_snapshots_only_logs(tmp_path: Path) -> None:
    evidence = Evidence(tmp_path)

    with evidence.step("wait for ready"):
        pass

    assert events(evidence) == ["begin wait for ready", "end wait for ready"]
    assert list(tmp_path.glob("env-*.json")) == []


BOOT_1 = (
    b"\r\n\r\nU-Boot 2023.01+dfsg-2 (Jan 08 2023 - 09:27:08 +0000)\r\n"
    b"ab-boot: slot=B part=3 bootcount=1 upgrade_available=1 bootlimit=1 env=b\r\n"
    b"ab-health: FAILED\r\nreboot: Restarting system\r\n"
)
BOOT_2 = (
    b"\r\n\r\nU-Boot 2023.01+dfsg-2 (Jan 08 2023 - 09:27:08 +0000)\r\n"
    b"ab-boot: bootcount 2 > bootlimit 1, rolling back\r\n"
    b"ab-boot: slot=A part=2 bootcount=0 upgrade_available=0 bootlimit=1 env=a\r\n"
    b"ab-init: ready slot=A version=1\r\nab-shell# "
)


def test_finish_writes_per_boot_logs_and_timeline(tmp_path: Path) -> None:
    evidence = Evidence(tmp_path / "evidence")
    t0 = evidence.started
    recorder = SerialRecorder(UBootFileEnv.markers.banner)
    for chunk in (BOOT_1[:30], BOOT_1[30:], BOOT_2):
        recorder.feed(chunk)
    evidence.event("installed v2-bad")
    boots = [
        BootRecord(1, t0 + 2.0, Decision("B", 1, True), "fail"),
        BootRecord(
            2,
            t0 + 9.25,
            Decision("A", 0, False),
            "pass",
            ready=True,
            running_slot="A",
            version="1",
            ready_at=t0 + 13.75,
        ),
    ]

    evidence.finish(recorder, boots)

    out = tmp_path / "evidence"
    assert (out / "serial.log").read_bytes() == BOOT_1 + BOOT_2
    boot_1 = (out / "boot-01.log").read_text()
    boot_2 = (out / "boot-02.log").read_text()
    assert boot_1.startswith("U-Boot 2023.01+dfsg-2")
    assert "slot=B" in boot_1
    assert "slot=A" not in boot_1
    assert "\r" not in boot_1
    assert boot_2.startswith("U-Boot 2023.01+dfsg-2")
    assert "ab-init: ready slot=A version=1" in boot_2
    assert not (out / "boot-03.log").exists()

    timeline = (out / "timeline.txt").read_text().splitlines()
    assert timeline[0].endswith(" s  installed v2-bad")
    assert timeline[1:] == [
        "",
        "boots:",
        "  boot #1 at    2.00 s: bootloader chose B (bootcount=1, upgrade_available=True); "
        "health=fail; never ready",
        "  boot #2 at    9.25 s: bootloader chose A (bootcount=0, upgrade_available=False); "
        "running A v1; health=pass; ready after 4.5 s",
    ]


def test_finish_without_a_recorder_still_writes_the_timeline(tmp_path: Path) -> None:
    evidence = Evidence(tmp_path)

    evidence.finish(None, [])

    assert (tmp_path / "timeline.txt").read_text() == "\nboots:\n"
    assert not (tmp_path / "serial.log").exists()


def test_format_boot_marks_a_kernel_panic() -> None:
    boot = BootRecord(3, 50.0, Decision("B", 2, True), panicked=True)

    assert format_boot(boot, 40.0).endswith("never ready; KERNEL PANIC")
    assert " at   10.00 s:" in format_boot(boot, 40.0)


def test_summary_table_rows_and_totals() -> None:
    rows = [
        ScenarioSummary("test_update_commits", "passed", 2, 31.04),
        ScenarioSummary("test_failed_health_rolls_back[3]", "failed", 5, 65.5),
        ScenarioSummary("x", "passed", 1, 0.04),
    ]

    lines = summary_table(rows, "kvm")

    assert lines == [
        "scenario                          outcome  boots  seconds",
        "test_update_commits               passed       2     31.0",
        "test_failed_health_rolls_back[3]  failed       5     65.5",
        "x                                 passed       1      0.0",
        "2/3 passed, 1 failed, 8 boots, 96.6 s, accelerator: kvm",
    ]


def test_summary_table_without_accelerator_or_rows() -> None:
    lines = summary_table([ScenarioSummary("s", "skipped", 0, 0.0)], None)

    assert lines[0].startswith("scenario  outcome")
    assert lines[-1] == "0/1 passed, 1 skipped, 0 boots, 0.0 s"
    assert summary_table([], "tcg") == []


def test_summary_totals_count_every_test_of_the_run_with_its_wall_time() -> None:
    rows = [
        ScenarioSummary("test_update_commits", "passed", 4, 30.0),
        ScenarioSummary("test_watchdog", "skipped", 0, 0.0, note="target t lacks watchdog"),
        ScenarioSummary("test_cut", "error", 2, 20.0),
    ]
    totals = RunTotals({"passed": 3, "skipped": 1, "error": 1}, wall_s=31.5, twice_in_pytest=1)

    lines = summary_table(rows, None, totals)

    assert lines[2].endswith("skipped      0      0.0  target t lacks watchdog")
    assert lines[4:] == [
        "3/5 passed, 1 error, 1 skipped, 6 boots, 31.5 s",
        "(2 of the 5 tests use no target and have no row above)",
        "(pytest's line counts 1 of the errors as passed too: its body passed, the teardown "
        "failed)",
    ]


def test_evidence_that_cannot_be_written_is_one_warning(tmp_path: Path) -> None:
    evidence = Evidence(tmp_path / "results")
    (tmp_path / "results").rmdir()
    (tmp_path / "results").write_text("a file now: every write into the folder fails\n")

    with pytest.warns(UserWarning, match=r"could not be written to .*results: Not a directory"):
        evidence.finish(None, ())


def test_boots_the_oracle_could_not_judge_are_named_in_the_evidence_and_the_html(
    tmp_path: Path,
) -> None:
    from harness.judge.judgement import Judgement
    from harness.report.html import write_report

    run = tmp_path / "run"
    evidence = Evidence(run / "test_cut")
    t0 = evidence.started
    ok = Judgement(1, "ok", "nothing pending: boot the same slot", Decision("A", None, False, 0))
    unjudged = Judgement(2, "unjudged", "no env before: the disk was not read")
    boots = [
        BootRecord(1, t0 + 1.0, ready=True, running_slot="A", version="1", judgement=ok),
        BootRecord(2, t0 + 5.0, failure="power cut", judgement=unjudged),
    ]

    evidence.finish(None, boots)
    html = write_report(run).read_text()

    facts = json.loads((evidence.directory / "boots.json").read_text())
    assert [f["oracle"]["verdict"] for f in facts] == ["ok", "unjudged"]
    assert facts[0]["bootloader"]["slot"] == "A"  # the decision observed, no line printed
    timeline = (evidence.directory / "timeline.txt").read_text()
    assert timeline.endswith(
        "oracle: 1 boots judged, 1 could not be judged: #2 (no env before: the disk was not read)\n"
    )
    assert (
        "<p id='oracle' class='unjudged'>oracle: 1 boots judged, 1 could not be judged: "
        "test_cut #2 (no env before: the disk was not read)</p>"
    ) in html
    assert "COULD NOT BE JUDGED: no env before" in html
