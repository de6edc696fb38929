"""Fixtures the artifact tests share: signing keys, payload inputs and a catalog
of artifacts written by Debian's mender-artifact, each made once per session
(tests/artifact_kit.py); and the test CAs RAUC bundles and .swu files are
signed under (tests/bundle_kit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from artifact_kit import Keys, shared, shared_inputs
from bundle_kit import Signer, make_signer


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Keys]:
    """RSA, ECDSA and a second RSA key pair, made with openssl."""
    return shared(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The files the artifacts carry (a rootfs image, module files, state scripts)."""
    return shared_inputs(tmp_path_factory)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Artifacts written by mender-artifact with options the harness never uses, by name."""
    return shared(tmp_path_factory)[1]


@pytest.fixture(scope="session")
def signers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Signer]:
    """Two test CAs made with openssl, each with a signing certificate it issued:
    "test" signs the bundles, "other" is a CA they do not chain to."""
    folder = tmp_path_factory.mktemp("signers")
    return {"test": make_signer(folder, "test"), "other": make_signer(folder, "other")}
