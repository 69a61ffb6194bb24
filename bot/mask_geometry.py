"""Vary (Region) areas in pixels: the one conversion from the fractions a member chose
to the pixels of an image, shared by every provider's mask (mj-proxy's PNG, MaaS-MJ's
polygon areas, the sandbox's redraw), so that all of them redraw the same part.

Pure arithmetic, no Pillow: `bot.media` draws with it and re-exports it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Size = tuple[int, int]
PixelPoint = tuple[int, int]


def pixel_box(region: Sequence[float], size: Size) -> tuple[int, int, int, int] | None:
    """A fractional (x0, y0, x1, y1) rectangle as a pixel box, or None when it is empty."""
    if len(region) != 4 or not all(math.isfinite(v) for v in region):
        return None
    width, height = size
    x0, x1 = sorted(min(1.0, max(0.0, float(v))) for v in (region[0], region[2]))
    y0, y1 = sorted(min(1.0, max(0.0, float(v))) for v in (region[1], region[3]))
    if x1 <= x0 or y1 <= y0:
        return None
    left, top = math.floor(x0 * width), math.floor(y0 * height)
    right, bottom = math.ceil(x1 * width), math.ceil(y1 * height)
    right, bottom = max(right, left + 1), max(bottom, top + 1)
    return left, top, min(right, width), min(bottom, height)


def pixel_polygon(polygon: Sequence[Sequence[float]], size: Size) -> list[PixelPoint]:
    """A lasso's (x, y) fractions as whole pixel points of an image of `size`, in the
    order drawn: on the grid of pixel edges (0..width, 0..height, as a rectangle's far
    edge is), each clamped to the image and rounded to the nearest. The form vendors
    take polygons in (MaaS-MJ's areas)."""
    width, height = size
    return _distinct([(round(x * width), round(y * height)) for x, y in _clamped(polygon)])


def drawn_polygon(polygon: Sequence[Sequence[float]], size: Size) -> list[PixelPoint]:
    """The same lasso for Pillow's ImageDraw, whose whole coordinates are pixel centres
    (pixel i spans i - 0.5 .. i + 0.5 there): half a pixel back, rounded, kept on the
    image. Filled with its outline, every pixel whose centre lies inside the lasso comes
    out white, and no pixel further than one from its edge does (tests/test_lasso.py)."""
    width, height = size
    return _distinct(
        [
            (min(width - 1, max(0, round(x * width - 0.5))),
             min(height - 1, max(0, round(y * height - 0.5))))
            for x, y in _clamped(polygon)
        ]
    )  # fmt: skip


def _clamped(polygon: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """The points that are two finite numbers, clamped to the image (0..1)."""
    return [
        (min(1.0, max(0.0, float(point[0]))), min(1.0, max(0.0, float(point[1]))))
        for point in polygon
        if len(point) == 2 and all(math.isfinite(v) for v in point)
    ]


def _distinct(points: list[PixelPoint]) -> list[PixelPoint]:
    """Without points that repeat the one before them (a dense freehand stroke repeats
    pixels), so a lasso of a pixel or two may keep fewer than 3 points."""
    kept: list[PixelPoint] = []
    for point in points:
        if not kept or kept[-1] != point:
            kept.append(point)
    while len(kept) > 1 and kept[-1] == kept[0]:
        kept.pop()  # a closed stroke ends where it began: the polygon closes itself
    return kept


def signed_area(points: Sequence[tuple[float, float]]) -> float:
    """The signed area (shoelace) of a polygon: positive when its points go clockwise
    on screen (y pointing down), negative counter-clockwise, 0 for a line."""
    total = 0.0
    for (x0, y0), (x1, y1) in zip(points, [*points[1:], *points[:1]], strict=True):
        total += x0 * y1 - x1 * y0
    return total / 2
