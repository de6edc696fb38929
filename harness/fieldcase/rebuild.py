"""A QEMU disk in the state a bundle captured: the reference disk, with exactly
the bundle's env bytes, the releases its slots held and its client state.

Everything else (the boot partition's scripts, the data partition's other
files) is the reference image's: a bundle records the bootloader's and the
client's state, not a device's whole disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.bootloaders import BootEnv, Bootloader
from harness.envformat import EnvCorrupt, GrubEnvCorrupt
from harness.fieldcase import hostfs
from harness.fieldcase.bundle import Bundle, BundleError
from harness.fieldcase.store import PayloadStore
from harness.images import ImageSet, diskimage
from harness.targets.target import TargetSpec, sparse_copy


class BundleMismatch(BundleError):
    """A sound bundle from a device unlike the target (bootloader, env, slots, partitions)."""


@dataclass(frozen=True)
class RebuiltDisk:
    """The disk a replay boots, and where each slot's bytes came from."""

    path: Path
    slots_from: dict[str, str]  # slot → "v2-bad (by sha256)"
    env: BootEnv  # the env as the bootloader will read it, from the disk


def check_fits(bundle: Bundle, spec: TargetSpec, reference: Path) -> None:
    """The bundle must come from a device laid out like the target's image."""
    if bundle.bootloader != spec.bootloader:
        raise BundleMismatch(
            f"{bundle.path}: captured from a '{bundle.bootloader}' device, target "
            f"'{spec.name}' boots '{spec.bootloader}'",
            "replay it with --target naming a target of that bootloader",
        )
    names = tuple(f.name for f in bundle.env_files)
    if (bundle.env_partition, names) != (spec.env.partition, spec.env.files):
        raise BundleMismatch(
            f"{bundle.path}: env files {list(names)} on partition {bundle.env_partition}, "
            f"target '{spec.name}' keeps {list(spec.env.files)} on partition {spec.env.partition}",
            "replay it on a target with the same env layout",
        )
    if set(bundle.slots) != set(spec.slots) or any(
        bundle.slots[n].partition != p for n, p in spec.slots.items()
    ):
        captured = {n: s.partition for n, s in bundle.slots.items()}
        raise BundleMismatch(
            f"{bundle.path}: slots {captured}, target '{spec.name}' has {dict(spec.slots)}",
            "replay it on a target with the same slots",
        )
    table = {
        p.number: (p.start_bytes // 512, p.size_bytes // 512)
        for p in diskimage.partitions(reference)
    }
    for part in bundle.partitions:
        if table.get(part.number) != (part.start, part.sectors):
            raise BundleMismatch(
                f"{bundle.path}/partitions.txt: partition {part.number} starts at sector "
                f"{part.start} with {part.sectors} sectors; the image of '{spec.name}' has "
                f"{table.get(part.number) or 'no such partition'}",
                "replay it on a target built with the device's partition layout",
            )


def rebuild(
    bundle: Bundle,
    spec: TargetSpec,
    image: ImageSet,
    bootloader: Bootloader,
    store: PayloadStore,
    dest: Path,
) -> RebuiltDisk:
    """Write the disk `dest`: a copy of the reference disk in the bundle's state."""
    reference = image.file("disk")
    check_fits(bundle, spec, reference)
    # Resolve every slot before writing anything: a missing release is one line.
    chosen = {}
    for name, slot in sorted(bundle.slots.items()):
        found = store.find(slot)
        if found is None:
            raise BundleError(
                f"{bundle.path}: slot {name} held {slot.bytes} bytes with sha256 "
                f"{slot.sha256[:16]}… (version {slot.version}), which no payload in the store "
                f"has ({store.describe()})",
                "pass --payloads DIR with that release's rootfs image",
            )
        chosen[name] = found
    dest.parent.mkdir(parents=True, exist_ok=True)
    sparse_copy(reference, dest)
    parts = {p.number: p for p in diskimage.partitions(dest)}
    with dest.open("r+b") as f:
        for name, found in chosen.items():
            part = parts[spec.slots[name]]
            if found.payload.size > part.size_bytes:
                raise BundleError(
                    f"payload {found.payload.name} ({found.payload.size} bytes) does not fit "
                    f"slot {name} ({part.size_bytes} bytes)",
                    "give a payload built for this layout",
                )
            f.seek(part.start_bytes)
            f.write(found.payload.read())
    for name, data in bundle.env_bytes().items():
        diskimage.write_partition_file(dest, bundle.env_partition, name, data)
    for state in bundle.client_state:
        if state.partition is None or state.fstype is None or state.relpath is None:
            continue  # not on the boot disk: nothing of it to restore
        if state.present:
            hostfs.write_file(
                dest, state.partition, state.fstype, state.relpath, bundle.state_bytes(state)
            )
        else:
            hostfs.remove_file(dest, state.partition, state.fstype, state.relpath)
    try:
        env = bootloader.env_from_image(dest)
    except (EnvCorrupt, GrubEnvCorrupt) as err:  # no valid copy: a state with an answer
        env = BootEnv({}, f"host:{dest.name}", {"copy": "none", "error": str(err)})
    slots_from = {
        name: f"{found.payload.name} (version {found.payload.version}, by {found.how})"
        for name, found in chosen.items()
    }
    return RebuiltDisk(dest, slots_from, env)
