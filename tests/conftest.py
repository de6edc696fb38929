"""Fixtures the artifact tests share: signing keys, payload inputs and a catalog
of artifacts written by Debian's mender-artifact, each made once per session
(tests/artifact_kit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from artifact_kit import Keys, shared, shared_inputs


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
