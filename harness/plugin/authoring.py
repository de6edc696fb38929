"""# Writing scenarios: the API reference for scenario authors

A scenario is a pytest test in `scenarios/` that asks for the harness's
fixtures by name. The plugin (`harness.plugin`) loads by itself once the
package is installed; nothing needs importing for the fixtures. Import only
what you assert on or build values with:

```python
import pytest

from harness.judge.verdict import outcome          # UpdateOutcome from boots + env
from harness.errors import DeviceError       # a device that misbehaved
```

## A scenario

```python
def test_good_update_commits(booted, push, observe, payloads):
    assert push.install(payloads["v2"]).ok            # InstallReport
    boots = booted.reboot()                            # list[BootRecord]
    assert boots[-1].running_slot == "B"
    assert observe.env_host().upgrade_available is False   # BootEnv
```

A rollback is a result to assert on (`harness.judge.verdict.UpdateOutcome`), not
an exception. Exceptions say whose fault a failure is (`harness.errors`):
`InfrastructureError` (`EnvironmentMissing`, `LabUnavailableError`: the
lab or host, the test proved nothing), `HarnessConfigError` (your input),
`ProductError` (`DeviceError`; also the oracle's `ContractViolation` and a
failed `assert`: the product is wrong). `harness.errors.blame` sorts any
exception into one of these.

## The device's conventions (reference images)

- **The root file system is read-only.** Each slot (A = partition 2,
  B = partition 3) is ext4 mounted `ro`; an update replaces the whole
  slot. Never write to `/` in a scenario: it fails, and a slot written in
  place would no longer match its payload's sha256.
- **`/data` is the writable, persistent partition** (partition 4, ext4,
  mounted `rw`). It survives updates and rollbacks; write what must
  survive there, and `sync` before a power cut or a reboot.
  `observe.data_manifest()` hashes every file under it.
- **`/uboot` is the boot partition** (FAT, mounted `sync`) holding the
  bootloader env files; change the env with `fw_setenv` (device) rather
  than by writing the files.
- `/tmp` and `/run` are RAM: gone at the next boot.
- `/etc/slot` and `/proc/cmdline` name the running slot
  (`observe.booted_slot()` checks they agree).
- Update payloads (`payloads[...]`) are raw ext4 images of one slot:
  `v2` (healthy), `v2-bad` (its health check fails), `v2-broken-kernel`,
  `v2-panic-init`, `v2-hang` (watchdog); an unknown name is an error that
  lists these.

## Options

`--ab-target`, `--ab-accel`, `--ab-boot-timeout`, … (`pytest --help`
shows them with their defaults; `harness.options`). Markers:
`ab_target(name)`, `ab_boot_timeout(s)`, `ab_needs(*capabilities)`,
`ab_no_oracle`, `nightly`.

## Fixtures

Generated from the fixtures' own docstrings and signatures in
`harness.plugin` (name, what it returns, what it depends on, its scope):

"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

PLUGIN = Path(__file__).with_name("fixtures.py")


@dataclass(frozen=True)
class FixtureDoc:
    """One public fixture of the plugin, as its source declares it."""

    name: str
    returns: str
    depends_on: tuple[str, ...]
    scope: str
    doc: str


def _is_fixture(decorator: ast.expr) -> tuple[bool, str]:
    """Whether a decorator is `pytest.fixture` (called or not), and its scope."""
    call = decorator if isinstance(decorator, ast.Call) else None
    target = call.func if call is not None else decorator
    if not (isinstance(target, ast.Attribute) and target.attr == "fixture"):
        return False, ""
    scope = "function"
    for keyword in call.keywords if call is not None else []:
        if keyword.arg == "scope" and isinstance(keyword.value, ast.Constant):
            scope = str(keyword.value.value)
    return True, scope


def _yielded(annotation: str) -> str:
    """`Iterator[X]` (a yield fixture) gives X to the test."""
    for wrapper in ("Iterator[", "Generator["):
        if annotation.startswith(wrapper):
            return annotation[len(wrapper) : -1].split(",", maxsplit=1)[0].strip()
    return annotation


def _qualified(annotation: str, imported: dict[str, str]) -> str:
    """Names the plugin imported, written in full (`harness.device.boot.BootSession`), so
    the reference links them to their own documentation."""
    return re.sub(
        r"[A-Za-z_][A-Za-z0-9_]*",
        lambda m: imported.get(m.group(0), m.group(0)),
        annotation,
    )


def fixtures(source: Path = PLUGIN) -> list[FixtureDoc]:
    """The plugin's public fixtures (no leading underscore), in source order."""
    tree = ast.parse(source.read_text())
    imported = {
        alias.asname or alias.name: f"{node.module}.{alias.name}"
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness")
        for alias in node.names
    }
    found: list[FixtureDoc] = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
            continue
        for decorator in node.decorator_list:
            is_fixture, scope = _is_fixture(decorator)
            if is_fixture:
                returns = ast.unparse(node.returns) if node.returns else "None"
                found.append(
                    FixtureDoc(
                        node.name,
                        _qualified(_yielded(returns), imported),
                        tuple(a.arg for a in node.args.args if not a.arg.startswith("_")),
                        scope,
                        " ".join((ast.get_docstring(node) or "").split()),
                    )
                )
    return found


def fixtures_markdown(items: list[FixtureDoc]) -> str:
    """The fixtures as a Markdown list, for this module's documentation."""
    lines = []
    for fixture in items:
        needs = ", ".join(f"`{d}`" for d in fixture.depends_on if d != "request") or "nothing"
        lines.append(
            f"- **`{fixture.name}`** → `{fixture.returns}` ({fixture.scope} scope; "
            f"uses {needs}): {fixture.doc}"
        )
    return "\n".join(lines) + "\n"


__doc__ = (__doc__ or "") + fixtures_markdown(fixtures())
