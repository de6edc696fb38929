"""A file written to /data and `sync`ed survives a power cut right after sync
returns, even if the disk's volatile write cache loses every write not yet
flushed: the write log of the real guest, cut there under the volatile-cache
model, and the data partition mounted the way Linux would (journal replayed,
by e2fsck) still holds the file.

Without a journal on /data this does not hold: Linux's sync(2) flushes in
->sync_fs() and only then writes the metadata ext4 left in the block device's
cache (inode table, bitmaps, directory blocks), so whether they are flushed
depends on whether the flusher thread got to them first. The x86_64 sweep
lost a synced file that way (k=292, volatile-cache, all unflushed writes lost).
With the journal, writes after sync's last flush still happen (checkpoints of
metadata already committed), but the journal replays them.
"""

import subprocess
from pathlib import Path

import pytest

from harness.bootloaders import Bootloader
from harness.crashsweep.crashdisk import materialize
from harness.crashsweep.crashstate import crash_states
from harness.crashsweep.disklayout import DiskLayout, names_from_manifest
from harness.crashsweep.writelog import WriteLog
from harness.device.live import live_target
from harness.device.shell import Shell
from harness.images import ImageSet
from harness.targets.target import TargetSpec

pytestmark = pytest.mark.qemu

ROUNDS = 3  # the ordering is a race without a journal: give it several chances to show


def _read_after_replay(disk: Path, start: int, size: int, name: str, work: Path) -> str:
    """`name` in the data partition once its journal is replayed (e2fsck, as a mount would)."""
    part = work / "data.ext4"
    with disk.open("rb") as src, part.open("wb") as dst:
        src.seek(start)
        dst.write(src.read(size))
    fsck = subprocess.run(["e2fsck", "-fy", str(part)], check=False, capture_output=True, text=True)
    assert fsck.returncode in (0, 1), fsck.stdout + fsck.stderr  # 1: errors corrected
    cat = subprocess.run(
        ["debugfs", "-R", f"cat /{name}", str(part)], check=False, capture_output=True, text=True
    )
    return cat.stdout


def test_a_synced_file_survives_losing_every_unflushed_write(
    ab_target_spec: TargetSpec, ab_image: ImageSet, bootloader: Bootloader, tmp_path: Path
) -> None:
    log = tmp_path / "writes.log"
    names = names_from_manifest(ab_image.manifest)
    data_number = next(n for n, name in names.items() if name == "data")
    base = tmp_path / "base.img"
    with live_target(
        ab_target_spec, ab_image, tmp_path / "live", bootloader, write_log=log
    ) as live:
        assert live.disk is not None
        subprocess.run(["cp", "--sparse=always", str(live.disk), str(base)], check=True)
        live.strategy.transition("shell")
        shell = Shell(live.target.get_driver("ShellDriver"))
        data = next(p for p in DiskLayout.read(base, names).partitions if p.number == data_number)
        for n in range(ROUNDS):
            name = f"synced-{n}"
            shell.exec0(f"echo 'round {n}' > /data/{name} && sync")
            wlog = WriteLog.open(log)
            lost = crash_states(wlog, len(wlog), "volatile-cache")[0]
            disk = materialize(base, wlog, lost, tmp_path / f"cut-{n}.img", method="copy").path
            content = _read_after_replay(disk, data.start, data.size, name, tmp_path)
            assert content == f"round {n}\n", (
                f"round {n}: {name} lost in {lost.label}: the data partition holds {content!r}"
            )
            disk.unlink()
