"""`ab-harness artifact inspect` on RAUC bundles built by `rauc bundle` itself
(plain and verity, signed by a test CA made with openssl), held field by
field against `rauc info` on the same files; tampered, wrongly signed,
truncated and corrupt bundles each end as what RAUC makes of them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.artifacts.bundle import BundleError
from harness.artifacts.model import Signature
from harness.artifacts.rauc_bundle import read_rauc_bundle
from harness.cli import main
from tests.bundle_kit import (
    Signer,
    flip,
    inspect,
    payload,
    rauc_bundle,
    rauc_info,
    sha256,
)

IMAGES = {"rootfs": payload(1, 300_000), "appfs": payload(2, 70_000)}


@pytest.fixture(scope="module", params=["plain", "verity"])
def bundle(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    signers: dict[str, Signer],
) -> Path:
    return rauc_bundle(tmp_path_factory.mktemp("rauc"), request.param, signers["test"], IMAGES)


def info_fields(text: str) -> dict[str, object]:
    """`rauc info`'s own words: compatible, version, format, and per image its
    slot class, filename, checksum and size."""
    images = re.findall(
        r"\[(\w+)\].*?Filename:\s+(\S+)\s+Checksum:\s+([0-9a-f]{64})\s+Size:\s+(\d+)", text, re.S
    )
    return {
        "compatible": re.search(r"Compatible:\s+'([^']*)'", text).group(1),  # type: ignore[union-attr]
        "version": re.search(r"Version:\s+'([^']*)'", text).group(1),  # type: ignore[union-attr]
        "format": re.search(r"Bundle Format:\s+(\w+)", text).group(1),  # type: ignore[union-attr]
        "images": sorted((slot, name, sha, int(size)) for slot, name, sha, size in images),
    }


def test_inspect_reads_what_rauc_info_reads(
    bundle: Path, signers: dict[str, Signer], capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = rauc_info(bundle, signers["test"].ca)
    assert code == 0, text
    rauc = info_fields(text)

    status, shown, err = inspect(bundle, signers["test"].ca, capsys)

    assert (status, err) == (0, "")
    assert shown["updater"] == "rauc"
    assert shown["compatible"] == [rauc["compatible"]]
    assert shown["version"] == rauc["version"]
    assert shown["format"] == rauc["format"] == bundle.stem.removeprefix("update-")
    images = sorted((i["name"], i["filename"], i["sha256"], i["size"]) for i in shown["images"])
    assert images == rauc["images"]
    assert {i["name"]: i["sha256"] for i in shown["images"]} == {
        slot: sha256(data) for slot, data in IMAGES.items()
    }
    assert (shown["signature"], shown["signer"]) == ("valid", "CN = test signer")


def test_without_a_ca_the_signature_is_unchecked(bundle: Path) -> None:
    assert read_rauc_bundle(bundle).signature is Signature.UNCHECKED


def test_a_bundle_signed_under_another_ca_is_refused_by_both(
    bundle: Path, signers: dict[str, Signer], capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = rauc_info(bundle, signers["other"].ca)
    assert code != 0, text

    status, shown, err = inspect(bundle, signers["other"].ca, capsys)

    assert status == 1 and shown["signature"] == "invalid"
    assert err.count("\n") == 1 and "signature of" in err and "unable to get local issuer" in err


def tampered(bundle: Path, tmp_path: Path) -> Path:
    """The bundle with one byte changed where its signature covers it: the
    manifest inside the verity format's signature, an image's bytes in the
    plain format's squashfs (its manifest is compressed there, never found)."""
    data = bundle.read_bytes()
    at = data.rfind(b"compatible=ab-harness-test")  # the last copy: in the signature
    offset = at + len("compatible=") if at >= 0 else len(data) // 3
    return flip(bundle, offset, tmp_path / "tampered.raucb")


def test_a_tampered_bundle_is_refused_by_both(
    bundle: Path, signers: dict[str, Signer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tampered(bundle, tmp_path)
    code, text = rauc_info(bad, signers["test"].ca)
    assert code != 0, text

    status, shown, err = inspect(bad, signers["test"].ca, capsys)

    assert status == 1 and shown["signature"] == "invalid", shown
    assert err.count("\n") == 1


def test_a_plain_bundle_whose_image_changed_reads_as_damaged_even_unchecked(
    signers: dict[str, Signer], tmp_path: Path
) -> None:
    plain = rauc_bundle(tmp_path, "plain", signers["test"], IMAGES)
    bad = flip(plain, plain.stat().st_size // 3, tmp_path / "damaged.raucb")

    with pytest.raises(BundleError) as caught:
        read_rauc_bundle(bad)

    assert "\n" not in str(caught.value) and str(bad) in str(caught.value)
    assert "— fix: rebuild it" in str(caught.value)


@pytest.mark.parametrize(
    ("cut", "expected"),
    [
        (lambda data: data[:-100], "truncated or no RAUC bundle"),
        (lambda data: data[:4096], "truncated or no RAUC bundle"),
        (lambda data: b"hsq!" + data[4:], "is not a Mender artifact"),
        (lambda data: data[:4] + b"\0" * 4096 + (64).to_bytes(8, "big"), "no CMS signature"),
    ],
    ids=["truncated", "cut-to-4k", "no-magic", "corrupt-signature"],
)
def test_truncated_or_corrupt_bundles_are_one_line_naming_the_cause(
    bundle: Path, tmp_path: Path, cut, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.raucb"
    bad.write_bytes(cut(bundle.read_bytes()))

    status = main(["artifact", "inspect", str(bad)])
    out, err = capsys.readouterr()

    assert status == 1 and out == ""
    assert err.count("\n") == 1 and expected in err and "— fix:" in err, err
