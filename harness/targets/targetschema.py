"""Every key of a target YAML's `ab-harness:` section, as data.

One table says each key's type, default, allowed values and meaning. The
loader (`harness.targets.target`) validates against it, so a key it does not list
is refused with the list it does; `key_reference()` renders the same table
as the Markdown reference the documentation includes, so the reference
cannot name a key the loader refuses, or miss one it accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from harness.errors import HarnessConfigError

BOOTLOADERS = ("uboot", "grub-mender", "uboot-mender", "uboot-rauc", "grub-rauc", "uboot-swupdate")
KNOWN_CLIENTS = ("ab-update", "mender", "rauc", "swupdate")
DESIGNS = ("hardened", "stock")
KNOWN_DELIVERIES = ("hotplug", "network", "ssh", "usbstorage")
RUNNING_SLOT = ("cmdline", "mounts")
HEALTH_CHECKS = ("boot", "none")
DEFAULT_READY_MARKER = r"ab-init: ready slot=(?P<slot>\w+) version=(?P<version>\S+)(?=[\r\n])"
DEFAULT_HEALTH_PASS = r"ab-health: PASS"  # noqa: S105 (a console line, not a password)
DEFAULT_HEALTH_FAIL = r"ab-health: FAILED"


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()
NONE = type(None)
_TYPE_WORDS = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "list",
    dict: "mapping",
    NONE: "null",
}


@dataclass(frozen=True)
class Key:
    """One key: what it holds, its default, and one line on what it means."""

    name: str
    kinds: tuple[type, ...]
    doc: str
    default: Any = REQUIRED
    allowed: tuple[str, ...] = ()
    default_doc: str | None = None  # a default computed from other keys, said in words
    example: Any = None  # a valid value (the reference's test sets each key to it)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def type_words(self) -> str:
        return " or ".join(_TYPE_WORDS[k] for k in self.kinds) or "as its meaning says"


@dataclass(frozen=True)
class Section:
    """A mapping of the YAML: its keys, and whether other keys are options of
    something named elsewhere (a delivery's, a rig's), checked there."""

    path: str
    doc: str
    keys: tuple[Key, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys)

    def key(self, name: str) -> Key:
        return next(k for k in self.keys if k.name == name)


def _delivery_options() -> dict[str, Mapping[str, str]]:
    """Each delivery's options, as its own module lists them (imported late:
    the delivery modules are heavier than a YAML check needs up front)."""
    from harness.delivery import network, ssh, usb_storage

    return {"network": network.OPTIONS, "ssh": ssh.OPTIONS, "usbstorage": usb_storage.OPTIONS}


def _rig_options() -> Mapping[str, str]:
    from harness.lab.rig import RIG_OPTIONS

    return RIG_OPTIONS


# One line per key, its meaning below it: a table, kept as one.
# fmt: off
SECTIONS: tuple[Section, ...] = (
    Section("ab-harness", (
        "What labgrid does not know about the target."),
    (
        Key("image", (str, NONE), default=None, example="arm64-uboot",
            doc="the recipe in qemu-images/ whose outputs `@image:KEY` names; none for a target "
                "naming its own files by path"),
        Key("bootloader", (str,), allowed=BOOTLOADERS, example="uboot-mender",
            doc="the bootloader contract the device runs"),
        Key("env", (dict,), example={"offsets": [0x400000, 0x800000], "size": 0x4000},
            doc="where the bootloader keeps its env (see ab-harness.env)"),
        Key("slots", (dict,), example={"A": 2, "B": 3},
            doc="the two slot names and the partition number of each"),
        Key("boot_timeout_s", (int, float), default=60, example=90,
            doc="seconds one boot may take before the device counts as hung"),
        Key("update_client", (str,), default="ab-update", allowed=KNOWN_CLIENTS,
            example="mender",
            doc="the update client the harness drives on the device"),
        Key("delivery", (str, dict), default=None, allowed=KNOWN_DELIVERIES,
            default_doc="hotplug on QEMU, none elsewhere", example="network",
            doc="how a release reaches the device: a name, or a mapping with `method:` and that "
                "delivery's options"),
        Key("board", (dict, NONE), default=None,
            example={"disk": "/dev/mmcblk0", "env_dir": "/uboot"},
            doc="how a device with no host view of its disk names its storage "
                "(see ab-harness.board)"),
        Key("rig", (dict, NONE), default=None, example={"memory": "512M"},
            doc="a virtual board the harness starts per test (see ab-harness.rig)"),
        Key("acquire_place_s", (int, float, NONE), default=None, example=600,
            doc="seconds to wait for the target's labgrid place while another user holds "
                "it; none: the user acquires it"),
        Key("host_ports", (list,), default=[], example=[2222],
            doc="placeholder port numbers in the labgrid part, each replaced by a free host "
                "port per test"),
        Key("design", (str,), default="hardened", allowed=DESIGNS, example="stock",
            doc="the A/B stack as shipped (stock) or with the reference image's fixes (hardened); "
                "known findings apply to one or the other"),
        Key("releases", (dict,), default={},
            example={"v2": {"path": "rootfs-v2.ext4", "version": "2"}},
            doc="the user's own releases by name (see ab-harness.releases.NAME)"),
        Key("device", (dict,), default={}, example={"type": "my-board"},
            doc="the device's own conventions (see ab-harness.device)"),
    )),
    Section("ab-harness.env", (
        "Where the env lives, as /etc/fw_env.config says it: files on a partition "
        "(`uboot`, `grub-mender`), or raw byte offsets of the disk or of one partition "
        "(`uboot-mender`)."),
    (
        Key("size", (int, str), example=0x4000,
            doc='bytes of each env copy (CONFIG_ENV_SIZE), a number or a string such as "0x4000"'),
        Key("partition", (int, NONE), default=None, example=1,
            default_doc="files: required; offsets: none (the whole disk)",
            doc="files: the partition holding them; offsets: the partition they are relative to "
                "(fw_env.config's `/dev/mmcblk0p1`)"),
        Key("files", (list, NONE), default=None, example=["uboot.env", "uboot-redund.env"],
            doc="the env file names on the partition: one or two (two: redundant copies); "
                "grub-mender: its four files"),
        Key("offsets", (list, NONE), default=None, example=[0x400000, 0x800000],
            doc="one or two byte offsets of the copies (CONFIG_ENV_OFFSET, "
                "CONFIG_ENV_OFFSET_REDUND), each a multiple of 512"),
        Key("default_slot", (str, NONE), default=None, example="A",
            default_doc="the first slot of ab-harness.slots",
            doc="the slot the bootloader's compiled-in default env boots when no env copy "
                "is valid"),
    )),
    Section("ab-harness.device", (
        "The device's own conventions; each default is the reference image's. `type` is "
        "required once the section is given."),
    (
        Key("type", (str,), example="my-board",
            doc="the device type its update client knows it by (Mender's device_type; "
                "releases are built for it)"),
        Key("ready_marker", (str,), default=DEFAULT_READY_MARKER,
            example=r'ready slot=(?P<slot>\w+)',
            doc="regex of the console line that says a boot is up and ready; named groups "
                "`slot` and `version`, where given, are read"),
        Key("running_slot", (str,), default="cmdline", allowed=RUNNING_SLOT, example="mounts",
            doc="how the running slot is learned on the device: the root= device of "
                "/proc/cmdline, or the device mounted at / (the mount table, for a root= given "
                "as PARTUUID)"),
        Key("slot_file", (str, NONE), default="/etc/slot", example=None,
            doc="a file naming the running slot, checked against the root device; null: none"),
        Key("version_file", (str, NONE), default="/etc/version", example="/etc/release",
            doc="the file holding the running release's version; null: none"),
        Key("health_check", (str,), default="boot", allowed=HEALTH_CHECKS, example="none",
            doc="boot: the image checks its health at each boot and prints a verdict; none: it has "
                "none, and the scenarios needing one do not run"),
        Key("health_pass", (str,), default=DEFAULT_HEALTH_PASS, example="health: ok",
            doc="regex of the console line of a passed health check"),
        Key("health_fail", (str,), default=DEFAULT_HEALTH_FAIL, example="health: bad",
            doc="regex of the console line of a failed health check"),
        Key("health_dir", (str, NONE), default="/etc/health.d", example="/etc/checks.d",
            doc="where a derived failing health check goes (drop-in checks); null: the device has "
                "none"),
        Key("init", (str,), default="/sbin/init", example="/lib/systemd/systemd",
            doc="the init a derived release replaces"),
        Key("kernel", (str, NONE), default=None, example="/boot/Image",
            default_doc="the first of /boot/Image, zImage, bzImage, vmlinuz",
            doc="the kernel file a derived release breaks"),
        Key("shell", (str,), default="/bin/sh", example="/bin/bash",
            doc="the shell the derived init scripts run with"),
    )),
    Section("ab-harness.releases.NAME", (
        "One release the user gives: a raw rootfs image and its version."),
    (
        Key("path", (str,), example="rootfs-v2.ext4",
            doc="the rootfs image (relative to the YAML)"),
        Key("version", (str, int), example="2",
            doc="the version as the device reports it"),
    )),
    Section("ab-harness.board", (
        "How a device with no host view of its disk names its storage."),
    (
        Key("disk", (str,), example="/dev/mmcblk0",
            doc="its boot disk as Linux names it"),
        Key("env_dir", (str,), example="/uboot",
            doc="where the env partition is mounted"),
        Key("partition_prefix", (str,), default="", example="p",
            doc="between the disk and a partition number (`p`: /dev/mmcblk0p2)"),
    )),
)
# fmt: on


def section(path: str) -> Section:
    return next(s for s in SECTIONS if s.path == path)


def _option_sections() -> tuple[Section, ...]:
    """The delivery's and the rig's options, from the modules that use them."""
    found = [
        Section(
            f"ab-harness.delivery ({method})",
            f"Options of the `{method}` delivery, beside `method: {method}`.",
            tuple(Key(n, (), doc, None, default_doc="-") for n, doc in options.items()),
        )
        for method, options in _delivery_options().items()
    ]
    rig = tuple(Key(n, (), doc, None, default_doc="-") for n, doc in _rig_options().items())
    return (*found, Section("ab-harness.rig", "Options of the virtual board.", rig))


def delivery_option_names(method: str) -> tuple[str, ...]:
    """The options delivery `method` takes (none for hotplug)."""
    return tuple(_delivery_options().get(method, {}))


def rig_option_names() -> tuple[str, ...]:
    return tuple(_rig_options())


class Checked:
    """One YAML mapping checked against its section: no unknown key, each value of
    its type and allowed, the defaults filled in; errors name file and key."""

    def __init__(self, data: Any, where: str, path: Path, schema: Section | None = None) -> None:
        self.where = where
        self.path = path
        if not isinstance(data, dict):
            self.fail(f"'{where}' must be a mapping, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.values: dict[str, Any] = {}
        if schema is not None:
            self.reject_unknown(set(schema.names))
            for key in schema.keys:
                self.values[key.name] = self.get(key.name, key.kinds, key.default)
                if key.allowed and isinstance(self.values[key.name], str):
                    self.allowed(key.name, key.allowed)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def fail(self, cause: str) -> NoReturn:
        raise HarnessConfigError(f"{self.path}: {cause}", f"fix the target YAML ({self.where})")

    def reject_unknown(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.data) - allowed, key=str)
        if unknown:
            self.fail(
                f"unknown key '{self.where}.{unknown[0]}' (allowed: {', '.join(sorted(allowed))})"
            )

    def allowed(self, name: str, choices: tuple[str, ...]) -> None:
        value = self.data.get(name)
        if name in self.data and value not in choices:
            self.fail(f"'{self.where}.{name}' is {value!r}; supported: {', '.join(choices)}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = REQUIRED) -> Any:
        if key not in self.data:
            if default is REQUIRED:
                self.fail(f"missing key '{self.where}.{key}'")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # YAML's true/false are ints to isinstance; a number key must not accept them.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = "/".join(k.__name__ for k in kinds if k is not NONE)
            self.fail(f"'{self.where}.{key}' must be {names}, got {value!r}")
        return value


def key_reference() -> str:
    """The Markdown reference of every `ab-harness:` key, made from the table the
    loader validates against."""
    out = [
        "# Target keys (`ab-harness:`)",
        "",
        "Every key the loader accepts under `ab-harness:`, made from the schema it "
        "validates against (`harness/targets/targetschema.py`). A key not listed here is refused.",
    ]
    for part in (*SECTIONS, *_option_sections()):
        out += ["", f"## `{part.path}`", "", part.doc, ""]
        out += ["| Key | Type | Default | Allowed | Meaning |", "|---|---|---|---|---|"]
        for key in part.keys:
            if key.required:
                default = "required"
            elif key.default_doc is not None:
                default = key.default_doc
            else:
                default = f"`{_yaml_word(key.default)}`"
            allowed = ", ".join(f"`{a}`" for a in key.allowed) or "-"
            cells = (f"`{key.name}`", key.type_words(), default, allowed, key.doc)
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out) + "\n"


def _yaml_word(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if value != "" else '""'
