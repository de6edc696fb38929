"""The ``ab-harness`` command line: one small function per subcommand.

A subcommand is added by an ``_add_<name>_command(subparsers)`` function
that registers its parser and sets ``func`` to a handler taking the parsed
arguments and returning the exit status.  Expected failures (any
`HarnessError`) end as one ``ab-harness: error: ...`` line and status 1;
argparse reports usage errors with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from harness import images
from harness.bootloaders import grub_mender
from harness.cli.artifact import add_artifact_command
from harness.cli.fieldcase import add_fieldcase_commands
from harness.cli.report import add_report_command
from harness.cli.sweep import add_sweep_command
from harness.cli.writelog import add_writelog_command
from harness.doctor import add_doctor_command, harness_version
from harness.envformat import (
    detect_format,
    inspect_copy,
    parse_env,
    parse_env_copies,
    parse_grubenv,
    read_copies,
)
from harness.errors import HarnessConfigError, HarnessError
from harness.images import diskimage
from harness.images.build_progress import MODES, build_progress
from harness.targets.target import EnvLocation
from harness.targets.targetcheck import add_target_command

log = logging.getLogger(__name__)

PROG = "ab-harness"

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ab-harness`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.func
    try:
        return handler(args)
    except HarnessError as err:
        message = " ".join(str(err).split())  # one line, whatever the cause said
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Prove that A/B OTA updates roll back correctly."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {harness_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_env_command(subparsers)
    _add_images_command(subparsers)
    add_writelog_command(subparsers)
    add_sweep_command(subparsers)
    add_artifact_command(subparsers)
    add_report_command(subparsers)
    add_doctor_command(subparsers)
    add_target_command(subparsers)
    add_fieldcase_commands(subparsers)
    return parser


def _add_images_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    images = subparsers.add_parser("images", help="build, verify and list reference images")
    images_sub = images.add_subparsers(dest="images_command", required=True, metavar="ACTION")
    build = images_sub.add_parser(
        "build", help="build a recipe from qemu-images/ (reused from the cache when unchanged)"
    )
    build.add_argument("name", help="recipe name, e.g. arm64-uboot")
    build.add_argument(
        "--force", action="store_true", help="rebuild even if the cache holds the image"
    )
    build.add_argument(
        "--progress",
        choices=MODES,
        help="steps: one line per build step; quiet: start and end (default under CI); "
        "full: every line of the recipe",
    )
    build.set_defaults(func=_images_build)
    verify = images_sub.add_parser(
        "verify", help="hash every file of built images against what was recorded at build"
    )
    verify.add_argument("name", nargs="?", help="recipe name (default: every built recipe)")
    verify.set_defaults(func=_images_verify)
    listing = images_sub.add_parser("list", help="list recipes and whether they are built")
    listing.set_defaults(func=_images_list)
    for sub in (build, verify, listing):
        sub.add_argument("--cache", type=Path, help="cache directory (default ~/.cache/ab-harness)")


def _images_build(args: argparse.Namespace) -> int:
    if not args.force:
        cached = images.cached_image(args.name, cache=args.cache)
        if cached is not None:
            print(f"image '{args.name}' is cached: {cached.directory} (rebuild: --force)")
            return 0
    progress = build_progress(lambda line: print(line, flush=True), args.progress)
    built = images.ensure_image(args.name, cache=args.cache, progress=progress, force=args.force)
    for name, payload in sorted(built.payloads.items()):
        print(f"  payload {name}: {payload.path.name} sha256={payload.sha256[:16]}…")
    return 0


def _images_verify(args: argparse.Namespace) -> int:
    names = [args.name] if args.name else _recipe_names()
    if not args.name:
        names = [n for n in names if images.entry_dir(n, cache=args.cache).is_dir()]
        if not names:
            print("no built images to verify")
            return 0
    status = 0
    for name in names:
        started = time.monotonic()
        try:
            image, checked = images.verify_image(name, cache=args.cache)
        except HarnessError as err:
            print(f"{PROG}: error: {' '.join(str(err).split())}", file=sys.stderr)
            status = 1
            continue
        print(
            f"image '{name}' ok: {checked.files} files, {checked.bytes_hashed / 2**20:.1f} MiB "
            f"hashed in {time.monotonic() - started:.1f} s ({image.directory})"
        )
    return status


def _images_list(args: argparse.Namespace) -> int:
    for name in _recipe_names():
        try:
            cached = images.cached_image(name, cache=args.cache)
            state = f"built: {cached.directory}" if cached else "not built"
        except HarnessError as err:
            state = f"BAD: {err.cause} (fix: {err.fix})"
        print(f"{name:<20} {state}")
    return 0


def _recipe_names() -> list[str]:
    return sorted(recipe.parent.name for recipe in images.default_recipes_dir().glob("*/recipe.py"))


# --- env -------------------------------------------------------------------


def _add_env_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    env = subparsers.add_parser("env", help="inspect bootloader environments")
    env_sub = env.add_subparsers(dest="env_command", required=True, metavar="ACTION")
    show = env_sub.add_parser(
        "show",
        help="print the variables of a U-Boot or GRUB environment",
        description=(
            "Print KEY=VALUE lines, sorted by key, of the environment the bootloader "
            "would load from PATH (a U-Boot env image or a GRUB env block), from "
            "--file in a FAT partition of --image, or from raw --offset(s) of --image "
            "(a U-Boot that keeps its env on the SD card or eMMC itself)."
        ),
    )
    show.add_argument("path", nargs="?", type=Path, metavar="PATH", help="environment file")
    show.add_argument(
        "--size",
        type=_byte_count,
        metavar="BYTES",
        help="U-Boot environment size per copy, decimal or 0x hex (default: file size / copies)",
    )
    show.add_argument(
        "--copies",
        type=int,
        choices=(1, 2),
        help="U-Boot copies held back to back in PATH (default 1; 2 with two --file)",
    )
    show.add_argument(
        "--copy",
        type=int,
        choices=(1, 2),
        help="show only this copy of a redundant env, with its flags and CRC32 status "
        "(implies --copies 2 for PATH)",
    )
    disk = show.add_argument_group("reading from a disk image")
    disk.add_argument("--image", type=Path, metavar="DISK", help="raw disk image")
    disk.add_argument(
        "--partition",
        type=int,
        metavar="N",
        help="partition number: the FAT partition holding --file, or the partition "
        "--offset counts from (fw_env.config's /dev/mmcblk0pN)",
    )
    disk.add_argument(
        "--file",
        action="append",
        metavar="NAME",
        help="file in the partition; give twice for redundant copies held in two files",
    )
    disk.add_argument(
        "--offset",
        action="append",
        type=_offset,
        metavar="BYTES",
        help="byte offset of an env copy in --image, or in its --partition "
        "(CONFIG_ENV_OFFSET, decimal or 0x hex); give twice for redundant copies "
        "(CONFIG_ENV_OFFSET_REDUND); needs --size",
    )
    disk.add_argument(
        "--grub-mender",
        action="store_true",
        help="read Mender's GRUB env (both grubenv copies and their locks) from --partition "
        "of --image and say which copy GRUB uses and why",
    )
    show.set_defaults(func=_env_show, parser=show)


def _env_show(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    if args.grub_mender:
        return _show_grub_mender(args, parser)
    blobs, sources = _env_inputs(args, parser)
    source = " + ".join(sources)
    if detect_format(blobs[0]) == "grub":
        if len(blobs) > 1 or args.copies or args.size is not None:
            raise HarnessConfigError(
                f"{source} is a GRUB environment block, which has one copy and no size option",
                "drop --copies/--size and give a single file",
            )
        _print_vars(parse_grubenv(blobs[0], source).vars)
        return 0
    if args.copy is not None:
        return _show_one_copy(blobs, sources, args.copy, args.size)
    if len(blobs) == 2:
        env = parse_env_copies(blobs, source, size=args.size)
    else:
        env = parse_env(blobs[0], size=args.size, copies=args.copies or 1, source=source)
    log.info("%s: using copy %d (flags %s)", source, env.copy_index, env.flags)
    _print_vars(env.vars)
    return 0


def _env_inputs(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[list[bytes], list[str]]:
    """The environment blobs named on the command line, and how to name them in errors."""
    if args.image is None:
        if args.path is None:
            parser.error("give PATH, or --image, --partition and --file")
        if args.partition is not None or args.file:
            parser.error("--partition and --file go with --image, not with PATH")
        if args.copy is not None and args.copies == 1:
            parser.error("--copy picks one of two redundant copies; drop --copies 1")
        copies = args.copies or (2 if args.copy is not None else 1)
        blob = _read(args.path, args.size * copies if args.size else None)
        if args.copy is None:
            return [blob], [str(args.path)]
        # The two copies held back to back in one file, as two blobs.
        size = args.size or len(blob) // 2
        return [blob[:size], blob[size : 2 * size]], [f"{args.path}@0", f"{args.path}@{size:#x}"]
    if args.path is not None:
        parser.error("give either PATH or --image, not both")
    if args.offset:
        return _offset_inputs(args, parser)
    if args.partition is None or not args.file:
        parser.error("--image needs --partition and --file")
    if len(args.file) > 2:
        parser.error("--file may be given at most twice (two redundant copies)")
    if len(args.file) == 2 and args.copies == 1:
        parser.error("two --file mean two redundant copies; drop --copies 1")
    if args.copy is not None and len(args.file) != 2:
        parser.error("--copy picks one of two redundant copies: give --file twice")
    blobs = diskimage.read_partition_files(args.image, args.partition, args.file)
    sources = [f"{args.image}:{args.partition}:{n}" for n in args.file]
    return blobs, sources


def _offset_inputs(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[list[bytes], list[str]]:
    """The copies at raw offsets of --image, or of its --partition, as fw_env.config
    names them (`/dev/mmcblk0 0x400000 0x4000`, `/dev/mmcblk0p1 0x0 0x4000`): the
    same description (`EnvLocation`) a target's `ab-harness.env` makes."""
    if args.file:
        parser.error("--offset reads raw bytes, not files: drop --file")
    if args.size is None:
        parser.error("--offset needs --size (CONFIG_ENV_SIZE: the bytes of each copy)")
    if len(args.offset) > 2:
        parser.error("--offset may be given at most twice (two redundant copies)")
    if len(args.offset) == 2 and args.copies == 1:
        parser.error("two --offset mean two redundant copies; drop --copies 1")
    if args.copy is not None and len(args.offset) != 2:
        parser.error("--copy picks one of two redundant copies: give --offset twice")
    location = EnvLocation(args.partition or 0, (), args.size, tuple(args.offset))
    blobs = read_copies(args.image, location.disk_offsets(args.image), args.size)
    where = f"{args.image}:p{args.partition}" if args.partition else str(args.image)
    return blobs, [f"{where}@{offset:#x}" for offset in args.offset]


