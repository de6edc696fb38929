"""A target made concrete for one test: its labgrid YAML and its images.

Recipe outputs (`@image:KEY`) are read from the image cache, the writable
ones copied first; the user's own files named by path are only read, a
writable one copied (harness.images.userfiles); tools resolve to installed paths
and placeholder ports to free ones.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from harness.errors import EnvironmentMissing, HarnessConfigError
from harness.images import ImageSet
from harness.images.userfiles import private_copy
from harness.targets.hostports import fill_host_ports

if TYPE_CHECKING:
    from harness.targets.target import TargetSpec

IMAGE_REF = "@image:"
QEMU_PACKAGES = {
    "qemu-system-aarch64": "qemu-system-arm",
    "qemu-system-arm": "qemu-system-arm",
    "qemu-system-x86_64": "qemu-system-x86",
}


@dataclass(frozen=True)
class MaterializedTarget:
    """A target made concrete for one test: labgrid YAML and per-test images."""

    spec: TargetSpec
    labgrid_config: Path
    images: Mapping[str, Path]

    @property
    def disk(self) -> Path | None:
        return self.images.get("disk")


def materialize(
    spec: TargetSpec,
    workdir: Path,
    image: ImageSet | None,
    writable: tuple[str, ...] = ("disk",),
    overrides: Mapping[str, Path] | None = None,
) -> MaterializedTarget:
    """Write a labgrid environment for one test into workdir.

    `@image:KEY` entries point into the built image; those named in
    `writable` are copied first, so every test starts from a pristine disk
    and the cache is never modified; a writable key named by path (the
    user's own disk) gets a private copy too (harness.images.userfiles).
    `overrides` replace an image key by a file the caller owns (e.g. a
    crash-state disk), used as it is.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = {k: _plain(v) for k, v in spec.labgrid.items()}
    images: dict[str, Path] = {}
    for key, ref in dict(config.get("images", {})).items():
        if overrides and key in overrides:
            images[key] = overrides[key]
            config["images"][key] = str(overrides[key])
        elif isinstance(ref, str) and ref.startswith(IMAGE_REF):
            if image is None:
                raise HarnessConfigError(
                    f"{spec.path}: images.{key} uses {IMAGE_REF} but "
                    "'ab-harness.image' names no recipe",
                    "add 'image: <recipe>' under ab-harness",
                )
            source = image.file(ref[len(IMAGE_REF) :])
            if key in writable:
                dest = workdir / source.name
                sparse_copy(source, dest)
                source = dest
            images[key] = source
            config["images"][key] = str(source)
        else:
            # labgrid resolves a relative path against the YAML that names it;
            # the written YAML lives in workdir, so anchor it to the target file.
            anchored = spec.path.parent / Path(str(ref)).expanduser()
            if key in writable:  # the user's own file: never written (harness.images.userfiles)
                anchored = private_copy(anchored, workdir)
            images[key] = anchored
            config["images"][key] = str(anchored)
    if "tools" in config:
        config["tools"] = resolve_tools(spec)
    config = fill_host_ports(config, spec.host_ports)  # a free host port per test
    out = workdir / "labgrid-env.yaml"
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return MaterializedTarget(spec, out, images)


def resolve_tools(spec: TargetSpec) -> dict[str, str]:
    """The YAML's `tools:` as absolute paths; EnvironmentMissing names one that is not installed."""
    resolved: dict[str, str] = {}
    for key, tool in dict(spec.labgrid.get("tools") or {}).items():
        found = shutil.which(str(tool))
        if found is None:
            package = QEMU_PACKAGES.get(Path(str(tool)).name, Path(str(tool)).name)
            raise EnvironmentMissing(
                f"target '{spec.name}' needs '{tool}' (tools.{key}), which is not installed",
                f"apt-get install {package} (or run 'make setup')",
            )
        resolved[key] = found
    return resolved


def disk_of(spec: TargetSpec, image: ImageSet | None) -> Path | None:
    """The disk image the YAML's `images.disk` names (in the built image, or a path)."""
    ref = dict(spec.labgrid.get("images") or {}).get("disk")
    if ref is None:
        return None
    if isinstance(ref, str) and ref.startswith(IMAGE_REF):
        return image.file(ref[len(IMAGE_REF) :]) if image is not None else None
    return spec.path.parent / Path(str(ref)).expanduser()


def _plain(value: Any) -> Any:
    # Deep copy through YAML-safe types so the spec's own data is never mutated.
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def sparse_copy(source: Path, dest: Path) -> None:
    """Copy an image keeping holes (and sharing blocks where the filesystem can)."""
    proc = subprocess.run(
        ["cp", "--sparse=always", "--reflink=auto", str(source), str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise HarnessConfigError(
            f"cannot copy image {source} to {dest}: {proc.stderr.strip()}",
            "check free disk space and permissions of the results directory",
        )
