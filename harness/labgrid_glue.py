"""What makes a target YAML a plain labgrid environment, and labgrid's own
conventions honoured by the harness.

1. Registration. A target YAML names `ABQEMUDriver` and `ABBootStrategy`;
   labgrid finds drivers by class name in its `target_factory`, which a
   class joins when its module is imported. The YAMLs say
   ``imports: [harness.labgrid_glue]``, labgrid's own key for this, so
   ``labgrid.Environment("targets/X.yaml")`` and ``labgrid-client -c
   targets/X.yaml`` load them without the harness's help. (labgrid ignores
   top-level keys it does not know, such as ``ab-harness:``.)

2. Conventions of labgrid's pytest plugin (`-p labgrid`): the environment
   from ``--lg-env`` or ``LG_ENV`` *is* the target; ``--lg-coordinator``
   names the coordinator; ``--lg-log`` is served by labgrid's own console
   logger, which hears our consoles through the same step events the
   harness uses. What cannot be honoured (``--lg-initial-state``: the
   harness's strategy starts from power-off) is refused in one line.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import harness.device.boot
import harness.machines.qemu
from harness.errors import HarnessConfigError
from harness.options import given
from harness.targets.target import TargetSpec, load_target, resolve_target_path

# The classes a target YAML may name, registered with labgrid by importing their modules.
REGISTERED = (harness.machines.qemu.ABQEMUDriver, harness.device.boot.ABBootStrategy)


def _getoption(config: Any, name: str) -> Any:
    try:
        return config.getoption(name)
    except ValueError:  # labgrid's plugin not loaded: its options do not exist
        return None


def labgrid_env(config: Any) -> tuple[str, str] | None:
    """The labgrid environment the user named, and where: --lg-env (labgrid's
    plugin loaded), else LG_ENV; None if neither."""
    given = _getoption(config, "lg_env")
    if given:
        return str(given), "--lg-env"
    if os.environ.get("LG_ENV"):
        return os.environ["LG_ENV"], "LG_ENV"
    return None


def resolve_labgrid_options(config: Any) -> str | None:
    """Check labgrid's options against the harness's; return the target to run
    (the --lg-env / LG_ENV file) or None to keep --ab-target.

    Raises HarnessConfigError when they cannot both hold: an --ab-target that
    names another target, an environment without an `ab-harness:` section,
    or --lg-initial-state.
    """
    if _getoption(config, "lg_initial_state"):
        raise HarnessConfigError(
            "--lg-initial-state cannot be honoured: ab-harness's strategy always starts "
            "from power-off and follows every boot",
            "drop --lg-initial-state",
        )
    named = labgrid_env(config)
    if named is None:
        return None
    path, where = named
    lg_path = resolve_target_path(path)
    explicit = given(config, "ab_target")
    if explicit is not None:
        chosen = [resolve_target_path(n.strip()) for n in str(explicit).split(",")]
        if chosen != [lg_path]:
            raise HarnessConfigError(
                f"{where} names {lg_path} but --ab-target (or AB_TARGET) names {explicit}",
                "give one of them, or the same target to both",
            )
    try:
        load_target(str(lg_path))
    except HarnessConfigError as err:
        if "'<top>.ab-harness'" in err.cause:
            raise HarnessConfigError(
                f"{where} names {lg_path}, a labgrid environment without an 'ab-harness:' "
                "section, so the harness does not know its slots and env",
                "add the section (see targets/example-board-uboot.yaml)",
            ) from None
        raise
    return str(lg_path)


def with_coordinator(spec: TargetSpec, address: str | None) -> TargetSpec:
    """The spec with labgrid's `options.coordinator_address` set (--lg-coordinator)."""
    if not address:
        return spec
    options = dict(spec.labgrid.get("options") or {})
    options["coordinator_address"] = address
    return replace(spec, labgrid={**spec.labgrid, "options": options})


def coordinator_option(config: Any) -> str | None:
    value = _getoption(config, "lg_coordinator")
    return str(value) if value else None
