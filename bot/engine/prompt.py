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
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bot.engine.prompt_values import (
    Kind,
    ParamSpec,
    PromptError,
    as_url,
    normalise,
    show_value,
)
from bot.i18n import N_, Text
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
_VIDEO = N_("{flag} is a video parameter; video parameters are not supported.")
_REPEAT = N_("{flag} (repeat) is not supported; press 🔄 or send the prompt again for more images.")
_PROFILE = N_("{flag}: personalization profiles are not supported by the providers; remove it.")
_VISIBILITY = N_(
    "{flag} is not supported: the provider decides whether images are public; remove it."
)
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
    (frozenset({"fast", "relax", "turbo"}), Text("both set the speed mode")),
    (frozenset({"niji", "version"}), Text("both choose the model (--niji is the anime model)")),
    (frozenset({"raw", "style"}), Text("--raw is short for --style raw")),
)

# Weights that only mean something with their reference.
_NEEDS: dict[str, str] = {"cw": "cref", "ow": "oref", "sw": "sref", "sv": "sref"}


# A token that starts a parameter: "--" or the em dash that phones make of "--", then a letter.
# Extra dashes ("---ar", "—-ar") are tolerated as typing slips.
_PARAM_TOKEN = re.compile(r"(?:--|\u2014)[-\u2014]*([A-Za-z]\S*)")
# A {...} group with an unescaped comma: a permutation prompt.
_PERMUTATION = re.compile(r"\{[^{}]*(?<!\\),[^{}]*\}")


def resolve_name(name: str) -> str | None:
    """Canonical name for a spelling (``"ar"``, ``"--ar"``, ``"aspect"`` -> ``"aspect"``)."""
    return _ALIASES.get(name.lstrip("-\u2014").lower())


def _canonical(name: str) -> str:
    canonical = resolve_name(name)
    if canonical is None:
        raise KeyError(f"unknown parameter name: {name!r}")
    return canonical


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
            normalised = normalise(spec, spec.flag, value.split())
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
    if suggestion:
        advice = Text("did you mean --{name}?", name=suggestion[0])
    else:
        advice = Text("check the spelling.")
    known = ", ".join(spec.flag for spec in _SPECS)
    return PromptError(
        Text(
            "{flag} is not a parameter Atelier knows; {advice} Known parameters: {known}.",
            flag=shown,
            advice=advice,
            known=known,
        )
    )


def parse_prompt(raw: str) -> ParsedPrompt:
    """Split, validate and normalise a prompt. Raises PromptError with a user-facing message."""
    stripped = raw.strip()
    _check_whole(stripped)
    tokens = stripped.split()
    image_urls: list[str] = []
    for token in tokens:
        url = as_url(token)
        if url is None:
            break
        image_urls.append(url)
    text_end = _words_end(tokens, len(image_urls))
    text = " ".join(tokens[len(image_urls) : text_end])
    params, shown_as = _read_params(tokens, text_end)
    _check_together(params, shown_as, has_images=bool(image_urls))
    # Midjourney's rule: a prompt needs words, or at least two image prompts to blend.
    if not text and not image_urls:
        raise PromptError(
            Text(
                "The prompt has no words, only parameters; describe the image before the "
                "first parameter."
            )
        )
    if not text and len(image_urls) == 1:
        raise PromptError(
            Text(
                "A single image URL needs some words after it; describe the image, or start "
                "with two or more image URLs."
            )
        )
    return ParsedPrompt(raw=stripped, text=text, image_urls=tuple(image_urls), params=params)


