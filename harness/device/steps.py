"""The step vocabulary shared by actions (boot, push) and the evidence log."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Protocol


class StepLog(Protocol):
    """Something that brackets a named step (env snapshots, timeline, report)."""

    def step(self, name: str) -> AbstractContextManager[None]: ...


class NoSteps:
    """A StepLog that records nothing (for library use outside pytest)."""

    def step(self, name: str) -> AbstractContextManager[None]:
        return nullcontext()
