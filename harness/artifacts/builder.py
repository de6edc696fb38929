"""Write Mender artifacts with Debian's ``mender-artifact`` tool, typed and checked.

A thin wrapper: the harness needs rootfs-image artifacts (a whole slot)
and module-image artifacts (files for an update module), with device
types, provides/depends, state scripts and, when asked, a signature. The
inputs are checked first so a mistake is one line naming it, not the
tool's usage screen; the tool itself runs under a deadline. What it wrote
is then read back with `read_artifact`, so a builder result is always an
artifact whose checksums were verified.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.artifacts.model import Artifact
from harness.artifacts.reader import read_artifact
from harness.errors import EnvironmentMissing, HarnessConfigError, HarnessError

TOOL = "mender-artifact"
DEFAULT_TIMEOUT_S = 300.0
# <State>_<Enter|Leave|Error>_<NN>[_description], as mender-artifact enforces.
_SCRIPT_NAME = re.compile(r"^[A-Za-z]+_(Enter|Leave|Error)_\d\d(_\S*)?$")


class ArtifactBuildError(HarnessConfigError):
    """mender-artifact refused the inputs or failed; the cause quotes its last line."""


@dataclass(frozen=True)
class ArtifactSpec:
    """What every artifact the harness writes has, whatever its payload."""

    name: str
    device_types: tuple[str, ...]
    provides: Mapping[str, str] = field(default_factory=dict)
    depends: Mapping[str, str] = field(default_factory=dict)
    state_scripts: tuple[Path, ...] = ()
    signing_key: Path | None = None


def write_rootfs_image(
    spec: ArtifactSpec, rootfs: Path, out: Path, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Artifact:
    """Write a rootfs-image artifact of filesystem image `rootfs` to `out`; return it, read back."""
    _need_file(rootfs, "rootfs image")
    return _write("rootfs-image", spec, ["--file", str(rootfs)], out, timeout_s)


def write_module_image(
    spec: ArtifactSpec,
    module_type: str,
    files: Sequence[Path],
    out: Path,
    *,
    meta_data: Mapping[str, Any] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Artifact:
    """Write a module-image artifact for update module `module_type` carrying `files`."""
    if not module_type or "/" in module_type:
        raise HarnessConfigError(
            f"module type {module_type!r} is not a name",
            "give the update module's name, e.g. 'single-file'",
        )
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise HarnessConfigError(
            f"two payload files share a name in {names}", "rename them: the payload is flat"
        )
    args = ["--type", module_type]
    for path in files:
        _need_file(path, "payload file")
        args += ["--file", str(path)]
    with tempfile.TemporaryDirectory(prefix="ab-artifact-") as tmp:
        if meta_data is not None:
            meta = Path(tmp) / "meta-data.json"
            meta.write_text(json.dumps(dict(meta_data)))
            args += ["--meta-data", str(meta)]
        return _write("module-image", spec, args, out, timeout_s)


def _write(
    kind: str, spec: ArtifactSpec, payload_args: list[str], out: Path, timeout_s: float
) -> Artifact:
    tool = shutil.which(TOOL)
    if tool is None:
        raise EnvironmentMissing(
            f"{TOOL} is not installed", "apt-get install --no-install-recommends mender-artifact"
        )
    argv = [tool, "write", kind, *_common_args(spec), *payload_args, "--output-path", str(out)]
    if kind == "rootfs-image":
        argv.append("--no-progress")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as err:
        raise ArtifactBuildError(
            f"{TOOL} write {kind} did not finish within {timeout_s:.0f} s",
            "give a larger timeout_s for a large payload",
        ) from err
    if done.returncode != 0:
        raise _tool_failure(kind, done.returncode, done.stderr + done.stdout)
    return read_artifact(out)


def _common_args(spec: ArtifactSpec) -> list[str]:
    if not spec.name.strip():
        raise HarnessConfigError("the artifact has no name", "set ArtifactSpec.name")
    if not spec.device_types:
        raise HarnessConfigError(
            f"artifact '{spec.name}' has no device type", "list at least one in device_types"
        )
    args = ["--artifact-name", spec.name]
    for device in spec.device_types:
        args += ["--device-type", device]
    for flag, pairs in (("--provides", spec.provides), ("--depends", spec.depends)):
        for key, value in pairs.items():
            if not key or ":" in key:
                raise HarnessConfigError(
                    f"{flag.strip('-')} key {key!r} of artifact '{spec.name}' is empty or has ':'",
                    "use keys like 'rootfs-image.version'",
                )
            args += [flag, f"{key}:{value}"]
    for script in spec.state_scripts:
        _need_file(script, "state script")
        if not _SCRIPT_NAME.match(script.name):
            raise HarnessConfigError(
                f"state script name '{script.name}' is not <State>_<Enter|Leave|Error>_<NN>",
                "rename it, e.g. ArtifactInstall_Enter_10_check",
            )
        args += ["--script", str(script)]
    if spec.signing_key is not None:
        _need_file(spec.signing_key, "signing key")
        args += ["--key", str(spec.signing_key)]
    return args


def _need_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise HarnessConfigError(f"{what} {path} does not exist", f"give the path of the {what}")


def _tool_failure(kind: str, status: int, output: str) -> HarnessError:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    last = lines[-1] if lines else "(no output)"
    fix = "check the inputs it names"
    if "ParsePKCS8PrivateKey" in output:
        # Debian's 3.9 reads RSA keys only in the traditional PKCS#1 PEM form.
        fix = "convert the key: openssl pkey -in KEY -traditional -out KEY.pem"
    return ArtifactBuildError(f"{TOOL} write {kind} failed (exit {status}): {last}", fix)
