"""Target files: the reference target parses, every broken key is a one-line error,
and materialize() writes a labgrid environment that labgrid itself accepts."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import EnvironmentMissing, HarnessConfigError
from harness.images import ImageSet
from harness.targets.target import (
    DEFAULT_READY_MARKER,
    EnvLocation,
    TargetSpec,
    default_targets_dir,
    load_target,
    materialize,
)

REFERENCE = default_targets_dir() / "qemu-arm64-uboot.yaml"


def reference_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(REFERENCE.read_text())
    return data


def write_target(tmp_path: Path, data: dict[str, Any], name: str = "broken") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def config_error(path: Path) -> str:
    with pytest.raises(HarnessConfigError) as info:
        load_target(str(path))
    message = str(info.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    return message


# -- the reference target ------------------------------------------------------------


def test_reference_target_parses() -> None:
    spec = load_target("qemu-arm64-uboot")

    assert isinstance(spec, TargetSpec)
    assert spec.name == "qemu-arm64-uboot"
    assert spec.path == REFERENCE
    assert spec.image == "arm64-uboot"
    assert spec.bootloader == "uboot"
    assert spec.env == EnvLocation(
        partition=1, files=("uboot.env", "uboot-redund.env"), size=0x4000
    )
    assert dict(spec.slots) == {"A": 2, "B": 3}
    assert spec.slot_names == ("A", "B")
    assert spec.slot_of_partition(3) == "B"
    assert spec.boot_timeout_s == 60.0
    assert spec.ready_marker == DEFAULT_READY_MARKER
    # The labgrid part is everything but the harness section.
    assert set(spec.labgrid) == {"imports", "targets", "tools", "images"}
    assert "ABBootStrategy" in spec.labgrid["targets"]["main"]["drivers"]


def test_reference_target_by_path_is_the_same_spec() -> None:
    assert load_target(str(REFERENCE)) == load_target("qemu-arm64-uboot")


def test_partition_that_is_no_slot_is_a_one_line_error() -> None:
    spec = load_target("qemu-arm64-uboot")

    with pytest.raises(HarnessConfigError) as info:
        spec.slot_of_partition(4)

    assert "\n" not in str(info.value)
    assert "partition 4 is not a slot" in str(info.value)


def test_unknown_target_name_lists_known_targets() -> None:
    with pytest.raises(HarnessConfigError) as info:
        load_target("no-such-board")

    message = str(info.value)
    assert "\n" not in message
    assert "unknown target 'no-such-board'" in message
    assert "qemu-arm64-uboot" in message


def test_unknown_target_name_lists_targets_of_the_given_dir(tmp_path: Path) -> None:
    for name in ("board-one", "board-two"):
        write_target(tmp_path, reference_data(), name)

    with pytest.raises(HarnessConfigError, match=r"use one of: board-one, board-two \("):
        load_target("board-three", targets_dir=tmp_path)


def test_missing_target_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(HarnessConfigError, match="does not exist"):
        load_target(str(tmp_path / "absent.yaml"))


# -- broken target files ---------------------------------------------------------------


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "syntax.yaml"
    path.write_text("targets:\n  main: x\n   drivers: 1\nab-harness: {}\n")

    message = config_error(path)

    assert "invalid YAML at line 3: mapping values are not allowed here" in message


def test_yaml_that_is_not_a_mapping_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- just\n- a list\n")

    assert "must be a mapping" in config_error(path)


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        node = data
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit


def _delete(*keys: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        node = data
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return edit


def _second_target(data: dict[str, Any]) -> None:
    data["targets"]["spare"] = copy.deepcopy(data["targets"]["main"])


def _no_strategy(data: dict[str, Any]) -> None:
    del data["targets"]["main"]["drivers"]["ABBootStrategy"]


BROKEN: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "unknown top-level key": (_set("resources", value={}), "unknown key '<top>.resources'"),
    "unknown ab-harness key": (
        _set("ab-harness", "bootlimit", value=3),
        "unknown key 'ab-harness.bootlimit'",
    ),
    "unknown env key": (_set("ab-harness", "env", "offset", value=0), "'ab-harness.env.offset'"),
    "missing ab-harness": (_delete("ab-harness"), "missing key '<top>.ab-harness'"),
    "missing env": (_delete("ab-harness", "env"), "missing key 'ab-harness.env'"),
    "missing slots": (_delete("ab-harness", "slots"), "missing key 'ab-harness.slots'"),
    "three env files": (
        _set("ab-harness", "env", "files", value=["a.env", "b.env", "c.env"]),
        "'ab-harness.env.files' must list one or two",
    ),
    "no env files": (
        _set("ab-harness", "env", "files", value=[]),
        "'ab-harness.env.files' must list one or two",
    ),
    "env size not a number": (
        _set("ab-harness", "env", "size", value="big"),
        "'ab-harness.env.size' must be a number, got 'big'",
    ),
    "env size zero": (
        _set("ab-harness", "env", "size", value=0),
        "'ab-harness.env.size' must be positive",
    ),
    "slots not ints": (
        _set("ab-harness", "slots", value={"A": "vda2", "B": "vda3"}),
        "'ab-harness.slots' must map two slot names",
    ),
    "three slots": (
        _set("ab-harness", "slots", value={"A": 2, "B": 3, "C": 4}),
        "'ab-harness.slots' must map two slot names",
    ),
    "bool slot": (
        _set("ab-harness", "slots", value={"A": True, "B": 3}),
        "'ab-harness.slots' must map two slot names",
    ),
    "bad ready_marker regex": (
        _set("ab-harness", "device", value={"type": "b", "ready_marker": "ready (slot=\\w+"}),
        "'ab-harness.device.ready_marker' is not a valid regex",
    ),
    "zero boot_timeout_s": (
        _set("ab-harness", "boot_timeout_s", value=0),
        "'ab-harness.boot_timeout_s' must be positive",
    ),
    "negative boot_timeout_s": (
        _set("ab-harness", "boot_timeout_s", value=-5.5),
        "'ab-harness.boot_timeout_s' must be positive",
    ),
    "bool partition": (
        _set("ab-harness", "env", "partition", value=True),
        "'ab-harness.env.partition' must be int, got True",
    ),
    "bool boot_timeout_s": (
        _set("ab-harness", "boot_timeout_s", value=True),
        "'ab-harness.boot_timeout_s' must be int/float, got True",
    ),
    "bool env size": (
        _set("ab-harness", "env", "size", value=True),
        "'ab-harness.env.size' must be int/str, got True",
    ),
    "unsupported bootloader": (
        _set("ab-harness", "bootloader", value="grub"),
        "'ab-harness.bootloader' is 'grub'; supported: uboot, grub-mender",
    ),
    "no strategy driver": (_no_strategy, "no strategy in 'targets.main.drivers'"),
    "two targets": (_second_target, "must define exactly one labgrid target, named 'main'"),
    "target not named main": (
        _set("targets", value={"board": {"drivers": {"ABBootStrategy": {}}}}),
        "must define exactly one labgrid target, named 'main'",
    ),
    "drivers list with a bare name": (
        _set("targets", "main", "drivers", value=["ABBootStrategy"]),
        "'targets.main.drivers' must be a mapping or a list of mappings",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_target_is_one_line_naming_file_and_key(tmp_path: Path, case: str) -> None:
    edit, expected = BROKEN[case]
    data = reference_data()
    edit(data)
    path = write_target(tmp_path, data)

    message = config_error(path)

    assert expected in message


def test_drivers_as_a_list_of_mappings_are_accepted(tmp_path: Path) -> None:
    data = reference_data()
    drivers = data["targets"]["main"]["drivers"]
    data["targets"]["main"]["drivers"] = [{name: args} for name, args in drivers.items()]

    spec = load_target(str(write_target(tmp_path, data, "listed")))

    assert spec.slots == {"A": 2, "B": 3}


def test_optional_keys_take_their_defaults(tmp_path: Path) -> None:
    data = reference_data()
    for key in ("image", "boot_timeout_s"):
        del data["ab-harness"][key]
    data["ab-harness"]["env"]["size"] = "0x2000"
    data["ab-harness"]["env"]["files"] = ["uboot.env"]

    spec = load_target(str(write_target(tmp_path, data, "minimal")))

    assert spec.image is None
    assert spec.boot_timeout_s == 60.0
    assert spec.env == EnvLocation(1, ("uboot.env",), 0x2000)


# -- materialize -------------------------------------------------------------------------


def fake_image(tmp_path: Path) -> ImageSet:
    """A directory shaped like a built image: small files and their manifest."""
    directory = tmp_path / "cache" / "arm64-uboot-0123456789abcdef"
    directory.mkdir(parents=True)
    contents = {
        "u-boot.bin": b"\x00U-Boot\xff" * 64,
        "disk.img": bytes(range(256)) * 64,
        "factory-env.pflash": b"bootdelay=0\x00" * 8,
    }
    for name, data in contents.items():
        (directory / name).write_bytes(data)
    manifest = {
        "files": {
            "bios": "u-boot.bin",
            "disk": "disk.img",
            "factory_env": "factory-env.pflash",
        },
        "payloads": {},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return ImageSet("arm64-uboot", directory, manifest)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_materialize_resolves_image_refs_and_copies_the_disk(tmp_path: Path) -> None:
    spec = load_target("qemu-arm64-uboot")
    image = fake_image(tmp_path)
    source_disk = image.file("disk")
    source_digest = digest(source_disk)
    workdir = tmp_path / "test-1"

    made = materialize(spec, workdir, image)

    assert made.labgrid_config == workdir / "labgrid-env.yaml"
    written = yaml.safe_load(made.labgrid_config.read_text())
    assert "ab-harness" not in written
    # Read-only images point into the cache; the disk is a private copy.
    assert made.images["uboot"] == image.directory / "u-boot.bin"
    assert made.images["factory-env"] == image.directory / "factory-env.pflash"
    assert made.disk is not None
    assert made.disk != source_disk
    assert made.disk.parent == workdir
    assert made.disk.read_bytes() == source_disk.read_bytes()
    assert written["images"] == {key: str(path) for key, path in made.images.items()}

    with made.disk.open("r+b") as f:
        f.write(b"written by the test")
    assert digest(source_disk) == source_digest
    # The spec itself still holds the references, for the next test.
    assert spec.labgrid["images"]["disk"] == "@image:disk"


def test_materialize_resolves_tools_to_absolute_paths(tmp_path: Path) -> None:
    spec = load_target("qemu-arm64-uboot")

    made = materialize(spec, tmp_path / "work", fake_image(tmp_path))

    tool = yaml.safe_load(made.labgrid_config.read_text())["tools"]["qemu-aarch64"]
    assert os.path.isabs(tool)
    assert Path(tool).name == "qemu-system-aarch64"
    assert os.access(tool, os.X_OK)


def test_missing_tool_says_which_package_to_install(tmp_path: Path) -> None:
    data = reference_data()
    data["tools"] = {"qemu": "qemu-system-nonexistent"}
    spec = load_target(str(write_target(tmp_path, data, "no-qemu")))

    with pytest.raises(EnvironmentMissing) as info:
        materialize(spec, tmp_path / "work", fake_image(tmp_path))

    message = str(info.value)
    assert "\n" not in message
    assert "tools.qemu" in message
    assert "apt-get install qemu-system-nonexistent" in message


def test_qemu_tool_maps_to_its_debian_package(tmp_path: Path) -> None:
    data = reference_data()
    data["tools"] = {"qemu": str(tmp_path / "bin" / "qemu-system-aarch64")}
    spec = load_target(str(write_target(tmp_path, data, "moved-qemu")))

    with pytest.raises(EnvironmentMissing, match="apt-get install qemu-system-arm "):
        materialize(spec, tmp_path / "work", fake_image(tmp_path))


def test_image_ref_without_recipe_is_a_config_error(tmp_path: Path) -> None:
    data = reference_data()
    del data["ab-harness"]["image"]
    spec = load_target(str(write_target(tmp_path, data, "no-recipe")))

    with pytest.raises(HarnessConfigError) as info:
        materialize(spec, tmp_path / "work", None)

    message = str(info.value)
    assert "\n" not in message
    assert "images.uboot uses @image:" in message
    assert "'ab-harness.image' names no recipe" in message


def test_image_ref_to_a_file_the_image_lacks_is_a_config_error(tmp_path: Path) -> None:
    data = reference_data()
    data["images"]["kernel"] = "@image:kernel"
    spec = load_target(str(write_target(tmp_path, data, "kernel")))

    with pytest.raises(HarnessConfigError, match="has no file 'kernel'"):
        materialize(spec, tmp_path / "work", fake_image(tmp_path))


def test_relative_image_paths_stay_relative_to_the_target_file(tmp_path: Path) -> None:
    # labgrid resolves relative image paths against the directory of the YAML
    # it loads; the materialized YAML lives elsewhere, so they must be made absolute.
    boards = tmp_path / "boards"
    boards.mkdir()
    (boards / "spl.bin").write_bytes(b"spl")
    data = reference_data()
    data["images"]["spl"] = "spl.bin"
    spec = load_target(str(write_target(boards, data, "board")))

    made = materialize(spec, tmp_path / "work", fake_image(tmp_path))

    assert made.images["spl"] == boards / "spl.bin"
    assert yaml.safe_load(made.labgrid_config.read_text())["images"]["spl"] == str(
        boards / "spl.bin"
    )


def test_materialized_environment_loads_in_labgrid(tmp_path: Path) -> None:
    from labgrid import Environment

    # Importing these registers ABQEMUDriver and ABBootStrategy with labgrid's
    # target factory, which get_target() below looks them up in.
    import harness.device.boot
    import harness.machines.qemu

    spec = load_target("qemu-arm64-uboot")
    made = materialize(spec, tmp_path / "work", fake_image(tmp_path))

    env = Environment(config_file=str(made.labgrid_config))
    target = env.get_target("main")

    assert target is not None
    strategy = target.get_driver(harness.device.boot.ABBootStrategy, activate=False)
    assert isinstance(strategy, harness.device.boot.ABBootStrategy)
    assert env.config.get_image_path("disk") == str(made.disk)
