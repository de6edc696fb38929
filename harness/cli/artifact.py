"""``ab-harness artifact inspect``: what a Mender artifact holds, checked, as JSON.

Every checksum in the artifact's manifest is compared while reading, so a
tampered or truncated artifact ends as one error line naming the file
inside it (exit 1). With ``--verify-key`` the manifest signature is
checked too: the JSON is still printed, and an invalid or missing
signature adds one error line and exit 1, so a script can rely on the
status alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.artifacts import Signature, read_artifact


def add_artifact_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    artifact = subparsers.add_parser("artifact", help="read and check Mender artifacts")
    artifact_sub = artifact.add_subparsers(dest="artifact_command", required=True, metavar="ACTION")
    inspect = artifact_sub.add_parser(
        "inspect", help="print an artifact's headers and payload files as JSON, checked"
    )
    inspect.add_argument("path", type=Path, metavar="PATH", help="the .mender file")
    inspect.add_argument(
        "--verify-key",
        type=Path,
        metavar="PEM",
        help="public key (RSA or ECDSA P-256) the manifest signature must verify with",
    )
    inspect.set_defaults(func=_inspect)


def _inspect(args: argparse.Namespace) -> int:
    artifact = read_artifact(args.path, args.verify_key)
    print(json.dumps(artifact.to_json(), indent=2))
    if artifact.signature is Signature.INVALID:
        print(
            f"ab-harness: error: signature of {args.path} is invalid with {args.verify_key}: "
            f"{artifact.signature_problem} — fix: sign it with the matching private key "
            "(mender-artifact write ... -k KEY)",
            file=sys.stderr,
        )
        return 1
    return 0
