"""Atelier's languages: English (the msgids themselves) and Simplified Chinese.

One gettext catalogue per language, `bot/locale/<lang>/LC_MESSAGES/atelier.po`, read
with Babel at first use (nothing is compiled at build time, so `pip install -e .` is
enough). Neutral: no discord import, so the engine marks its refusals here too.

- `Text(msgid, **args)` is a message to translate later. It *is* a str (its English
  rendering), so logs, exceptions and every caller that only knows English keep
  working; `.render(locale)` gives it in a member's or a server's language.
- `tr(locale, msgid, **args)` translates at once, for code that already knows where
  the words go.

Placeholders are `str.format` fields (`{job_id}`); arguments that are `Text`
themselves are rendered in the same language. Prompts, job ids, provider names and
`--parameters` are passed as arguments, never translated.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from importlib import resources
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

log = logging.getLogger(__name__)

DOMAIN = "atelier"
ENGLISH = "en-US"
# Discord locale -> catalogue folder. Any other locale (zh-TW included: Traditional
# Chinese is a language of its own) gets the English msgids.
CATALOGUES: Mapping[str, str] = {"zh-CN": "zh_CN"}
# The msgctxt of command and option names: a name follows Discord's name rules, so
# "prompt" the option name and "prompt" in a sentence are different messages.
NAME_CONTEXT = "command name"

__all__ = [
    "CATALOGUES",
    "ENGLISH",
    "NAME_CONTEXT",
    "N_",
    "Text",
    "catalogue",
    "render",
    "stored",
    "tr",
]


def locale_dir() -> Any:
    """The folder holding the catalogues (installed as package data of `bot`)."""
    return resources.files("bot") / "locale"


@functools.cache
def catalogue(locale: str) -> Catalog | None:
    """The catalogue of a Discord locale ("zh-CN"), or None for English and unknowns."""
    folder = CATALOGUES.get(locale)
    if folder is None:
        return None
    path = locale_dir() / folder / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as handle:
        return read_po(handle, locale=folder, domain=DOMAIN)


def translate(msgid: str, locale: str | None, *, context: str | None = None) -> str | None:
    """The translation of `msgid` in `locale`; None when there is none (use the msgid)."""
    found = catalogue(locale) if locale and msgid else None  # "" is the catalogue's header
    if found is None:
        return None
    message = found.get(msgid, context=context)
    if message is None or not message.string or message.fuzzy:
        return None
    return str(message.string)


def _format(template: str, args: Mapping[str, object], locale: str | None) -> str:
    if not args:
        return template
    values = {k: v.render(locale) if isinstance(v, Text) else v for k, v in args.items()}
    return template.format(**values)


def tr(locale: str | None, msgid: str, /, **args: object) -> str:
    """`msgid` in `locale` (English when there is no translation), its fields filled."""
    template = translate(msgid, locale) or msgid
    try:
        return _format(template, args, locale)
    except (KeyError, IndexError, ValueError):
        # A broken translation must never cost the member the message: say it in English.
        log.error("the %s translation of %r does not format", locale, msgid)
        return _format(msgid, args, ENGLISH)


class Text(str):
    """A message translated when it is shown; as a str, its English rendering."""

    msgid: str
    args: Mapping[str, object]

    def __new__(cls, msgid: str, /, **args: object) -> Text:
        made = super().__new__(cls, _format(msgid, args, ENGLISH))
        made.msgid = msgid
        made.args = args
        return made

    def render(self, locale: str | None) -> str:
        return tr(locale, self.msgid, **self.args)


def stored(text: str, locale: str | None) -> str:
    """Words kept as English in the store (a job's failure): translated when they are
    exactly a marked message, else shown as they are (a provider's own words)."""
    return translate(text, locale) or text


def N_(msgid: str) -> str:
    """Marks a msgid kept in a table (formatted later with `Text(msgid, ...)`)."""
    return msgid


def render(value: str, locale: str | None) -> str:
    """`value` in `locale` when it is a `Text`; any other str is shown as it is."""
    return value.render(locale) if isinstance(value, Text) else value
