"""Scenes: a procedural picture as a list of shapes, resolution-independent.

A scene is drawn from its seed: a background and one of five layouts, each a handful of
primitives. A variation keeps the primitives and jitters them (moved, recoloured, with
a few new shapes), so it still looks like the picture it comes from.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from random import Random

from bot.providers.sandbox._palette import HSV, tint

# A primitive: (kind, numbers, colour, alpha). Coordinates are fractions of the image's
# width/height; radii are fractions of its short side. Kinds: "bg" (3x3 colour grid),
# "circle" (x, y, r), "ring" (x, y, r, width), "rect" (x0, y0, x1, y1), "poly" (x, y, ...).
Prim = tuple[str, tuple[float, ...], tuple[HSV, ...], int]


@dataclass(frozen=True)
class Scene:
    """A procedural picture: resolution-independent, so it re-renders at any size."""

    seed: int
    palette: tuple[HSV, ...]
    layout: str
    caption: str = ""
    jitters: tuple[tuple[int, float], ...] = ()  # variations: (seed, strength)

    def jittered(self, seed: int, strength: float) -> Scene:
        return dataclasses.replace(self, jitters=(*self.jitters, (seed, strength)))


class _Sketch:
    """The primitives of one scene as they are laid out, and the dice that lay them out."""

    def __init__(self, scene: Scene) -> None:
        self.rng = Random(scene.seed)
        self.palette = scene.palette
        self.accents = scene.palette[2:] or scene.palette[:1]
        self.prims: list[Prim] = []

    def add(self, kind: str, nums: Sequence[float], colour: HSV, alpha: int) -> None:
        self.prims.append((kind, tuple(nums), (colour,), alpha))

    def pick(self) -> HSV:
        """An accent colour, nudged a little."""
        rng = self.rng
        return tint(rng.choice(self.accents), rng.uniform(-0.03, 0.03), 0, rng.uniform(-0.1, 0.05))


def primitives(scene: Scene) -> list[Prim]:
    """The scene's shapes, back to front."""
    sketch = _Sketch(scene)
    _background(sketch)
    _LAYOUTS.get(scene.layout, _waves)(sketch)
    prims = sketch.prims
    for seed, strength in scene.jitters:
        prims = _jitter(prims, seed, strength, scene.palette)
    return prims


def _background(s: _Sketch) -> None:
    bg0, bg1 = s.palette[0], s.palette[1]
    corners = [bg1, tint(bg1, 0.03, 0, -0.1), tint(bg0, 0, 0, 0.1)]
    corners += [tint(bg1, -0.02, 0, -0.05), tint(bg0, 0.02, 0, 0.05), bg0]
    corners += [tint(bg0, 0, 0, 0.05), bg0, tint(bg0, -0.03, 0, -0.05)]
    if s.rng.random() < 0.5:
        corners.reverse()
    s.prims.append(("bg", (), tuple(corners), 255))


def _orbs(s: _Sketch) -> None:
    rng = s.rng
    x, y, r = rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.6), rng.uniform(0.16, 0.3)
    sun = s.pick()
    s.add("circle", (x, y, r * 1.5), sun, 50)
    s.add("circle", (x, y, r), sun, 235)
    for _ in range(rng.randint(5, 9)):
        xy = (rng.random(), rng.random())
        s.add("circle", (*xy, rng.uniform(0.03, 0.16)), s.pick(), rng.randint(110, 220))
    s.add("ring", (rng.random(), rng.random(), rng.uniform(0.1, 0.3), 0.02), s.pick(), 160)


def _horizon(s: _Sketch) -> None:
    rng = s.rng
    horizon = rng.uniform(0.55, 0.72)
    sun_xy = (rng.uniform(0.2, 0.8), rng.uniform(0.18, horizon - 0.15))
    s.add("circle", (*sun_xy, rng.uniform(0.08, 0.16)), s.pick(), 240)
    layers = rng.randint(2, 3)
    for layer in range(layers):  # mountain ridges, the nearest darkest
        points: list[float] = [0.0, 1.0]
        steps = rng.randint(6, 12)
        height = 0.28 * (layers - layer) / layers
        for i in range(steps + 1):
            points += [i / steps, horizon - rng.uniform(0.2, 1.0) * height]
        points += [1.0, 1.0]
        shade = tint(s.palette[0], rng.uniform(-0.03, 0.03), 0, 0.1 + 0.12 * (layers - layer))
        s.add("poly", points, shade, 255)
    s.add("rect", (0, horizon + 0.04, 1, 1), tint(s.palette[1], 0, 0, -0.25), 200)  # water
    for _ in range(rng.randint(4, 8)):  # the sun's reflections
        x, y = rng.uniform(0.2, 0.7), rng.uniform(horizon + 0.06, 0.98)
        s.add("rect", (x, y, x + rng.uniform(0.05, 0.3), y + 0.008), s.pick(), 90)


