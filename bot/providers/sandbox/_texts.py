"""The sandbox's texts: /describe reads a picture, /shorten trims a prompt."""

from __future__ import annotations

import math
import re

from PIL import Image, ImageStat

from bot.providers.sandbox._palette import HSV, palette_of, wordset
from bot.vocab import numbered

_PARAMS_START = re.compile(r"(?:^|\s)--[A-Za-z]")
_STOP = wordset(
    "a an the of in on at with and or to from into by for as is are was were be its it "
    "their his her this that these those which who while over under near some"
)
_FLUFF = wordset(
    "very really extremely highly incredibly super ultra hyper beautiful stunning amazing "
    "gorgeous awesome epic masterpiece best quality detailed intricate realistic "
    "photorealistic hyperrealistic 4k 8k 16k hd uhd hdr resolution trending artstation "
    "award winning professional sharp focus"
)
_HUE_NAMES = ((15, "red"), (40, "orange"), (65, "yellow"), (95, "lime"), (160, "green"),
              (195, "teal"), (250, "blue"), (285, "violet"), (320, "magenta"), (345, "pink"),
              (361, "red"))  # fmt: skip
_RATIOS = ("1:1", "5:4", "4:3", "3:2", "16:9", "2:1", "21:9", "4:5", "3:4", "2:3", "9:16", "1:2")


def split_prompt(prompt: str) -> tuple[str, str]:
    """(words, parameters): "a cat --ar 3:2" -> ("a cat", "--ar 3:2")."""
    match = _PARAMS_START.search(prompt)
    if match is None:
        return prompt.strip(), ""
    start = match.start() + (1 if prompt[match.start()].isspace() else 0)
    return prompt[:start].strip(), prompt[start:].strip()


# --------------------------------------------------------------------------- shorten


def _core(word: str) -> str:
    return re.sub(r"[^\w-]", "", word.lower())


def _joined(phrases: list[list[str]], keep: set[int]) -> str:
    """The words numbered in `keep` (counting across phrases), phrases comma-separated."""
    parts: list[str] = []
    position = 0
    for phrase in phrases:
        kept = [w for j, w in enumerate(phrase, start=position) if j in keep]
        position += len(phrase)
        if kept:
            parts.append(" ".join(kept))
    return ", ".join(parts)


def shorten_texts(words: str, params: str = "") -> list[str]:
    """Shorter versions of a prompt, longest first, numbered like Midjourney's /shorten."""
    phrases = [p.split() for p in re.split(r"[,;]", words) if p.strip()]
    tokens = [w for phrase in phrases for w in phrase]
    no_fluff = {n for n, word in enumerate(tokens) if _core(word) not in _FLUFF}
    keywords = [n for n in no_fluff if _core(tokens[n]) not in _STOP] or sorted(no_fluff)
    # Earlier words usually carry the subject; longer words more meaning than short.
    total = max(1, len(tokens))
    ranked = sorted(keywords, key=lambda n: -((1 - n / total) + min(len(tokens[n]), 10) / 20))
    options = [_joined(phrases, no_fluff), _joined(phrases, set(keywords))]
    for share in (0.7, 0.45, 0.25):
        options.append(_joined(phrases, set(ranked[: max(1, round(len(ranked) * share))])))
    unique = [o for o in dict.fromkeys(options) if o] or [words.strip()]
    return numbered([f"{o} {params}" if params else o for o in unique])


# --------------------------------------------------------------------------- describe


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


def _colour_names(thumb: Image.Image) -> tuple[str, str, str]:
    """The picture's three main colours in words, each hue named once."""
    names: list[str] = []
    for name in (_colour_name(c) for c in palette_of(thumb)):
        if all(name.split()[-1] != n.split()[-1] for n in names):  # not "red" after "deep red"
            names.append(name)
    for spare in ("grey", "black", "white"):
        if len(names) < 3 and spare not in names:
            names.append(spare)
    return names[0], names[1], names[2]


def describe_texts(image: Image.Image) -> list[str]:
    """Four prompts from what the picture actually is: its colours, light and shape."""
    thumb = image.convert("RGB")
    thumb.thumbnail((96, 96))
    grey = ImageStat.Stat(thumb.convert("L"))
    brightness, contrast = grey.mean[0], grey.stddev[0]
    saturation = ImageStat.Stat(thumb.convert("HSV")).mean[1] / 255
    c1, c2, c3 = _colour_names(thumb)
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
    return numbered([f"{p} --ar {ratio}" for p in prompts])
