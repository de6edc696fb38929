"""U-Boot's binary environment: read it the way the bootloader will, write it the same way.

Single-copy layout (``CONFIG_ENV_SIZE`` bytes)::

    crc32 (u32, little-endian, over the data area) | data area

Redundant layout (``CONFIG_SYS_REDUNDAND_ENVIRONMENT``), two such copies::

    crc32 (u32 LE, over the data area) | flags (u8) | data area

The data area holds NUL-terminated ``key=value`` strings, ends with an empty
string, and the rest is padding nobody reads (mkenvimage fills it with 0xff;
fw_setenv leaves whatever bytes its buffer held, including stale variables).

Entries are read as libubootenv's ``fw_printenv`` reads them.  U-Boot's own
importer (``himport_r``) differs on entries no tool here writes except one:
it treats ``name=`` (an empty value, which ``fw_setenv name ""`` stores) as
"delete name", so U-Boot sees that variable as unset.  Text is UTF-8; bytes
that are not are kept via ``surrogateescape`` so a parse/encode round trip is
byte-exact.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from harness.errors import HarnessConfigError

__all__ = [
    "EnvCopy",
    "EnvCorrupt",
    "UBootEnv",
    "encode_env",
    "inspect_copy",
    "parse_env",
    "parse_env_copies",
]

log = logging.getLogger(__name__)

_CRC = struct.Struct("<I")
_SINGLE_HEADER = _CRC.size  # crc
_REDUNDANT_HEADER = _CRC.size + 1  # crc + flags
_TEXT = "utf-8"
_ERRORS = "surrogateescape"


class EnvCorrupt(HarnessConfigError):
    """No copy of the environment has a valid CRC32 (or its data is malformed)."""


@dataclass(frozen=True)
class UBootEnv:
    """One environment as the bootloader would load it.

    ``vars`` is read-only.  ``copy_index`` is the 0-based copy that was used;
    ``flags`` is that copy's flag byte (``None`` for the single-copy layout);
    ``valid_copies`` lists the copies whose CRC32 matched, so a test can prove
    that a copy it corrupted really was rejected.
    """

    vars: Mapping[str, str] = field(hash=False)
    copy_index: int = 0
    flags: int | None = None
    valid_copies: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        # A private copy behind a read-only proxy: nobody holds the dict.
        object.__setattr__(self, "vars", MappingProxyType(dict(self.vars)))


def parse_env(
    blob: bytes,
    *,
    size: int | None = None,
    copies: int = 1,
    source: str = "<bytes>",
) -> UBootEnv:
    """Load the environment in ``blob``, using the copy U-Boot would use.

    ``copies=1``: ``blob`` starts with one single-copy environment of ``size``
    bytes.  ``copies=2``: ``blob`` holds two redundant copies of ``size`` bytes
    back to back (the fw_env.config ``FILE 0x0 SIZE`` / ``FILE SIZE SIZE``
    case).  ``size`` defaults to ``len(blob) // copies``; bytes past
    ``size * copies`` are ignored, as the bootloader ignores them.

    Raises `EnvCorrupt` (naming ``source``) when no copy has a valid CRC32,
    and `HarnessConfigError` when ``blob`` is too short for ``size``.
    """
    if copies not in (1, 2):
        raise ValueError(f"copies must be 1 or 2, not {copies}")
    if size is None:
        if len(blob) % copies:
            raise HarnessConfigError(
                f"{source}: {len(blob)} bytes cannot be {copies} equal environment copies",
                "pass the environment size explicitly (CONFIG_ENV_SIZE of the bootloader)",
            )
        size = len(blob) // copies
    _check_size(size, copies, source)
    if len(blob) < size * copies:
        raise HarnessConfigError(
            f"{source}: {len(blob)} bytes, too short for {copies} environment "
            f"cop{'ies' if copies > 1 else 'y'} of {size:#x} bytes",
            "pass the size the bootloader was built with (CONFIG_ENV_SIZE)",
        )
    images = [blob[i * size : (i + 1) * size] for i in range(copies)]
    return _load(images, redundant=copies == 2, source=source)


def parse_env_copies(
    blobs: Sequence[bytes],
    source: str,
    *,
    size: int | None = None,
) -> UBootEnv:
    """Load a redundant environment whose two copies are held separately.

    Each of the two ``blobs`` is one redundant copy (crc + flags + data);
    ``size`` defaults to the length of the blobs, which must then be equal
    (U-Boot and libubootenv require both copies to have the same size).
    Copy selection and errors are as for `parse_env` with ``copies=2``.
    """
    if len(blobs) != 2:
        raise ValueError(f"a redundant environment has 2 copies, not {len(blobs)}")
    if size is None:
        lengths = {len(b) for b in blobs}
        if len(lengths) != 1:
            raise HarnessConfigError(
                f"{source}: the two environment copies differ in size "
                f"({len(blobs[0])} and {len(blobs[1])} bytes)",
                "pass the environment size explicitly (CONFIG_ENV_SIZE of the bootloader)",
            )
        size = len(blobs[0])
    _check_size(size, 2, source)
    for blob in blobs:
        if len(blob) < size:
            raise HarnessConfigError(
                f"{source}: a copy of {len(blob)} bytes is too short for an "
                f"environment of {size:#x} bytes",
                "pass the size the bootloader was built with (CONFIG_ENV_SIZE)",
            )
    return _load([b[:size] for b in blobs], redundant=True, source=source)


def encode_env(
    vars: Mapping[str, str],
    size: int,
    *,
    redundant_flags: int | None = None,
    fill: int = 0xFF,
) -> bytes:
    """Return one environment copy of exactly ``size`` bytes holding ``vars``.

    ``redundant_flags=None`` gives the single-copy layout; an integer 0..255
    gives one redundant copy with that flag byte (mkenvimage ``-r`` writes 1;
    U-Boot and fw_setenv write the current copy's flag + 1 into the other
    copy).  Entries are written in ``vars``' iteration order; ``fill`` pads
    the data area (0xff like mkenvimage, or 0 like ``mkenvimage -p 0``).

    Raises ValueError for an empty key, a key containing ``=`` or NUL, a
    value containing NUL, or when the entries do not fit in ``size``.
    """
    if redundant_flags is not None and not 0 <= redundant_flags <= 0xFF:
        raise ValueError(f"redundant_flags must be 0..255, not {redundant_flags}")
    if not 0 <= fill <= 0xFF:
        raise ValueError(f"fill must be a byte value 0..255, not {fill}")
    header = _REDUNDANT_HEADER if redundant_flags is not None else _SINGLE_HEADER
    data = bytearray()
    for key, value in vars.items():
        if not key or "=" in key or "\0" in key:
            raise ValueError(f"invalid U-Boot variable name {key!r}: empty, '=' or NUL")
        if "\0" in value:
            raise ValueError(f"U-Boot variable {key!r}: value contains NUL")
        data += f"{key}={value}".encode(_TEXT, _ERRORS) + b"\0"
    data += b"\0"  # the empty string that ends the list
    room = size - header
    if len(data) > room:
        raise ValueError(
            f"environment needs {len(data)} bytes of data but a {size:#x}-byte "
            f"{'redundant ' if redundant_flags is not None else ''}copy holds {max(room, 0)}"
        )
    data += bytes([fill]) * (room - len(data))
    crc = _CRC.pack(zlib.crc32(data))
    if redundant_flags is None:
        return crc + bytes(data)
    return crc + bytes([redundant_flags]) + bytes(data)


@dataclass(frozen=True)
class EnvCopy:
    """One copy of a redundant environment, looked at on its own (no copy selection)."""

    flags: int
    crc_stored: int
    crc_computed: int
    vars: Mapping[str, str] = field(hash=False)

    @property
    def crc_ok(self) -> bool:
        return self.crc_stored == self.crc_computed


def inspect_copy(image: bytes, source: str = "<bytes>") -> EnvCopy:
    """Flags, CRC32 (stored and computed) and variables of one redundant copy.

    Unlike `parse_env`, a bad CRC32 is reported, not raised: this is for
    seeing what a torn or stale copy holds.  Raises `EnvCorrupt` only if the
    data area cannot be read as strings at all.
    """
    _check_size(len(image), 2, source)
    stored: int = _CRC.unpack_from(image)[0]
    computed = zlib.crc32(image[_REDUNDANT_HEADER:])
    return EnvCopy(image[_CRC.size], stored, computed, _entries(image[_REDUNDANT_HEADER:], source))


def _check_size(size: int, copies: int, source: str) -> None:
    header = _REDUNDANT_HEADER if copies == 2 else _SINGLE_HEADER
    if size <= header:
        raise HarnessConfigError(
            f"{source}: environment size {size} leaves no room for data",
            "pass the size the bootloader was built with (CONFIG_ENV_SIZE)",
        )


def _crc_ok(image: bytes, header: int) -> bool:
    stored: int = _CRC.unpack_from(image)[0]
    return stored == zlib.crc32(image[header:])


def _newer(flags0: int, flags1: int) -> int:
    """Index of the newer of two valid copies, as U-Boot's env_import_redund decides."""
    # The flag is a counter that wraps: 0 follows 255.
    if flags0 == 0xFF and flags1 == 0:
        return 1
    if flags1 == 0xFF and flags0 == 0:
        return 0
    return 1 if flags1 > flags0 else 0


