"""The timeline picture from plain facts: where a bar ends, how it is
coloured, and a fault that never fired. (The picture of a real run is
checked in test_report_real_run.py.)"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.report.timeline import (
    FAILED_FILL,
    HEALTH_FILL,
    UNKNOWN_FILL,
    TimelineData,
    timeline_svg,
)

SVG = "{http://www.w3.org/2000/svg}"


def boot(index: int, at: float, slot: str | None, **extra: object) -> dict[str, object]:
    loader = {"slot": slot, "bootcount": index, "upgrade_available": slot == "B", "saves": []}
    return {"index": index, "started_s": at, "bootloader": loader, **extra}


FACTS = [
    boot(1, 0.2, "A", health="pass", seconds_to_ready=3.0),
    boot(2, 6.0, "B", health=None, failure="kernel panic: Attempted to kill init!"),
    boot(3, 11.0, None),  # a record cut short: no decision, no failure seen
]


def test_bars_last_until_the_next_boot_and_are_coloured_by_what_happened() -> None:
    data = TimelineData.from_facts("t", FACTS, ended_s=20.0)

    assert [(b.start, b.end) for b in data.boots] == [(0.2, 6.0), (6.0, 11.0), (11.0, 20.0)]
    assert [b.fill for b in data.boots] == [HEALTH_FILL["pass"], FAILED_FILL, UNKNOWN_FILL]
    root = ET.fromstring(timeline_svg(data))
    lanes = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "lane"]
    assert lanes == ["slot A", "slot B", "slot ?"]


def test_a_fault_that_never_fired_is_named_not_placed() -> None:
    faults = [
        {"kind": "power-cut-after-bytes", "what": "cut after 8 MiB", "when": None, "fired": False},
        {"kind": "write-errors", "what": "EIO on B", "when": 7.5, "fired": True},
    ]
    root = ET.fromstring(timeline_svg(TimelineData.from_facts("t", FACTS, faults, ended_s=20.0)))

    placed = [g.attrib["data-kind"] for g in root.iter(f"{SVG}g") if g.get("class") == "fault"]
    missing = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "fault-missing"]
    assert placed == ["write-errors"]
    assert missing == ["fault power-cut-after-bytes did not fire"]


def test_a_test_with_no_boots_still_draws() -> None:
    root = ET.fromstring(timeline_svg(TimelineData.from_facts("no boots", [], ended_s=0.5)))

    assert root.findall(f".//{SVG}g[@class='boot']") == []
    assert root.find(f"{SVG}title") is not None
