"""Vary (Region) areas and custom zoom factors, as people type or pick them in a modal.

Regions are rectangles as fractions of the image, (x0, y0, x1, y1) from the top-left:
the engine's format. People pick presets ("left half", "center") or type boxes in per
cent ("10,20,60,90"); several areas are redrawn together.
"""

from __future__ import annotations

import re

from bot.engine.models import Region
from bot.i18n import Text

# value -> (label, region). Values are short: they travel in the modal's select.
PRESETS: dict[str, tuple[str, Region]] = {
    "left": (Text("Left half"), (0.0, 0.0, 0.5, 1.0)),
    "right": (Text("Right half"), (0.5, 0.0, 1.0, 1.0)),
    "top": (Text("Top half"), (0.0, 0.0, 1.0, 0.5)),
    "bottom": (Text("Bottom half"), (0.0, 0.5, 1.0, 1.0)),
    "center": (Text("Center"), (0.25, 0.25, 0.75, 0.75)),
    "top-left": (Text("Top-left quarter"), (0.0, 0.0, 0.5, 0.5)),
    "top-right": (Text("Top-right quarter"), (0.5, 0.0, 1.0, 0.5)),
    "bottom-left": (Text("Bottom-left quarter"), (0.0, 0.5, 0.5, 1.0)),
    "bottom-right": (Text("Bottom-right quarter"), (0.5, 0.5, 1.0, 1.0)),
    "sky": (Text("Top third (sky)"), (0.0, 0.0, 1.0, 1 / 3)),
    "ground": (Text("Bottom third (ground)"), (0.0, 2 / 3, 1.0, 1.0)),
    "middle-band": (Text("Middle band, left to right"), (0.0, 1 / 3, 1.0, 2 / 3)),
    "middle-column": (Text("Middle column, top to bottom"), (1 / 3, 0.0, 2 / 3, 1.0)),
}

_NUMBER = r"\s*(-?\d+(?:\.\d+)?)\s*%?\s*"
_BOX = re.compile(rf"{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}")


class RegionError(ValueError):
    """Bad input, worded for the person who typed it."""


def parse_boxes(text: str) -> list[Region]:
    """ "10,20,60,90" (per cent: left, top, right, bottom); several separated by ";"."""
    regions: list[Region] = []
    for part in filter(None, (p.strip() for p in text.replace("\n", ";").split(";"))):
        match = _BOX.fullmatch(part)
        if match is None:
            raise RegionError(
                Text(
                    "“{part}” is not a box: write four numbers in per cent, "
                    "left,top,right,bottom, e.g. 10,20,60,90.",
                    part=part[:40],
                )
            )
        x0, y0, x1, y1 = (float(v) for v in match.groups())
        if not all(0 <= v <= 100 for v in (x0, y0, x1, y1)):
            raise RegionError(
                Text("“{part}”: every number must be between 0 and 100 (%).", part=part[:40])
            )
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise RegionError(
                Text("“{part}” is too thin: the box must be at least 1% wide.", part=part[:40])
            )
        regions.append((x0 / 100, y0 / 100, x1 / 100, y1 / 100))
    return regions


def regions_from(presets: list[str], boxes: str) -> list[Region]:
    """The areas to redraw: the picked presets plus the typed boxes."""
    regions = [PRESETS[p][1] for p in presets if p in PRESETS]
    regions += parse_boxes(boxes or "")
    if not regions:
        raise RegionError(
            Text("Pick at least one area to redraw, or type a box in per cent (e.g. 10,20,60,90).")
        )
    return regions


def parse_zoom(text: str) -> float:
    """A custom zoom-out factor between 1 and 2 ("1.5", "1,5", "1.5x")."""
    cleaned = text.strip().lower().rstrip("x").strip().replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        raise RegionError(
            Text("“{text}” is not a number; give a zoom between 1 and 2.", text=text[:20])
        ) from None
    if not 1.0 <= value <= 2.0:
        raise RegionError(
            Text("The zoom must be between 1 and 2 (you gave {value:g}).", value=value)
        )
    return value


_ZOOM_PARAM = re.compile(r"\s--zoom\s+\S+", re.IGNORECASE)


def with_zoom(prompt: str, factor: float) -> str:
    """The prompt with `--zoom <factor>` (replacing any it had)."""
    base = _ZOOM_PARAM.sub("", f" {prompt}").strip()
    return f"{base} --zoom {factor:g}".strip()
