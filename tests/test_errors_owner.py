"""Every harness error says whose fault it is, by class (harness.errors.blame),
and CATEGORIES names the classes the reports map to JUnit/Allure categories."""

from __future__ import annotations

import inspect

from harness import errors
from harness.cache_manifest import CacheEntryBad
from harness.errors import (
    CATEGORIES,
    DeviceError,
    EnvironmentMissing,
    HarnessConfigError,
    InfrastructureError,
    LabUnavailableError,
    ProductError,
    blame,
)
from harness.faults.base import FaultNotInjected
from harness.oracle import ContractViolation


def test_each_owner() -> None:
    assert blame(EnvironmentMissing("qemu missing", "apt-get install qemu")) == "infrastructure"
    assert blame(LabUnavailableError("power", "switch down")) == "infrastructure"
    assert blame(HarnessConfigError("bad yaml")) == "configuration"
    assert blame(DeviceError("hung")) == "product"
    assert blame(ContractViolation([])) == "product"
    assert blame(AssertionError("slot A expected")) == "product"
    assert blame(TypeError("bug")) == "harness"
    assert blame(FaultNotInjected("power cut", "not fired")) == "harness"
    assert blame(CacheEntryBad("bad cache")) == "harness"


def test_lab_error_names_its_component_and_keeps_one_line() -> None:
    err = LabUnavailableError("place", "place p is not acquired", "labgrid-client -p p acquire")
    assert err.component == "place"
    assert str(err) == "place p is not acquired — fix: labgrid-client -p p acquire"
    assert isinstance(err, InfrastructureError) and not isinstance(err, ProductError)


def test_categories_name_real_classes_of_their_owner() -> None:
    classes = {n: c for n, c in inspect.getmembers(errors, inspect.isclass)}
    classes.update(ContractViolation=ContractViolation, AssertionError=AssertionError)
    for owner, names in CATEGORIES.items():
        for name in names:
            cls = classes[name]
            sample = (
                cls([])
                if cls is ContractViolation
                else cls("power", "x")
                if cls is LabUnavailableError
                else cls("x")
            )
            assert blame(sample) == owner, name
