"""Errors that say whose fault they are and how to fix it, in one line.

Three owners, three branches of the tree, so a report can sort a failed run
into "the lab let us down" and "the product is broken" by class alone:

- `InfrastructureError`: the machine or the lab, not the device under test.
  `EnvironmentMissing` (a tool or file not installed on this host) and
  `LabUnavailableError` (a board's power switch, console, coordinator or
  place) are infrastructure: the test proved nothing about the product.
- `HarnessConfigError`: the user's input (target YAML, an option, a file
  that is not what it claims). Also no verdict on the product.
- `ProductError`: the device under test misbehaved. `DeviceError` (a guest
  that hangs, a checksum that does not match on the device) is one; the
  oracle's `ContractViolation` and plain `AssertionError` are the others.

An expected rollback is never an error: it is an outcome to assert on.
`blame()` maps any exception to its owner; `CATEGORIES` names the classes of
each owner for JUnit/Allure categories.
"""

from __future__ import annotations

from typing import Literal


class HarnessError(Exception):
    """Base class: `str(err)` is one line naming the cause and the fix."""

    def __init__(self, cause: str, fix: str | None = None) -> None:
        self.cause = cause
        self.fix = fix
        super().__init__(f"{cause} — fix: {fix}" if fix else cause)


class HarnessConfigError(HarnessError):
    """The input given to the harness is wrong (YAML, argument, file)."""


class InfrastructureError(HarnessError):
    """The host or the lab failed, not the device: the test proved nothing."""


class EnvironmentMissing(InfrastructureError):
    """A tool or file the harness needs is not on this machine."""


LabComponent = Literal["console", "power", "coordinator", "place", "network"]


class LabUnavailableError(InfrastructureError):
    """A part of the lab a board needs is not there: its power switch, its
    console, the labgrid coordinator, or the place (not acquired).

    `component` names the part, so a report can say which one.
    """

    def __init__(self, component: LabComponent, cause: str, fix: str | None = None) -> None:
        self.component: LabComponent = component
        super().__init__(cause, fix)


class ProductError(HarnessError):
    """The device under test (or its bootloader) did something wrong."""


class DeviceError(ProductError):
    """The device under test misbehaved (hang, bad checksum, no prompt)."""


Owner = Literal["infrastructure", "configuration", "product", "harness"]

# Class names per owner, for report categories (JUnit/Allure match on names).
# Subclasses defined elsewhere inherit their owner (see `blame`).
CATEGORIES: dict[Owner, tuple[str, ...]] = {
    "infrastructure": ("InfrastructureError", "EnvironmentMissing", "LabUnavailableError"),
    "configuration": ("HarnessConfigError",),
    "product": ("ProductError", "DeviceError", "ContractViolation", "AssertionError"),
    "harness": (),
}


def blame(exc: BaseException) -> Owner:
    """Whose fault an exception is: the lab/host, the user's input, the product,
    or (anything else, e.g. a TypeError) the harness itself.

    An `AssertionError` is the scenario's verdict on the product; the oracle's
    `ContractViolation` is one.
    """
    if isinstance(exc, InfrastructureError):
        return "infrastructure"
    if isinstance(exc, HarnessConfigError):
        return "configuration"
    if isinstance(exc, ProductError | AssertionError):
        return "product"
    return "harness"
