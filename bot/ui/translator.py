"""Discord's name_localizations and description_localizations, from the catalogues.

discord.py asks the tree's translator for every command, group, option and choice
string at sync time (plain strings are wrapped in `locale_str` by the library), once
per Discord locale. Names are looked up under their own msgctxt (`NAME_CONTEXT`),
since they follow Discord's name rules; descriptions and choice labels are ordinary
messages.
"""

from __future__ import annotations

from discord import Locale, app_commands
from discord.app_commands import TranslationContextLocation as Where

from bot import i18n

NAMES = frozenset({Where.command_name, Where.group_name, Where.parameter_name})


def message_context(location: Where) -> str | None:
    """The msgctxt a string of this kind is filed under."""
    return i18n.NAME_CONTEXT if location in NAMES else None


class CatalogueTranslator(app_commands.Translator):
    async def translate(
        self,
        string: app_commands.locale_str,
        locale: Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        return i18n.translate(
            string.message, locale.value, context=message_context(context.location)
        )
