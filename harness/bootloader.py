"""Compatibility: the bootloader contracts now live in `harness.bootloaders`."""

from harness.bootloaders import (
    LINE_START,
    BootEnv,
    Bootloader,
    BootMarkers,
    GrubMenderEnv,
    UBootFileEnv,
    bootloader_for,
)

__all__ = [
    "LINE_START",
    "BootEnv",
    "BootMarkers",
    "Bootloader",
    "GrubMenderEnv",
    "UBootFileEnv",
    "bootloader_for",
]
