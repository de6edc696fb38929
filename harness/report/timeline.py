"""The boot timeline of one test as a picture: an SVG the harness writes itself.

Time runs left to right. Each boot is a bar in the lane of the slot the
bootloader chose (a rollback is a bar jumping back a lane), labelled with
its `bootcount` and `upgrade_available` and coloured by its health result;
a tick marks the moment it reached a shell. Every injected fault is a
dashed line where it landed (its proof's `when`), and the test's steps
(power on, install, reboot) run along the top.

The data is what the evidence folder already holds (boots.json,
events.json, fault-NN-*.json), so a picture can be drawn again from a
results folder long after the run. Plain string building, no plotting
library: the SVG must stay parseable by `xml.etree` and readable in a diff.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

# Geometry, in SVG user units (px).
WIDTH = 960
LEFT = 110  # lane labels
RIGHT = 20
TOP = 34  # fault labels
STEP_ROW = 14
LANE = 46
BAR = 34
AXIS = 34
LEGEND = 18

HEALTH_FILL = {"pass": "#4caf50", "fail": "#e53935"}
FAILED_FILL = "#ff9800"  # no health result: the boot failed before (no kernel, panic, hang)
UNKNOWN_FILL = "#9e9e9e"  # no health result and no failure seen (the record was cut short)


@dataclass(frozen=True)
class Boot:
    """One boot as the timeline draws it."""

    index: int
    start: float
    end: float
    slot: str | None
    bootcount: int | None
    upgrade_available: bool | None
    health: str | None
    ready_at: float | None
    failure: str | None
    saves: int

    @property
    def label(self) -> str:
        ua = {True: "1", False: "0", None: "?"}[self.upgrade_available]
        count = "?" if self.bootcount is None else str(self.bootcount)
        return f"bootcount={count} upgrade_available={ua}"

    @property
    def outcome(self) -> str:
        if self.health is not None:
            return f"health {self.health}"
        return self.failure or (
            "reached a shell" if self.ready_at is not None else "no shell, no health result"
        )

    @property
    def fill(self) -> str:
        if self.health in HEALTH_FILL:
            return HEALTH_FILL[self.health]
        return FAILED_FILL if self.failure else UNKNOWN_FILL


@dataclass(frozen=True)
class FaultMark:
    kind: str
    what: str
    when: float | None
    fired: bool


@dataclass(frozen=True)
class StepSpan:
    name: str
    begin: float
    end: float
    depth: int


@dataclass(frozen=True)
class TimelineData:
    """Everything one picture shows: boots, faults, steps, and how long the test ran."""

    title: str
    boots: tuple[Boot, ...]
    faults: tuple[FaultMark, ...] = ()
    steps: tuple[StepSpan, ...] = ()
    ended_s: float | None = None

    @classmethod
    def from_facts(
        cls,
        title: str,
        boots: Sequence[Mapping[str, Any]],
        faults: Sequence[Mapping[str, Any]] = (),
        steps: Sequence[Mapping[str, Any]] = (),
        ended_s: float | None = None,
    ) -> TimelineData:
        """From boots.json rows, fault proofs (as JSON) and steps (events.json)."""
        starts = [float(b["started_s"]) for b in boots]
        last = max(
            [ended_s or 0.0]
            + starts
            + [float(f["when"]) for f in faults if f.get("when") is not None]
            + [float(s["end"]) for s in steps if s.get("end") is not None]
        )
        bars = []
        for n, row in enumerate(boots):
            loader = row.get("bootloader") or {}
            start = starts[n]
            ready = row.get("seconds_to_ready")
            # A boot lasts until the next one begins (or the test ends).
            end = starts[n + 1] if n + 1 < len(boots) else max(last, start)
            bars.append(
                Boot(
                    index=int(row["index"]),
                    start=start,
                    end=end,
                    slot=loader.get("slot"),
                    bootcount=loader.get("bootcount"),
                    upgrade_available=loader.get("upgrade_available"),
                    health=row.get("health"),
                    ready_at=None if ready is None else start + float(ready),
                    failure=row.get("failure"),
                    saves=len(loader.get("saves") or ()),
                )
            )
        marks = tuple(
            FaultMark(str(f["kind"]), str(f.get("what", "")), f.get("when"), bool(f.get("fired")))
            for f in faults
        )
        spans = tuple(
            StepSpan(
                str(s["name"]),
                float(s["begin"]),
                float(s["end"] if s.get("end") is not None else last),
                int(s.get("depth", 0)),
            )
            for s in steps
        )
        return cls(title, tuple(bars), marks, spans, last)

    @classmethod
    def read(cls, folder: Path) -> TimelineData:
        """From a test's evidence folder (missing files count as empty)."""
        boots = _json(folder / "boots.json", [])
        events = _json(folder / "events.json", {})
        faults = [_json(p, {}) for p in sorted(folder.glob("fault-*.json"))]
        return cls.from_facts(
            events.get("test", folder.name),
            boots,
            [f for f in faults if f],
            events.get("steps", []),
            events.get("ended_s"),
        )


