"""The faults layer without a guest: proofs, the not-injected failure, the partition
marker the power cut counts with, argument checks, and the disk graph's arguments."""

import json
from pathlib import Path

import pytest

from harness.errors import HarnessConfigError
from harness.faults import FaultClock, FaultNotInjected, FaultProof, Faults, Machine
from harness.faults.base import require_fired, write_proof
from harness.faults.marker import count_unmarked, fill_marker
from harness.faults.powercut import percent_of
from harness.images.diskimage import Partition
from harness.machines.blockgraph import DiskGraph


def test_a_fault_that_did_not_fire_fails_with_one_line_naming_why() -> None:
    proof = FaultProof("power-cut-after-bytes", "cut", None, {"x": 1}, fired=False, why="too few")

    with pytest.raises(FaultNotInjected) as err:
        require_fired(proof)

    assert str(err.value).startswith("fault not injected: power-cut-after-bytes: too few")
    assert "\n" not in str(err.value)


def test_proof_is_written_as_numbered_json(tmp_path: Path) -> None:
    proof = FaultProof("power-cut-now", "cut now", 1.5, {"qemu_pid": 42}, fired=True)

    path = write_proof(tmp_path, 3, proof)

    assert path.name == "fault-03-power-cut-now.json"
    body = json.loads(path.read_text())
    assert body["fired"] is True and body["when"] == 1.5 and body["facts"] == {"qemu_pid": 42}


class _NeverFires:
    kind = "never"

    def arm(self) -> None: ...

    def fire(self) -> None: ...

    def proof(self) -> FaultProof:
        return FaultProof(self.kind, "does nothing", None, why="it was only armed")

    def require_fired(self) -> FaultProof:
        return require_fired(self.proof())


def _faults(tmp_path: Path) -> Faults:
    machine = Machine(object(), lambda: None, None, lambda _w: Partition(3, 0, 0, "83"))  # type: ignore[arg-type]
    return Faults(machine, FaultClock(0.0, tmp_path))


def test_finish_writes_every_proof_and_fails_on_one_not_injected(tmp_path: Path) -> None:
    faults = _faults(tmp_path)
    faults._faults.append(_NeverFires())

    with pytest.raises(FaultNotInjected, match="never: it was only armed"):
        faults.finish()
    assert (tmp_path / "fault-01-never.json").is_file()


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"nbytes": 1, "percent": 5, "of": 10}, {"percent": 5}],
)
def test_power_cut_after_needs_bytes_or_a_percent_of_a_size(tmp_path: Path, kwargs) -> None:
    with pytest.raises(HarnessConfigError, match="nbytes=N or percent=P"):
        _faults(tmp_path).power_cut_after("B", **kwargs)


def test_percent_is_rounded_to_sectors_and_bounded() -> None:
    assert percent_of(16 << 20, 50) == 8 << 20
    assert percent_of(1000, 10) == 512  # never below one sector
    with pytest.raises(HarnessConfigError, match="percent must be in"):
        percent_of(100, 0)


def test_marker_count_sees_exactly_the_sectors_written_over_it(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * (4 << 20))
    part = Partition(3, 1 << 20, 2 << 20, "83")
    fill_marker(disk, part)
    assert count_unmarked(disk, part) == {"written_bytes": 0, "prefix_bytes": 0}

    with disk.open("r+b") as f:
        f.seek(part.start_bytes)
        f.write(b"x" * 8192)
        f.seek(part.start_bytes + (1 << 20))
        f.write(b"y" * 512)

    assert count_unmarked(disk, part) == {"written_bytes": 8192 + 512, "prefix_bytes": 8192}
    # The bytes around the partition were not touched by the marker.
    data = disk.read_bytes()
    assert data[: part.start_bytes] == b"\0" * part.start_bytes
    assert data[part.start_bytes + part.size_bytes :] == b"\0" * (1 << 20)


def test_disk_graph_names_its_nodes_and_keeps_flushes_above_the_file(tmp_path: Path) -> None:
    graph = DiskGraph.from_drive_options(tmp_path / "d.img", "cache=unsafe", tmp_path / "w.log")
    args = graph.qemu_args()
    blockdevs = [args[i + 1] for i, a in enumerate(args) if a == "-blockdev"]

    drivers = [b.split(",")[0] for b in blockdevs]
    assert drivers == [
        "driver=file",
        "driver=raw",
        "driver=blklogwrites",
        "driver=blkdebug",
        "driver=throttle",
    ]
    assert "cache.no-flush=on" in blockdevs[0]
    assert all("no-flush" not in b for b in blockdevs[1:])
    assert (
        "log-sector-size=512" in blockdevs[2] and f"log.filename={tmp_path}/w.log" in blockdevs[2]
    )
    assert args[-2:] == [
        "-device",
        "virtio-blk-pci,drive=ab-disk-throttle,id=ab-disk,write-cache=on",
    ]


def test_disk_opts_other_than_cache_are_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(HarnessConfigError) as err:
        DiskGraph.from_drive_options(tmp_path / "d.img", "cache=unsafe,aio=native", None)
    assert "'aio=native' is not supported" in str(err.value) and "cache=<" in str(err.value)
