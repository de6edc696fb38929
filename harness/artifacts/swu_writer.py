"""Write SWUpdate .swu files as SWUpdate's documentation builds them, with real tools.

`sw-description` (libconfig text) first, its CMS signature next
(`openssl cms -sign`, detached, DER: what a signed-images build of SWUpdate
verifies against its CA), then the images, packed by Debian's `cpio -o -H
crc` (the "new CRC" format: SWUpdate checks each member's checksum too). A
rootfs goes in zstd-compressed (`compressed = "zstd"`): SWUpdate hashes the
member as stored and decompresses while it writes, so the device reads and
hashes a third of the bytes. What was written is read back with `read_swu`
(and the CA, when signed), so a result is always a file whose hashes and
signature check.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.artifacts.bundle import Bundle
from harness.artifacts.model import Signature
from harness.artifacts.swu import read_swu
from harness.errors import EnvironmentMissing, HarnessError
from harness.images.userfiles import sha256_of

TIMEOUT_S = 300.0
TOOLS = {"cpio": "cpio", "openssl": "openssl", "zstd": "zstd"}


@dataclass(frozen=True)
class Signer:
    """The certificate and key a .swu is signed with, and the CA that trusts it."""

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True)
class Copy:
    """One copy of SWUpdate's dual-copy layout, named by where it runs: the
    selection's mode is the running root's device name (`swupdate -g`), and
    it writes the *other* copy's `device` and points `bootpart` there."""

    running: str  # e.g. "mmcblk0p2"
    device: str  # the standby copy it writes, e.g. "/dev/mmcblk0p3"
    bootenv: Mapping[str, str]  # e.g. {"bootpart": "0:3", "upgrade_available": "1"}


def dual_copy_description(
    version: str,
    release: str,
    image: str,
    image_sha256: str,
    copies: Sequence[Copy],
    hardware: Sequence[str],
    collection: str = "stable",
) -> str:
    """A sw-description installing one raw rootfs `image` into the standby copy:
    one mode of `collection` per copy (SWUpdate's "Software collections"),
    selected on the device with `-e <collection>,<running root>`."""
    modes = []
    for copy in copies:
        env = ",\n".join(
            f'\t\t\t\t{{ name = "{name}"; value = "{value}"; }}'
            for name, value in copy.bootenv.items()
        )
        modes.append(
            f"\t\t{copy.running}: {{\n"
            "\t\t\timages: (\n\t\t\t\t{\n"
            '\t\t\t\t\tname = "rootfs";\n'
            f'\t\t\t\t\tversion = "{release}";\n'
            f'\t\t\t\t\tfilename = "{image}";\n'
            f'\t\t\t\t\tdevice = "{copy.device}";\n'
            '\t\t\t\t\ttype = "raw";\n'
            '\t\t\t\t\tcompressed = "zstd";\n'
            f'\t\t\t\t\tsha256 = "{image_sha256}";\n'
            "\t\t\t\t}\n\t\t\t);\n"
            f"\t\t\tbootenv: (\n{env}\n\t\t\t);\n"
            "\t\t};\n"
        )
    compatible = ", ".join(f'"{h}"' for h in hardware)
    return (
        "software =\n{\n"
        f'\tversion = "{version}";\n'
        f'\tdescription = "{release}";\n'
        f"\thardware-compatibility = [ {compatible} ];\n"
        f"\t{collection}: {{\n{''.join(modes)}\t}};\n"
        "}\n"
    )


def compress_rootfs(raw: Path, out: Path) -> str:
    """`zstd` of a raw rootfs image into `out`; the sha256 of what was written
    (what sw-description must name: SWUpdate hashes the member as stored)."""
    _tool("zstd", "-q", "-f", "-19" if raw.stat().st_size < (1 << 20) else "-6", raw, "-o", out)
    return sha256_of(out)


def sign(content: Path, out: Path, signer: Signer) -> None:
    """The detached CMS signature SWUpdate verifies (`openssl cms -sign`, DER,
    no S/MIME capabilities, the content signed as bytes)."""
    _tool(
        "openssl",
        "cms",
        "-sign",
        "-in",
        content,
        "-out",
        out,
        "-signer",
        signer.cert,
        "-inkey",
        signer.key,
        "-outform",
        "DER",
        "-nosmimecap",
        "-binary",
    )


def write_swu(
    description: str,
    images: Mapping[str, Path],
    out: Path,
    signer: Signer | None,
    fmt: str = "crc",
) -> Bundle:
    """Pack `description` and `images` (member name → file) into `out`, signed
    by `signer` (None: unsigned), and read it back (checked against the
    signer's CA); raise naming the step that failed."""
    with tempfile.TemporaryDirectory(prefix="ab-swu-") as tmp:
        folder = Path(tmp)
        (folder / "sw-description").write_text(description)
        names = ["sw-description"]
        if signer is not None:
            sign(folder / "sw-description", folder / "sw-description.sig", signer)
            names.append("sw-description.sig")
        for name, path in images.items():
            (folder / name).symlink_to(path.resolve())
            names.append(name)
        partial = out.with_name(f".{out.name}.partial")
        with partial.open("wb") as archive:
            # -L: the members are the images, not the links to them.
            listing = "\n".join(names)
            _tool(
                "cpio", "-o", "-L", "-H", fmt, "--quiet", stdin=listing, stdout=archive, cwd=folder
            )
    bundle = read_swu(partial, signer.ca if signer else None)
    if signer is not None and bundle.signature is not Signature.VALID:
        raise HarnessError(
            f"the .swu written to {out} does not verify against {signer.ca}",
            "check the image's swupdate-keys (signer.pem must be issued by ca.pem)",
        )
    partial.rename(out)
    return bundle


def _tool(
    name: str,
    *argv: str | Path,
    stdin: str | None = None,
    stdout: IO[bytes] | None = None,
    cwd: Path | None = None,
) -> None:
    path = shutil.which(name)
    if path is None:
        raise EnvironmentMissing(f"{name} is not installed", f"apt-get install {TOOLS[name]}")
    done = subprocess.run(
        [path, *map(str, argv)],
        input=stdin.encode() if stdin is not None else None,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        timeout=TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr or b"").decode(errors="replace").strip().splitlines()
        raise HarnessError(
            f"{name} failed writing a .swu (exit {done.returncode}): "
            f"{last[-1] if last else 'no output'}",
            f"run the same {name} command by hand to see why",
        )