def _json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def lanes_of(data: TimelineData) -> list[str]:
    """Slot lanes top to bottom: slots in name order, then a lane for boots
    whose decision was never seen."""
    slots = sorted({b.slot for b in data.boots if b.slot is not None})
    if any(b.slot is None for b in data.boots):
        slots.append("?")
    return slots or ["?"]


def timeline_svg(data: TimelineData) -> str:
    """The SVG document (a string) for `data`."""
    lanes = lanes_of(data)
    step_rows = 1 + max((s.depth for s in data.steps), default=-1)
    plot_top = TOP + step_rows * STEP_ROW + (6 if step_rows else 0)
    height = plot_top + len(lanes) * LANE + AXIS + LEGEND
    span = max(data.ended_s or 0.0, 1.0)
    scale = (WIDTH - LEFT - RIGHT) / span

    def x(t: float) -> float:
        return round(LEFT + t * scale, 2)

    def lane_y(slot: str | None) -> float:
        return plot_top + lanes.index(slot if slot is not None else "?") * LANE

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, sans-serif" font-size="11" '
        f'class="ab-timeline" data-seconds-per-px="{1 / scale:.6f}" data-left="{LEFT}">',
        f"<title>{escape(data.title)}</title>",
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="8" y="16" font-size="12" font-weight="bold">{escape(data.title[:120])}</text>',
    ]
    for n, slot in enumerate(lanes):
        y = plot_top + n * LANE
        shade = "#f5f5f5" if n % 2 == 0 else "#ffffff"
        out.append(f'<rect x="{LEFT}" y="{y}" width="{WIDTH - LEFT - RIGHT}" height="{LANE}" '
                   f'fill="{shade}"/>')  # fmt: skip
        name = "slot ?" if slot == "?" else f"slot {slot}"
        out.append(f'<text class="lane" x="8" y="{y + LANE / 2 + 4}">{escape(name)}</text>')
    out += _steps(data.steps, x, TOP)
    for boot in data.boots:
        out += _boot(boot, x, lane_y(boot.slot) + (LANE - BAR) / 2)
    out += _axis(span, x, plot_top + len(lanes) * LANE)
    out += _faults(data.faults, x, TOP - 6, plot_top + len(lanes) * LANE)
    out += _legend(height - 6)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _boot(boot: Boot, x: Any, y: float) -> list[str]:
    fill = boot.fill
    x0, x1 = x(boot.start), x(boot.end)
    width = max(round(x1 - x0, 2), 2.0)
    tip = (
        f"boot #{boot.index} at {boot.start:.2f} s: bootloader chose slot {boot.slot}, "
        f"{boot.label}; {boot.outcome}; {boot.saves} env save(s)"
    )
    ua = {True: "1", False: "0", None: ""}[boot.upgrade_available]
    parts = [
        f'<g class="boot" data-index="{boot.index}" data-slot={quoteattr(boot.slot or "")} '
        f'data-bootcount="{"" if boot.bootcount is None else boot.bootcount}" '
        f'data-upgrade-available="{ua}" data-health={quoteattr(boot.health or "")} '
        f'data-start="{boot.start:.3f}" data-end="{boot.end:.3f}">',
        f"<title>{escape(tip)}</title>",
        f'<rect x="{x0}" y="{y}" width="{width}" height="{BAR}" rx="3" fill="{fill}" '
        f'fill-opacity="0.85" stroke="#333" stroke-width="0.6"/>',
        f'<text class="boot-label" x="{x0 + 3}" y="{y + 13}" fill="#000">'
        f"#{boot.index} {escape(boot.slot or '?')} {escape(boot.outcome[:40])}</text>",
        f'<text class="boot-env" x="{x0 + 3}" y="{y + 27}" fill="#000" font-size="10">'
        f"{escape(boot.label)}</text>",
    ]
    if boot.ready_at is not None:  # a notch under the bar where it reached a shell
        xr = x(boot.ready_at)
        parts.append(
            f'<path class="ready" data-at="{boot.ready_at:.3f}" '
            f'd="M{xr} {y + BAR - 1} l4 6 l-8 0 z" fill="#000"/>'
        )
    parts.append("</g>")
    return parts


