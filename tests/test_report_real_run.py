"""Reports of a real run: two scenarios run on the arm64 QEMU target (a
rollback after a failed health check, and a power cut in the first boot of
the new slot), then their timeline pictures, JUnit properties, Allure
results and the HTML report (opened in a real headless Chromium) are
checked against the evidence the run wrote (boots.json, fault proofs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main as cli_main
from harness.images import default_cache_dir
from harness.options import option
from harness.report.junit_allure import PROPERTY_NAMES
from harness.report.summary import (
    ORACLE,
    ORACLE_JUDGED,
    ORACLE_UNJUDGED,
    ORACLE_VIOLATIONS,
)
from harness.report.timeline import HEALTH_FILL, LEFT

ORACLE_PROPERTIES = (ORACLE, ORACLE_JUDGED, ORACLE_UNJUDGED, ORACLE_VIOLATIONS)
pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(
        shutil.which("qemu-system-aarch64") is None, reason="qemu-system-aarch64 not installed"
    ),
]

REPO = Path(__file__).resolve().parents[1]
ROLLBACK = "scenarios/test_failed_health_rolls_back.py::test_failed_health_check_rolls_back_to_a[1]"
POWER_CUT = (
    "scenarios/test_power_cut_in_first_boot.py::test_power_cut_before_the_first_health_check[1-A]"
)
SVG = "{http://www.w3.org/2000/svg}"


@dataclass(frozen=True)
class RealRun:
    out: Path
    results: Path
    run: Path
    tests: dict[str, dict[str, Any]]  # run.json's tests by node id

    def folder(self, nodeid: str) -> Path:
        return Path(self.tests[nodeid]["properties"]["evidence"])

    def boots(self, nodeid: str) -> list[dict[str, Any]]:
        return list(json.loads((self.folder(nodeid) / "boots.json").read_text()))


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> RealRun:
    """One inner pytest run of the two scenarios, on one pytest-xdist worker (so
    the run id, the properties and the summary rows cross from a worker to the
    controller as in `make test`), one QEMU at a time."""
    out = tmp_path_factory.mktemp("real-run")
    cache = option(pytestconfig, "ab_cache") or str(default_cache_dir())
    accel = option(pytestconfig, "ab_accel") or "auto"
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:labgrid", "-q",
        "-n", "1", ROLLBACK, POWER_CUT,
        f"--ab-results={out / 'results'}", f"--ab-cache={cache}", f"--ab-accel={accel}",
        f"--junitxml={out / 'junit.xml'}", f"--alluredir={out / 'allure'}",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=500, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2/2 passed" in done.stdout  # the summary rows reached the controller
    run = (out / "results" / "latest").resolve()
    tests = {t["nodeid"]: t for t in json.loads((run / "run.json").read_text())["tests"]}
    return RealRun(out, out / "results", run, tests)


def svg_of(folder: Path) -> ET.Element:
    return ET.parse(folder / "timeline.svg").getroot()


def x_of(root: ET.Element, seconds: float) -> float:
    return LEFT + seconds / float(root.attrib["data-seconds-per-px"])


def test_run_folder_layout(real_run: RealRun) -> None:
    assert real_run.run.parent == real_run.results
    assert re.fullmatch(r"\d{8}-\d{6}\.\d{3}-\d+", real_run.run.name)
    assert sorted(real_run.tests) == sorted([ROLLBACK, POWER_CUT])
    for nodeid, test in real_run.tests.items():
        assert test["outcome"] == "passed", nodeid
        assert real_run.folder(nodeid).parent == real_run.run
        for name in ("boots.json", "events.json", "timeline.svg", "timeline.png", "serial.log"):
            assert (real_run.folder(nodeid) / name).stat().st_size > 0, name


def test_timeline_draws_each_boot_in_the_lane_of_the_slot_chosen(real_run: RealRun) -> None:
    boots = real_run.boots(ROLLBACK)
    root = svg_of(real_run.folder(ROLLBACK))

    bars = root.findall(f".//{SVG}g[@class='boot']")
    assert [b["bootloader"]["slot"] for b in boots] == ["A", "B", "A"]  # the rollback
    assert len(bars) == len(boots)
    lanes = {
        t.text: float(t.attrib["y"]) for t in root.iter(f"{SVG}text") if t.get("class") == "lane"
    }
    assert set(lanes) == {"slot A", "slot B"}
    for bar, boot in zip(bars, boots, strict=True):
        loader = boot["bootloader"]
        rect = bar.find(f"{SVG}rect")
        assert rect is not None
        assert bar.attrib["data-slot"] == loader["slot"]
        assert bar.attrib["data-bootcount"] == str(loader["bootcount"])
        assert bar.attrib["data-health"] == boot["health"]
        assert rect.attrib["fill"] == HEALTH_FILL[boot["health"]]
        # The bar sits in its slot's lane and begins when the boot began.
        top, height = float(rect.attrib["y"]), float(rect.attrib["height"])
        assert top < lanes[f"slot {loader['slot']}"] < top + height
        assert float(rect.attrib["x"]) == pytest.approx(x_of(root, boot["started_s"]), abs=0.05)
        texts = {t.get("class"): t.text or "" for t in bar.iter(f"{SVG}text")}
        ua = int(loader["upgrade_available"])
        assert texts["boot-env"] == f"bootcount={loader['bootcount']} upgrade_available={ua}"
        assert texts["boot-label"].startswith(f"#{boot['index']} {loader['slot']} ")
    # Boot 2 (B, failed health) never reached a shell; 1 and 3 did, marked where.
    notches = [bar.find(f"{SVG}path[@class='ready']") for bar in bars]
    assert [n is not None for n in notches] == [True, False, True]
    steps = [g.attrib["data-name"] for g in root.iter(f"{SVG}g") if g.get("class") == "step"]
    assert steps[:3] == ["power on", "install v2-bad", "reboot"]
    assert root.findall(f".//{SVG}g[@class='fault']") == []


def test_timeline_marks_the_power_cut_where_it_landed(real_run: RealRun) -> None:
    folder = real_run.folder(POWER_CUT)
    proofs = [json.loads(p.read_text()) for p in sorted(folder.glob("fault-*.json"))]
    root = svg_of(folder)

    marks = root.findall(f".//{SVG}g[@class='fault']")
    assert [p["kind"] for p in proofs] == ["power-cut-console"]
    assert [m.attrib["data-kind"] for m in marks] == ["power-cut-console"]
    line = marks[0].find(f"{SVG}line")
    assert line is not None
    # Within half a pixel: the scale is written rounded, so a long run drifts by a few hundredths.
    assert float(line.attrib["x1"]) == pytest.approx(x_of(root, proofs[0]["when"]), abs=0.5)
    # The cut landed inside the second boot (the first boot of B), after it began.
    bars = root.findall(f".//{SVG}g[@class='boot']")
    inside = [
        int(b.attrib["data-index"])
        for b in bars
        if float(b.attrib["data-start"]) <= proofs[0]["when"] < float(b.attrib["data-end"])
    ]
    assert inside == [2]


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_timeline_png_is_the_svg_in_pixels(real_run: RealRun) -> None:
    from PIL import Image  # CairoSVG's own dependency

    folder = real_run.folder(ROLLBACK)
    root = svg_of(folder)
    assert png_size(folder / "timeline.png") == (
        int(root.attrib["width"]),
        int(root.attrib["height"]),
    )
    with Image.open(folder / "timeline.png") as image:
        rgb = image.convert("RGB")
        pixels = [
            rgb.getpixel((x, y)) for x in range(0, rgb.width, 3) for y in range(0, rgb.height, 3)
        ]
    # Painted, not blank: the green bars (health pass) and the red one (fail).
    assert any(g > r + 60 for r, g, _b in pixels)
    assert any(r > g + 80 for r, g, _b in pixels)


def test_junit_properties_describe_each_test(real_run: RealRun) -> None:
    cases = ET.parse(real_run.out / "junit.xml").getroot().iter("testcase")
    seen = 0
    for case in cases:
        props = {p.attrib["name"]: p.attrib["value"] for p in case.iter("property")}
        # The oracle's counts, then the test's description, and nothing else (no summary row).
        assert list(props) == [*ORACLE_PROPERTIES, *PROPERTY_NAMES]
        nodeid = next(n for n in real_run.tests if n.endswith("::" + case.attrib["name"]))
        boots = real_run.boots(nodeid)
        assert (props[ORACLE_JUDGED], props[ORACLE_UNJUDGED]) == (str(len(boots)), "0")
        assert props["target"] == "qemu-arm64-uboot"
        assert props["bootloader"] == "uboot"
        assert props["client"] == "ab-update"
        assert props["accelerator"] in ("kvm", "tcg")
        assert re.fullmatch(r"[0-9a-f]{16}", props["image_hash"])
        assert props["image"] == f"arm64-uboot-{props['image_hash']}"
        assert props["boots"] == str(len(boots))
        assert props["slots"] == ",".join(b["bootloader"]["slot"] or "?" for b in boots)
        assert Path(props["evidence"]) == real_run.folder(nodeid)
        seen += 1
    assert seen == 2


def allure_results(out: Path) -> dict[str, dict[str, Any]]:
    results = [json.loads(p.read_text()) for p in (out / "allure").glob("*-result.json")]
    return {r["name"]: r for r in results}


def test_allure_labels_environment_and_body_attachments(real_run: RealRun) -> None:
    results = allure_results(real_run.out)
    rollback = results["test_failed_health_check_rolls_back_to_a[1]"]
    cut = results["test_power_cut_before_the_first_health_check[1-A]"]

    def labels(result: dict[str, Any], name: str) -> list[str]:
        return [label["value"] for label in result["labels"] if label["name"] == name]

    for result in (rollback, cut):
        assert labels(result, "target") == ["qemu-arm64-uboot"]
        assert labels(result, "bootloader") == ["uboot"]
        assert labels(result, "client") == ["ab-update"]
        names = [a["name"] for a in result["attachments"]]
        assert {"boots", "boot timeline", "boot timeline (png)", "boot-01"} <= set(names)
    assert labels(cut, "fault") == ["power-cut-console"]
    assert labels(rollback, "fault") == []
    # Nothing about the boots hangs under a fixture's teardown.
    for container in (real_run.out / "allure").glob("*-container.json"):
        for after in json.loads(container.read_text()).get("afters", []):
            assert not [a for a in after.get("attachments", []) if "boot" in a["name"]], after
    env = dict(
        line.split("=", 1)
        for line in (real_run.out / "allure" / "environment.properties").read_text().splitlines()
    )
    assert env["target"] == "qemu-arm64-uboot"
    assert env["run_id"] == real_run.run.name
    assert env["accelerator"] in ("kvm", "tcg")
    assert (real_run.out / "allure" / "categories.json").is_file()


class _Dom(HTMLParser):
    """Sections (tests), boot rows and timeline bars of a DOM dump."""

    def __init__(self) -> None:
        super().__init__()
        self.tests: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "section" and "test" in classes:
            self.tests.append({"nodeid": a.get("data-nodeid"), "rows": [], "bars": []})
        elif tag == "tr" and "boot" in classes:
            self.tests[-1]["rows"].append(a.get("data-slot"))
        elif tag == "g" and "boot" in classes:
            self.tests[-1]["bars"].append(a.get("data-slot"))


def test_html_report_shows_tests_and_boots_in_a_real_browser(
    real_run: RealRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("chromium not installed (scripts/setup.sh installs it)")
    report = real_run.out / "report-cli.html"

    assert cli_main(["report", str(real_run.results), "--out", str(report)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {report}"

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    env = {**os.environ, "HOME": str(tmp_path)}  # the browser's profile stays in tmp
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=60, check=True, env=env,
    ).stdout  # fmt: skip
    parser = _Dom()
    parser.feed(dom)
    by_id = {t["nodeid"]: t for t in parser.tests}
    assert sorted(by_id) == sorted(real_run.tests)
    for nodeid in real_run.tests:
        slots = [b["bootloader"]["slot"] or "" for b in real_run.boots(nodeid)]
        assert by_id[nodeid]["rows"] == slots
        assert by_id[nodeid]["bars"] == slots
    assert "2 tests: 2 passed" in dom
    # Evidence links are relative and lead to files that exist.
    for href in re.findall(r"href=\"([^\"#]+)\"", dom):
        assert not href.startswith("/")
        assert (report.parent / href).exists(), href

    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, *flags, "--window-size=1280,1400", f"--screenshot={shot}", report.as_uri()],
        capture_output=True, timeout=60, check=True, env=env,
    )  # fmt: skip
    assert shot.stat().st_size > 10_000
    assert png_size(shot) == (1280, 1400)
