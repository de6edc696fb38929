"""Every harness error says whose fault it is, by class (harness.errors.blame),
and CATEGORIES names the classes the reports map to JUnit/Allure categories."""

from __future__ import annotations

import inspect

import pytest

from harness import errors
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
from harness.images.cache_manifest import CacheEntryBad
from harness.judge.oracle import ContractViolation


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


def test_an_infrastructure_error_in_a_test_is_its_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from harness.errors import LabUnavailableError

        def helper():
            raise LabUnavailableError("power", "power switch pdu1 is not reachable", "switch it on")

        def test_lab():
            helper()

        def test_product():
            assert 1 == 2, "slot B expected"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:labgrid", timeout=120)
    out = result.stdout.str()

    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        ["LabUnavailableError: power switch pdu1 is not reachable — fix: switch it on"]
    )
    lab_section = out[out.index("_ test_lab _") : out.index("_ test_product _")]
    assert "def helper" not in lab_section and "raise " not in lab_section  # no traceback
    assert "def test_product" in out  # a product failure keeps pytest's full report
