"""Palettes: five HSV colours, from the prompt's words or from an image."""

from __future__ import annotations

import colorsys
import re
from collections.abc import Sequence
from random import Random

from PIL import Image

from bot.providers.sandbox._hashing import mix

HSV = tuple[float, float, float]  # hue, saturation, value, each 0-1

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


def wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


_DARK_WORDS = wordset("night midnight dark noir moody shadow gothic space cave storm horror")
_LIGHT_WORDS = wordset("bright pastel light snow white airy sunny morning cloud clouds")
# How the accents sit around the base hue, in degrees; the seed picks one.
_HARMONIES = [(0, 30, -30, 180), (0, 180, 20, 200), (0, 120, 240, 60), (0, 150, 210, 30)]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def _hues(words: Sequence[str]) -> list[float]:
    return [_HUE_WORDS[w] / 360 for w in words if w in _HUE_WORDS]


def palette_from_text(text: str, seed: int, avoid: str = "") -> list[HSV]:
    """Five colours: two for the background, three accents. Steered by colour words."""
    words = _words(text)
    rng = Random(mix("palette", " ".join(words), seed))
    hues = _hues(words)
    base = hues[0] if hues else rng.random()
    offsets = rng.choice(_HARMONIES)
    accents = [(base + o / 360 + rng.uniform(-0.02, 0.02)) % 1 for o in offsets]
    if len(hues) > 1:
        accents[1] = hues[1]
    # "--no red" keeps red out of the accents, like Midjourney's negative prompt.
    banned = _hues(_words(avoid))
    accents = [_avoid(h, banned) for h in accents]
    dark = any(w in _DARK_WORDS for w in words)
    light = any(w in _LIGHT_WORDS for w in words) and not dark
    bg = _background(rng, accents, dark=dark, light=light)
    sat = (0.25, 0.55) if light else (0.55, 1.0)
    val = (0.45, 0.8) if dark else (0.7, 1.0)
    return bg + [(h, rng.uniform(*sat), rng.uniform(*val)) for h in accents[1:]]


def _background(rng: Random, accents: Sequence[float], *, dark: bool, light: bool) -> list[HSV]:
    """The two background colours: deep for dark words, pale for light ones."""
    if dark:
        return [
            (accents[0], rng.uniform(0.5, 0.9), rng.uniform(0.06, 0.16)),
            (accents[1], rng.uniform(0.5, 0.9), rng.uniform(0.2, 0.35)),
        ]
    if light:
        return [
            (accents[0], rng.uniform(0.1, 0.3), rng.uniform(0.85, 1.0)),
            (accents[1], rng.uniform(0.15, 0.4), rng.uniform(0.75, 0.95)),
        ]
    return [
        (accents[0], rng.uniform(0.5, 0.9), rng.uniform(0.15, 0.35)),
        (accents[1], rng.uniform(0.4, 0.8), rng.uniform(0.55, 0.8)),
    ]


def _avoid(hue: float, banned: Sequence[float]) -> float:
    for bad in banned:
        if min(abs(hue - bad), 1 - abs(hue - bad)) < 0.07:
            return (hue + 1 / 3) % 1
    return hue


def palette_of(image: Image.Image) -> list[HSV]:
    """The five most common colours of an image, most common first."""
    thumb = image.convert("RGB")
    thumb.thumbnail((48, 48))
    quant = thumb.quantize(5, method=Image.Quantize.MEDIANCUT)
    flat = quant.getpalette() or []
    # A palette image counts its colours by index into that palette.
    indices = [i for _, i in sorted(quant.getcolors() or [], reverse=True) if isinstance(i, int)]
    colours = [to_hsv(flat[i * 3 : i * 3 + 3]) for i in indices] or [(0, 0, 0.5)]
    while len(colours) < 5:
        colours.append(colours[len(colours) % max(1, len(colours))])
    return colours[:5]


def to_hsv(colour: Sequence[int]) -> HSV:
    r, g, b = colour[:3]
    return colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)


def as_hsv(stored: Sequence[float]) -> HSV:
    """A colour as a task's JSON keeps it (a list of three numbers)."""
    return stored[0], stored[1], stored[2]


def rgb(hsv: HSV, alpha: int | None = None) -> tuple[int, ...]:
    h, s, v = hsv
    r, g, b = colorsys.hsv_to_rgb(h % 1, min(1, max(0, s)), min(1, max(0, v)))
    out = (round(r * 255), round(g * 255), round(b * 255))
    return out if alpha is None else (*out, alpha)


def tint(hsv: HSV, dh: float = 0, ds: float = 0, dv: float = 0) -> HSV:
    return ((hsv[0] + dh) % 1, min(1, max(0, hsv[1] + ds)), min(1, max(0, hsv[2] + dv)))