def _load(images: list[bytes], *, redundant: bool, source: str) -> UBootEnv:
    header = _REDUNDANT_HEADER if redundant else _SINGLE_HEADER
    valid = tuple(i for i, image in enumerate(images) if _crc_ok(image, header))
    for i in range(len(images)):
        if i not in valid:
            log.debug("%s: copy %d has a bad CRC32, skipped", source, i)
    if not valid:
        what = (
            f"neither of the 2 copies ({len(images[0]):#x} bytes each) has a"
            if redundant
            else f"the {len(images[0]):#x}-byte environment has no"
        )
        raise EnvCorrupt(
            f"{source}: no valid U-Boot environment: {what} matching CRC32",
            "check the size and number of copies (--size/--copies) match the bootloader's "
            "CONFIG_ENV_SIZE and redundant-env setting, or rewrite it with mkenvimage/fw_setenv",
        )
    if not redundant:
        return UBootEnv(_entries(images[0][header:], source), 0, None, valid)
    flags = [image[_CRC.size] for image in images]
    chosen = valid[0] if len(valid) == 1 else _newer(flags[0], flags[1])
    log.debug("%s: using copy %d (flags %s, valid %s)", source, chosen, flags, valid)
    return UBootEnv(_entries(images[chosen][header:], source), chosen, flags[chosen], valid)


def _entries(data: bytes, source: str) -> dict[str, str]:
    """The ``key=value`` strings of one data area, up to the empty string."""
    result: dict[str, str] = {}
    pos = 0
    # A last string that ends exactly at the end of the data area is complete:
    # U-Boot stops at the area's size even without the closing empty string.
    while pos < len(data) and data[pos] != 0:
        end = data.find(b"\0", pos)
        if end < 0:
            raise EnvCorrupt(
                f"{source}: environment data runs past the end of its area "
                "although its CRC32 matches",
                "rewrite the environment with mkenvimage/fw_setenv",
            )
        entry = data[pos:end].decode(_TEXT, _ERRORS)
        pos = end + 1
        key, sep, value = entry.partition("=")
        if not sep or not key:
            # fw_printenv skips these too; U-Boot would drop or reject them.
            log.warning("%s: ignoring malformed environment entry %r", source, entry)
            continue
        result[key] = value  # a later duplicate wins, as in U-Boot and libubootenv
    return result
