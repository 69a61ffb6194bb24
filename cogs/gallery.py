"""/gallery: a private link to a page of the member's own jobs in this server (a
manager may ask for the whole server's), with their images, prompts, seeds and links.

The page is served by the bot ([http] public_url); without a public address there is
no page to link to, and the answer says so.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.i18n import Text, tr
from bot.ui.actions import is_manager
from bot.ui.replies import UserError, guarded, member_locale
from bot.web.discord_links import gallery_claims, minutes, pages_of, send_link


class Gallery(commands.Cog):
    @app_commands.command(name="gallery", description="A page of your jobs (managers: everyone's)")
    @app_commands.describe(everyone="Show everyone's jobs in this server (Manage Server only)")
    @app_commands.guild_only()
    async def gallery(self, interaction: discord.Interaction, everyone: bool = False) -> None:
        async with guarded(interaction):
            pages = pages_of(interaction.client)
            if pages is None:
                raise UserError(
                    Text(
                        "The gallery is a web page, and this bot has no web address: the "
                        "owner sets [http] public_url to turn it on. /jobs lists your recent "
                        "jobs."
                    )
                )
            if everyone and not is_manager(interaction):
                raise UserError(Text("Everyone's gallery needs the Manage Server permission."))
            url = pages.gallery_link(gallery_claims(interaction, everyone))
            locale = member_locale(interaction)
            if everyone:
                text = Text(
                    "🖼️ A page of this server's jobs, newest first. The link is yours alone "
                    "and works for {minutes}.",
                    minutes=minutes(pages),
                )
            else:
                text = Text(
                    "🖼️ A page of your jobs in this server, newest first. The link is yours "
                    "alone and works for {minutes}.",
                    minutes=minutes(pages),
                )
            label = tr(locale, "Open the gallery")
            await send_link(interaction, text.render(locale), label, url)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Gallery())
