"""Test helper: keys, payloads and artifacts made by Debian's mender-artifact directly.

The artifacts here use options the harness's own builder never passes
(xz and no compression, format version 2, several device types, depends on
names and groups, clears-provides, augmented payloads, ECDSA keys), so the
reader is checked on artifacts it had no part in making. `retar` rewrites an
artifact member by member, for tampering tests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import random
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

needs_mender_artifact = pytest.mark.skipif(
    shutil.which("mender-artifact") is None,
    reason="mender-artifact not installed (apt-get install mender-artifact)",
)


def run(*argv: str | Path) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Keys:
    """A signing key (traditional PEM, as mender-artifact 3.9 reads) and its public half."""

    private: Path
    public: Path


KEY_NAMES = ("rsa", "ecdsa", "other")


def make_keys(folder: Path) -> dict[str, Keys]:
    """rsa, ecdsa (P-256) and a second RSA key that signed nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = {}
    for name, generate in (
        ("rsa", ["openssl", "genrsa", "-traditional", "-out", "{}", "2048"]),
        ("ecdsa", ["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", "{}"]),
        ("other", ["openssl", "genrsa", "-traditional", "-out", "{}", "2048"]),
    ):
        private, public = folder / f"{name}.pem", folder / f"{name}.pub"
        run(*[str(private) if a == "{}" else a for a in generate])
        run("openssl", "pkey", "-in", private, "-pubout", "-out", public)
        keys[name] = Keys(private, public)
    return keys


def shared(factory: pytest.TempPathFactory) -> tuple[dict[str, Keys], dict[str, Path]]:
    """Keys, inputs and the catalog, made once per test session (per xdist worker).

    Key generation and ten mender-artifact runs are most of these tests' time;
    every artifact test module reads the same files and none writes to them.
    """
    folder = factory.getbasetemp() / "mender-artifacts"
    done = folder / "complete"
    if not done.exists():
        write_catalog(folder, make_keys(folder / "keys"), make_inputs(folder / "inputs"))
        done.write_text("")
    keys = {n: Keys(folder / "keys" / f"{n}.pem", folder / "keys" / f"{n}.pub") for n in KEY_NAMES}
    return keys, {name: folder / f"{name}.mender" for name in CATALOG_KEYS}


def shared_inputs(factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The payload files the shared catalog was written from."""
    shared(factory)
    folder = factory.getbasetemp() / "mender-artifacts" / "inputs"
    return {path.name: path for path in folder.iterdir()}


def make_inputs(folder: Path) -> dict[str, Path]:
    """Small payloads from a seeded Random, so every run writes the same bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1234)
    files = {
        "rootfs.ext4": rng.randbytes(48 * 1024),
        "app.bin": rng.randbytes(3000),
        "config.txt": b"mode=fast\n",
        "empty": b"",
        "delta.bin": rng.randbytes(700),
        "ArtifactInstall_Enter_05_check": b"#!/bin/sh\nexit 0\n",
        "ArtifactCommit_Leave_90_report": b"#!/bin/sh\necho committed\n",
        "meta.json": b'{"restart": ["app", "web"], "level": 3, "nested": {"a": null}}',
    }
    paths = {}
    for name, body in files.items():
        path = folder / name
        path.write_bytes(body)
        paths[name] = path
    return paths


def write_catalog(folder: Path, keys: dict[str, Keys], inputs: dict[str, Path]) -> dict[str, Path]:
    """Artifacts written by mender-artifact with options the builder never uses."""
    out = {name: folder / f"{name}.mender" for name in CATALOG_KEYS}
    write = ["mender-artifact", "write"]
    run(
        *write, "rootfs-image", "--compression", "lzma", "-n", "release-2",
        "-t", "board-a", "-t", "board-b", "-t", "board-c",
        "-f", inputs["rootfs.ext4"], "-N", "release-1", "-N", "release-1.1",
        "-G", "beta", "-g", "stable", "-p", "app.version:2.0", "-d", "hw.rev:7",
        "--clears-provides", "app.*", "-s", inputs["ArtifactInstall_Enter_05_check"],
        "-s", inputs["ArtifactCommit_Leave_90_report"], "-k", keys["rsa"].private,
        "--no-progress", "-o", out["rootfs-xz-rsa"],
    )  # fmt: skip
    run(
        *write, "module-image", "--compression", "none", "-T", "app-module",
        "-n", "app-3", "-t", "board-a", "-t", "board-x",
        "-f", inputs["app.bin"], "-f", inputs["config.txt"], "-f", inputs["empty"],
        "-m", inputs["meta.json"], "--software-name", "app", "--software-version", "3.1",
        "-k", keys["ecdsa"].private, "-o", out["module-none-ecdsa"],
    )  # fmt: skip
    run(
        *write, "rootfs-image", "-v", "2", "-n", "legacy-1", "-t", "old-board",
        "-f", inputs["rootfs.ext4"], "--no-progress", "-o", out["rootfs-v2"],
    )  # fmt: skip
    run(
        *write, "module-image", "-T", "full", "-n", "aug-1", "-t", "board-a",
        "-f", inputs["config.txt"], "--augment-type", "delta",
        "--augment-file", inputs["delta.bin"], "--augment-provides", "delta.base:1",
        "--augment-depends", "rootfs.sum:abc", "-k", keys["rsa"].private,
        "-o", out["augmented-rsa"],
    )  # fmt: skip
    run(
        *write, "rootfs-image", "-n", "bare", "-t", "board-a", "-f", inputs["rootfs.ext4"],
        "--no-checksum-provide", "--no-default-software-version",
        "--no-default-clears-provides", "--no-progress", "-o", out["rootfs-bare"],
    )  # fmt: skip
    return out


