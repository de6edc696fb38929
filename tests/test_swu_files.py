"""`ab-harness artifact inspect` on SWUpdate .swu files packed as SWUpdate's
documentation says (sw-description first, its CMS signature next, `cpio -o
-H newc` or `-H crc`), held field by field against `swupdate -c -i FILE -k
CA -v` on the same files and against the sw-description written; tampered,
wrongly signed, truncated and corrupt ones each end as SWUpdate makes them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.artifacts.bundle import BundleError
from harness.artifacts.model import Signature
from harness.artifacts.swu import read_swu
from harness.cli import main
from tests.bundle_kit import (
    Signer,
    flip,
    inspect,
    payload,
    sha256,
    swu,
    swupdate_check,
)

ROOTFS = payload(3, 200_000)
DESCRIPTION = f"""software =
{{
	version = "2.0.1";
	hardware-compatibility = [ "1.0", "1.2" ];
	images: (
		{{
			filename = "rootfs.ext4";
			device = "/dev/mmcblk0p3";
			type = "raw";
			sha256 = "{sha256(ROOTFS)}";
		}}
	);
	bootenv: (
		{{ name = "bootpart"; value = "0:3"; }},
		{{ name = "upgrade_available"; value = "1"; }}
	);
}}
"""


@pytest.fixture(scope="module", params=["newc", "crc"])
def update(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    signers: dict[str, Signer],
) -> Path:
    folder = tmp_path_factory.mktemp("swu")
    return swu(
        folder, DESCRIPTION, {"rootfs.ext4": ROOTFS}, fmt=request.param, signer=signers["test"]
    )


def test_inspect_reads_what_swupdate_reads(
    update: Path, signers: dict[str, Signer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    accepted, log = swupdate_check(update, signers["test"].ca, tmp_path)
    assert accepted and "Verified OK" in log, log

    status, shown, err = inspect(update, signers["test"].ca, capsys)

    assert (status, err) == (0, "")
    assert (shown["updater"], shown["format"]) == ("swupdate", f"cpio-{update.stem[7:]}")
    assert shown["version"] == re.search(r"\] : Version (\S+)", log).group(1) == "2.0.1"  # type: ignore[union-attr]
    assert "1.0" in shown["compatible"] and shown["compatible"] == ["1.0", "1.2"]
    assert re.search(r"Accepted Hw Revision : 1\.0", log)
    (image,) = shown["images"]
    found = re.search(r"Found Image: (\S+) in device : (\S+)", log)
    assert found and (image["filename"], image["target"]) == found.groups()
    assert f"size {image['size']} required" in log
    assert (image["size"], image["sha256"]) == (len(ROOTFS), sha256(ROOTFS))
    assert (shown["signature"], shown["signer"]) == ("valid", "CN = test signer")


def test_an_unsigned_swu_is_unchecked_without_a_ca_and_refused_with_one(
    signers: dict[str, Signer], tmp_path: Path
) -> None:
    unsigned = swu(tmp_path, DESCRIPTION, {"rootfs.ext4": ROOTFS}, fmt="newc", signer=None)

    assert read_swu(unsigned).signature is Signature.UNCHECKED
    refused = read_swu(unsigned, signers["test"].ca)
    assert (refused.signed, refused.signature) == (False, Signature.INVALID)
    assert not swupdate_check(unsigned, signers["test"].ca, tmp_path)[0]


def test_a_swu_signed_under_another_ca_is_refused_by_both(
    update: Path, signers: dict[str, Signer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    accepted, log = swupdate_check(update, signers["other"].ca, tmp_path)
    assert not accepted, log

    status, shown, err = inspect(update, signers["other"].ca, capsys)

    assert status == 1 and shown["signature"] == "invalid"
    assert err.count("\n") == 1 and "unable to get local issuer" in err


def test_a_tampered_sw_description_is_refused_by_both(
    signers: dict[str, Signer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # newc carries no checksums: only the signature tells the change.
    update = swu(
        tmp_path / "newc", DESCRIPTION, {"rootfs.ext4": ROOTFS}, fmt="newc", signer=signers["test"]
    )
    at = update.read_bytes().find(b'version = "2.0.1"') + len('version = "2.0.')
    bad = flip(update, at, tmp_path / "tampered.swu")
    assert not swupdate_check(bad, signers["test"].ca, tmp_path)[0]

    status, shown, err = inspect(bad, signers["test"].ca, capsys)

    assert status == 1 and shown["signature"] == "invalid" and shown["version"] != "2.0.1"
    assert err.count("\n") == 1


def test_a_crc_swu_with_a_changed_byte_fails_its_cpio_checksum_as_in_swupdate(
    signers: dict[str, Signer], tmp_path: Path
) -> None:
    update = swu(
        tmp_path / "crc", DESCRIPTION, {"rootfs.ext4": ROOTFS}, fmt="crc", signer=signers["test"]
    )
    bad = flip(update, update.stat().st_size // 2, tmp_path / "damaged.swu")
    accepted, log = swupdate_check(bad, signers["test"].ca, tmp_path)
    # SWUpdate compares the image's sha256 or its CPIO checksum, whichever comes first.
    assert not accepted and ("Checksum WRONG" in log or "HASH mismatch" in log), log

    with pytest.raises(BundleError, match=r"member rootfs\.ext4 does not match its CPIO checksum"):
        read_swu(bad)


def test_an_image_that_differs_from_its_sha256_is_named(tmp_path: Path) -> None:
    other = payload(4, len(ROOTFS))
    update = swu(tmp_path, DESCRIPTION, {"rootfs.ext4": other}, fmt="newc", signer=None)

    with pytest.raises(BundleError) as caught:
        read_swu(update)

    assert f"image rootfs.ext4 has sha256 {sha256(other)}" in str(caught.value)


def test_images_of_a_dual_copy_collection_are_listed_with_their_devices(tmp_path: Path) -> None:
    description = """software = {
	version = "3.0";
	stable = {
		copy-1: { images: ( { filename = "rootfs.ext4"; device = "/dev/mmcblk0p2"; } ); };
		copy-2: { images: ( { filename = "rootfs.ext4"; device = "/dev/mmcblk0p3"; } ); };
	};
};
"""
    update = swu(tmp_path, description, {"rootfs.ext4": ROOTFS}, fmt="newc", signer=None)

    images = read_swu(update).images

    assert [(i.name, i.target) for i in images] == [
        ("stable.copy-1:rootfs.ext4", "/dev/mmcblk0p2"),
        ("stable.copy-2:rootfs.ext4", "/dev/mmcblk0p3"),
    ]


@pytest.mark.parametrize(
    ("cut", "expected"),
    [
        (lambda data: data[:-600], "is truncated"),
        (lambda data: data[:300], "is truncated: member sw-description ends after"),
        (lambda data: data.replace(b"software =", b"software }", 1), "is no libconfig text"),
    ],
    ids=["truncated", "cut-in-description", "corrupt-description"],
)
def test_truncated_or_corrupt_swus_are_one_line_naming_the_cause(
    tmp_path: Path, cut, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    update = swu(tmp_path, DESCRIPTION, {"rootfs.ext4": ROOTFS}, fmt="newc", signer=None)
    bad = tmp_path / "bad.swu"
    bad.write_bytes(cut(update.read_bytes()))

    status = main(["artifact", "inspect", str(bad)])
    out, err = capsys.readouterr()

    assert status == 1 and out == ""
    assert err.count("\n") == 1 and expected in err and "— fix:" in err, err
