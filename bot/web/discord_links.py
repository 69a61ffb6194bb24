"""The Discord side of the pages: who pressed or asked, as signed claims, and the
private answer with a link button.

Only the member who pressed sees the answer (ephemeral), and the link is bound to
them and to the job; what Discord said of them (roles, manager) travels in the
signed claims, so the page's submit is judged as the press would be.
"""

from __future__ import annotations

from dataclasses import replace

import discord

from bot.i18n import Text, tr
from bot.ui import actions
from bot.ui.context import ui_context
from bot.ui.custom_ids import Target
from bot.ui.replies import member_locale
from bot.web.pages import WebPages
from bot.web.signing import EDIT, GALLERY, Claims


def pages_of(client: discord.Client) -> WebPages | None:
    """The bot's web pages, when `[http] public_url` is set (else None)."""
    pages = getattr(client, "web_pages", None)
    return pages if isinstance(pages, WebPages) else None


def _asker(interaction: discord.Interaction, kind: str) -> Claims:
    return Claims(
        kind=kind,
        user_id=str(interaction.user.id),
        guild_id=str(interaction.guild_id) if interaction.guild_id else None,
        channel_id=str(interaction.channel_id) if interaction.channel_id else None,
        parent_channel_id=actions.thread_parent_id(interaction),
        role_ids=tuple(actions.role_ids(interaction)),
        is_manager=actions.is_manager(interaction),
        locale=member_locale(interaction),
    )


def editor_claims(interaction: discord.Interaction, target: Target) -> Claims:
    message = interaction.message
    return replace(
        _asker(interaction, EDIT),
        job_id=target.job_id,
        index=target.index,
        variant=target.variant,
        reply_to=str(message.id) if message else None,
    )


def gallery_claims(interaction: discord.Interaction, server_wide: bool) -> Claims:
    # A gallery submits nothing: no roles to carry.
    return replace(_asker(interaction, GALLERY), server_wide=server_wide, role_ids=())


# Discord refuses a link button whose URL is longer.
BUTTON_URL_CHARS = 512


async def send_link(interaction: discord.Interaction, text: str, label: str, url: str) -> None:
    """A private answer with a link button (in the text instead, when the URL is too
    long for a button: a member with many roles carries them all)."""
    if len(url) > BUTTON_URL_CHARS:
        await interaction.response.send_message(f"{text}\n<{url}>", ephemeral=True)
        return
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(style=discord.ButtonStyle.link, label=label, url=url))
    await interaction.response.send_message(text, view=view, ephemeral=True)


async def _named_roles(interaction: discord.Interaction, claims: Claims) -> Claims:
    """The claims with only the member's roles that this server's settings name (the
    engine asks about no others), so that the link stays short."""
    ctx = ui_context(interaction.client)
    settings = await ctx.engine.settings.get(claims.guild_id)
    if settings is None:
        return replace(claims, role_ids=())
    named = set(settings.role_limits)
    for roles in settings.provider_roles.values():
        named.update(roles)
    return replace(claims, role_ids=tuple(r for r in claims.role_ids if r in named))


def minutes(pages: WebPages) -> Text:
    return Text("{n} minutes", n=f"{pages.signer.max_age / 60:g}")


async def offer_editor(interaction: discord.Interaction, target: Target) -> bool:
    """Answer a Vary (Region) press with a link to the web editor; False (nothing
    said) when the bot has no public address, so the press opens the form instead."""
    pages = pages_of(interaction.client)
    if pages is None:
        return False
    claims = await _named_roles(interaction, editor_claims(interaction, target))
    locale = member_locale(interaction)
    text = Text(
        "🖌️ Draw the areas to redraw on job `{job_id}` and edit the prompt in the "
        "editor. The link is yours alone, works once and for {minutes}.",
        job_id=target.job_id,
        minutes=minutes(pages),
    )
    label = tr(locale, "Open the editor")
    await send_link(interaction, text.render(locale), label, pages.editor_link(claims))
    return True
