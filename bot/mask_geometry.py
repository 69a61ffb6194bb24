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
    order drawn: clamped to the image (0..width, 0..height, the edges included, as a
    rectangle's far edge is) and rounded to the nearest pixel. Points that round onto
    the one before them are dropped (a dense freehand stroke repeats pixels), so the
    result may hold fewer than 3 points for a lasso smaller than a pixel or two; points
    that are not two finite numbers are skipped."""
    width, height = size
    points: list[PixelPoint] = []
    for point in polygon:
        if len(point) != 2 or not all(math.isfinite(v) for v in point):
            continue
        x = round(min(1.0, max(0.0, float(point[0]))) * width)
        y = round(min(1.0, max(0.0, float(point[1]))) * height)
        if not points or points[-1] != (x, y):
            points.append((x, y))
    while len(points) > 1 and points[-1] == points[0]:
        points.pop()  # a closed stroke ends where it began: the polygon closes itself
    return points


def signed_area(points: Sequence[tuple[float, float]]) -> float:
    """The signed area (shoelace) of a polygon: positive when its points go clockwise
    on screen (y pointing down), negative counter-clockwise, 0 for a line."""
    total = 0.0
    for (x0, y0), (x1, y1) in zip(points, [*points[1:], *points[:1]], strict=True):
        total += x0 * y1 - x1 * y0
    return total / 2
