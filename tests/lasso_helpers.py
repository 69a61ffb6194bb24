"""Geometry the lasso tests check masks against, computed apart from the code under test:
which pixel centres lie inside a polygon (even-odd rule, as a member sees a lasso), and
how far a pixel is from its outline."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from PIL import Image

from bot import media

Point = tuple[float, float]
Fractions = Sequence[tuple[float, float]]

TRIANGLE: tuple[Point, ...] = ((0.1, 0.15), (0.85, 0.3), (0.35, 0.9))


def wobbly_lasso(
    centre: Point, radius: float, points: int = 48, clockwise: bool = True
) -> tuple[Point, ...]:
    """A freehand-looking closed stroke: a circle whose radius wobbles five times."""
    cx, cy = centre
    turn = 1 if clockwise else -1
    return tuple(
        (
            cx + radius * (1 + 0.25 * math.sin(5 * a)) * math.cos(turn * a),
            cy + radius * (1 + 0.25 * math.sin(5 * a)) * math.sin(turn * a),
        )
        for a in (2 * math.pi * n / points for n in range(points))
    )


def in_pixels(polygon: Fractions, size: tuple[int, int]) -> list[Point]:
    width, height = size
    return [(x * width, y * height) for x, y in polygon]


def inside_rows(polygon: Sequence[Point], size: tuple[int, int]) -> list[list[bool]]:
    """For each pixel (row by row): whether its centre lies inside `polygon` (pixels)."""
    width, height = size
    edges = list(zip(polygon, [*polygon[1:], *polygon[:1]], strict=True))
    rows: list[list[bool]] = []
    for j in range(height):
        y = j + 0.5
        crossings = sorted(
            x0 + (y - y0) * (x1 - x0) / (y1 - y0)
            for (x0, y0), (x1, y1) in edges
            if (y0 > y) != (y1 > y)
        )
        rows.append([bisect.bisect_left(crossings, i + 0.5) % 2 == 1 for i in range(width)])
    return rows


def distance_to_outline(point: Point, polygon: Sequence[Point]) -> float:
    best = math.inf
    for (x0, y0), (x1, y1) in zip(polygon, [*polygon[1:], *polygon[:1]], strict=True):
        dx, dy = x1 - x0, y1 - y0
        length = dx * dx + dy * dy
        t = 0.0 if not length else ((point[0] - x0) * dx + (point[1] - y0) * dy) / length
        t = max(0.0, min(1.0, t))
        best = min(best, math.hypot(point[0] - x0 - t * dx, point[1] - y0 - t * dy))
    return best


def mask_errors(
    mask: Image.Image,
    polygons: Sequence[Fractions],
    regions: Sequence[tuple[float, float, float, float]] = (),
    tolerance: float = 1.0,
) -> list[tuple[int, int]]:
    """Pixels of `mask` that are wrong: black inside an area or white outside all, except
    within `tolerance` pixels of a lasso's outline. Rectangles are exact (pixel_box)."""
    size = mask.size
    grey = mask.convert("L")
    shapes = [in_pixels(polygon, size) for polygon in polygons]
    insides = [inside_rows(shape, size) for shape in shapes]
    boxes = [box for r in regions if (box := media.pixel_box(r, size)) is not None]
    wrong: list[tuple[int, int]] = []
    for j in range(size[1]):
        for i in range(size[0]):
            expected = any(rows[j][i] for rows in insides) or any(
                left <= i < right and top <= j < bottom for left, top, right, bottom in boxes
            )
            if (grey.getpixel((i, j)) == 255) == expected:
                continue
            centre = (i + 0.5, j + 0.5)
            if not any(distance_to_outline(centre, shape) <= tolerance for shape in shapes):
                wrong.append((i, j))
    return wrong


def only_black_and_white(mask: Image.Image) -> bool:
    histogram = mask.convert("L").histogram()
    return not any(histogram[1:255])
