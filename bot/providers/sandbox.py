"""The sandbox provider: a real, offline image provider for trying Atelier without a key.

It behaves like a midjourney-proxy server that happens to live in the bot's process:
tasks are queued, run with progress and blurry previews, and succeed with a 2x2 grid
and the buttons that go with it; every follow-up (U1-U4, V1-V4, reroll, upscale
subtle/creative, vary, zoom, pan, vary region), /describe, /blend, /shorten and face
swap is served natively.

The pictures are procedural, drawn with Pillow: palette, layout and shapes come from a
hash of the prompt and the seed (colour words in the prompt steer the palette), so the
same prompt and seed give the same bytes and different prompts give visibly different
pictures. Every picture is a function of (task, image number, size), rendered on
demand, off the event loop, when an image URL is downloaded: an upscale re-renders its
grid cell at full size, a variation perturbs the cell's shapes, a zoom draws its parent
smaller inside a new border, and so on. Nothing but small JSON specs is stored.

State: one JSON file per task in `state_dir` (plus the input images of blend and face
swap), written atomically, so a task started by one process finishes in the next.
Progress comes from the wall clock since submit: no background task, nothing to resume.
"""

from __future__ import annotations

import asyncio
import colorsys
import contextlib
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import logging
import math
import os
import re
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import httpx
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps, ImageStat

from bot import media
from bot.config import SandboxConfig
from bot.providers.base import (
    BadResponse,
    CheckResult,
    Feature,
    FollowUp,
    How,
    ImageTooLarge,
    PromptRejected,
    Provider,
    SubmitRequest,
    SubmitResult,
    Support,
    TaskNotFound,
    TaskRef,
    TaskSnapshot,
    TaskState,
)
from bot.vocab import ALL_PARAMS, BLEND_DIMENSIONS, KEYCAPS, PAN_VARIANTS, ZOOM_VARIANTS, Action

log = logging.getLogger(__name__)

# Every parameter: the sandbox reads aspect, seed, no and zoom; the rest are accepted so
# that prompts written for Midjourney run.
ACCEPTED_PARAMS = ALL_PARAMS

URL_SCHEME = "sandbox://"
MAX_UPSCALE_SIDE = 4096  # Upscale (Subtle/Creative) doubles, up to this long side
MAX_RATIO = 4.0  # the widest (and, inverted, tallest) aspect ratio drawn
MAX_CHAIN = 30  # follow-ups of follow-ups: each level is re-rendered from the first
PREVIEW_SIDE = 512  # long side of running previews, like Midjourney's small previews
QUEUED_SHARE = 0.1  # the first tenth of a job's duration is spent "in the queue"

_TASK_ID = re.compile(r"[0-9]{8,40}")
_URL = re.compile(r"sandbox://([0-9]{8,40})/(?:(preview)/([0-9]{1,3})|([0-9]{1,2}))")
_RATIO = re.compile(r"\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*")
_PARAMS_START = re.compile(r"(?:^|\s)--[A-Za-z]")

_GRID_FOLLOWUPS = (
    *(FollowUp(Action.UPSCALE, n) for n in range(1, 5)),
    *(FollowUp(Action.VARIATION, n) for n in range(1, 5)),
    FollowUp(Action.REROLL),
)
_EDIT_FOLLOWUPS = (
    FollowUp(Action.VARY_SUBTLE),
    FollowUp(Action.VARY_STRONG),
    *(FollowUp(Action.ZOOM, variant=v) for v in ZOOM_VARIANTS),
    *(FollowUp(Action.PAN, variant=v) for v in PAN_VARIANTS),
    FollowUp(Action.INPAINT),
)
_UPSCALE_FOLLOWUPS = (
    FollowUp(Action.UPSCALE_SUBTLE),
    FollowUp(Action.UPSCALE_CREATIVE),
    *_EDIT_FOLLOWUPS,
)

_BLEND_RATIOS = {"PORTRAIT": 2 / 3, "SQUARE": 1.0, "LANDSCAPE": 3 / 2}
_VARY_STRENGTH = {"variation": 0.35, "vary_subtle": 0.12, "vary_strong": 0.5}

HSV = tuple[float, float, float]  # hue, saturation, value, each 0-1
RGB = tuple[int, int, int]


# --------------------------------------------------------------------------- task specs


