"""A file written to /data and `sync`ed is on the medium when sync returns:
in the write log of the real guest, no write to the data partition comes
after sync's last flush, so a disk with a volatile write cache cannot lose it.

Without a journal on /data this does not hold: Linux's sync(2) flushes in
->sync_fs() and only then writes the metadata ext4 left in the block device's
cache (inode table, bitmaps, directory blocks), so whether they are flushed
depends on whether the flusher thread got to them first. The x86_64 sweep
lost a synced file that way (k=292, volatile-cache, all unflushed writes lost).
"""

from pathlib import Path

import pytest

from harness.bootloaders import Bootloader
from harness.faults.disklayout import DiskLayout, names_from_manifest
from harness.faults.writelog import WriteLog
from harness.images import ImageSet
from harness.live import live_target
from harness.shell import Shell
from harness.target import TargetSpec

pytestmark = pytest.mark.qemu

ROUNDS = 4  # the ordering is a race without a journal: give it several chances to show


def test_sync_leaves_no_data_partition_write_unflushed(
    ab_target_spec: TargetSpec, ab_image: ImageSet, bootloader: Bootloader, tmp_path: Path
) -> None:
    log = tmp_path / "writes.log"
    names = names_from_manifest(ab_image.manifest)
    data_number = next(n for n, name in names.items() if name == "data")
    with live_target(
        ab_target_spec, ab_image, tmp_path / "live", bootloader, write_log=log
    ) as live:
        live.strategy.transition("shell")
        shell = Shell(live.target.get_driver("ShellDriver"))
        assert live.disk is not None
        layout = DiskLayout.read(live.disk, names)
        data = next(p for p in layout.partitions if p.number == data_number)
        for n in range(ROUNDS):
            first = len(WriteLog.open(log))
            shell.exec0(f"echo 'round {n}' > /data/synced-{n} && sync")
            wlog = WriteLog.open(log)
            entries = wlog.entries[first:]
            writes = [
                e.index
                for e in entries
                if e.is_write and data.start <= e.disk_offset < data.start + data.size
            ]
            flushes = [e.index for e in entries if e.is_flush]
            assert writes, f"round {n}: sync wrote nothing to the data partition"
            assert flushes and max(writes) < max(flushes), (
                f"round {n}: data partition writes {writes} after sync's last flush "
                f"{flushes[-1:]} are still in the volatile cache when sync returns"
            )
