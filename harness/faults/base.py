"""What every fault shares: proof that it happened, or a failure saying it did not.

A fault is placed (armed), fires, and leaves a `FaultProof`: what was done,
when, and the measured facts that show it (bytes written when power went,
the console line that triggered it and the delay). A fault that did not
fire raises `FaultNotInjected` — an AssertionError, so the test fails: a
scenario whose fault never happened proves nothing and must not pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


class FaultNotInjected(AssertionError):
    """The fault the test placed never happened."""

    def __init__(self, kind: str, why: str) -> None:
        super().__init__(f"fault not injected: {kind}: {why}")


@dataclass(frozen=True)
class FaultProof:
    """The evidence of one fault: kind, what it did, when, and measured facts."""

    kind: str
    what: str
    fired: bool
    at_s: float | None = None  # seconds since the test's evidence began
    facts: Mapping[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "what": self.what,
            "fired": self.fired,
            "at_s": self.at_s,
            "facts": dict(self.facts),
        }


class ProofSink(Protocol):
    """Where proofs go (the test's evidence)."""

    def record_fault(self, proof: FaultProof) -> object: ...
