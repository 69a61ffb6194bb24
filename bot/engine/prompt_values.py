"""What one parameter's value may be: the spec type, its kinds and limits, and the
normalisers that check a value and give its one canonical spelling.

Part of the prompt rules (see ``bot.engine.prompt``, which re-exports ``Kind``,
``ParamSpec`` and ``PromptError``); pure, no I/O.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlsplit

from bot.i18n import Text

# --ar limits: see the docstring of bot.engine.prompt.
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
        self.text = message  # a bot.i18n.Text where the words are Atelier's
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
                return Text("no value")
            case Kind.INT:
                return Text(
                    "a whole number from {low} to {high}", low=_fmt(self.low), high=_fmt(self.high)
                )
            case Kind.FLOAT:
                return Text(
                    "a number from {low} to {high}", low=_fmt(self.low), high=_fmt(self.high)
                )
            case Kind.RATIO:
                return Text(
                    "a width:height ratio of whole numbers such as 16:9, from 1:{most} to {most}:1",
                    most=MAX_ASPECT_RATIO,
                )
            case Kind.TEXT:
                return Text("the things to leave out, e.g. --no text, people")
            case Kind.URLS:
                if self.codes_allowed:
                    return Text("image URLs, style codes (numbers) or random")
                if self.max_items == 1:
                    return Text("one image URL")
                return Text("one or more image URLs")
            case Kind.CHOICE:
                listed = ", ".join(self.choices)
                if self.value_optional:
                    return Text("one of {choices} (or no value)", choices=listed)
                return Text("one of {choices}", choices=listed)
        raise AssertionError(self.kind)  # pragma: no cover - every Kind is handled above


def _fmt(number: int | float | None) -> str:
    # Ranges read "0.25" or "100", never "100.0".
    if number is None:  # pragma: no cover - ranges always set for INT/FLOAT
        return "?"
    if float(number).is_integer():
        return str(int(number))
    return str(number)


_URL_TOKEN = re.compile(r"<?(https?://[^\s<>]+)>?", re.IGNORECASE)
_INT = re.compile(r"\d{1,15}")  # more digits are out of every range; keeps int() cheap
_DECIMAL = re.compile(r"(?:\d{1,15}(?:\.\d{0,15})?|\.\d{1,15})")
_RATIO = re.compile(r"(\d+):(\d+)")
_SREF_CODE = re.compile(r"\d{1,15}")
_WEIGHT_SUFFIX = re.compile(r"::-?(?:\d+(?:\.\d*)?|\.\d+)\Z")

_SHOWN_VALUE_CHARS = 40


def show_value(value: str) -> str:
    # Echo the user's value back, but never a wall of text.
    if len(value) > _SHOWN_VALUE_CHARS:
        return value[: _SHOWN_VALUE_CHARS - 1] + "…"
    return value


def as_url(token: str) -> str | None:
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


def _gave(spec: ParamSpec, shown: str, value: str) -> PromptError:
    return PromptError(
        Text(
            "{flag} takes {hint}; you gave {value}.",
            flag=shown,
            hint=spec.hint,
            value=show_value(value),
        ),
        spec.name,
    )


def _norm_int(spec: ParamSpec, shown: str, value: str) -> str:
    assert spec.low is not None and spec.high is not None
    if _INT.fullmatch(value) is not None and spec.low <= int(value) <= spec.high:
        return str(int(value))
    raise _gave(spec, shown, value)


def _norm_float(spec: ParamSpec, shown: str, value: str) -> str:
    assert spec.low is not None and spec.high is not None
    number = _decimal(value)
    if number is not None and spec.low <= number <= spec.high:
        return _fmt_decimal(number)
    raise _gave(spec, shown, value)


def _norm_choice(spec: ParamSpec, shown: str, value: str) -> str:
    candidate = value.lower()
    if spec.numeric_choices:
        number = _decimal(value)
        if number is not None:
            candidate = _fmt_decimal(number)
    if candidate in spec.choices:
        return candidate
    raise _gave(spec, shown, value)


def _norm_ratio(spec: ParamSpec, shown: str, value: str) -> str:
    match = _RATIO.fullmatch(value)
    if match is None:
        raise PromptError(
            Text(
                "{flag} takes a width:height ratio of whole numbers such as 16:9; "
                "you gave {value}.",
                flag=shown,
                value=show_value(value),
            ),
            spec.name,
        )
    digits = max(len(match.group(1).lstrip("0")), len(match.group(2).lstrip("0")))
    # Compare digit counts first: int() of a huge string is slow (and capped by Python).
    width, height = (int(match.group(1)), int(match.group(2))) if digits <= 6 else (-1, -1)
    if width == 0 or height == 0:
        raise PromptError(
            Text(
                "{flag} needs both sides to be 1 or more, such as 16:9; you gave {value}.",
                flag=shown,
                value=value,
            ),
            spec.name,
        )
    if width < 0 or width > MAX_ASPECT_SIDE or height > MAX_ASPECT_SIDE:
        raise PromptError(
            Text(
                "{flag} takes whole numbers up to {most} on each side; you gave {value}. "
                "Use the smallest form, e.g. 16:9 for 1920:1080.",
                flag=shown,
                most=MAX_ASPECT_SIDE,
                value=show_value(value),
            ),
            spec.name,
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise PromptError(
            Text(
                "{flag} takes ratios from 1:{most} to {most}:1; {value} is too extreme.",
                flag=shown,
                most=MAX_ASPECT_RATIO,
                value=value,
            ),
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
    url = as_url(body)
    if url is not None:
        return url + weight
    if spec.codes_allowed:
        not_one = Text(
            "{flag} takes {hint}; {value} is not one of these.",
            flag=shown,
            hint=spec.hint,
            value=show_value(value),
        )
    else:
        not_one = Text(
            "{flag} takes {hint}; {value} is not an http(s) image URL.",
            flag=shown,
            hint=spec.hint,
            value=show_value(value),
        )
    raise PromptError(not_one, spec.name)


def normalise(spec: ParamSpec, shown: str, values: list[str]) -> str:
    """Validate the value tokens of one parameter; return its normalised value."""
    joined = " ".join(values)
    if spec.kind is Kind.FLAG:
        if values:
            raise PromptError(
                Text(
                    "{flag} takes no value, but {words!r} follows it; "
                    "put all words before the first parameter.",
                    flag=shown,
                    words=show_value(joined),
                ),
                spec.name,
            )
        return ""
    if not values:
        if spec.value_optional:
            return ""
        raise PromptError(
            Text("{flag} needs a value: {hint}.", flag=shown, hint=spec.hint), spec.name
        )
    if spec.kind is Kind.TEXT:
        return joined
    if spec.kind is Kind.URLS:
        if spec.max_items is not None and len(values) > spec.max_items:
            raise PromptError(
                Text(
                    "{flag} takes {hint}; you gave {count}: {values}.",
                    flag=shown,
                    hint=spec.hint,
                    count=len(values),
                    values=show_value(joined),
                ),
                spec.name,
            )
        return " ".join(_norm_ref(spec, shown, value) for value in values)
    if len(values) > 1:
        raise PromptError(
            Text(
                "{flag} takes one value ({hint}), but {words!r} follows it; "
                "put all words before the first parameter.",
                flag=shown,
                hint=spec.hint,
                words=show_value(joined),
            ),
            spec.name,
        )
    return _NORMALISERS[spec.kind](spec, shown, values[0])


_NORMALISERS: dict[Kind, Callable[[ParamSpec, str, str], str]] = {
    Kind.INT: _norm_int,
    Kind.FLOAT: _norm_float,
    Kind.CHOICE: _norm_choice,
    Kind.RATIO: _norm_ratio,
}
