"""The areas drawn in the editor, as the page sends them: read and checked.

The page sends each area as its corners, (x, y) fractions of the image from the top
left (a rectangle is four corners, a lasso the points of the stroke). Anything else
gets a sentence saying what to do; points a hair outside the image (a stroke that left
it) are pulled back to its edge.
"""

from __future__ import annotations

import math
from typing import Any

from bot.engine.intake import POLYGON_POINTS
from bot.engine.models import Polygon
from bot.i18n import Text

MAX_SHAPES = 20
# What the engine takes per area (the page simplifies a long lasso stroke to fit).
MIN_POINTS, MAX_POINTS = POLYGON_POINTS
# Smaller than this share of the image is a slip of the mouse, not an area.
MIN_AREA = 0.0001
MAX_PROMPT_CHARS = 4000


class ShapeError(ValueError):
    """Bad input, worded for the person who drew it."""


def area(polygon: Polygon) -> float:
    """The polygon's area as a share of the image (shoelace formula)."""
    twice = sum(
        x0 * y1 - x1 * y0
        for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1], strict=True)
    )
    return abs(twice) / 2


def _point(value: Any) -> tuple[float, float]:
    if not (isinstance(value, list) and len(value) == 2):
        raise ShapeError(Text("Each corner must be a pair of numbers [x, y]."))
    x, y = value
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y)):
        raise ShapeError(Text("Each corner must be a pair of numbers [x, y]."))
    if not all(math.isfinite(v) and -0.5 <= v <= 1.5 for v in (x, y)):
        raise ShapeError(Text("A corner lies far outside the image; clear and draw again."))
    return (min(max(float(x), 0.0), 1.0), min(max(float(y), 0.0), 1.0))


def read_shapes(value: Any) -> list[Polygon]:
    """The drawn areas, checked, or ShapeError saying what to do."""
    if not isinstance(value, list) or not value:
        raise ShapeError(Text("Draw at least one area to redraw (a rectangle or a lasso)."))
    if len(value) > MAX_SHAPES:
        raise ShapeError(Text("Draw at most {n} areas; undo a few and submit again.", n=MAX_SHAPES))
    shapes: list[Polygon] = []
    for number, raw in enumerate(value, start=1):
        if not isinstance(raw, list) or not MIN_POINTS <= len(raw) <= MAX_POINTS:
            raise ShapeError(
                Text(
                    "Area {number} needs between {least} and {most} corners; "
                    "undo it and draw it again.",
                    number=number,
                    least=MIN_POINTS,
                    most=MAX_POINTS,
                )
            )
        polygon = tuple(_point(p) for p in raw)
        if area(polygon) < MIN_AREA:
            raise ShapeError(
                Text(
                    "Area {number} is too small to redraw; undo it and draw a larger one.",
                    number=number,
                )
            )
        shapes.append(polygon)
    return shapes


def read_prompt(value: Any) -> str:
    if not isinstance(value, str):
        raise ShapeError(Text("The prompt must be text."))
    prompt = value.strip()
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ShapeError(
            Text(
                "The prompt is {length} characters; keep it under {most}.",
                length=len(prompt),
                most=MAX_PROMPT_CHARS,
            )
        )
    return prompt
