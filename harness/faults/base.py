"""What every fault is: armed, fired, and able to prove what it did.

A fault that cannot show it happened proves nothing, so a fault that did
not fire fails the test ("fault not injected: <why>"), never passes
silently. Proof is a frozen value, written to the test's evidence folder
as one `fault-NN-<kind>.json` per fault and attached to the Allure report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import allure

from harness.errors import HarnessError


class FaultNotInjected(HarnessError):
    """A fault was asked for but did not happen: the test proves nothing."""

    def __init__(self, kind: str, why: str) -> None:
        super().__init__(
            f"fault not injected: {kind}: {why}",
            "see the fault's proof in the evidence folder; place the fault where it can fire",
        )


@dataclass(frozen=True)
class FaultProof:
    """What a fault did, measured: the record a test asserts on and a reader checks.

    `when` is seconds since the test began (None if it never fired); `facts`
    holds the measurements (bytes, pids, event counts), JSON-serialisable.
    """

    kind: str
    what: str
    when: float | None
    facts: Mapping[str, Any] = field(default_factory=dict)
    fired: bool = False
    why: str = ""  # why it did not fire; empty when it did

    def as_json(self) -> str:
        body = asdict(self)
        body["facts"] = dict(self.facts)
        return json.dumps(body, indent=2, default=str) + "\n"


class Fault(Protocol):
    """A fault: `arm()` prepares it, `fire()` makes it happen, `proof()` says what happened."""

    kind: str

    def arm(self) -> None: ...

    def fire(self) -> None: ...

    def proof(self) -> FaultProof: ...

    def require_fired(self) -> FaultProof: ...


def require_fired(proof: FaultProof) -> FaultProof:
    """The proof, or `FaultNotInjected` if the fault did not fire."""
    if not proof.fired:
        raise FaultNotInjected(proof.kind, proof.why or "it never fired")
    return proof


@dataclass(frozen=True)
class FaultClock:
    """Time and evidence shared by the faults of one test."""

    started: float  # time.monotonic() when the test began
    evidence_dir: Path | None = None
    on_event: Callable[[str], None] = lambda _what: None

    def now(self) -> float:
        return round(time.monotonic() - self.started, 3)


def write_proof(directory: Path, index: int, proof: FaultProof) -> Path:
    """Write one fault's proof as `fault-NN-<kind>.json` and attach it to Allure."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"fault-{index:02d}-{proof.kind}.json"
    text = proof.as_json()
    path.write_text(text)
    allure.attach(text, name=f"fault: {proof.kind}", attachment_type=allure.attachment_type.JSON)
    return path
