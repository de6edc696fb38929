"""Which scenarios a target can run, and why not the others, read without running them.

pytest collects the scenarios for the target in this process (its output
swallowed), with the plugin's own collection hooks; each collected test is
then judged by what it declares and uses: its `ab_needs` markers against
`matrix.capabilities` of the target, the releases it installs (its
``payloads["NAME"]`` and ``payload`` parameters) against the target's, and a
delivery where it pushes one.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.targets.matrix import unmet
from harness.targets.target import TargetSpec

# How a scenario names the release it installs: payloads["v2-bad"].
_PAYLOAD_REF = re.compile(r"""payloads\[\s*["']([^"']+)["']\s*\]""")


@dataclass(frozen=True)
class Scenario:
    """What a collected scenario needs, read from its markers, fixtures and source."""

    name: str
    needs: tuple[str, ...]
    fixtures: tuple[str, ...]
    releases: tuple[str, ...]
    nightly: bool


def cannot_run(spec: TargetSpec, scenario: Scenario, releases: set[str] | None) -> str | None:
    """Why `scenario` cannot run on the target, or None when it can."""
    why = unmet(spec, scenario.needs)
    if why:
        return why
    if "payloads" in scenario.fixtures and releases is not None:
        if not releases:
            return "it installs a release and the target has none"
        missing = [r for r in scenario.releases if r not in releases]
        if missing:
            return f"it installs release(s) {', '.join(missing)}, which the target lacks"
    if "push" in scenario.fixtures and spec.delivery is None:
        return "it pushes a release and the target names no delivery (ab-harness.delivery)"
    return None


def collect(folder: Path, spec: TargetSpec) -> list[Scenario]:
    """The scenarios in `folder` as pytest collects them for `spec` (in this process,
    its output swallowed): markers after the plugin's own collection hooks."""
    import pytest

    class _Items:
        items: Sequence[Any] = ()

        def pytest_collection_finish(self, session: pytest.Session) -> None:
            self.items = list(session.items)

    grab = _Items()
    args = ["--collect-only", "-q", "-p", "no:labgrid", "-p", "no:cacheprovider"]
    args += [f"--ab-target={spec.path}", str(folder)]
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        code = pytest.main(args, plugins=[grab])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        last = next((ln for ln in reversed(sink.getvalue().splitlines()) if ln.strip()), "")
        raise HarnessError(
            f"the scenarios in {folder} could not be collected ({last.strip()})",
            f"run 'pytest --collect-only {folder} --ab-target {spec.path}' to see why",
        )
    return [_scenario(item) for item in grab.items]


def _scenario(item: Any) -> Scenario:
    needs = tuple(str(a) for m in item.iter_markers("ab_needs") for a in m.args)
    fixtures = tuple(getattr(item, "fixturenames", ()))
    params = getattr(getattr(item, "callspec", None), "params", {})
    named = [str(v) for k, v in params.items() if k == "payload"]
    try:
        source = inspect.getsource(item.function)
    except (OSError, TypeError, AttributeError):
        source = ""
    wanted = tuple(dict.fromkeys([*_PAYLOAD_REF.findall(source), *named]))
    return Scenario(
        item.nodeid.split("::")[-1],
        needs,
        fixtures,
        wanted,
        item.get_closest_marker("nightly") is not None,
    )
