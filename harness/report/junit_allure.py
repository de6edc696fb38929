"""What JUnit and Allure readers get besides pass/fail.

- JUnit: per-test properties (target, bootloader, client, accelerator,
  image and its hash, boots, slots, evidence folder), recorded as pytest
  user properties so pytest-xdist carries them to the controller;
- Allure: labels per test (target, bootloader, client, fault), the run's
  `environment.properties`, and `categories.json`, which tells an
  infrastructure failure (the lab or the harness set-up: the test proved
  nothing about the product) from a product failure (the device or its
  bootloader broke the contract). Categories are keyed on the exception
  type names of harness/errors.py, which appear in Allure's status message.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import allure

if TYPE_CHECKING:  # annotations only: importing the live target pulls in labgrid
    from harness.device.live import LiveTarget
    from harness.images import ImageSet
    from harness.report.evidence import Evidence

# Exception type names, as they appear at the start of Allure's status message.
INFRASTRUCTURE_ERRORS = ("HarnessConfigError", "EnvironmentMissing")
INFRASTRUCTURE_PATTERN = r"\w*Lab\w*Error|\w*Infrastructure\w*"  # lab errors, however named
PRODUCT_ERRORS = ("AssertionError", "ContractViolation", "DeviceError")
FAULT_ERRORS = ("FaultNotInjected",)

PROPERTY_NAMES = (
    "target",
    "bootloader",
    "client",
    "accelerator",
    "image",
    "image_hash",
    "boots",
    "slots",
    "evidence",
)


def junit_properties(
    *,
    target: str,
    bootloader: str,
    client: str,
    accelerator: str | None,
    image_dir: Path | None,
    slots: Sequence[str | None],
    evidence: Path,
) -> list[tuple[str, str]]:
    """The JUnit properties of one test that ran on a target, in PROPERTY_NAMES order."""
    image = image_dir.name if image_dir is not None else ""
    # The cache folder is <recipe>-<hash of the recipe, kit and inputs>.
    image_hash = image.rsplit("-", 1)[-1] if "-" in image else ""
    values = {
        "target": target,
        "bootloader": bootloader,
        "client": client,
        "accelerator": accelerator or "none",
        "image": image,
        "image_hash": image_hash,
        "boots": str(len(slots)),
        "slots": ",".join(s or "?" for s in slots),
        "evidence": str(evidence),
    }
    return [(name, values[name]) for name in PROPERTY_NAMES]


def record_target_properties(
    item: Any,
    live: LiveTarget,
    image: ImageSet | None,
    evidence: Evidence,
    client: str,
) -> None:
    """JUnit properties (on the pytest item) and Allure labels of a test that
    ran on a target; the evidence folder is recorded by the evidence fixture."""
    spec, qemu = live.spec, live.qemu
    accel = qemu.accel_choice.accel if qemu is not None and qemu.accel_choice else None
    properties = junit_properties(
        target=spec.name,
        bootloader=spec.bootloader,
        client=client,
        accelerator=accel,
        image_dir=image.directory if image is not None else None,
        slots=[b.bootloader_slot for b in live.watcher.history],
        evidence=evidence.directory,
    )
    item.user_properties.extend(p for p in properties if p[0] != "evidence")
    proofs = evidence.fault_proofs() if evidence.fault_proofs else ()
    add_allure_labels(
        target=spec.name, bootloader=spec.bootloader, client=client, faults=[p.kind for p in proofs]
    )


def add_allure_labels(
    *, target: str, bootloader: str, client: str, faults: Iterable[str] = ()
) -> None:
    """Label the running test in the Allure report (no-op without --alluredir)."""
    label = allure.dynamic.label
    label("target", target)  # type: ignore[no-untyped-call]
    label("bootloader", bootloader)  # type: ignore[no-untyped-call]
    label("client", client)  # type: ignore[no-untyped-call]
    for kind in sorted(set(faults)):
        label("fault", kind)  # type: ignore[no-untyped-call]


def _names(names: Iterable[str]) -> str:
    return "|".join(names)


def categories() -> list[dict[str, Any]]:
    """Allure categories: first match wins, so the infrastructure comes first
    (a lab that failed mid-test may also leave an assertion behind it)."""
    word = r"(?:[\w.]*\.)?"  # an optional module path before the type name
    return [
        {
            "name": "Infrastructure failures (lab, set-up: the product was not tested)",
            "matchedStatuses": ["failed", "broken"],
            "messageRegex": rf"(?s){word}(?:{_names(INFRASTRUCTURE_ERRORS)}|"
            rf"{INFRASTRUCTURE_PATTERN})\b.*",
        },
        {
            "name": "Fault not injected (the test proves nothing)",
            "matchedStatuses": ["failed", "broken"],
            "messageRegex": rf"(?s){word}(?:{_names(FAULT_ERRORS)})\b.*",
        },
        {
            "name": "Product failures (the device or its bootloader broke the contract)",
            "matchedStatuses": ["failed", "broken"],
            "messageRegex": rf"(?s){word}(?:{_names(PRODUCT_ERRORS)})\b.*",
        },
        {
            "name": "Harness errors (a bug in the harness or the test)",
            "matchedStatuses": ["broken"],
        },
    ]


def write_allure_extras(alluredir: Path, environment: Mapping[str, str]) -> None:
    """Write environment.properties and categories.json into the Allure results folder."""
    alluredir.mkdir(parents=True, exist_ok=True)
    lines = [f"{_key(k)}={_value(v)}" for k, v in sorted(environment.items())]
    (alluredir / "environment.properties").write_text("\n".join(lines) + "\n")
    (alluredir / "categories.json").write_text(json.dumps(categories(), indent=2) + "\n")


def tool_versions() -> dict[str, str]:
    """Versions of the Python packages a run's result depends on."""
    versions = {"python": platform.python_version()}
    for package in ("pytest", "labgrid", "allure-pytest", "ab-harness"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def run_environment(tests: Iterable[Mapping[str, str]], extra: Mapping[str, str]) -> dict[str, str]:
    """The run's environment: `extra` plus every distinct target, bootloader,
    client, accelerator and image the tests' properties name."""
    env = {**tool_versions(), **extra}
    for name in ("target", "bootloader", "client", "accelerator", "image"):
        seen = sorted({props[name] for props in tests if props.get(name)})
        if seen:
            env[name] = ", ".join(seen)
    return env


def _key(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def _value(text: str) -> str:
    # Java properties: a backslash escapes, a newline ends the value.
    return text.replace("\\", "\\\\").replace("\n", " ")
