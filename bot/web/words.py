"""The pages' language: the member's Discord locale carried in the link, else (a link
that is not ours, so says nothing trustworthy) what the browser asks for.

Templates call `t(msgid, **args)`, the same catalogue and placeholders as the bot's
messages (`bot/i18n`); `python -m bot.ui.catalogue_tool` extracts those calls from
bot/web/templates/. Their results are plain str, so Jinja2 escapes them as any value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.engine.models import Job
from bot.engine.refusals import status_word
from bot.i18n import CATALOGUES, ENGLISH, render, tr
from bot.vocab import action_name

# Accept-Language tags that mean Simplified Chinese (zh-TW and zh-Hant do not).
_SIMPLIFIED = {"zh", "zh-cn", "zh-sg", "zh-hans", "zh-hans-cn"}


def page_locale(locale: str | None) -> str:
    """The language a page is written in: one we have a catalogue for, else English."""
    return locale if locale is not None and locale in CATALOGUES else ENGLISH


def browser_locale(accept_language: str) -> str:
    """The first language of an Accept-Language header that the pages speak."""
    for part in accept_language.split(","):
        tag = part.split(";", 1)[0].strip().lower()
        if tag in _SIMPLIFIED:
            return "zh-CN"
        if tag == "en" or tag.startswith("en-"):
            return ENGLISH
    return ENGLISH


def template_helpers(locale: str) -> dict[str, Any]:
    """What every template is given to say things in `locale`."""

    def t(msgid: str, **args: object) -> str:
        return tr(locale, msgid, **args)

    def action_of(job: Job) -> str:
        return render(action_name(job.action), locale)

    def status_of(job: Job) -> str:
        return status_word(job.status).render(locale)

    helpers: dict[str, Callable[..., str] | str] = {
        "t": t,
        "action_of": action_of,
        "status_of": status_of,
        "lang": locale,
    }
    return helpers
