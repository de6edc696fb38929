"""Bootloader environment formats: U-Boot's binary env and GRUB's grubenv block."""

from harness.envformat.grub import (
    GRUB_HEADER,
    GrubEnv,
    GrubEnvCorrupt,
    detect_format,
    encode_grubenv,
    parse_grubenv,
)
from harness.envformat.offsets import read_copies, read_env_at, save_env_at, write_copy
from harness.envformat.uboot import (
    EnvCopy,
    EnvCorrupt,
    UBootEnv,
    encode_env,
    inspect_copy,
    parse_env,
    parse_env_copies,
)

__all__ = [
    "GRUB_HEADER",
    "EnvCopy",
    "EnvCorrupt",
    "GrubEnv",
    "GrubEnvCorrupt",
    "UBootEnv",
    "detect_format",
    "encode_env",
    "encode_grubenv",
    "inspect_copy",
    "parse_env",
    "parse_env_copies",
    "parse_grubenv",
    "read_copies",
    "read_env_at",
    "save_env_at",
    "write_copy",
]
