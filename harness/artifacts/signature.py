"""Checking ``manifest.sig`` the way mender-artifact signs it.

mender-artifact signs the bytes of ``manifest`` (which holds the sha256 of
``version``, the header and every payload file, so the signature covers
all of them) with SHA-256: RSA keys as PKCS#1 v1.5, P-256 ECDSA keys as
the raw 64-byte ``r || s`` (newer releases also accept DER). The file is
base64 text. Only ``manifest-augment`` and what it lists are unsigned.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from harness.errors import HarnessConfigError

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

_P256_RAW = 64


def load_verify_key(path: Path) -> PublicKey:
    """The public key in PEM file `path` (a private key's public half is fine too)."""
    try:
        pem = path.read_bytes()
    except OSError as err:
        raise HarnessConfigError(
            f"cannot read verification key {path}: {err.strerror}",
            "give --verify-key the path of a PEM public key",
        ) from err
    key: object
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        try:
            key = serialization.load_pem_private_key(pem, password=None).public_key()
        except (ValueError, TypeError, UnsupportedAlgorithm) as err:
            raise HarnessConfigError(
                f"{path} is not a PEM RSA or ECDSA key",
                "export the public key with `openssl pkey -in KEY -pubout`",
            ) from err
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise HarnessConfigError(
            f"{path} holds a {type(key).__name__}, not an RSA or ECDSA key",
            "mender-artifact signs only with RSA or P-256 ECDSA keys",
        )
    return key


def verify_manifest(manifest: bytes, signature_text: bytes, key: PublicKey) -> str | None:
    """None if `signature_text` signs `manifest` under `key`, else why not (one phrase)."""
    try:
        signature = base64.b64decode(signature_text.strip(), validate=True)
    except binascii.Error:
        return "manifest.sig is not base64"
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, manifest, padding.PKCS1v15(), hashes.SHA256())
        else:
            if len(signature) == _P256_RAW:
                half = _P256_RAW // 2
                r = int.from_bytes(signature[:half], "big")
                s = int.from_bytes(signature[half:], "big")
                signature = encode_dss_signature(r, s)
            key.verify(signature, manifest, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "the signature does not match the manifest under this key"
    except ValueError as err:  # a malformed DER signature, wrong size for the key
        return f"manifest.sig is malformed ({err})"
    return None
