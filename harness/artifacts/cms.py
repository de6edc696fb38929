"""CMS signatures, as RAUC and SWUpdate make them, checked with openssl.

Both updaters sign with `openssl cms`-compatible CMS (DER): RAUC's plain
bundles detached over the squashfs, its verity bundles with the manifest
inside the signature, SWUpdate's sw-description.sig detached over
sw-description. openssl is what both link against, so its verdict is the
device's. Every call has a timeout; its stderr's last line names the cause.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.artifacts.bundle import BundleError
from harness.artifacts.model import Signature
from harness.errors import EnvironmentMissing

_TIMEOUT_S = 120
REBUILD_SIG = "sign it again with openssl cms or the updater's own tool"


@dataclass(frozen=True)
class Verdict:
    """What the check found: the state, why not valid, and the inline content."""

    signature: Signature
    problem: str | None
    content: bytes | None
    signer: str | None = None


def _openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        raise EnvironmentMissing("openssl is not installed", "apt-get install openssl")
    return found


def _run(argv: list[str], what: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(argv, capture_output=True, timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as err:
        raise BundleError(
            f"openssl took over {_TIMEOUT_S} s checking {what}", "check the host's load"
        ) from err


def _last_line(raw: bytes) -> str:
    """openssl's last error line without its codes and source positions."""
    lines = [line.strip() for line in raw.decode(errors="replace").splitlines() if line.strip()]
    line = lines[-1] if lines else "no output"
    line = re.sub(r"^[0-9A-F]+:error:[0-9A-F]+:[^:]*:[^:]*:", "", line)
    return re.sub(r":?\.\./[^:]*:\d+:?", ": ", line).strip(": ")


def attached(sig: Path, what: str) -> bool:
    """Whether the signature carries its content (RAUC's verity manifest) or
    is detached (RAUC's plain squashfs, SWUpdate's sw-description). A block
    openssl cannot parse is a `BundleError`."""
    printed = _run(
        [_openssl(), "cms", "-cmsout", "-print", "-inform", "DER", "-in", str(sig)], what
    )
    if printed.returncode != 0:
        raise BundleError(
            f"{what} is no CMS signature openssl can read: {_last_line(printed.stderr)}",
            REBUILD_SIG,
        )
    return b"eContent: <ABSENT>" not in printed.stdout


def check(sig: Path, ca: Path | None, content: Path | None, what: str) -> Verdict:
    """Check the DER CMS `sig` against the CA bundle `ca` (None: unchecked),
    over `content` where the signature is detached; return the inline content
    of an attached one. A block openssl cannot parse is a `BundleError`."""
    base = [_openssl(), "cms", "-verify", "-inform", "DER", "-in", str(sig), "-binary"]
    if content is not None:
        base += ["-content", str(content)]
    # Content first, no check at all: a bundle read without a CA still shows
    # what it claims, and a parse failure is told apart from a bad signature.
    raw = _run([*base, "-nosigs", "-noverify"], what)
    if raw.returncode != 0:
        raise BundleError(
            f"{what} is no CMS signature openssl can read: {_last_line(raw.stderr)}", REBUILD_SIG
        )
    inline = raw.stdout if content is None else None
    if ca is None:
        return Verdict(Signature.UNCHECKED, None, inline)
    if not ca.is_file():
        raise BundleError(f"no CA file {ca}", "give --ca the PEM file of the signing CA")
    checked = _run([*base, "-CAfile", str(ca), "-purpose", "any", "-out", "/dev/null"], what)
    if checked.returncode != 0:
        return Verdict(Signature.INVALID, _last_line(checked.stderr), inline)
    return Verdict(Signature.VALID, None, inline, _signer(sig, what))


def _signer(sig: Path, what: str) -> str | None:
    """The subject of the first certificate in the signature (the signer's)."""
    certs = _run([_openssl(), "pkcs7", "-inform", "DER", "-in", str(sig), "-print_certs"], what)
    for line in certs.stdout.decode(errors="replace").splitlines():
        if line.startswith("subject="):
            return line.removeprefix("subject=").strip()
    return None
