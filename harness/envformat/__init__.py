"""Bootloader environment formats: U-Boot's binary env and GRUB's grubenv block."""

from harness.envformat.grub import (
    GRUB_HEADER,
    GrubEnv,
    GrubEnvCorrupt,
    detect_format,
    encode_grubenv,
    parse_grubenv,
)
from harness.envformat.uboot import (
    EnvCorrupt,
    UBootEnv,
    encode_env,
    parse_env,
    parse_env_copies,
)

__all__ = [
    "GRUB_HEADER",
    "EnvCorrupt",
    "GrubEnv",
    "GrubEnvCorrupt",
    "UBootEnv",
    "detect_format",
    "encode_env",
    "encode_grubenv",
    "parse_env",
    "parse_env_copies",
    "parse_grubenv",
]
