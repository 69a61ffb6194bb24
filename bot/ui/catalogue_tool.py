"""Keeps the catalogues in step with the code: `python -m bot.ui.catalogue_tool`.

The template (`bot/locale/atelier.pot`) holds every message Atelier can show:
- the `Text(...)` and `tr(locale, ...)` messages in bot/ and cogs/ (Babel's extractor);
- the `t(...)` calls of the web pages' templates, bot/web/templates (Jinja2's);
- every command, option and choice string the command sync sends to Discord (asked
  of each cog's commands through a recording translator, as discord.py asks at sync).
Each language's `.po` is then updated from the template (new messages untranslated,
gone ones dropped), ready for a translator; tests/test_i18n.py fails until every
message is translated.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import discord
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po
from discord import Locale, app_commands
from discord.ext import commands

from bot import i18n
from bot.app import EXTENSIONS
from bot.ui.translator import message_context

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("bot", "cogs")
# Babel keyword specs: the msgid is the first argument of Text and N_, the second of tr.
KEYWORDS = {"Text": None, "tr": (2,), "N_": None}
# The web pages' templates say `t(msgid, **args)` (bot/web/words.py).
TEMPLATES = "bot/web/templates"
TEMPLATE_KEYWORDS = {"t": None}
Message = tuple[str, str | None]  # (msgid, msgctxt)
AppCommand = app_commands.Command[Any, ..., Any] | app_commands.Group


def source_messages() -> list[tuple[str, str]]:
    """(msgid, "path:line") of every marked message in the source."""
    found: list[tuple[str, str]] = []
    for folder in SOURCE_DIRS:
        for filename, lineno, msgid, _comments, _context in extract_from_dir(
            str(ROOT / folder), method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            if isinstance(msgid, str):
                found.append((msgid, f"{folder}/{filename}:{lineno}"))
    for filename, lineno, msgid, _comments, _context in extract_from_dir(
        str(ROOT / TEMPLATES),
        method_map=[("**.html", "jinja2.ext:babel_extract")],
        keywords=TEMPLATE_KEYWORDS,
    ):
        if isinstance(msgid, str):
            found.append((msgid, f"{TEMPLATES}/{filename}:{lineno}"))
    return found


class _Recorder(app_commands.Translator):
    def __init__(self) -> None:
        self.seen: dict[Message, None] = {}

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        self.seen[(string.message, message_context(context.location))] = None
        return None


def _cog_commands(modules: Iterable[str]) -> list[AppCommand]:
    """The app commands every cog class of these modules declares (no instance needed)."""
    found: list[AppCommand] = []
    for name in modules:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, commands.Cog) and cls.__module__ == name:
                found.extend(cls.__cog_app_commands__)
    return found


async def command_messages() -> list[Message]:
    """Every string the command sync asks the translator for, in order."""
    client = discord.Client(intents=discord.Intents.none())
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(client)
    recorder = _Recorder()
    for command in _cog_commands(EXTENSIONS):
        await command.get_translated_payload(tree, recorder)
    await client.close()
    return list(recorder.seen)


def template() -> Catalog:
    pot = Catalog(project="Atelier", domain=i18n.DOMAIN, fuzzy=False)
    for msgid, context in asyncio.run(command_messages()):
        pot.add(msgid, context=context, locations=[("discord-command-sync", 0)])
    for msgid, where in source_messages():
        path, _, line = where.rpartition(":")
        existing = pot.get(msgid)
        if existing is None:
            pot.add(msgid, locations=[(path, int(line))])
        else:
            existing.locations.append((path, int(line)))
    return pot


def main() -> None:
    locale_dir = ROOT / "bot" / "locale"
    pot = template()
    with (locale_dir / f"{i18n.DOMAIN}.pot").open("wb") as handle:
        write_po(handle, pot, omit_header=False, sort_output=True, width=100)
    for folder in i18n.CATALOGUES.values():
        path = locale_dir / folder / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
        if path.exists():
            with path.open("rb") as handle:
                catalogue = read_po(handle, locale=folder, domain=i18n.DOMAIN)
        else:
            catalogue = Catalog(locale=folder, domain=i18n.DOMAIN, project="Atelier")
        catalogue.update(pot, no_fuzzy_matching=True)
        catalogue.obsolete.clear()
        with path.open("wb") as handle:
            write_po(handle, catalogue, sort_output=True, width=100)
        missing = [m.id for m in catalogue if m.id and not m.string]
        print(f"{path.relative_to(ROOT)}: {len(missing)} untranslated")


if __name__ == "__main__":
    main()
