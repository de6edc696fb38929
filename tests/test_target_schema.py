"""The key reference and the loader come from one schema: every key the loader
accepts is in the reference and every key in the reference is accepted; bad
values are one line naming the file and the key."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import HarnessConfigError
from harness.targets.target import default_targets_dir, load_target
from harness.targets.targetschema import SECTIONS, key_reference

STOCK = yaml.safe_load((default_targets_dir() / "qemu-arm64-uboot-stock.yaml").read_text())
DEVICE = {"type": "my-board"}


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def error(tmp_path: Path, data: dict[str, Any]) -> str:
    path = write(tmp_path, data)
    with pytest.raises(HarnessConfigError) as info:
        load_target(str(path))
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    return message


def reference_keys() -> dict[str, set[str]]:
    """Section heading -> the keys its table lists, read from the Markdown."""
    found: dict[str, set[str]] = {}
    heading = ""
    for line in key_reference().splitlines():
        if line.startswith("## "):
            heading = line[3:].strip("`")
            found[heading] = set()
        elif heading and (key := re.match(r"\| `([^`]+)` \|", line)):
            found[heading].add(key.group(1))
    return found


def with_section(where: str, content: dict[str, Any]) -> dict[str, Any]:
    """The stock target with `content` merged into the section `where`."""
    data = copy.deepcopy(STOCK)
    ab = data["ab-harness"]
    if where == "ab-harness":
        ab.update(content)
    elif where == "ab-harness.releases.NAME":
        ab["releases"] = {"v2": {"path": "v2.ext4", "version": "2", **content}}
        ab["device"] = DEVICE
    elif where.startswith("ab-harness.delivery"):
        method = where.split("(")[1].rstrip(")")
        ab["delivery"] = {"method": method, **content}
    else:
        base = {"board": {"disk": "/dev/vda", "env_dir": "/uboot"}, "device": DEVICE}
        name = where.split(".")[1]
        ab[name] = {**base.get(name, {}), **ab.get(name, {}), **content}
    return data


def accepted_keys(tmp_path: Path, where: str) -> set[str]:
    """The keys the loader names as allowed when a section gets an unknown one."""
    message = error(tmp_path, with_section(where, {"zz_unknown": 1}))
    listed = re.search(r"\((?:allowed|its options): ([^)]*)\)", message)
    assert listed is not None, message
    return set(listed.group(1).split(", "))


def test_every_section_of_the_reference_lists_the_keys_the_loader_accepts(
    tmp_path: Path,
) -> None:
    reference = reference_keys()
    assert {s.path for s in SECTIONS} <= set(reference)
    for where, keys in reference.items():
        assert accepted_keys(tmp_path, where) == keys, where


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [(s.path, k.name, k.example) for s in SECTIONS for k in s.keys],
    ids=[f"{s.path}.{k.name}" for s in SECTIONS for k in s.keys],
)
def test_every_key_of_the_reference_is_accepted(
    tmp_path: Path, where: str, key: str, value: Any
) -> None:
    data = with_section(where, {key: value})
    try:
        load_target(str(write(tmp_path, data)))
    except HarnessConfigError as err:  # another key's rule may refuse the mix, never the key
        assert "unknown key" not in str(err), str(err)


BAD = {
    "a type": (
        {"device": {**DEVICE, "running_slot": 5}},
        "'ab-harness.device.running_slot' must be str, got 5",
    ),
    "an allowed value": (
        {"device": {**DEVICE, "running_slot": "proc"}},
        "'ab-harness.device.running_slot' is 'proc'; supported: cmdline, mounts",
    ),
    "a device without a type": (
        {"device": {"health_check": "none"}},
        "missing key 'ab-harness.device.type' (the section is given)",
    ),
    "releases without a device type": (
        {"releases": {"v2": {"path": "v2.ext4", "version": "2"}}},
        "missing key 'ab-harness.device.type' (the target gives its own releases)",
    ),
    "a bad health regex": (
        {"device": {**DEVICE, "health_fail": "broken ("}},
        "'ab-harness.device.health_fail' is not a valid regex",
    ),
    "a delivery option of another delivery": (
        {"delivery": {"method": "ssh", "server_address": "10.0.2.2"}},
        "delivery 'ssh' has no option 'server_address' (its options: device_dir, timeout_s)",
    ),
    "a client": ({"update_client": "hawkbit"}, "'ab-harness.update_client' is 'hawkbit'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_value_is_one_line_naming_file_and_key(tmp_path: Path, case: str) -> None:
    content, expected = BAD[case]
    assert expected in error(tmp_path, with_section("ab-harness", content))


def test_the_reference_is_markdown_tables_with_every_default() -> None:
    text = key_reference()
    assert text.startswith("# Target keys")
    assert "| `ready_marker` | string | `ab-init: ready slot=(?P<slot>\\w+)" in text
    assert "| `type` | string | required |" in text
    assert "| `running_slot` | string | `cmdline` | `cmdline`, `mounts` |" in text