def _steps(steps: Sequence[StepSpan], x: Any, top: float) -> list[str]:
    out = []
    for step in steps:
        y = top + step.depth * STEP_ROW
        x0, x1 = x(step.begin), x(step.end)
        out += [
            f'<g class="step" data-name={quoteattr(step.name)}>',
            f"<title>{escape(step.name)}: {step.begin:.2f} to {step.end:.2f} s</title>",
            f'<rect x="{x0}" y="{y}" width="{max(round(x1 - x0, 2), 1.0)}" height="{STEP_ROW - 3}" '
            'fill="#90caf9"/>',
            f'<text x="{x0 + 2}" y="{y + STEP_ROW - 5}" font-size="9">'
            f"{escape(step.name[:30])}</text>",
            "</g>",
        ]
    return out


def _faults(faults: Sequence[FaultMark], x: Any, top: float, bottom: float) -> list[str]:
    out = []
    for n, fault in enumerate(faults):
        if fault.when is None:  # never fired: named in the corner, not placed
            out.append(
                f'<text class="fault-missing" data-kind={quoteattr(fault.kind)} x="{WIDTH - 8}" '
                f'y="{16 + 12 * n}" text-anchor="end" fill="#b71c1c">'
                f"fault {escape(fault.kind)} did not fire</text>"
            )
            continue
        xf = x(float(fault.when))
        out += [
            f'<g class="fault" data-kind={quoteattr(fault.kind)} data-when="{fault.when:.3f}" '
            f'data-fired="{str(fault.fired).lower()}">',
            f"<title>{escape(fault.kind)} at {fault.when:.2f} s: {escape(fault.what)}</title>",
            f'<line x1="{xf}" x2="{xf}" y1="{top}" y2="{bottom}" stroke="#b71c1c" '
            'stroke-width="2" stroke-dasharray="5,3"/>',
            f'<path d="M{xf} {top - 7} l6 7 l-6 7 l-6 -7 z" fill="#b71c1c"/>',
            f'<text x="{xf + 8}" y="{top + 4}" fill="#b71c1c" font-weight="bold">'
            f"{escape(fault.kind)}</text>",
            "</g>",
        ]
    return out


_KEY = (
    (HEALTH_FILL["pass"], "health pass"),
    (HEALTH_FILL["fail"], "health failed"),
    (FAILED_FILL, "failed before the health check"),
    (UNKNOWN_FILL, "no result seen"),
)


def _legend(y: float) -> list[str]:
    out = ['<g class="legend" font-size="10">']
    x = LEFT
    for colour, what in _KEY:
        out.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14}" y="{y}">{what}</text>')
        x += 24 + 6 * len(what)
    out.append(f'<path d="M{x + 5} {y - 9} l4 6 l-8 0 z" fill="#000"/>')
    out.append(f'<text x="{x + 14}" y="{y}">reached a shell</text>')
    x += 24 + 6 * len("reached a shell")
    out.append(f'<line x1="{x + 5}" x2="{x + 5}" y1="{y - 10}" y2="{y + 2}" stroke="#b71c1c" '
               'stroke-width="2" stroke-dasharray="3,2"/>')  # fmt: skip
    out.append(f'<text x="{x + 12}" y="{y}">fault, where it landed</text>')
    out.append("</g>")
    return out


def _axis(span: float, x: Any, y: float) -> list[str]:
    step = next(s for s in (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1e9) if span / s <= 12)
    out = [f'<line x1="{x(0)}" x2="{x(span)}" y1="{y}" y2="{y}" stroke="#333"/>']
    t = 0.0
    while t <= span + 1e-9:
        out.append(f'<line x1="{x(t)}" x2="{x(t)}" y1="{y}" y2="{y + 5}" stroke="#333"/>')
        out.append(
            f'<text class="tick" x="{x(t)}" y="{y + 17}" text-anchor="middle">{t:g} s</text>'
        )
        t += step
    return out