@dataclass(frozen=True)
class _Spec:
    """Everything needed to answer for a task and to draw its images, as stored."""

    id: str
    action: str  # the Action the user asked for
    draw: str  # what is drawn: the action, except that a reroll draws its parent's kind
    prompt: str = ""
    text: str = ""  # the words
    params: dict[str, str] = field(default_factory=dict)
    # The job whose image this one is drawn from. A reroll redraws what its parent drew,
    # so it takes over its parent's parent (and draw, index, variant, ...).
    parent: str | None = None
    index: int = 0  # which image of the parent grid (1-4); 1 for a single-image parent
    variant: str = ""
    seed: int = 0
    submitted_at: float = 0.0
    duration: float = 0.0
    grid: bool = False
    ratio: float = 1.0  # width / height of one image (of a cell, for a grid)
    long: int = 0  # long side of the result: of the whole grid, or of the single image
    depth: int = 0  # follow-up depth: 0 for imagine, blend, ...
    regions: list[list[float]] = field(default_factory=list)
    zoom: float = 1.0
    dimensions: str = ""
    inputs_of: str | None = None  # the task whose stored input images this one uses
    n_inputs: int = 0
    palette: list[list[float]] = field(default_factory=list)  # HSV, from image prompts
    texts: list[str] = field(default_factory=list)
    cancelled: bool = False
    cancelled_at: float | None = None

    def to_json(self) -> bytes:
        return json.dumps({"v": 1, **dataclasses.asdict(self)}, ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> _Spec:
        data = json.loads(raw)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def makes_images(self) -> bool:
        return self.draw not in ("describe", "shorten")

    def image_size(self) -> tuple[int, int]:
        """Size of the result image (the whole grid, for grids)."""
        if self.grid:
            cell_w, cell_h = _dims(self.ratio, self.long // 2)
            return cell_w * 2, cell_h * 2
        return _dims(self.ratio, self.long)

    def image_long(self, cell: int) -> int:
        """Native long side of one image: a grid cell is half the grid."""
        return self.long // 2 if self.grid and cell else self.long


def _content_key(spec: _Spec) -> tuple[Any, ...]:
    """What an image depends on. Imagine jobs with the same words, seed and shape draw
    the same picture, so caches share it across tasks (benchmarks submit many alike)."""
    if spec.draw == "imagine":
        palette = tuple(tuple(c) for c in spec.palette)
        return ("imagine", spec.seed, spec.text, palette, spec.ratio, spec.params.get("no", ""))
    return ("task", spec.id)


def _dims(ratio: float, long: int) -> tuple[int, int]:
    long = max(1, long)
    if ratio >= 1:
        return long, max(1, round(long / ratio))
    return max(1, round(long * ratio)), long


def _mix(*parts: object) -> int:
    """A stable 64-bit hash (Python's hash() differs between processes)."""
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        digest.update(str(part).encode("utf-8", "replace"))
        digest.update(b"\x00")
    return int.from_bytes(digest.digest(), "big")


# --------------------------------------------------------------------------- palettes

_HUE_WORDS = {
    "red": 0, "crimson": 350, "scarlet": 5, "ruby": 348, "rose": 340, "pink": 330,
    "magenta": 300, "purple": 280, "violet": 270, "lavender": 265, "indigo": 250,
    "blue": 220, "navy": 225, "sapphire": 218, "ocean": 205, "sea": 200, "sky": 205,
    "ice": 195, "cyan": 185, "teal": 175, "turquoise": 170, "mint": 150, "emerald": 145,
    "forest": 135, "green": 125, "jungle": 120, "lime": 90, "olive": 70, "yellow": 55,
    "lemon": 56, "gold": 48, "golden": 48, "amber": 40, "sand": 40, "desert": 35,
    "orange": 30, "autumn": 28, "brown": 25, "copper": 22, "sunset": 20, "rust": 18,
    "fire": 15, "lava": 10,
}  # fmt: skip


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


_DARK_WORDS = _wordset("night midnight dark noir moody shadow gothic space cave storm horror")
_LIGHT_WORDS = _wordset("bright pastel light snow white airy sunny morning cloud clouds")
_LAYOUTS = ("orbs", "horizon", "mosaic", "rings", "waves")


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def _palette_from_text(text: str, seed: int, avoid: str = "") -> list[HSV]:
    """Five colours: two for the background, three accents. Steered by colour words."""
    words = _words(text)
    rng = Random(_mix("palette", " ".join(words), seed))
    hues = [_HUE_WORDS[w] / 360 for w in words if w in _HUE_WORDS]
    base = hues[0] if hues else rng.random()
    offsets = rng.choice(
        [(0, 30, -30, 180), (0, 180, 20, 200), (0, 120, 240, 60), (0, 150, 210, 30)]
    )
    accents = [(base + o / 360 + rng.uniform(-0.02, 0.02)) % 1 for o in offsets]
    if len(hues) > 1:
        accents[1] = hues[1]
    # "--no red" keeps red out of the accents, like Midjourney's negative prompt.
    banned = [_HUE_WORDS[w] / 360 for w in _words(avoid) if w in _HUE_WORDS]
    accents = [_avoid(h, banned) for h in accents]
    dark = any(w in _DARK_WORDS for w in words)
    light = any(w in _LIGHT_WORDS for w in words) and not dark
    if dark:
        bg = [
            (accents[0], rng.uniform(0.5, 0.9), rng.uniform(0.06, 0.16)),
            (accents[1], rng.uniform(0.5, 0.9), rng.uniform(0.2, 0.35)),
        ]
    elif light:
        bg = [
            (accents[0], rng.uniform(0.1, 0.3), rng.uniform(0.85, 1.0)),
            (accents[1], rng.uniform(0.15, 0.4), rng.uniform(0.75, 0.95)),
        ]
    else:
        bg = [
            (accents[0], rng.uniform(0.5, 0.9), rng.uniform(0.15, 0.35)),
            (accents[1], rng.uniform(0.4, 0.8), rng.uniform(0.55, 0.8)),
        ]
    sat = (0.25, 0.55) if light else (0.55, 1.0)
    val = (0.45, 0.8) if dark else (0.7, 1.0)
    return bg + [(h, rng.uniform(*sat), rng.uniform(*val)) for h in accents[1:]]


def _avoid(hue: float, banned: Sequence[float]) -> float:
    for bad in banned:
        if min(abs(hue - bad), 1 - abs(hue - bad)) < 0.07:
            return (hue + 1 / 3) % 1
    return hue


def _palette_of(image: Image.Image) -> list[HSV]:
    """The five most common colours of an image, most common first."""
    thumb = image.convert("RGB")
    thumb.thumbnail((48, 48))
    quant = thumb.quantize(5, method=Image.Quantize.MEDIANCUT)
    flat = quant.getpalette() or []
    counts = sorted(quant.getcolors() or [], reverse=True)
    colours = [_to_hsv(tuple(flat[i * 3 : i * 3 + 3])) for _, i in counts] or [(0, 0, 0.5)]
    while len(colours) < 5:
        colours.append(colours[len(colours) % max(1, len(colours))])
    return colours[:5]


def _to_hsv(rgb: Sequence[int]) -> HSV:
    r, g, b = rgb[:3]
    return colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)


def _rgb(hsv: HSV, alpha: int | None = None) -> tuple[int, ...]:
    h, s, v = hsv
    r, g, b = colorsys.hsv_to_rgb(h % 1, min(1, max(0, s)), min(1, max(0, v)))
    out = (round(r * 255), round(g * 255), round(b * 255))
    return out if alpha is None else (*out, alpha)


def _tint(hsv: HSV, dh: float = 0, ds: float = 0, dv: float = 0) -> HSV:
    return ((hsv[0] + dh) % 1, min(1, max(0, hsv[1] + ds)), min(1, max(0, hsv[2] + dv)))


# --------------------------------------------------------------------------- scenes

# A primitive: (kind, numbers, colour, alpha). Coordinates are fractions of the image's
# width/height; radii are fractions of its short side. Kinds: "bg" (3x3 colour grid),
# "circle" (x, y, r), "ring" (x, y, r, width), "rect" (x0, y0, x1, y1), "poly" (x, y, ...).
_Prim = tuple[str, tuple[float, ...], tuple[HSV, ...], int]


@dataclass(frozen=True)
class _Scene:
    """A procedural picture: resolution-independent, so it re-renders at any size."""

    seed: int
    palette: tuple[HSV, ...]
    layout: str
    caption: str = ""
    jitters: tuple[tuple[int, float], ...] = ()  # variations: (seed, strength)

    def jittered(self, seed: int, strength: float) -> _Scene:
        return dataclasses.replace(self, jitters=(*self.jitters, (seed, strength)))


def _primitives(scene: _Scene) -> list[_Prim]:
    rng = Random(scene.seed)
    pal = scene.palette
    bg0, bg1, acc = pal[0], pal[1], pal[2:] or pal[:1]
    prims: list[_Prim] = []

    def add(kind: str, nums: Sequence[float], colour: HSV, alpha: int) -> None:
        prims.append((kind, tuple(nums), (colour,), alpha))

    def pick() -> HSV:
        return _tint(rng.choice(acc), rng.uniform(-0.03, 0.03), 0, rng.uniform(-0.1, 0.05))

    corners = [bg1, _tint(bg1, 0.03, 0, -0.1), _tint(bg0, 0, 0, 0.1)]
    corners += [_tint(bg1, -0.02, 0, -0.05), _tint(bg0, 0.02, 0, 0.05), bg0]
    corners += [_tint(bg0, 0, 0, 0.05), bg0, _tint(bg0, -0.03, 0, -0.05)]
    if rng.random() < 0.5:
        corners.reverse()
    prims.append(("bg", (), tuple(corners), 255))
    if scene.layout == "orbs":
        x, y, r = rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.6), rng.uniform(0.16, 0.3)
        sun = pick()
        add("circle", (x, y, r * 1.5), sun, 50)
        add("circle", (x, y, r), sun, 235)
        for _ in range(rng.randint(5, 9)):
            xy = (rng.random(), rng.random())
            add("circle", (*xy, rng.uniform(0.03, 0.16)), pick(), rng.randint(110, 220))
        add("ring", (rng.random(), rng.random(), rng.uniform(0.1, 0.3), 0.02), pick(), 160)
    elif scene.layout == "horizon":
        horizon = rng.uniform(0.55, 0.72)
        sun_xy = (rng.uniform(0.2, 0.8), rng.uniform(0.18, horizon - 0.15))
        add("circle", (*sun_xy, rng.uniform(0.08, 0.16)), pick(), 240)
        layers = rng.randint(2, 3)
        for layer in range(layers):  # mountain ridges, the nearest darkest
            points: list[float] = [0.0, 1.0]
            steps = rng.randint(6, 12)
            height = 0.28 * (layers - layer) / layers
            for i in range(steps + 1):
                points += [i / steps, horizon - rng.uniform(0.2, 1.0) * height]
            points += [1.0, 1.0]
            shade = _tint(bg0, rng.uniform(-0.03, 0.03), 0, 0.1 + 0.12 * (layers - layer))
            add("poly", points, shade, 255)
        add("rect", (0, horizon + 0.04, 1, 1), _tint(bg1, 0, 0, -0.25), 200)  # water
        for _ in range(rng.randint(4, 8)):  # the sun's reflections
            x, y = rng.uniform(0.2, 0.7), rng.uniform(horizon + 0.06, 0.98)
            add("rect", (x, y, x + rng.uniform(0.05, 0.3), y + 0.008), pick(), 90)
    elif scene.layout == "mosaic":
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
            colour = pick() if rng.random() < 0.6 else rng.choice(pal[:2])
            gap = 0.008
            add("rect", (x0 + gap, y0 + gap, x1 - gap, y1 - gap), colour, rng.randint(200, 255))
        add("circle", (rng.random(), rng.random(), rng.uniform(0.08, 0.2)), pick(), 220)
    elif scene.layout == "rings":
        for _ in range(rng.randint(3, 6)):  # slanted beams behind
            x, width = rng.uniform(-0.2, 1.0), rng.uniform(0.05, 0.15)
            slant = rng.uniform(0.1, 0.4)
            beam = (x, 0.0, x + width, 0.0, x + width + slant, 1.0, x + slant, 1.0)
            add("poly", beam, pick(), rng.randint(60, 120))
        x, y = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)
        step = rng.uniform(0.05, 0.08)
        for i in range(rng.randint(5, 9), 0, -1):
            add("ring", (x, y, step * i, step * 0.45), pick(), 220)
        add("circle", (x, y, step * 0.6), pick(), 255)
    else:  # waves
        bands = rng.randint(4, 7)
        for band in range(bands):
            base = 0.3 + 0.65 * band / bands
            amp, freq, phase = rng.uniform(0.02, 0.07), rng.uniform(0.6, 2.2), rng.random()
            points = [0.0, 1.0]
            for i in range(25):
                points += [i / 24, base + amp * math.sin(2 * math.pi * (freq * i / 24 + phase))]
            points += [1.0, 1.0]
            add("poly", points, _tint(acc[band % len(acc)], 0, 0, -0.35 * band / bands), 230)
        sun_xy = (rng.uniform(0.15, 0.85), rng.uniform(0.1, 0.25))
        add("circle", (*sun_xy, rng.uniform(0.05, 0.1)), pick(), 240)
    for seed, strength in scene.jitters:
        prims = _jitter(prims, seed, strength, pal)
    return prims


