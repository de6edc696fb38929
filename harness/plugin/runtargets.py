"""Which target each collected test runs on: the run's `--ab-target` list and
one test's choice among it (its parametrization, its `ab_target` marker, or
the run's first target).

Both halves of the pytest plugin ask this (the fixtures and summary in
`harness.plugin`, the lab check in `harness.plugin.lab`), so it lives apart
from both, and neither imports the other for it.
"""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.options import option
from harness.targets.matrix import target_names

_TARGETS = pytest.StashKey[list[str]]()  # config: the targets --ab-target names


def run_targets(config: pytest.Config) -> list[str]:
    """The targets of this run (--ab-target: name, path, comma list or all)."""
    if _TARGETS not in config.stash:
        try:
            config.stash[_TARGETS] = target_names(str(option(config, "ab_target")))
        except HarnessError as err:
            raise pytest.UsageError(f"ab-harness: {' '.join(str(err).split())}") from None
    return config.stash[_TARGETS]


def item_target(item: pytest.Item) -> str | None:
    """The target a collected test runs on, or None if it uses none."""
    if "ab_target_name" not in getattr(item, "fixturenames", ()):
        return None
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "ab_target_name" in callspec.params:
        return str(callspec.params["ab_target_name"])
    marker = item.get_closest_marker("ab_target")
    if marker is not None and marker.args:
        return str(marker.args[0])
    return run_targets(item.config)[0]
