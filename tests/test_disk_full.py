"""A host disk that fills during a test: QEMU pauses the guest on the write
error (ENOSPC), and the harness names that as the cause instead of reporting
a timeout. The full disk is QEMU's own blkdebug answering the guest's writes
to the data partition with ENOSPC, exactly what a full host filesystem gives it."""

import pytest

from harness.errors import DeviceError

pytestmark = pytest.mark.qemu


@pytest.mark.nightly
def test_a_full_host_disk_is_named_as_the_cause(booted, shell, faults):
    with faults.disk_full(4) as full, pytest.raises(DeviceError) as caught:  # 4: /data
        shell.exec("dd if=/dev/zero of=/data/fill bs=64k count=32 conv=fsync", timeout_s=10)

    message = str(caught.value)
    assert "did not finish within 10 s" in message
    assert "host disk full: QEMU paused the guest on a write error (ENOSPC)" in message
    assert "free space on the filesystem holding" in message
    proof = full.proof()
    assert proof.fired and proof.facts["errno"] == 28 and proof.facts["block_io_error_events"] > 0