def _jitter(prims: list[_Prim], seed: int, strength: float, pal: Sequence[HSV]) -> list[_Prim]:
    """A variation: the same composition with shapes moved and colours nudged."""
    rng = Random(seed)
    out: list[_Prim] = []
    move = 0.25 * strength
    for kind, nums, colours, alpha in prims:
        shifted = tuple(
            _tint(c, rng.gauss(0, 0.05 * strength), 0, rng.gauss(0, 0.12 * strength))
            for c in colours
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
        out.append((kind, nums, shifted, alpha))
    # Strong variations also add something new, as Midjourney's do.
    for _ in range(int(strength * 6)):
        circle = (rng.random(), rng.random(), rng.uniform(0.02, 0.1))
        out.append(("circle", circle, (rng.choice(pal),), rng.randint(120, 220)))
    return out


def _render_scene(scene: _Scene, size: tuple[int, int]) -> Image.Image:
    width, height = size
    # Drawn at twice the size and reduced: ImageDraw does not anti-alias, and the box
    # reduction is far cheaper than the jaggies are ugly. Big images need it less.
    scale = 2 if width * height <= 1_200_000 else 1
    big_w, big_h = width * scale, height * scale
    short = min(big_w, big_h)
    image = Image.new("RGB", (big_w, big_h))
    draw = ImageDraw.Draw(image, "RGBA")
    for kind, nums, colours, alpha in _primitives(scene):
        if kind == "bg":
            corners = Image.new("RGB", (3, 3))
            corners.putdata([_rgb(c) for c in colours])
            # Smooth at the final size, then doubled by pixel repetition: the reduction
            # below undoes that exactly, at a quarter of the cost of a bicubic resize.
            gradient = corners.resize((width, height), Image.Resampling.BICUBIC)
            if scale > 1:
                gradient = gradient.resize((big_w, big_h), Image.Resampling.NEAREST)
            image.paste(gradient)
            continue
        fill = _rgb(colours[0], alpha)
        if kind == "circle":
            x, y, r = nums[0] * big_w, nums[1] * big_h, nums[2] * short
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        elif kind == "ring":
            x, y, r = nums[0] * big_w, nums[1] * big_h, nums[2] * short
            draw.ellipse(
                (x - r, y - r, x + r, y + r), outline=fill, width=max(1, round(nums[3] * short))
            )
        elif kind == "rect":
            x0, x1 = sorted((nums[0] * big_w, nums[2] * big_w))
            y0, y1 = sorted((nums[1] * big_h, nums[3] * big_h))
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        elif kind == "poly":
            points = [(nums[i] * big_w, nums[i + 1] * big_h) for i in range(0, len(nums), 2)]
            draw.polygon(points, fill=fill)
    if scale > 1:
        image = image.reduce(scale)
    if scene.caption:
        _draw_caption(image, scene.caption)
    return image


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, ImportError):  # Pillow built without FreeType: the bitmap font
        return ImageFont.load_default()


