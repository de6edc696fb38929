"""Tee a labgrid console's input into a sink (the per-boot serial log),
through labgrid's public step events.

Every console driver's `read()` is a labgrid step (tag ``console``, title
``read``); when it stops, the step event carries the bytes read as its
result. pexpect's reads behind `expect()` go through `read()` too, so a
subscriber to `labgrid.step.steps` sees the whole stream, in order, before
the caller of `read()` does (the stop event fires inside the call). This
is the hook labgrid's own `--lg-log` console logger uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labgrid.step import steps


def tee_console(console: Any, sink: Callable[[bytes], None]) -> Callable[[], None]:
    """Hand every chunk `console` reads to `sink`; return the function that stops it.

    Only reads of this console instance are passed on (a target may have
    several consoles, a test several targets). Empty reads are not. A sink
    that raises is reported by labgrid as a warning, not to the reader.
    """

    def on_step(event: Any) -> None:
        step = event.step
        if step.source is not console or step.tag != "console" or step.title != "read":
            return
        data = event.data
        if data.get("state") == "stop" and data.get("result"):
            sink(bytes(data["result"]))

    steps.subscribe(on_step)
    subscribed = [True]

    def stop() -> None:
        if subscribed.pop() if subscribed else False:  # unsubscribe() asserts it was on
            steps.unsubscribe(on_step)

    return stop