def _check_whole(stripped: str) -> None:
    """Rules on the prompt as a whole: its length, and no permutation braces."""
    length = len(stripped)
    if length == 0:
        raise PromptError(
            Text(
                "The prompt is empty; write 1 to {limit} characters describing the image.",
                limit=MAX_PROMPT_CHARS,
            )
        )
    if length > MAX_PROMPT_CHARS:
        raise PromptError(
            Text(
                "The prompt is {length} characters long; the limit is {limit}. "
                "Shorten it by {over} characters.",
                length=length,
                limit=MAX_PROMPT_CHARS,
                over=length - MAX_PROMPT_CHARS,
            )
        )
    permutation = _PERMUTATION.search(stripped)
    if permutation is not None:
        raise PromptError(
            Text(
                "Permutation prompts such as {example} are not supported by the providers; "
                "send each variant as its own prompt.",
                example=show_value(permutation.group(0)),
            )
        )


def _words_end(tokens: list[str], index: int) -> int:
    """Where the run of tokens from `index` that are not parameter names ends."""
    while index < len(tokens) and _PARAM_TOKEN.fullmatch(tokens[index]) is None:
        index += 1
    return index


def _read_params(tokens: list[str], index: int) -> tuple[dict[str, str], dict[str, str]]:
    """The parameters from `index` on, each a name token and the value tokens after it:
    (canonical name -> normalised value, canonical name -> the spelling typed)."""
    params: dict[str, str] = {}
    shown_as: dict[str, str] = {}  # for messages
    while index < len(tokens):
        match = _PARAM_TOKEN.fullmatch(tokens[index])
        assert match is not None  # runs of words and values end only at parameter tokens
        typed = match.group(1).lower()
        shown = "--" + typed
        end = _words_end(tokens, index + 1)
        values, index = tokens[index + 1 : end], end
        if typed in _REJECTED:
            rejected, message = _REJECTED[typed]
            raise PromptError(Text(message, flag=shown), rejected)
        name = _ALIASES.get(typed)
        if name is None:
            raise _unknown(shown, typed)
        if name in params:
            first = shown_as[name]
            flag = PARAMS[name].flag
            if first == shown:
                twice = Text("{flag} is given twice; keep one.", flag=flag)
            else:
                twice = Text(
                    "{flag} is given twice (as {first} and {second}); keep one.",
                    flag=flag,
                    first=first,
                    second=shown,
                )
            raise PromptError(twice, name)
        params[name] = normalise(PARAMS[name], shown, values)
        shown_as[name] = shown
    return params, shown_as


def _check_together(params: dict[str, str], shown_as: dict[str, str], *, has_images: bool) -> None:
    """Parameters that exclude each other, and weights without what they weigh."""
    for group, reason in _EXCLUSIVE:
        present = [name for name in params if name in group]
        if len(present) > 1:
            first, second = shown_as[present[0]], shown_as[present[1]]
            raise PromptError(
                Text(
                    "{first} and {second} cannot be used together: {reason}; keep one.",
                    first=first,
                    second=second,
                    reason=reason,
                ),
                present[1],
            )
    for name, needed in _NEEDS.items():
        if name in params and needed not in params:
            raise PromptError(
                Text(
                    "{flag} sets the weight of {needed}, which the prompt does not have; "
                    "add {needed} or remove {flag}.",
                    flag=shown_as[name],
                    needed=PARAMS[needed].flag,
                ),
                name,
            )
    if "iw" in params and not has_images:
        raise PromptError(
            Text(
                "{flag} sets the weight of image prompts, but the prompt does not start "
                "with an image URL; put image URLs first or remove it.",
                flag=shown_as["iw"],
            ),
            "iw",
        )


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
            what = Text("{provider} takes no parameters", provider=provider)
        elif len(known_accepted) <= len(missing):
            what = Text(
                "{provider} accepts {flags}", provider=provider, flags=", ".join(known_accepted)
            )
        else:
            # Shorter to name what is missing when the provider takes most parameters.
            what = Text(
                "{provider} accepts every parameter except {flags}",
                provider=provider,
                flags=", ".join(missing),
            )
        raise PromptError(
            Text(
                "The provider {provider} does not support {flag}; remove it ({what}).",
                provider=provider,
                flag=flag,
                what=what,
            ),
            name,
        )