def _draw_caption(image: Image.Image, caption: str) -> None:
    """The prompt's words, small, in the bottom-left corner."""
    width, height = image.size
    size = max(8, min(width, height) // 30)
    if size > height // 3:
        return
    font = _font(size)
    text = " ".join(caption.split())
    limit = width * 0.9 - size
    if font.getlength(text) > limit:
        while text and font.getlength(text + "…") > limit:
            text = text[:-1]
        text = text.rstrip() + "…" if text else ""
    if not text:
        return
    pad = max(2, size // 3)
    _, top, right, bottom = font.getbbox(text)
    x, y = pad * 2, height - (bottom - top) - pad * 3
    draw = ImageDraw.Draw(image, "RGBA")
    draw.rectangle((x - pad, y - pad + top, x + right + pad, y + bottom + pad), fill=(0, 0, 0, 120))
    draw.text((x, y), text, font=font, fill=(245, 245, 245, 235))


def _feather_mask(size: tuple[int, int], feather: int) -> Image.Image:
    """White with soft edges: pasted images melt into what is around them."""
    width, height = size
    mask = Image.new("L", size, 0)
    feather = max(0, min(feather, width // 3, height // 3))
    ImageDraw.Draw(mask).rectangle(
        (feather, feather, width - 1 - feather, height - 1 - feather), fill=255
    )
    return mask.filter(ImageFilter.GaussianBlur(feather / 2)) if feather else mask


def _add_detail(image: Image.Image, seed: int) -> Image.Image:
    """Upscale (Creative): crisper edges and a fine texture that was not there before."""
    image = image.filter(ImageFilter.UnsharpMask(radius=2, percent=90, threshold=2))
    rng = Random(seed)
    width, height = image.size
    draw = ImageDraw.Draw(image, "RGBA")
    for _ in range(min(6000, width * height // 900)):
        x, y = rng.randrange(width), rng.randrange(height)
        r, g, b = image.getpixel((x, y))[:3]
        lift = rng.choice((-40, 40))
        colour = (
            min(255, max(0, r + lift)),
            min(255, max(0, g + lift)),
            min(255, max(0, b + lift)),
            110,
        )
        radius = rng.uniform(0.6, 2.2) * max(1, width / 1024)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    return image


def _vary_image(image: Image.Image, seed: int, strength: float) -> Image.Image:
    """A variation of any picture: re-framed a little, colours shifted, new shapes."""
    rng = Random(seed)
    width, height = image.size
    zoom = 1 + strength * rng.uniform(0.05, 0.25)
    crop_w, crop_h = width / zoom, height / zoom
    x0, y0 = rng.uniform(0, width - crop_w), rng.uniform(0, height - crop_h)
    out = image.resize(
        (width, height), Image.Resampling.BICUBIC, box=(x0, y0, x0 + crop_w, y0 + crop_h)
    )
    shift = round(rng.uniform(-1, 1) * strength * 40)
    if shift:
        hue, sat, val = out.convert("HSV").split()
        hue = hue.point(lambda v: (v + shift) % 256)
        out = Image.merge("HSV", (hue, sat, val)).convert("RGB")
    palette = _palette_of(out)
    draw = ImageDraw.Draw(out, "RGBA")
    short = min(width, height)
    for _ in range(2 + int(strength * 8)):
        x, y, r = rng.random() * width, rng.random() * height, rng.uniform(0.03, 0.15) * short
        colour = _rgb(_tint(rng.choice(palette), 0, 0.1, 0.1), round(60 + 150 * strength))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return out


# --------------------------------------------------------------------------- rendering


class _Renderer:
    """Draws a task's images on demand. Thread-safe: it runs in worker threads."""

    def __init__(self, spec_of: Callable[[str], _Spec | None], inputs_dir: Path) -> None:
        self._spec_of = spec_of
        self._inputs_dir = inputs_dir
        self._lock = threading.Lock()
        # Recently drawn images, keyed (task, image, size): a grid's cells, the parent of
        # a chain of follow-ups, the input images of a blend. Treat as read-only.
        self._images: OrderedDict[tuple[Any, ...], Image.Image] = OrderedDict()
        self._max_pixels = 24_000_000  # ~72 MB of RGB

    # -- cache

    def _cached(self, key: tuple[Any, ...], make: Callable[[], Image.Image]) -> Image.Image:
        with self._lock:
            found = self._images.get(key)
            if found is not None:
                self._images.move_to_end(key)
                return found
        image = make()
        with self._lock:
            self._images[key] = image
            total = sum(i.width * i.height for i in self._images.values())
            while total > self._max_pixels and len(self._images) > 1:
                _, dropped = self._images.popitem(last=False)
                total -= dropped.width * dropped.height
        return image

    # -- entry points

    def picture(self, spec: _Spec, long: int) -> Image.Image:
        """The task's result: the whole grid, or the single image, at this long side."""
        if not spec.grid:
            return self.image(spec, 1, long)
        cells = [self.image(spec, n, long // 2) for n in range(1, 5)]
        cell_w, cell_h = cells[0].size
        grid = Image.new("RGB", (cell_w * 2, cell_h * 2))
        for n, cell in enumerate(cells):
            grid.paste(cell, ((n % 2) * cell_w, (n // 2) * cell_h))
        return grid

    def png(self, spec: _Spec, preview: int | None) -> bytes:
        if preview is None:
            picture = self.picture(spec, spec.long)
        else:
            picture = self.picture(spec, min(spec.long, PREVIEW_SIDE))
            radius = (100 - preview) / 100 * picture.width / 28 + 0.8
            picture = picture.filter(ImageFilter.GaussianBlur(radius))
        out = io.BytesIO()
        # Fast compression: these pictures are mostly flat colour and compress well at
        # level 1; a grid encodes in tens of milliseconds instead of hundreds.
        picture.save(out, "PNG", compress_level=1)
        return out.getvalue()

    def image(self, spec: _Spec, cell: int, long: int) -> Image.Image:
        """Image `cell` (1-4; 1 for single-image tasks) at this long side."""
        cell = cell if spec.grid else 1
        key = (*_content_key(spec), cell, long)
        return self._cached(key, lambda: self._draw(spec, cell, long))

    # -- drawing

    def _parent(self, spec: _Spec) -> _Spec:
        parent = self._spec_of(spec.parent or "")
        if parent is None:
            raise TaskNotFound(
                f"The sandbox no longer has job {spec.parent}, which this one builds on."
            )
        return parent

    def _parent_image(self, spec: _Spec, long: int) -> Image.Image:
        return self.image(self._parent(spec), spec.index or 1, long)

    def scene(self, spec: _Spec, cell: int) -> _Scene | None:
        """The procedural scene behind an image, when it is one (imagine and what is
        derived from it without image operations); else None."""
        if spec.draw == "imagine":
            palette = (
                [tuple(c) for c in spec.palette]
                if spec.palette
                else _palette_from_text(spec.text, spec.seed, spec.params.get("no", ""))
            )
            rng = Random(_mix("cell", spec.seed, cell))
            # Each cell gets its own layout and a turn of the palette: four distinct
            # pictures that still belong together, like a Midjourney grid.
            layouts = list(_LAYOUTS)
            Random(_mix("layouts", spec.seed)).shuffle(layouts)
            turn = rng.uniform(-0.05, 0.05)
            cell_palette = tuple(_tint(c, turn) for c in palette)
            return _Scene(
                _mix("scene", spec.seed, cell), cell_palette, layouts[cell - 1], caption=spec.text
            )
        if spec.draw in ("upscale", "upscale_subtle", "upscale_creative") or (
            spec.draw in _VARY_STRENGTH
        ):
            parent = self._parent(spec)
            base = self.scene(parent, (spec.index or 1) if parent.grid else 1)
            if base is None or spec.draw not in _VARY_STRENGTH:
                return base
            return base.jittered(_mix("vary", spec.seed, cell), _VARY_STRENGTH[spec.draw])
        return None

    def _draw(self, spec: _Spec, cell: int, long: int) -> Image.Image:
        size = _dims(spec.ratio, long)
        scene = self.scene(spec, cell)
        if scene is not None:
            image = _render_scene(scene, size)
        elif spec.draw in _VARY_STRENGTH:
            base = self._parent_image(spec, long)
            image = _vary_image(
                base.resize(size), _mix("vary", spec.seed, cell), _VARY_STRENGTH[spec.draw]
            )
        elif spec.draw in ("upscale", "upscale_subtle", "upscale_creative"):
            image = self._parent_image(spec, long).resize(size)
        elif spec.draw == "zoom":
            image = self._zoom(spec, cell, size)
        elif spec.draw == "pan":
            image = self._pan(spec, cell, size)
        elif spec.draw == "inpaint":
            image = self._inpaint(spec, cell, size)
        elif spec.draw == "blend":
            image = self._blend(spec, cell, size)
        elif spec.draw == "swap_face":
            image = self._swap_face(spec, size)
        else:
            raise BadResponse(f"A sandbox {spec.draw} job has no images.")
        if spec.draw == "upscale_creative":
            image = _add_detail(image, _mix("detail", spec.seed))
        return image

    def _border(
        self, spec: _Spec, cell: int, around: Image.Image, size: tuple[int, int]
    ) -> Image.Image:
        """New surroundings in the colours of `around` (zoom, pan)."""
        seed = _mix("border", spec.seed, cell)
        layout = _LAYOUTS[seed % len(_LAYOUTS)]
        return _render_scene(_Scene(seed, tuple(_palette_of(around)), layout), size)

    def _zoom(self, spec: _Spec, cell: int, size: tuple[int, int]) -> Image.Image:
        width, height = size
        parent = self._parent(spec)
        # The parent, fitted inside the new frame, then made smaller by the zoom factor.
        fit_w, fit_h = _dims(parent.ratio, 1_000_000)
        fit = min(width / fit_w, height / fit_h)
        inner_w = max(1, round(fit_w * fit / spec.zoom))
        inner_h = max(1, round(fit_h * fit / spec.zoom))
        inner = self._parent_image(spec, max(inner_w, inner_h))
        if inner.size != (inner_w, inner_h):
            inner = inner.resize((inner_w, inner_h), Image.Resampling.BICUBIC)
        canvas = self._border(spec, cell, inner, size)
        feather = max(1, min(inner_w, inner_h) // 20)
        canvas.paste(
            inner,
            ((width - inner_w) // 2, (height - inner_h) // 2),
            _feather_mask(inner.size, feather),
        )
        return canvas

    def _pan(self, spec: _Spec, cell: int, size: tuple[int, int]) -> Image.Image:
        # Drawn as a pan to the left; the other directions turn the picture first and
        # back afterwards (up: a quarter turn brings the top edge to the left).
        turns = {
            "left": ((), ()),
            "right": ((Image.Transpose.FLIP_LEFT_RIGHT,), (Image.Transpose.FLIP_LEFT_RIGHT,)),
            "up": ((Image.Transpose.ROTATE_90,), (Image.Transpose.ROTATE_270,)),
            "down": (
                (Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_90),
                (Image.Transpose.ROTATE_270, Image.Transpose.FLIP_TOP_BOTTOM),
            ),
        }[spec.variant]
        width, height = size
        horizontal = spec.variant in ("left", "right")
        old_w = round(width / 1.5) if horizontal else width
        old_h = height if horizontal else round(height / 1.5)
        old = self._parent_image(spec, max(old_w, old_h))
        if old.size != (old_w, old_h):
            old = old.resize((old_w, old_h), Image.Resampling.BICUBIC)
        for turn in turns[0]:
            old = old.transpose(turn)
        (canvas_w, canvas_h) = (width, height) if horizontal else (height, width)
        new_w = canvas_w - old.width
        scene = self._border(spec, cell, old, (canvas_w, canvas_h))
        # The new strip continues the old picture (a blurred mirror of its edge),
        # blended with new shapes so that it is not a plain reflection.
        mirror = ImageOps.mirror(old).crop((old.width - new_w, 0, old.width, old.height))
        mirror = mirror.filter(ImageFilter.GaussianBlur(max(1, canvas_h / 150)))
        strip = Image.blend(mirror, scene.crop((0, 0, new_w, canvas_h)), 0.55)
        canvas = scene
        canvas.paste(strip, (0, 0))
        mask = Image.new("L", old.size, 255)
        seam = max(1, old.width // 12)
        gradient = Image.linear_gradient("L").rotate(90).resize((seam, old.height))
        mask.paste(gradient, (0, 0))  # 0 at the seam, rising to 255 inside the old picture
        canvas.paste(old, (new_w, 0), mask)
        for turn in turns[1]:
            canvas = canvas.transpose(turn)
        return canvas

    def _inpaint(self, spec: _Spec, cell: int, size: tuple[int, int]) -> Image.Image:
        canvas = self._parent_image(spec, max(size)).copy()
        if canvas.size != size:
            canvas = canvas.resize(size, Image.Resampling.BICUBIC)
        palette = (
            _palette_from_text(spec.text, spec.seed) if spec.text.strip() else _palette_of(canvas)
        )
        for n, region in enumerate(spec.regions):
            box = media.pixel_box(region, size)
            if box is None:
                continue
            box_w, box_h = box[2] - box[0], box[3] - box[1]
            seed = _mix("region", spec.seed, cell, n)
            patch = _render_scene(_Scene(seed, tuple(palette), _LAYOUTS[seed % 5]), (box_w, box_h))
            canvas.paste(patch, box[:2], _feather_mask(patch.size, min(box_w, box_h) // 10))
        return canvas

    def _inputs(self, spec: _Spec) -> list[Image.Image]:
        owner = spec.inputs_of or spec.id

        def load(n: int) -> Image.Image:
            path = self._inputs_dir / f"{owner}-{n}.png"
            try:
                with Image.open(path) as image:
                    return image.convert("RGB")
            except OSError:
                raise TaskNotFound(f"The sandbox lost the images of job {owner}.") from None

        return [
            self._cached(("input", owner, n), lambda n=n: load(n)) for n in range(spec.n_inputs)
        ]

    def _blend(self, spec: _Spec, cell: int, size: tuple[int, int]) -> Image.Image:
        width, height = size
        fitted = [ImageOps.fit(img, size, Image.Resampling.BICUBIC) for img in self._inputs(spec)]
        rng = Random(_mix("blend", spec.seed, cell))
        out = fitted[0]
        count = len(fitted)
        for n, image in enumerate(fitted[1:], start=1):
            # Each cell mixes the images its own way: evenly, left to right, top to
            # bottom, or from the centre out; the seed moves the seams.
            if cell == 1:
                mask = Image.new("L", size, round(255 / (n + 1)))
            else:
                where = min(0.9, max(0.1, n / count + rng.uniform(-0.1, 0.1)))
                if cell == 4:
                    ramp = Image.radial_gradient("L")
                else:
                    ramp = Image.linear_gradient("L")
                    if cell == 2:
                        ramp = ramp.rotate(90)
                    ramp = ImageOps.invert(ramp)
                # A soft step at `where`: 0 before, 255 after, over about a sixth.
                ramp = ramp.point(
                    lambda v, w=where: round(255 * min(1, max(0, (v / 255 - w) * 6 + 0.5)))
                )
                mask = ramp.resize(size, Image.Resampling.BILINEAR)
                if cell == 4:
                    mask = ImageOps.invert(mask)
            out = Image.composite(image, out, mask)
        if cell != 1:
            palette = _palette_of(out)
            draw = ImageDraw.Draw(out, "RGBA")
            for _ in range(3):
                x, y = rng.random() * width, rng.random() * height
                r = rng.uniform(0.04, 0.12) * min(width, height)
                draw.ellipse((x - r, y - r, x + r, y + r), fill=_rgb(rng.choice(palette), 90))
        return out

    def _swap_face(self, spec: _Spec, size: tuple[int, int]) -> Image.Image:
        source, target = self._inputs(spec)[:2]
        canvas = target.resize(size, Image.Resampling.BICUBIC)
        width, height = size
        # The "face": the source's middle, in an oval where a portrait's face would be.
        face_w = max(4, round(min(width, height) * 0.3))
        face_h = max(4, round(face_w * 1.25))
        face = ImageOps.fit(source, (face_w, face_h), Image.Resampling.BICUBIC)
        mask = Image.new("L", (face_w, face_h), 0)
        ImageDraw.Draw(mask).ellipse((0, 0, face_w - 1, face_h - 1), fill=255)
        mask = mask.filter(ImageFilter.GaussianBlur(max(1, face_w / 40)))
        x, y = (width - face_w) // 2, max(0, round(height * 0.36) - face_h // 2)
        canvas.paste(face, (x, y), mask)
        ring = _rgb(_tint(_palette_of(source)[0], 0.5, 0.3, 0.3))
        ImageDraw.Draw(canvas).ellipse(
            (x, y, x + face_w - 1, y + face_h - 1), outline=ring, width=max(1, face_w // 40)
        )
        return canvas


# --------------------------------------------------------------------------- texts

_STOP = _wordset(
    "a an the of in on at with and or to from into by for as is are was were be its it "
    "their his her this that these those which who while over under near some"
)
_FLUFF = _wordset(
    "very really extremely highly incredibly super ultra hyper beautiful stunning amazing "
    "gorgeous awesome epic masterpiece best quality detailed intricate realistic "
    "photorealistic hyperrealistic 4k 8k 16k hd uhd hdr resolution trending artstation "
    "award winning professional sharp focus"
)


def split_prompt(prompt: str) -> tuple[str, str]:
    """(words, parameters): "a cat --ar 3:2" -> ("a cat", "--ar 3:2")."""
    match = _PARAMS_START.search(prompt)
    if match is None:
        return prompt.strip(), ""
    start = match.start() + (1 if prompt[match.start()].isspace() else 0)
    return prompt[:start].strip(), prompt[start:].strip()


def shorten_texts(words: str, params: str = "") -> list[str]:
    """Shorter versions of a prompt, longest first, numbered like Midjourney's /shorten."""
    phrases = [p.split() for p in re.split(r"[,;]", words) if p.strip()]
    tokens = [(i, w) for i, phrase in enumerate(phrases) for w in phrase]

    def core(word: str) -> str:
        return re.sub(r"[^\w-]", "", word.lower())

    def render(keep: set[int]) -> str:
        parts: list[str] = []
        position = 0
        for phrase in phrases:
            kept = [w for j, w in enumerate(phrase, start=position) if j in keep]
            position += len(phrase)
            if kept:
                parts.append(" ".join(kept))
        return ", ".join(parts)

    every = set(range(len(tokens)))
    no_fluff = {n for n in every if core(tokens[n][1]) not in _FLUFF}
    keywords = [n for n in no_fluff if core(tokens[n][1]) not in _STOP] or sorted(no_fluff)
    # Earlier words usually carry the subject; longer words more meaning than short.
    total = max(1, len(tokens))
    ranked = sorted(keywords, key=lambda n: -((1 - n / total) + min(len(tokens[n][1]), 10) / 20))
    options = [render(no_fluff), render(set(keywords))]
    for share in (0.7, 0.45, 0.25):
        options.append(render(set(ranked[: max(1, round(len(ranked) * share))])))
    unique = [o for o in dict.fromkeys(options) if o] or [words.strip()]
    return [f"{KEYCAPS[n]} {o}{' ' + params if params else ''}" for n, o in enumerate(unique)]


_HUE_NAMES = ((15, "red"), (40, "orange"), (65, "yellow"), (95, "lime"), (160, "green"),
              (195, "teal"), (250, "blue"), (285, "violet"), (320, "magenta"), (345, "pink"),
              (361, "red"))  # fmt: skip
_RATIOS = ("1:1", "5:4", "4:3", "3:2", "16:9", "2:1", "21:9", "4:5", "3:4", "2:3", "9:16", "1:2")


def _colour_name(hsv: HSV) -> str:
    h, s, v = hsv
    if v < 0.16:
        return "black"
    if s < 0.14:
        return _grade(v, 0.36, 0.75, ("charcoal", "grey", "pale grey"))
    name = next(n for limit, n in _HUE_NAMES if h * 360 < limit)
    if name == "orange" and v < 0.6:
        name = "brown"
    if v < 0.42:
        return f"deep {name}"
    if s < 0.4:
        return f"pastel {name}" if v > 0.75 else f"muted {name}"
    return name


def _grade(value: float, low: float, high: float, words: tuple[str, str, str]) -> str:
    """words[0] below `low`, words[2] above `high`, words[1] between."""
    return words[0] if value < low else words[2] if value > high else words[1]


def _nearest_ratio(width: int, height: int) -> str:
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - target)

    return min(_RATIOS, key=distance)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def describe_texts(image: Image.Image) -> list[str]:
    """Four prompts from what the picture actually is: its colours, light and shape."""
    thumb = image.convert("RGB")
    thumb.thumbnail((96, 96))
    grey = ImageStat.Stat(thumb.convert("L"))
    brightness, contrast = grey.mean[0], grey.stddev[0]
    saturation = ImageStat.Stat(thumb.convert("HSV")).mean[1] / 255
    names: list[str] = []
    for name in (_colour_name(c) for c in _palette_of(thumb)):
        if all(name.split()[-1] != n.split()[-1] for n in names):  # not "red" after "deep red"
            names.append(name)
    for spare in ("grey", "black", "white"):
        if len(names) < 3 and spare not in names:
            names.append(spare)
    c1, c2, c3 = names[:3]
    aspect = image.width / image.height
    shape = (
        "panoramic"
        if aspect > 1.9
        else _grade(aspect, 0.87, 1.15, ("portrait", "square", "landscape"))
    )
    light = _grade(
        brightness, 80, 170, ("low-key, moody lighting", "soft natural light", "bright, airy light")
    )
    mood = _grade(brightness, 80, 170, ("dark", "quiet", "luminous"))
    tone = _grade(
        contrast, 25, 60, ("low contrast, soft tones", "balanced contrast", "high contrast")
    )
    colour = _grade(
        saturation,
        0.2,
        0.5,
        ("muted desaturated palette", "gentle colours", "vivid saturated colours"),
    )
    prompts = [
        f"{_article(c1)} {c1} and {c2} abstract composition, {light}, {tone}",
        f"{shape} colour field painting in {c1}, {c2} and {c3}, {colour}, minimalism",
        f"{_article(mood)} {mood} photograph dominated by {c1} tones with {c2} accents, "
        f"{light}, shallow depth of field",
        f"{c2} and {c1} gradients with geometric shapes, digital art, {colour}, {tone}",
    ]
    ratio = _nearest_ratio(*image.size)
    return [f"{KEYCAPS[n]} {p} --ar {ratio}" for n, p in enumerate(prompts)]


# --------------------------------------------------------------------------- storage


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and os.replace, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


# --------------------------------------------------------------------------- the provider


class SandboxProvider(Provider):
    """An offline provider that draws real pictures; see the module docstring."""

    kind = "sandbox"
    features = frozenset(
        {Feature.CANCEL, Feature.PROGRESS, Feature.PREVIEW, Feature.BATCH_FETCH, Feature.IMAGE_SEED}
    )
    accepted_params = ACCEPTED_PARAMS
    batch_size = 100
    max_images = 5

    def __init__(
        self,
        config: SandboxConfig,
        client: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # `client` is unused (nothing goes over the network) but keeps the constructor
        # the same as the other adapters'. `clock` is the wall clock: progress must
        # survive a restart, so time.monotonic() (per boot, per process) will not do.
        self.config = config
        self.name = config.name
        self.poll_interval = config.poll_interval or max(0.1, min(1.0, config.duration / 10))
        self._clock = clock
        self._dir = Path(config.state_dir)
        self._tasks_dir = self._dir / "tasks"
        self._inputs_dir = self._dir / "inputs"
        self._specs: OrderedDict[str, _Spec] = OrderedDict()
        self._specs_lock = threading.Lock()
        self._max_specs = 20_000
        self._renderer = _Renderer(self._spec_sync, self._inputs_dir)
        self._bytes: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._ids = itertools.count()
        words = [w.strip() for w in config.banned_words if w.strip()]
        self._banned = [(w, re.compile(rf"(?<!\w){re.escape(w)}(?!\w)", re.I)) for w in words]

    # -- the protocol: capabilities

    def supports(self, action: Action) -> Support | None:
        return Support(How.NATIVE)

    # -- specs: memory first, then the state dir

    def _remember(self, spec: _Spec) -> None:
        with self._specs_lock:
            self._specs[spec.id] = spec
            self._specs.move_to_end(spec.id)
            while len(self._specs) > self._max_specs:
                self._specs.popitem(last=False)

    def _spec_sync(self, task_id: str) -> _Spec | None:
        """The spec from memory, else from its file (call from a worker thread)."""
        spec = self._specs.get(task_id)
        if spec is not None or not _TASK_ID.fullmatch(task_id):
            return spec
        path = self._tasks_dir / f"{task_id}.json"
        try:
            spec = _Spec.from_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as err:
            log.warning("sandbox: cannot read task file %s: %s", path, err)
            return None
        self._remember(spec)
        return spec

    async def _spec(self, task_id: str) -> _Spec | None:
        spec = self._specs.get(task_id)
        if spec is None:
            spec = await asyncio.to_thread(self._spec_sync, task_id)
        return spec

    # -- progress, from the clock

    def _state(self, spec: _Spec, now: float) -> tuple[TaskState, float]:
        if spec.cancelled:
            return TaskState.CANCELLED, 0.0
        elapsed = now - spec.submitted_at
        if elapsed >= spec.duration:
            return TaskState.SUCCEEDED, 100.0
        queued = spec.duration * QUEUED_SHARE
        if elapsed < queued:
            return TaskState.QUEUED, 0.0
        share = (elapsed - queued) / (spec.duration - queued)
        return TaskState.RUNNING, float(min(99, max(0, math.floor(share * 100))))

    def _snapshot(self, spec: _Spec, now: float) -> TaskSnapshot:
        state, progress = self._state(spec, now)
        status = {
            TaskState.QUEUED: "NOT_START",
            TaskState.RUNNING: "IN_PROGRESS",
            TaskState.SUCCEEDED: "SUCCESS",
            TaskState.CANCELLED: "CANCEL",
        }[state]
        snap = TaskSnapshot(
            task_id=spec.id,
            state=state,
            progress=progress if state is not TaskState.CANCELLED else None,
            seed=str(spec.seed),
            provider_status=status,
        )
        if state is TaskState.QUEUED:
            snap.queue_position = 1
        if state is TaskState.RUNNING and spec.makes_images:
            step = min(90, int(progress) // 10 * 10)
            snap.preview_url = f"{URL_SCHEME}{spec.id}/preview/{step}"
        if state is TaskState.SUCCEEDED:
            if spec.makes_images:
                width, height = spec.image_size()
                snap.image_urls = [f"{URL_SCHEME}{spec.id}/1"]
                snap.grid = spec.grid
                snap.extra = {"width": width, "height": height}
                snap.followups = list(self._followups(spec))
            else:
                snap.texts = list(spec.texts)
        return snap

    @staticmethod
    def _followups(spec: _Spec) -> Sequence[FollowUp]:
        if spec.grid:
            return _GRID_FOLLOWUPS
        if spec.draw == "upscale":
            return _UPSCALE_FOLLOWUPS
        if spec.draw in ("upscale_subtle", "upscale_creative"):
            # Already 2x: Midjourney offers no further upscale of an upscale.
            return _EDIT_FOLLOWUPS
        return ()

    # -- the protocol: tasks

    async def fetch(self, tasks: Sequence[TaskRef]) -> dict[str, TaskSnapshot]:
        wanted = [t for t in dict.fromkeys(r.task_id for r in tasks) if _TASK_ID.fullmatch(t)]
        missing = [t for t in wanted if t not in self._specs]
        if missing:
            # One trip to a worker thread for all of them, and only for ids not yet seen:
            # after the first poll, fetching is memory and arithmetic.
            await asyncio.to_thread(lambda: [self._spec_sync(t) for t in missing])
        now = self._clock()
        found: dict[str, TaskSnapshot] = {}
        for task_id in wanted:
            spec = self._specs.get(task_id)
            if spec is not None:
                found[task_id] = self._snapshot(spec, now)
        return found

    async def cancel(self, task_id: str) -> None:
        spec = await self._spec(task_id)
        if spec is None:
            raise TaskNotFound(f"The sandbox has no job {task_id}.", provider=self.name)
        now = self._clock()
        state, _ = self._state(spec, now)
        if state.finished:
            return  # nothing to stop; cancelling twice, or too late, is not an error
        spec = dataclasses.replace(spec, cancelled=True, cancelled_at=now)
        await asyncio.to_thread(self._save, spec, ())
        self._remember(spec)

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        self._check_banned(request.prompt, request.text)
        now = self._clock()
        task_id = (
            f"{int(now * 1000):013d}{next(self._ids) % 1000:03d}{secrets.randbelow(10**6):06d}"
        )
        parent = None
        if request.parent_task_id:
            parent = await self._spec(request.parent_task_id)
            if parent is None:
                raise TaskNotFound(
                    f"The sandbox has no job {request.parent_task_id} (it may have been made "
                    "with another state_dir).",
                    provider=self.name,
                )

        def plan_and_save() -> _Spec:
            spec, inputs = self._plan(request, task_id, now, parent)
            self._save(spec, inputs)
            return spec

        # One trip to a worker thread: planning may decode images, saving writes files.
        spec = await asyncio.to_thread(plan_and_save)
        self._remember(spec)
        return SubmitResult(task_id, self._snapshot(spec, now))

    def _check_banned(self, *texts: str) -> None:
        for word, pattern in self._banned:
            if any(pattern.search(text) for text in texts):
                raise PromptRejected(
                    f'Banned prompt detected: "{word}" is not allowed here (the sandbox '
                    "refuses the words in its banned_words setting).",
                    provider=self.name,
                )

    def _save(self, spec: _Spec, inputs: Sequence[bytes]) -> None:
        for n, data in enumerate(inputs):
            _write_atomic(self._inputs_dir / f"{spec.id}-{n}.png", data)
        _write_atomic(self._tasks_dir / f"{spec.id}.json", spec.to_json())

    # -- planning a task (in a worker thread: it may decode images)

    def _reject(self, message: str) -> PromptRejected:
        return PromptRejected(message, provider=self.name)

    def _plan(
        self, request: SubmitRequest, task_id: str, now: float, parent: _Spec | None
    ) -> tuple[_Spec, list[bytes]]:
        action = request.action
        words = request.text.strip() or split_prompt(request.prompt)[0]
        params = {str(k): str(v) for k, v in request.params.items()}
        base = _Spec(
            id=task_id,
            action=action.value,
            draw=action.value,
            prompt=request.prompt,
            text=words,
            params=params,
            seed=self._seed(params, words),
            submitted_at=now,
            duration=self.config.duration,
            long=self.config.size,
        )
        size = self.config.size
        if action is Action.IMAGINE:
            images = [self._open_input(i) for i in request.images[:1]]
            palette = [list(c) for c in _palette_of(images[0])] if images else []
            return dataclasses.replace(
                base, grid=True, ratio=self._ratio(params), palette=palette
            ), []
        if action is Action.DESCRIBE:
            if not request.images:
                raise self._reject(
                    "Describe needs an image: attach one (the sandbox cannot fetch links)."
                )
            texts = describe_texts(self._open_input(request.images[0]))
            return dataclasses.replace(base, texts=texts, long=0), []
        if action is Action.SHORTEN:
            if not words:
                raise self._reject("Shorten needs a prompt.")
            texts = shorten_texts(words, split_prompt(request.prompt)[1])
            return dataclasses.replace(base, texts=texts, long=0), []
        if action is Action.BLEND:
            if not 2 <= len(request.images) <= 5:
                raise self._reject(f"Blend takes 2 to 5 images, not {len(request.images)}.")
            if request.dimensions not in BLEND_DIMENSIONS:
                raise self._reject(
                    f"Blend dimensions must be one of {', '.join(BLEND_DIMENSIONS)}."
                )
            stored = [self._store_input(self._open_input(i)) for i in request.images]
            digest = hashlib.blake2b(b"".join(stored), digest_size=8).hexdigest()
            seed = self._seed(params, f"blend {digest}")
            spec = dataclasses.replace(
                base,
                grid=True,
                ratio=_BLEND_RATIOS[request.dimensions],
                dimensions=request.dimensions,
                n_inputs=len(stored),
                seed=seed,
            )
            return spec, stored
        if action is Action.SWAP_FACE:
            if len(request.images) != 2:
                raise self._reject(
                    "Face swap takes two images: the face, then the picture to put it in."
                )
            opened = [self._open_input(i) for i in request.images]
            stored = [self._store_input(i) for i in opened]
            target = opened[1]
            return dataclasses.replace(
                base,
                ratio=target.width / target.height,
                n_inputs=2,
                long=min(size, max(target.size)),
            ), stored

        # Everything else acts on an earlier job.
        if parent is None:
            raise self._reject(f"{action.value} needs the job it acts on.")
        if not parent.makes_images:
            raise self._reject(f"That {parent.action} job has no image to act on.")
        if parent.depth + 1 > MAX_CHAIN:
            raise self._reject(
                "This chain of edits is too long for the sandbox; start again from a new /imagine."
            )
        state, _ = self._state(parent, now)
        if state is not TaskState.SUCCEEDED:
            raise self._reject(f"That job is {state.value}, not finished; wait for its images.")
        index = request.index if parent.grid else 1
        if parent.grid and not 1 <= index <= 4:
            if action in (Action.UPSCALE, Action.VARIATION):
                raise self._reject(f"Pick image 1-4 of the grid, not {request.index}.")
            index = 1
        child = dataclasses.replace(
            base,
            parent=parent.id,
            index=index,
            depth=parent.depth + 1,
            ratio=parent.ratio,
            variant=request.variant,
        )
        if not words:
            # Buttons carry no words: the job keeps its parent's (Vary (Region) redraws
            # with them, as Midjourney does unless remix gives new ones).
            child = dataclasses.replace(child, prompt=parent.prompt, text=parent.text)
        if not request.params.get("seed"):
            # A follow-up is a new picture: a fresh seed, as on Midjourney.
            child = dataclasses.replace(child, seed=secrets.randbelow(2**32))
        parent_long = parent.image_long(index)

        if action in (Action.UPSCALE, Action.VARIATION):
            if not parent.grid:
                raise self._reject(
                    f"{'U' if action is Action.UPSCALE else 'V'}1-4 act on a "
                    "grid, and this job is a single image."
                )
            return dataclasses.replace(child, grid=action is Action.VARIATION, long=parent.long), []
        if action is Action.REROLL:
            return self._plan_reroll(request, child, parent), []
        if action in (Action.UPSCALE_SUBTLE, Action.UPSCALE_CREATIVE):
            return dataclasses.replace(child, long=min(MAX_UPSCALE_SIDE, parent_long * 2)), []
        if action in (Action.VARY_SUBTLE, Action.VARY_STRONG):
            return dataclasses.replace(child, grid=True), []
        if action is Action.ZOOM:
            return self._plan_zoom(request, child, parent), []
        if action is Action.PAN:
            if request.variant not in PAN_VARIANTS:
                raise self._reject(f"Pan goes {', '.join(PAN_VARIANTS)}, not {request.variant!r}.")
            ratio = parent.ratio * (1.5 if request.variant in ("left", "right") else 1 / 1.5)
            if not 1 / MAX_RATIO <= ratio <= MAX_RATIO:
                raise self._reject(
                    "Panning further would make the picture too narrow "
                    f"(the sandbox draws up to {MAX_RATIO:g}:1)."
                )
            return dataclasses.replace(child, grid=True, ratio=ratio), []
        if action is Action.INPAINT:
            regions = [
                [float(v) for v in r]
                for r in request.regions
                if media.pixel_box(r, (1000, 1000)) is not None
            ]
            if not regions:
                raise self._reject("Vary (Region) needs at least one area to redraw.")
            return dataclasses.replace(child, grid=True, regions=regions), []
        raise self._reject(f"The sandbox does not know the action {action.value!r}.")

    def _plan_reroll(self, request: SubmitRequest, child: _Spec, parent: _Spec) -> _Spec:
        if not parent.grid:
            raise self._reject("Reroll acts on a grid, and this job is a single image.")
        # A reroll draws what its parent drew, again, with a new seed. With a new prompt
        # (remix) an imagine takes the new words and parameters.
        spec = dataclasses.replace(
            child,
            draw=parent.draw,
            prompt=parent.prompt,
            text=parent.text,
            params=parent.params,
            parent=parent.parent,
            index=parent.index,
            depth=parent.depth,
            variant=parent.variant,
            grid=True,
            ratio=parent.ratio,
            long=parent.long,
            regions=parent.regions,
            zoom=parent.zoom,
            dimensions=parent.dimensions,
            inputs_of=parent.inputs_of or (parent.id if parent.n_inputs else None),
            n_inputs=parent.n_inputs,
            palette=parent.palette,
        )
        if parent.draw == "imagine" and (request.text.strip() or request.prompt.strip()):
            words = request.text.strip() or split_prompt(request.prompt)[0]
            params = {str(k): str(v) for k, v in request.params.items()}
            spec = dataclasses.replace(
                spec, prompt=request.prompt, text=words, params=params, ratio=self._ratio(params)
            )
        return spec

    def _plan_zoom(self, request: SubmitRequest, child: _Spec, parent: _Spec) -> _Spec:
        if request.variant not in ZOOM_VARIANTS:
            raise self._reject(
                f"Zoom is one of {', '.join(ZOOM_VARIANTS)}, not {request.variant!r}."
            )
        ratio = parent.ratio
        if request.variant == "custom":
            raw = request.params.get("zoom", "2")
            try:
                zoom = float(raw)
            except ValueError:
                zoom = math.nan
            if not 1.0 <= zoom <= 2.0:
                raise self._reject(f"--zoom must be between 1 and 2, not {raw!r}.")
            if request.params.get("aspect"):
                ratio = self._ratio(request.params)  # Custom Zoom may change the shape
        else:
            zoom = float(request.variant)
        return dataclasses.replace(child, grid=True, zoom=zoom, ratio=ratio)

    def _seed(self, params: Mapping[str, str], words: str) -> int:
        raw = params.get("seed")
        if raw is None or raw == "":
            return _mix("seed", " ".join(words.lower().split())) % 2**32
        try:
            seed = int(raw)
        except ValueError:
            seed = -1
        if not 0 <= seed < 2**32:
            raise self._reject(f"--seed must be a whole number from 0 to 4294967295, not {raw!r}.")
        return seed

    def _ratio(self, params: Mapping[str, str]) -> float:
        raw = params.get("aspect")
        if not raw:
            return 1.0
        match = _RATIO.fullmatch(raw)
        width, height = (float(match[1]), float(match[2])) if match else (0.0, 0.0)
        if width <= 0 or height <= 0:
            raise self._reject(f"--ar must look like 3:2, not {raw!r}.")
        ratio = width / height
        if not 1 / MAX_RATIO <= ratio <= MAX_RATIO:
            raise self._reject(f"--ar {raw} is too extreme; the sandbox draws from 1:4 to 4:1.")
        return ratio

    def _open_input(self, image: Any) -> Image.Image:
        try:
            media.inspect_image(image.data)
            with Image.open(io.BytesIO(image.data)) as opened:
                return ImageOps.exif_transpose(opened).convert("RGB")
        except media.MediaError as err:
            raise self._reject(str(err)) from None

    def _store_input(self, image: Image.Image) -> bytes:
        """An input image as kept in the state dir: no larger than the results need."""
        copy = image.copy()
        copy.thumbnail((self.config.size, self.config.size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        copy.save(out, "PNG", compress_level=1)
        return out.getvalue()

    # -- the protocol: images, health

    async def download(self, url: str, max_bytes: int) -> bytes:
        match = _URL.fullmatch(url)
        if match is None:
            raise BadResponse(f"{url!r} is not a sandbox image link.", provider=self.name)
        task_id = match[1]
        preview = int(match[3]) if match[2] else None
        if preview is None and match[4] != "1":
            raise BadResponse(f"Sandbox job {task_id} has no image {match[4]}.", provider=self.name)
        spec = await self._spec(task_id)
        if spec is None:
            raise TaskNotFound(f"The sandbox has no job {task_id}.", provider=self.name)
        if not spec.makes_images:
            raise BadResponse(f"Sandbox job {task_id} made texts, not images.", provider=self.name)
        key = (*_content_key(spec), spec.long, None if preview is None else min(100, preview))
        data = self._bytes.get(key)
        if data is None:
            data = await asyncio.to_thread(self._renderer.png, spec, key[-1])
            self._bytes[key] = data
            while len(self._bytes) > 16:
                self._bytes.popitem(last=False)
        if len(data) > max_bytes:
            raise ImageTooLarge(
                f"The image is {len(data) / 1048576:.1f} MiB, more than the "
                f"{max_bytes / 1048576:.1f} MiB allowed.",
                provider=self.name,
            )
        return data

    async def check(self) -> CheckResult:
        def probe() -> int:
            self._tasks_dir.mkdir(parents=True, exist_ok=True)
            _write_atomic(self._tasks_dir / ".probe", b"ok")
            (self._tasks_dir / ".probe").unlink()
            return sum(1 for e in os.scandir(self._tasks_dir) if e.name.endswith(".json"))

        where = self._dir.resolve()
        try:
            count = await asyncio.to_thread(probe)
        except OSError as err:
            return CheckResult(
                "error", f"The sandbox cannot write its state to {where}: {err.strerror or err}."
            )
        return CheckResult(
            "healthy",
            f"Offline sandbox: draws pictures locally in about {self.config.duration:g} s "
            f"per job; {count} job(s) kept in {where}.",
        )
