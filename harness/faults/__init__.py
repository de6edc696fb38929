"""Faults that prove themselves: each is armed, fires, and records what it did."""

from harness.faults.base import Fault, FaultClock, FaultNotInjected, FaultProof, require_fired
from harness.faults.injector import Faults
from harness.faults.ioerrors import WriteErrors
from harness.faults.machine import Machine
from harness.faults.powercut import PowerCutAfter, PowerCutNow

__all__ = [
    "Fault",
    "FaultClock",
    "FaultNotInjected",
    "FaultProof",
    "Faults",
    "Machine",
    "PowerCutAfter",
    "PowerCutNow",
    "WriteErrors",
    "require_fired",
]