def _show_grub_mender(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Both GRUB copies and locks, which one GRUB boots with and why; exit 1 when
    GRUB would reject its values."""
    if args.image is None or args.partition is None or args.file or args.path is not None:
        parser.error("--grub-mender reads --image and --partition (no PATH, no --file)")
    blobs = diskimage.read_partition_files(args.image, args.partition, grub_mender.FILES)
    state = grub_mender.read_state(dict(zip(grub_mender.FILES, blobs, strict=True)))
    for copy in state.copies:
        print(f"# {copy.describe()}")
    print(f"# GRUB uses copy {state.used}: {state.why}")
    for problem in state.problems:
        print(f"# REJECTED: {problem} (GRUB then boots slot A unless the env says B)")
    _print_vars(state.vars)
    return 0 if state.valid else 1


def _show_one_copy(blobs: list[bytes], sources: list[str], copy: int, size: int | None) -> int:
    """Print one redundant copy on its own: its flags, CRC32 status and variables."""
    blob, source = blobs[copy - 1], sources[copy - 1]
    if detect_format(blob) == "grub":
        raise HarnessConfigError(
            f"{source} is a GRUB environment block, which has one copy", "drop --copy"
        )
    found = inspect_copy(blob[:size] if size else blob, source)
    crc = (
        f"CRC32 ok ({found.crc_stored:#010x})"
        if found.crc_ok
        else f"CRC32 BAD (stored {found.crc_stored:#010x}, computed {found.crc_computed:#010x}; "
        "the bootloader skips this copy)"
    )
    print(f"# copy {copy} of 2 ({source}): flags {found.flags}, {crc}")
    _print_vars(found.vars)
    return 0 if found.crc_ok else 1


# An environment is a few KiB (U-Boot) or 1 KiB (GRUB); anything far bigger
# is not one, and must not be read whole (`env show /dev/zero`).
MAX_ENV_FILE = 1 << 20


def _read(path: Path, size: int | None) -> bytes:
    """The env file's bytes: `size` bytes when given, else the whole file up to MAX_ENV_FILE."""
    limit = size if size is not None else MAX_ENV_FILE
    try:
        with path.open("rb") as f:
            blob = f.read(limit + (0 if size is not None else 1))
    except OSError as err:
        raise HarnessConfigError(
            f"{path}: cannot read environment file ({err.strerror})",
            "check the path",
        ) from err
    if size is None and len(blob) > MAX_ENV_FILE:
        raise HarnessConfigError(
            f"{path}: larger than {MAX_ENV_FILE >> 20} MiB, so not an environment file",
            "pass --size BYTES (and --copies 2) to read the environment at the start of "
            "a larger file or device",
        )
    return blob


def _print_vars(env_vars: Mapping[str, str]) -> None:
    for key in sorted(env_vars):
        line = f"{key}={env_vars[key]}"
        # Bytes that were not UTF-8 are shown as \xNN rather than crashing the print.
        print(line.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))


def _offset(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an offset (decimal or 0x hex)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def _byte_count(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a byte count (decimal or 0x hex)"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value
