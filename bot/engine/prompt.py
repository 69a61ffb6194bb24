"""Prompt rules: the one place that knows what a Midjourney-style prompt may contain.

A prompt has three parts, in this order (as on Midjourney):

1. image-prompt URLs (``http``/``https``), only at the very start;
2. the text (words);
3. parameters: ``--name value``. Once the first parameter starts, everything else must be
   parameters or their values; words after a parameter are an error, not silently moved.

``parse_prompt`` validates and normalises a prompt into a ``ParsedPrompt``; ``render`` turns
it back into a canonical string; ``check_supported`` checks it against the parameter set a
provider declares. Pure, deterministic, no I/O: the same input always gives the same result
or the same ``PromptError``.

Value limits (Midjourney's documented ranges, narrowed where noted):

- ``--ar``: ``W:H``, whole numbers 1..10000 each, reduced by their common divisor
  (``32:18`` -> ``16:9``); the long side at most 14 times the short side (1:14 .. 14:1),
  the most extreme ratio Midjourney renders.
- ``--quality``: 0.25, 0.5, 1, 2 or 4 (the union of what the model versions accept).
- ``--stop``: 10..100 (Midjourney rejects stops below 10).
- ``--version``: 1, 2, 3, 4, 5, 5.1, 5.2, 6, 6.1, 7 (``6.0`` -> ``6``); ``--niji``: bare, 4, 5, 6.
- Everything else as listed in ``PARAMS``.
"""

from __future__ import annotations

import difflib
import enum
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlsplit

from bot.vocab import ALL_PARAMS, MODES, Param

__all__ = [
    "ALL_PARAM_NAMES",
    "MAX_PROMPT_CHARS",
    "PARAMS",
    "Kind",
    "ParamSpec",
    "ParsedPrompt",
    "PromptError",
    "check_supported",
    "parse_prompt",
    "resolve_name",
]

MAX_PROMPT_CHARS = 8192

# --ar limits: see the module docstring.
MAX_ASPECT_SIDE = 10000
MAX_ASPECT_RATIO = 14


