"""What the plugin's field-case fixtures do (the fixtures themselves stay in
harness/plugin/__init__.py, where the API reference finds them).

- `FieldCapture`: the `field_capture` fixture, capturing the running device
  into a bundle (by default `bundle/` in the test's evidence folder);
- `marked_bundle()`: the `field_bundle` fixture, the bundle a scenario starts
  from (`@pytest.mark.ab_from_bundle("bundles/NAME")`, relative to the test file);
- `bundle_disk()`: the disk `_ab_live` boots for such a scenario, rebuilt from
  the bundle; a bundle captured on a device unlike the target skips the test
  with the reason (a matrix run), a damaged one is an error line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.bootloaders import Bootloader
from harness.clients import UpdateClient
from harness.device.serial_log import SerialRecorder, normalise_newlines
from harness.device.shell import Shell
from harness.fieldcase.bundle import Bundle, load
from harness.fieldcase.capture import capture
from harness.fieldcase.rebuild import BundleMismatch, rebuild
from harness.fieldcase.store import PayloadStore
from harness.images import ImageSet
from harness.report import Evidence
from harness.targets.matrix import unmet
from harness.targets.target import TargetSpec

MARKER = "ab_from_bundle"
MARKER_HELP = (
    "ab_from_bundle(path): start the target from a captured bundle (env bytes, slot "
    "releases, client state), path relative to the test file"
)


def bundle_path(request: pytest.FixtureRequest) -> Path | None:
    """The bundle the test's `ab_from_bundle` marker names, or None."""
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return None
    if len(marker.args) != 1:
        raise pytest.UsageError(f"{request.node.nodeid}: ab_from_bundle takes one path")
    return Path(request.path).parent / str(marker.args[0])


def bundle_disk(
    request: pytest.FixtureRequest,
    spec: TargetSpec,
    image: ImageSet | None,
    bootloader: Bootloader,
    workdir: Path,
) -> Path | None:
    """The disk to boot for a test that starts from a bundle, else None."""
    path = bundle_path(request)
    if path is None:
        return None
    why = unmet(spec, ["qemu"])
    if image is None or why:
        pytest.skip(f"a bundle is replayed on a QEMU target with a reference image: {why or ''}")
    bundle = load(path)
    store = PayloadStore.of_image(image, spec.slots["A"])
    try:
        disk = rebuild(bundle, spec, image, bootloader, store, workdir / "bundle-disk.img")
    except BundleMismatch as err:
        pytest.skip(f"bundle {path.name} does not fit target '{spec.name}': {err.cause}")
    return disk.path


def marked_bundle(request: pytest.FixtureRequest) -> Bundle:
    """The bundle the test's `ab_from_bundle` marker names, loaded and checked."""
    path = bundle_path(request)
    if path is None:
        raise pytest.UsageError(
            f"{request.node.nodeid} uses field_bundle without @pytest.mark.ab_from_bundle(PATH)"
        )
    return load(path)


@dataclass
class FieldCapture:
    """Captures the running device into a bundle: `field_capture(dest=None) -> Bundle`."""

    spec: TargetSpec
    bootloader: Bootloader
    client: UpdateClient
    shell: Shell
    evidence: Evidence
    recorder: SerialRecorder

    def __call__(self, dest: Path | None = None) -> Bundle:
        """Capture into `dest` (default: `bundle/` in the test's evidence folder)."""
        with self.evidence.step("capture"):
            return capture(
                self.shell,
                dest or self.evidence.directory / "bundle",
                target=self.spec.name,
                bootloader_kind=self.spec.bootloader,
                bootloader=self.bootloader,
                slots=self.spec.slots,
                client=self.client,
                serial_log=normalise_newlines(self.recorder.raw(0, self.recorder.size)),
            )
