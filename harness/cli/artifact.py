"""``ab-harness artifact inspect``: what an update file holds, checked, as JSON.

Three formats, told apart by their first bytes, not their names: Mender
artifacts (a tar), RAUC bundles (a squashfs with a CMS signature appended,
plain or verity) and SWUpdate .swu files (CPIO newc with sw-description
first). Every checksum the file carries is compared while reading, so a
tampered or truncated file ends as one error line naming the part inside
it (exit 1). A signature is checked with ``--verify-key`` (Mender's public
key) or ``--ca`` (the CA that RAUC's keyring or ``swupdate -k`` trusts):
the JSON is still printed, and an invalid or missing signature adds one
error line and exit 1, so a script can rely on the status alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.artifacts import Signature, read_artifact
from harness.artifacts.bundle import Bundle
from harness.artifacts.rauc_bundle import is_rauc_bundle, read_rauc_bundle
from harness.artifacts.swu import is_swu, read_swu
from harness.errors import HarnessConfigError

# How each updater signs, for the fix of an invalid signature.
_RESIGN = {
    "rauc": "rauc bundle --cert CERT --key KEY, CERT issued by the CA given",
    "swupdate": "openssl cms -sign -signer CERT -inkey KEY, CERT issued by the CA given",
}


def add_artifact_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    artifact = subparsers.add_parser(
        "artifact", help="read and check update files (Mender, RAUC, SWUpdate)"
    )
    artifact_sub = artifact.add_subparsers(dest="artifact_command", required=True, metavar="ACTION")
    inspect = artifact_sub.add_parser(
        "inspect", help="print an update file's description and images as JSON, checked"
    )
    inspect.add_argument(
        "path", type=Path, metavar="PATH", help="a .mender artifact, a RAUC bundle or a .swu"
    )
    inspect.add_argument(
        "--verify-key",
        type=Path,
        metavar="PEM",
        help="Mender: public key (RSA or ECDSA P-256) the manifest signature must verify with",
    )
    inspect.add_argument(
        "--ca",
        type=Path,
        metavar="PEM",
        help="RAUC and SWUpdate: the CA certificate(s) the bundle's CMS signature must chain to",
    )
    inspect.set_defaults(func=_inspect)


def _inspect(args: argparse.Namespace) -> int:
    path: Path = args.path
    # The Mender reader names a path it cannot open; the others need a file to sniff.
    sniffed = path.is_file() and (is_rauc_bundle(path) or is_swu(path))
    if sniffed:
        if args.verify_key is not None:
            raise HarnessConfigError(
                f"{path} is a RAUC or SWUpdate bundle, --verify-key is for Mender artifacts",
                "give the signing CA with --ca PEM",
            )
        bundle = (
            read_rauc_bundle(path, args.ca) if is_rauc_bundle(path) else read_swu(path, args.ca)
        )
        return _report_bundle(path, bundle, args.ca)
    if args.ca is not None:
        raise HarnessConfigError(
            f"{path} is no RAUC bundle or .swu, --ca is for those",
            "give a Mender artifact's key with --verify-key PEM",
        )
    artifact = read_artifact(path, args.verify_key)
    print(json.dumps(artifact.to_json(), indent=2))
    if artifact.signature is Signature.INVALID:
        print(
            f"ab-harness: error: signature of {path} is invalid with {args.verify_key}: "
            f"{artifact.signature_problem} — fix: sign it with the matching private key "
            "(mender-artifact write ... -k KEY)",
            file=sys.stderr,
        )
        return 1
    return 0


def _report_bundle(path: Path, bundle: Bundle, ca: Path | None) -> int:
    print(json.dumps(bundle.to_json(), indent=2))
    if bundle.signature is Signature.INVALID:
        print(
            f"ab-harness: error: signature of {path} is invalid with {ca}: "
            f"{bundle.signature_problem} — fix: sign it with {_RESIGN[bundle.updater]}",
            file=sys.stderr,
        )
        return 1
    return 0