def _mosaic(s: _Sketch) -> None:
    rng = s.rng
    boxes = [(0.0, 0.0, 1.0, 1.0)]
    for _ in range(rng.randint(5, 9)):  # split the largest box, across its long side
        boxes.sort(key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        x0, y0, x1, y1 = boxes.pop()
        if (x1 - x0) >= (y1 - y0):
            cut = rng.uniform(x0 + (x1 - x0) * 0.3, x1 - (x1 - x0) * 0.3)
            boxes += [(x0, y0, cut, y1), (cut, y0, x1, y1)]
        else:
            cut = rng.uniform(y0 + (y1 - y0) * 0.3, y1 - (y1 - y0) * 0.3)
            boxes += [(x0, y0, x1, cut), (x0, cut, x1, y1)]
    for x0, y0, x1, y1 in boxes:
        colour = s.pick() if rng.random() < 0.6 else rng.choice(s.palette[:2])
        gap = 0.008
        s.add("rect", (x0 + gap, y0 + gap, x1 - gap, y1 - gap), colour, rng.randint(200, 255))
    s.add("circle", (rng.random(), rng.random(), rng.uniform(0.08, 0.2)), s.pick(), 220)


def _rings(s: _Sketch) -> None:
    rng = s.rng
    for _ in range(rng.randint(3, 6)):  # slanted beams behind
        x, width = rng.uniform(-0.2, 1.0), rng.uniform(0.05, 0.15)
        slant = rng.uniform(0.1, 0.4)
        beam = (x, 0.0, x + width, 0.0, x + width + slant, 1.0, x + slant, 1.0)
        s.add("poly", beam, s.pick(), rng.randint(60, 120))
    x, y = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)
    step = rng.uniform(0.05, 0.08)
    for i in range(rng.randint(5, 9), 0, -1):
        s.add("ring", (x, y, step * i, step * 0.45), s.pick(), 220)
    s.add("circle", (x, y, step * 0.6), s.pick(), 255)


def _waves(s: _Sketch) -> None:
    rng = s.rng
    bands = rng.randint(4, 7)
    for band in range(bands):
        base = 0.3 + 0.65 * band / bands
        amp, freq, phase = rng.uniform(0.02, 0.07), rng.uniform(0.6, 2.2), rng.random()
        points = [0.0, 1.0]
        for i in range(25):
            points += [i / 24, base + amp * math.sin(2 * math.pi * (freq * i / 24 + phase))]
        points += [1.0, 1.0]
        colour = tint(s.accents[band % len(s.accents)], 0, 0, -0.35 * band / bands)
        s.add("poly", points, colour, 230)
    sun_xy = (rng.uniform(0.15, 0.85), rng.uniform(0.1, 0.25))
    s.add("circle", (*sun_xy, rng.uniform(0.05, 0.1)), s.pick(), 240)


_LAYOUTS: dict[str, Callable[[_Sketch], None]] = {
    "orbs": _orbs,
    "horizon": _horizon,
    "mosaic": _mosaic,
    "rings": _rings,
    "waves": _waves,
}
LAYOUTS = tuple(_LAYOUTS)  # the order matters: seeds index into it


def _jitter(prims: list[Prim], seed: int, strength: float, pal: Sequence[HSV]) -> list[Prim]:
    """A variation: the same composition with shapes moved and colours nudged."""
    rng = Random(seed)
    out = [_jittered(prim, rng, strength) for prim in prims]
    # Strong variations also add something new, as Midjourney's do.
    for _ in range(int(strength * 6)):
        circle = (rng.random(), rng.random(), rng.uniform(0.02, 0.1))
        out.append(("circle", circle, (rng.choice(pal),), rng.randint(120, 220)))
    return out


def _jittered(prim: Prim, rng: Random, strength: float) -> Prim:
    kind, nums, colours, alpha = prim
    move = 0.25 * strength
    shifted = tuple(
        tint(c, rng.gauss(0, 0.05 * strength), 0, rng.gauss(0, 0.12 * strength)) for c in colours
    )
    if kind in ("circle", "ring"):
        x, y, r, *rest = nums
        r = max(0.01, r * (1 + rng.gauss(0, strength * 0.5)))
        nums = (x + rng.gauss(0, move), y + rng.gauss(0, move), r, *rest)
    elif kind == "rect":
        dx, dy = rng.gauss(0, move * 0.4), rng.gauss(0, move * 0.4)
        nums = (nums[0] + dx, nums[1] + dy, nums[2] + dx, nums[3] + dy)
    elif kind == "poly":
        # The whole shape moves; its points only a little, so waves stay waves.
        dy = rng.gauss(0, move * 0.3)
        nums = tuple(
            v + (dy + rng.gauss(0, move * 0.04) if i % 2 else 0) for i, v in enumerate(nums)
        )
    return kind, nums, shifted, alpha
