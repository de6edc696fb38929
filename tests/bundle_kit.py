"""Test helper: RAUC bundles and SWUpdate .swu files built with the updaters'
own tools (`rauc bundle`, `cpio -o -H newc|crc`, `openssl cms -sign`) in a
tmp dir, signed by a test CA made with openssl, and the tools' own readings
of them (`rauc info`, `swupdate -c`) to hold `artifact inspect` against."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.artifacts.swu_writer import sign
from harness.cli import main

EXTENSIONS = """[v3_ca]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_leaf]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def need(name: str, package: str) -> str:
    """A tool's path, or skip the test naming the Debian package."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        pytest.skip(f"{name} not installed (Debian: {package})")
    return found


def run(*argv: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool with a timeout; the caller judges its exit status."""
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=120, check=False, env=env
    )


def ok(*argv: str | Path) -> str:
    done = run(*argv)
    assert done.returncode == 0, f"{argv[0]} failed: {done.stderr[-500:]}"
    return done.stdout


@dataclass(frozen=True)
class Signer:
    """A CA and a signing certificate it issued."""

    ca: Path
    cert: Path
    key: Path


def make_signer(folder: Path, name: str) -> Signer:
    """A self-signed test CA `name` and a leaf certificate it signed."""
    openssl = need("openssl", "openssl")
    folder.mkdir(parents=True, exist_ok=True)
    ext = folder / "ext.cnf"
    ext.write_text(EXTENSIONS)
    ca, ca_key = folder / f"{name}-ca.pem", folder / f"{name}-ca.key"
    cert, key, csr = folder / f"{name}.pem", folder / f"{name}.key", folder / f"{name}.csr"
    ok(
        openssl,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        ca_key,
        "-out",
        ca,
        "-days",
        "30",
        "-subj",
        f"/CN={name} test CA",
        "-extensions",
        "v3_ca",
        "-config",
        ext,
    )
    ok(
        openssl,
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key,
        "-out",
        csr,
        "-subj",
        f"/CN={name} signer",
        "-config",
        ext,
    )
    ok(
        openssl,
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-out",
        cert,
        "-days",
        "30",
        "-extfile",
        ext,
        "-extensions",
        "v3_leaf",
    )
    return Signer(ca, cert, key)


def payload(seed: int, size: int) -> bytes:
    """Repeatable, incompressible image bytes (a seeded Random, as RAUC's own tests do)."""
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rauc_bundle(folder: Path, fmt: str, signer: Signer, images: dict[str, bytes]) -> Path:
    """`rauc bundle` of `images` (slot class → bytes, file `<slot>.img`) in format `fmt`."""
    rauc = need("rauc", "rauc")
    need("mksquashfs", "squashfs-tools")
    content = folder / f"content-{fmt}"
    content.mkdir(parents=True)
    manifest = f"[update]\ncompatible=ab-harness-test\nversion=2.0.{len(images)}\n\n"
    manifest += f"[bundle]\nformat={fmt}\n"
    for slot, data in images.items():
        (content / f"{slot}.img").write_bytes(data)
        manifest += f"\n[image.{slot}]\nfilename={slot}.img\n"
    (content / "manifest.raucm").write_text(manifest)
    bundle = folder / f"update-{fmt}.raucb"
    ok(rauc, "bundle", "--cert", signer.cert, "--key", signer.key, content, bundle)
    return bundle


def rauc_info(bundle: Path, keyring: Path) -> tuple[int, str]:
    """`rauc info --keyring` as text: its exit status and its output."""
    done = run(need("rauc", "rauc"), "info", "--keyring", keyring, bundle)
    return done.returncode, done.stdout + done.stderr


def swu(
    folder: Path, description: str, images: dict[str, bytes], *, fmt: str, signer: Signer | None
) -> Path:
    """A .swu as SWUpdate's documentation builds it: sw-description first, its
    CMS signature next, then the images, packed by `cpio -o -H fmt`."""
    cpio = need("cpio", "cpio")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sw-description").write_text(description)
    names = ["sw-description"]
    if signer is not None:
        sign(folder / "sw-description", folder / "sw-description.sig", signer)
        names.append("sw-description.sig")
    for name, data in images.items():
        (folder / name).write_bytes(data)
        names.append(name)
    out = folder / f"update-{fmt}.swu"
    with out.open("wb") as archive:
        done = subprocess.run(
            [cpio, "-o", "-H", fmt, "--quiet"],
            input="\n".join(names).encode(),
            stdout=archive,
            capture_output=False,
            stderr=subprocess.PIPE,
            cwd=folder,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    return out


def swupdate_check(path: Path, ca: Path, tmp: Path) -> tuple[bool, str]:
    """`swupdate -c -i FILE -k CA -v` (its sockets in `tmp`): whether it
    accepted the file, and its log. Its verdict is read from the log: in check
    mode its exit status races its own threads (seen 1 after "SWUpdate was
    successful" with Debian's 2022.12)."""
    env = {**os.environ, "TMPDIR": str(tmp)}
    done = run(
        need("swupdate", "swupdate"), "-c", "-v", "-i", path, "-k", ca, "-H", "board:1.0", env=env
    )
    log = done.stdout + done.stderr
    # Either success line: the later one may be lost when the process ends first.
    succeeded = "SWUPDATE successful" in log or "SWUpdate was successful" in log
    return succeeded and "SWUPDATE failed" not in log, log


def inspect(
    path: Path, ca: Path | None, capsys: pytest.CaptureFixture[str]
) -> tuple[int, Any, str]:
    """`ab-harness artifact inspect PATH [--ca CA]`: exit status, JSON printed, stderr."""
    status = main(["artifact", "inspect", str(path), *(["--ca", str(ca)] if ca else [])])
    out, err = capsys.readouterr()
    return status, json.loads(out) if out else {}, err


def flip(path: Path, offset: int, dest: Path) -> Path:
    """A copy of `path` with the byte at `offset` changed."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x55
    dest.write_bytes(bytes(data))
    return dest