CATALOG_KEYS = ("rootfs-xz-rsa", "module-none-ecdsa", "rootfs-v2", "augmented-rsa", "rootfs-bare")
SIGNED_BY = {"rootfs-xz-rsa": "rsa", "module-none-ecdsa": "ecdsa", "augmented-rsa": "rsa"}

Edit = Callable[[str, bytes], bytes | None]


def retar(source: Path, target: Path, edit: Edit) -> None:
    """Copy artifact `source` to `target`; `edit(name, body)` may replace a member's bytes."""
    with tarfile.open(source, "r:") as old, tarfile.open(target, "w:", format=old.format) as new:
        for member in old:
            handle = old.extractfile(member)
            body = handle.read() if handle else b""
            changed = edit(member.name, body)
            if changed is not None:
                body = changed
                member.size = len(body)
            new.addfile(member, io.BytesIO(body))


def rewrite_inner_tar(body: bytes, mode: str, edit: Edit) -> bytes:
    """An inner (compressed) tar with `edit` applied to its members, compressed the same way."""
    buffer = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(body), mode=f"r:{mode}") as old,
        tarfile.open(fileobj=buffer, mode=f"w:{mode}") as new,
    ):
        for member in old:
            handle = old.extractfile(member)
            inner = handle.read() if handle else b""
            changed = edit(member.name, inner)
            if changed is not None:
                inner = changed
                member.size = len(inner)
            new.addfile(member, io.BytesIO(inner))
    return buffer.getvalue()


def flip_byte(body: bytes, offset: int) -> bytes:
    return body[:offset] + bytes([body[offset] ^ 0x5A]) + body[offset + 1 :]


_UNPACK = {".tar.xz": lzma.decompress, ".tar.gz": gzip.decompress, ".tar": bytes}


def recompress_zstd(source: Path, target: Path) -> None:
    """`source` with its header and data tars re-compressed by the zstd tool, unsigned.

    mender-artifact 3.9 cannot write zstd; newer releases can. The manifest's
    header line follows the new header; the signature is dropped (it would no
    longer match, which is the point of signing).
    """
    with tarfile.open(source, "r:") as old:
        members = [(m, old.extractfile(m).read()) for m in old]  # type: ignore[union-attr]
    renamed: dict[str, str] = {}
    bodies: dict[str, bytes] = {}
    kept = []
    for member, original in members:
        if member.name == "manifest.sig":
            continue
        body = original
        for suffix, unpack in _UNPACK.items():
            if member.name.endswith(suffix):
                body = subprocess.run(
                    ["zstd", "-q", "-c"], input=unpack(original), capture_output=True, check=True
                ).stdout
                new_name = member.name[: -len(suffix)] + ".tar.zst"
                renamed[member.name], member.name = new_name, new_name
                break
        bodies[member.name] = body
        kept.append(member)
    lines = []
    for line in bodies["manifest"].decode().splitlines():
        digest, listed = line.split("  ", 1)
        if listed in renamed:
            listed = renamed[listed]
            digest = hashlib.sha256(bodies[listed]).hexdigest()
        lines.append(f"{digest}  {listed}")
    bodies["manifest"] = ("\n".join(lines) + "\n").encode()
    with tarfile.open(target, "w:") as new:
        for member in kept:
            member.size = len(bodies[member.name])
            new.addfile(member, io.BytesIO(bodies[member.name]))
