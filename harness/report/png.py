"""The timeline as a PNG, for viewers that show no SVG (chat, some CI pages).

CairoSVG renders in this process in tens of milliseconds through Debian's
libcairo2; a browser screenshot would cost a browser start per test. The
SVG stays the source: the PNG is a copy of it in pixels.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import EnvironmentMissing


def svg_to_png(svg: str, path: Path) -> Path:
    """Render `svg` to `path`; EnvironmentMissing if CairoSVG or libcairo is absent."""
    try:
        import cairosvg
    except (ImportError, OSError) as err:  # OSError: the package is there, libcairo2 is not
        raise EnvironmentMissing(
            f"cannot render the timeline PNG: {err}",
            "install the Python package cairosvg and Debian's libcairo2 (scripts/setup.sh)",
        ) from None
    cairosvg.svg2png(bytestring=svg.encode(), write_to=str(path))
    return path