class PromptError(ValueError):
    """A prompt the rules reject.

    ``str(err)`` is a user-facing sentence naming the offending parameter and value and
    saying what to do. ``param`` is the canonical name of the offending parameter (for a
    refused Midjourney parameter such as ``--r``, its long name: ``"repeat"``), or None when
    no single parameter is at fault (length, unknown name, permutations, missing text).
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param: str | None = param


class Kind(enum.Enum):
    """What a parameter's value looks like."""

    FLAG = "flag"  # no value
    INT = "int"  # whole number in [low, high]
    FLOAT = "float"  # decimal number in [low, high]
    RATIO = "ratio"  # W:H
    TEXT = "text"  # free words up to the next parameter (--no)
    URLS = "urls"  # one or more image URLs (--sref also takes style codes and "random")
    CHOICE = "choice"  # one of `choices`


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its spellings, value kind and limits."""

    name: str  # canonical name, the key in PARAMS and ParsedPrompt.params
    aliases: tuple[str, ...]  # every accepted spelling without dashes
    kind: Kind
    flag: str  # how render() writes it, Midjourney's usual spelling, e.g. "--ar"
    description: str
    low: int | float | None = None  # INT / FLOAT range, inclusive
    high: int | float | None = None
    choices: tuple[str, ...] = ()  # CHOICE: normalised accepted values
    numeric_choices: bool = False  # CHOICE: compare as numbers ("6.0" == "6")
    value_optional: bool = False  # --niji may stand alone
    codes_allowed: bool = False  # URLS: --sref also takes style codes and "random"
    max_items: int | None = None  # URLS: at most this many values

    @property
    def hint(self) -> str:
        """What the value should be, as a phrase for messages ("a whole number from 0 to 100")."""
        match self.kind:
            case Kind.FLAG:
                return "no value"
            case Kind.INT:
                return f"a whole number from {_fmt(self.low)} to {_fmt(self.high)}"
            case Kind.FLOAT:
                return f"a number from {_fmt(self.low)} to {_fmt(self.high)}"
            case Kind.RATIO:
                return (
                    "a width:height ratio of whole numbers such as 16:9, "
                    f"from 1:{MAX_ASPECT_RATIO} to {MAX_ASPECT_RATIO}:1"
                )
            case Kind.TEXT:
                return "the things to leave out, e.g. --no text, people"
            case Kind.URLS:
                if self.codes_allowed:
                    return "image URLs, style codes (numbers) or random"
                if self.max_items == 1:
                    return "one image URL"
                return "one or more image URLs"
            case Kind.CHOICE:
                listed = ", ".join(self.choices)
                return f"one of {listed}" + (" (or no value)" if self.value_optional else "")
        raise AssertionError(self.kind)  # pragma: no cover - every Kind is handled above


def _fmt(number: int | float | None) -> str:
    # Ranges read "0.25" or "100", never "100.0".
    if number is None:  # pragma: no cover - ranges always set for INT/FLOAT
        return "?"
    if float(number).is_integer():
        return str(int(number))
    return str(number)


# One line per parameter reads better as a table than as formatter-wrapped calls.
# fmt: off
P = Param  # short, so that each row still fits one line
_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec(P.ASPECT, ("ar", "aspect"), Kind.RATIO, "--ar", "Aspect ratio, width:height."),
    ParamSpec(P.CHAOS, ("chaos", "c"), Kind.INT, "--chaos", "How varied the 4 images are.", low=0,
        high=100),
    ParamSpec(P.NO, ("no",), Kind.TEXT, "--no", "Things to leave out of the image."),
    ParamSpec(P.QUALITY, ("quality", "q"), Kind.CHOICE, "--quality", "Rendering time and detail.",
        choices=("0.25", "0.5", "1", "2", "4"), numeric_choices=True),
    ParamSpec(P.SEED, ("seed",), Kind.INT, "--seed", "Starting noise; same seed, similar images.",
        low=0, high=4294967295),
    ParamSpec(P.STOP, ("stop",), Kind.INT, "--stop", "Stop rendering early, at this percent.",
        low=10, high=100),
    ParamSpec(P.STYLIZE, ("stylize", "s"), Kind.INT, "--stylize", "Strength of the house style.",
        low=0, high=1000),
    ParamSpec(P.SREF, ("sref",), Kind.URLS, "--sref", "Style reference: image URLs or style codes.",
        codes_allowed=True),
    ParamSpec(P.SW, ("sw",), Kind.INT, "--sw", "Style reference weight.", low=0, high=1000),
    ParamSpec(P.SV, ("sv",), Kind.INT, "--sv", "Style reference algorithm version.", low=1, high=6),
    ParamSpec(P.CREF, ("cref",), Kind.URLS, "--cref", "Character reference image URLs."),
    ParamSpec(P.CW, ("cw",), Kind.INT, "--cw", "Character reference weight.", low=0, high=100),
    ParamSpec(P.OREF, ("oref",), Kind.URLS, "--oref", "Omni reference: one image URL.",
        max_items=1),
    ParamSpec(P.OW, ("ow",), Kind.INT, "--ow", "Omni reference weight.", low=1, high=1000),
    ParamSpec(P.TILE, ("tile",), Kind.FLAG, "--tile", "Seamless, repeating pattern."),
    ParamSpec(P.VERSION, ("version", "v"), Kind.CHOICE, "--v", "Model version.",
        choices=("1", "2", "3", "4", "5", "5.1", "5.2", "6", "6.1", "7"),
        numeric_choices=True),
    ParamSpec(P.NIJI, ("niji",), Kind.CHOICE, "--niji", "The anime model, optionally its version.",
        choices=("4", "5", "6"), numeric_choices=True, value_optional=True),
    ParamSpec(P.RAW, ("raw",), Kind.FLAG, "--raw", "Less house style (same as --style raw)."),
    ParamSpec(P.STYLE, ("style",), Kind.CHOICE, "--style", "Model style variant.",
        choices=("raw", "4a", "4b", "4c", "cute", "expressive", "original", "scenic")),
    ParamSpec(P.WEIRD, ("weird", "w"), Kind.INT, "--weird", "Quirky, unconventional looks.", low=0,
        high=3000),
    ParamSpec(P.IW, ("iw",), Kind.FLOAT, "--iw", "Weight of the image prompts against the text.",
        low=0, high=3),
    ParamSpec(P.DRAFT, ("draft",), Kind.FLAG, "--draft", "Draft mode: faster, cheaper, rougher."),
    ParamSpec(P.EXP, ("exp",), Kind.INT, "--exp", "Experimental aesthetics strength.", low=0,
        high=100),
    ParamSpec(P.FAST, ("fast",), Kind.FLAG, "--fast", "Run this job in fast mode."),
    ParamSpec(P.RELAX, ("relax",), Kind.FLAG, "--relax", "Run this job in relax mode."),
    ParamSpec(P.TURBO, ("turbo",), Kind.FLAG, "--turbo", "Run this job in turbo mode."),
    ParamSpec(P.ZOOM, ("zoom",), Kind.FLOAT, "--zoom", "Custom zoom-out factor.", low=1, high=2),
    ParamSpec(P.STEPS, ("steps",), Kind.INT, "--steps", "Sampling steps (Flux).", low=4, high=10),
)
# fmt: on

PARAMS: dict[str, ParamSpec] = {spec.name: spec for spec in _SPECS}
ALL_PARAM_NAMES: frozenset[str] = ALL_PARAMS  # the table above has one row for each

# Every accepted spelling -> canonical name.
_ALIASES: dict[str, str] = {alias: spec.name for spec in _SPECS for alias in spec.aliases}

# Midjourney parameters that we recognise but refuse, so the user learns why instead of
# reading "unknown parameter". Spelling -> (canonical name for PromptError.param, message).
_VIDEO = "{flag} is a video parameter; video parameters are not supported."
_REPEAT = "{flag} (repeat) is not supported; press 🔄 or send the prompt again for more images."
_PROFILE = "{flag}: personalization profiles are not supported by the providers; remove it."
_VISIBILITY = "{flag} is not supported: the provider decides whether images are public; remove it."
_REJECTED: dict[str, tuple[str, str]] = {
    "video": ("video", _VIDEO),
    "motion": ("motion", _VIDEO),
    "loop": ("loop", _VIDEO),
    "end": ("end", _VIDEO),
    "bs": ("batchsize", _VIDEO),
    "batchsize": ("batchsize", _VIDEO),
    "repeat": ("repeat", _REPEAT),
    "r": ("repeat", _REPEAT),
    "profile": ("profile", _PROFILE),
    "p": ("profile", _PROFILE),
    "personalize": ("profile", _PROFILE),
    "public": ("public", _VISIBILITY),
    "stealth": ("stealth", _VISIBILITY),
}

# Parameters that cannot be used together, with the reason shown to the user.
_EXCLUSIVE: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"fast", "relax", "turbo"}), "both set the speed mode"),
    (frozenset({"niji", "version"}), "both choose the model (--niji is the anime model)"),
    (frozenset({"raw", "style"}), "--raw is short for --style raw"),
)

# Weights that only mean something with their reference.
_NEEDS: dict[str, str] = {"cw": "cref", "ow": "oref", "sw": "sref", "sv": "sref"}


# A token that starts a parameter: "--" or the em dash that phones make of "--", then a letter.
# Extra dashes ("---ar", "—-ar") are tolerated as typing slips.
_PARAM_TOKEN = re.compile(r"(?:--|\u2014)[-\u2014]*([A-Za-z]\S*)")
_URL_TOKEN = re.compile(r"<?(https?://[^\s<>]+)>?", re.IGNORECASE)
_INT = re.compile(r"\d{1,15}")  # more digits are out of every range; keeps int() cheap
_DECIMAL = re.compile(r"(?:\d{1,15}(?:\.\d{0,15})?|\.\d{1,15})")
_RATIO = re.compile(r"(\d+):(\d+)")
_SREF_CODE = re.compile(r"\d{1,15}")
_WEIGHT_SUFFIX = re.compile(r"::-?(?:\d+(?:\.\d*)?|\.\d+)\Z")
# A {...} group with an unescaped comma: a permutation prompt.
_PERMUTATION = re.compile(r"\{[^{}]*(?<!\\),[^{}]*\}")

_SHOWN_VALUE_CHARS = 40


def resolve_name(name: str) -> str | None:
    """Canonical name for a spelling (``"ar"``, ``"--ar"``, ``"aspect"`` -> ``"aspect"``)."""
    return _ALIASES.get(name.lstrip("-\u2014").lower())


def _canonical(name: str) -> str:
    canonical = resolve_name(name)
    if canonical is None:
        raise KeyError(f"unknown parameter name: {name!r}")
    return canonical


def _show(value: str) -> str:
    # Echo the user's value back, but never a wall of text.
    if len(value) > _SHOWN_VALUE_CHARS:
        return value[: _SHOWN_VALUE_CHARS - 1] + "…"
    return value


def _as_url(token: str) -> str | None:
    """The URL in an image-URL token (Discord users may wrap it in <...>), else None."""
    match = _URL_TOKEN.fullmatch(token)
    if match is None:
        return None
    url = match.group(1)
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. a malformed IPv6 host
        return None
    return url if parts.netloc and parts.hostname else None


def _decimal(text: str) -> Decimal | None:
    return Decimal(text) if _DECIMAL.fullmatch(text) else None


def _fmt_decimal(number: Decimal) -> str:
    # "1.50" -> "1.5", "2.0" -> "2", ".5" -> "0.5": one spelling per value.
    return format(number.normalize(), "f")


# --- value normalisers: (spec, flag as the user typed it, value) -> normalised value -------


def _norm_int(spec: ParamSpec, shown: str, value: str) -> str:
    assert spec.low is not None and spec.high is not None
    if _INT.fullmatch(value) is not None and spec.low <= int(value) <= spec.high:
        return str(int(value))
    raise PromptError(f"{shown} takes {spec.hint}; you gave {_show(value)}.", spec.name)


def _norm_float(spec: ParamSpec, shown: str, value: str) -> str:
    assert spec.low is not None and spec.high is not None
    number = _decimal(value)
    if number is not None and spec.low <= number <= spec.high:
        return _fmt_decimal(number)
    raise PromptError(f"{shown} takes {spec.hint}; you gave {_show(value)}.", spec.name)


def _norm_choice(spec: ParamSpec, shown: str, value: str) -> str:
    candidate = value.lower()
    if spec.numeric_choices:
        number = _decimal(value)
        if number is not None:
            candidate = _fmt_decimal(number)
    if candidate in spec.choices:
        return candidate
    raise PromptError(f"{shown} takes {spec.hint}; you gave {_show(value)}.", spec.name)


def _norm_ratio(spec: ParamSpec, shown: str, value: str) -> str:
    match = _RATIO.fullmatch(value)
    if match is None:
        raise PromptError(
            f"{shown} takes a width:height ratio of whole numbers such as 16:9; "
            f"you gave {_show(value)}.",
            spec.name,
        )
    digits = max(len(match.group(1).lstrip("0")), len(match.group(2).lstrip("0")))
    # Compare digit counts first: int() of a huge string is slow (and capped by Python).
    width, height = (int(match.group(1)), int(match.group(2))) if digits <= 6 else (-1, -1)
    if width == 0 or height == 0:
        raise PromptError(
            f"{shown} needs both sides to be 1 or more, such as 16:9; you gave {value}.",
            spec.name,
        )
    if width < 0 or width > MAX_ASPECT_SIDE or height > MAX_ASPECT_SIDE:
        raise PromptError(
            f"{shown} takes whole numbers up to {MAX_ASPECT_SIDE} on each side; "
            f"you gave {_show(value)}. Use the smallest form, e.g. 16:9 for 1920:1080.",
            spec.name,
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise PromptError(
            f"{shown} takes ratios from 1:{MAX_ASPECT_RATIO} to {MAX_ASPECT_RATIO}:1; "
            f"{value} is too extreme.",
            spec.name,
        )
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


def _norm_ref(spec: ParamSpec, shown: str, value: str) -> str:
    """One --sref/--cref/--oref item: a URL (sref: also a code or random, each with ::weight)."""
    body, weight = value, ""
    if spec.codes_allowed:
        # Style references may carry a weight: "https://x/a.png::2", "1234::0.5".
        suffix = _WEIGHT_SUFFIX.search(value)
        if suffix is not None and suffix.end() == len(value):
            body, weight = value[: suffix.start()], suffix.group(0)
        if body.lower() == "random":
            return "random" + weight
        if _SREF_CODE.fullmatch(body):
            return str(int(body)) + weight
    url = _as_url(body)
    if url is not None:
        return url + weight
    raise PromptError(
        f"{shown} takes {spec.hint}; {_show(value)} is not "
        + ("one of these." if spec.codes_allowed else "an http(s) image URL."),
        spec.name,
    )


def _normalise(spec: ParamSpec, shown: str, values: list[str]) -> str:
    """Validate the value tokens of one parameter; return its normalised value."""
    joined = " ".join(values)
    if spec.kind is Kind.FLAG:
        if values:
            raise PromptError(
                f"{shown} takes no value, but {_show(joined)!r} follows it; "
                "put all words before the first parameter.",
                spec.name,
            )
        return ""
    if not values:
        if spec.value_optional:
            return ""
        raise PromptError(f"{shown} needs a value: {spec.hint}.", spec.name)
    if spec.kind is Kind.TEXT:
        return joined
    if spec.kind is Kind.URLS:
        if spec.max_items is not None and len(values) > spec.max_items:
            raise PromptError(
                f"{shown} takes {spec.hint}; you gave {len(values)}: {_show(joined)}.", spec.name
            )
        return " ".join(_norm_ref(spec, shown, value) for value in values)
    if len(values) > 1:
        raise PromptError(
            f"{shown} takes one value ({spec.hint}), but {_show(joined)!r} follows it; "
            "put all words before the first parameter.",
            spec.name,
        )
    return _NORMALISERS[spec.kind](spec, shown, values[0])


_NORMALISERS: dict[Kind, Callable[[ParamSpec, str, str], str]] = {
    Kind.INT: _norm_int,
    Kind.FLOAT: _norm_float,
    Kind.CHOICE: _norm_choice,
    Kind.RATIO: _norm_ratio,
}


@dataclass(frozen=True)
class ParsedPrompt:
    """A validated prompt. Equality ignores ``raw``: two prompts that mean the same are equal."""

    raw: str = field(compare=False)  # the prompt as given (stripped)
    text: str  # the words only, whitespace collapsed: no leading image URLs, no parameters
    image_urls: tuple[str, ...]  # http(s) image-prompt URLs at the very start
    # canonical name -> normalised value ("" for flags), in prompt order
    params: dict[str, str] = field(hash=False)

    def param(self, name: str, default: str | None = None) -> str | None:
        """The normalised value of a parameter (any spelling), or ``default`` if absent."""
        canonical = resolve_name(name)
        if canonical is None or canonical not in self.params:
            return default
        return self.params[canonical]

    def render(self, *, without: Iterable[str] = (), extra: Mapping[str, str] | None = None) -> str:
        """The prompt as a canonical string: image URLs, text, then parameters.

        ``without`` drops parameters (any spelling). ``extra`` sets parameters (any spelling,
        value as a user would type it, "" for flags): it is validated and normalised,
        replaces an existing value in place, and replaces the other members of its
        exclusive group (``extra={"relax": ""}`` drops ``--fast``). Unknown names raise
        KeyError (a programming error); bad values raise PromptError.
        """
        dropped = {_canonical(name) for name in without}
        params = {name: value for name, value in self.params.items() if name not in dropped}
        for key, value in (extra or {}).items():
            name = _canonical(key)
            spec = PARAMS[name]
            normalised = _normalise(spec, spec.flag, value.split())
            for group, _reason in _EXCLUSIVE:
                if name in group:
                    for other in group - {name}:
                        params.pop(other, None)
            params[name] = normalised
        parts = list(self.image_urls)
        if self.text:
            parts.append(self.text)
        for name, value in params.items():
            parts.append(PARAMS[name].flag)
            if value:
                parts.append(value)
        return " ".join(parts)

    @property
    def aspect_ratio(self) -> tuple[int, int]:
        """(width, height) from --ar, reduced; (1, 1) when absent."""
        value = self.params.get("aspect")
        if not value:
            return (1, 1)
        width, height = value.split(":")
        return (int(width), int(height))

    @property
    def mode(self) -> str | None:
        """The speed mode the prompt asks for ("fast", "relax", "turbo"), else None."""
        for mode in MODES:
            if mode in self.params:
                return mode
        return None


def _unknown(shown: str, name: str) -> PromptError:
    suggestion = difflib.get_close_matches(name, _ALIASES, n=1, cutoff=0.7)
    advice = f"did you mean --{suggestion[0]}?" if suggestion else "check the spelling."
    known = ", ".join(spec.flag for spec in _SPECS)
    return PromptError(
        f"{shown} is not a parameter Atelier knows; {advice} Known parameters: {known}."
    )


def parse_prompt(raw: str) -> ParsedPrompt:
    """Split, validate and normalise a prompt. Raises PromptError with a user-facing message."""
    stripped = raw.strip()
    length = len(stripped)
    if length == 0:
        raise PromptError(
            f"The prompt is empty; write 1 to {MAX_PROMPT_CHARS} characters describing the image."
        )
    if length > MAX_PROMPT_CHARS:
        raise PromptError(
            f"The prompt is {length} characters long; the limit is {MAX_PROMPT_CHARS}. "
            f"Shorten it by {length - MAX_PROMPT_CHARS} characters."
        )
    permutation = _PERMUTATION.search(stripped)
    if permutation is not None:
        raise PromptError(
            f"Permutation prompts such as {_show(permutation.group(0))} are not supported by "
            "the providers; send each variant as its own prompt."
        )

    tokens = stripped.split()
    count = len(tokens)
    index = 0

    image_urls: list[str] = []
    while index < count:
        url = _as_url(tokens[index])
        if url is None:
            break
        image_urls.append(url)
        index += 1

    text_start = index
    while index < count and _PARAM_TOKEN.fullmatch(tokens[index]) is None:
        index += 1
    text = " ".join(tokens[text_start:index])

    params: dict[str, str] = {}
    shown_as: dict[str, str] = {}  # canonical -> spelling the user typed, for messages
    while index < count:
        match = _PARAM_TOKEN.fullmatch(tokens[index])
        assert match is not None  # the loops above and below stop only at parameter tokens
        typed = match.group(1).lower()
        shown = "--" + typed
        index += 1
        value_start = index
        while index < count and _PARAM_TOKEN.fullmatch(tokens[index]) is None:
            index += 1
        values = tokens[value_start:index]

        if typed in _REJECTED:
            rejected, message = _REJECTED[typed]
            raise PromptError(message.format(flag=shown), rejected)
        name = _ALIASES.get(typed)
        if name is None:
            raise _unknown(shown, typed)
        if name in params:
            first = shown_as[name]
            same = "twice" if first == shown else f"twice (as {first} and {shown})"
            raise PromptError(f"{PARAMS[name].flag} is given {same}; keep one.", name)
        params[name] = _normalise(PARAMS[name], shown, values)
        shown_as[name] = shown

    for group, reason in _EXCLUSIVE:
        present = [name for name in params if name in group]
        if len(present) > 1:
            first, second = shown_as[present[0]], shown_as[present[1]]
            raise PromptError(
                f"{first} and {second} cannot be used together: {reason}; keep one.", present[1]
            )
    for name, needed in _NEEDS.items():
        if name in params and needed not in params:
            raise PromptError(
                f"{shown_as[name]} sets the weight of {PARAMS[needed].flag}, which the prompt "
                f"does not have; add {PARAMS[needed].flag} or remove {shown_as[name]}.",
                name,
            )
    if "iw" in params and not image_urls:
        raise PromptError(
            f"{shown_as['iw']} sets the weight of image prompts, but the prompt does not start "
            "with an image URL; put image URLs first or remove it.",
            "iw",
        )

    # Midjourney's rule: a prompt needs words, or at least two image prompts to blend.
    if not text:
        if not image_urls:
            raise PromptError(
                "The prompt has no words, only parameters; describe the image before the "
                "first parameter."
            )
        if len(image_urls) == 1:
            raise PromptError(
                "A single image URL needs some words after it; describe the image, or start "
                "with two or more image URLs."
            )

    return ParsedPrompt(raw=stripped, text=text, image_urls=tuple(image_urls), params=params)


def check_supported(parsed: ParsedPrompt, accepted: frozenset[str], provider: str) -> None:
    """Raise PromptError naming the first parameter (in prompt order) ``provider`` lacks.

    ``accepted`` holds canonical names (see ``ALL_PARAM_NAMES``); unknown names are ignored.
    """
    for name in parsed.params:
        if name in accepted:
            continue
        flag = PARAMS[name].flag
        known_accepted = [spec.flag for spec in _SPECS if spec.name in accepted]
        missing = [spec.flag for spec in _SPECS if spec.name not in accepted]
        if not known_accepted:
            what = f"{provider} takes no parameters"
        elif len(known_accepted) <= len(missing):
            what = f"{provider} accepts {', '.join(known_accepted)}"
        else:
            # Shorter to name what is missing when the provider takes most parameters.
            what = f"{provider} accepts every parameter except {', '.join(missing)}"
        raise PromptError(
            f"The provider {provider} does not support {flag}; remove it ({what}).", name
        )
