"""/server: a server's own settings, shown and changed by its managers (Manage Server).

Thin on purpose: every rule (what may be set, within what the operator allows) is in
bot/engine/access.py; this cog reads the options, asks it, and answers privately.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.engine import access
from bot.engine.settings import ServerSettings
from bot.i18n import Text, tr
from bot.ui.actions import is_manager
from bot.ui.context import ui_context
from bot.ui.replies import UserError, guarded, member_locale, tell
from bot.vocab import Action
from cogs.common import defer_private, provider_autocomplete

Edit = Callable[[ServerSettings], access.Change]
Channel = discord.TextChannel | discord.Thread | discord.VoiceChannel


def _manager_guild(interaction: discord.Interaction) -> str:
    """The server being changed; UserError unless the asker may manage it (Discord hides
    the command from others by default, but a server can grant it to anyone)."""
    if interaction.guild_id is None:
        raise UserError(Text("/server works only in a server."))
    if not is_manager(interaction):
        raise UserError(Text("Only members with Manage Server can change Atelier's settings here."))
    return str(interaction.guild_id)


async def change(interaction: discord.Interaction, edit: Edit) -> None:
    """Apply one edit to this server's settings, store it, audit it, and say what changed."""
    if not await defer_private(interaction):
        return
    async with guarded(interaction):
        ctx = ui_context(interaction.client)
        guild_id = _manager_guild(interaction)
        settings = await ctx.engine.settings.get(guild_id)
        assert settings is not None  # inside a server
        done = edit(settings)
        await access.save_change(
            ctx.engine.settings,
            ctx.engine.audit,
            settings,
            done,
            by=str(interaction.user.id),
            channel_id=str(interaction.channel_id) if interaction.channel_id else None,
        )
        await tell(interaction, "✅ " + done.render(member_locale(interaction)))


class Server(commands.Cog):
    server = app_commands.Group(
        name="server",
        description="Atelier's settings for this server (Manage Server)",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
    )
    channels = app_commands.Group(
        name="channels", description="Channels where Atelier may be used", parent=server
    )
    roles = app_commands.Group(
        name="roles", description="Roles that may use a provider", parent=server
    )
    banned = app_commands.Group(
        name="banned", description="Words refused in prompts here", parent=server
    )
    audit = app_commands.Group(
        name="audit", description="Where refusals and changes are reported", parent=server
    )

    @server.command(name="show", description="Every setting of Atelier in this server")
    async def show(self, interaction: discord.Interaction) -> None:
        if not await defer_private(interaction):
            return
        async with guarded(interaction):
            ctx = ui_context(interaction.client)
            settings = await ctx.engine.settings.get(_manager_guild(interaction))
            assert settings is not None
            locale = member_locale(interaction)
            lines = access.describe(ctx.config, settings, locale)
            title = tr(locale, "**Atelier in this server**")
            await tell(interaction, "\n".join([title, *lines]))

    # ---- channels ----

    @channels.command(name="add", description="Allow Atelier in a channel (then only there)")
    @app_commands.describe(channel="A channel where members may use Atelier")
    async def channels_add(self, interaction: discord.Interaction, channel: Channel) -> None:
        await change(interaction, lambda s: access.edit_channels(s, "add", str(channel.id)))

    @channels.command(name="remove", description="Take a channel off the list")
    @app_commands.describe(channel="The channel to take off")
    async def channels_remove(self, interaction: discord.Interaction, channel: Channel) -> None:
        await change(interaction, lambda s: access.edit_channels(s, "remove", str(channel.id)))

    @channels.command(name="clear", description="Allow Atelier in every channel again")
    async def channels_clear(self, interaction: discord.Interaction) -> None:
        await change(interaction, lambda s: access.edit_channels(s, "clear"))

    # ---- roles per provider ----

    @roles.command(name="add", description="Let a role use a provider (then only such roles)")
    @app_commands.describe(provider="A configured provider", role="Members with it may use it")
    @app_commands.autocomplete(provider=provider_autocomplete(Action.IMAGINE))
    async def roles_add(
        self, interaction: discord.Interaction, provider: str, role: discord.Role
    ) -> None:
        config = ui_context(interaction.client).config
        await change(
            interaction,
            lambda s: access.edit_provider_roles(config, s, "add", provider, str(role.id)),
        )

    @roles.command(name="remove", description="Take a role off a provider")
    @app_commands.describe(provider="A configured provider", role="The role to take off")
    @app_commands.autocomplete(provider=provider_autocomplete(Action.IMAGINE))
    async def roles_remove(
        self, interaction: discord.Interaction, provider: str, role: discord.Role
    ) -> None:
        config = ui_context(interaction.client).config
        await change(
            interaction,
            lambda s: access.edit_provider_roles(config, s, "remove", provider, str(role.id)),
        )

    @roles.command(name="clear", description="Let every member use a provider again")
    @app_commands.describe(provider="A configured provider")
    @app_commands.autocomplete(provider=provider_autocomplete(Action.IMAGINE))
    async def roles_clear(self, interaction: discord.Interaction, provider: str) -> None:
        config = ui_context(interaction.client).config
        await change(
            interaction, lambda s: access.edit_provider_roles(config, s, "clear", provider)
        )

    # ---- buttons, default provider, modes ----

    @server.command(name="buttons", description="Who may press a job's buttons")
    @app_commands.describe(who="default: the bot's configuration")
    async def buttons(
        self,
        interaction: discord.Interaction,
        who: Literal["anyone", "requester", "default"],
    ) -> None:
        config = ui_context(interaction.client).config
        chosen = None if who == "default" else who
        await change(interaction, lambda s: access.edit_button_access(config, s, chosen))

    @server.command(name="provider", description="The provider a channel uses by default")
    @app_commands.describe(
        channel="The channel", provider="Leave out to use the bot's default provider again"
    )
    @app_commands.autocomplete(provider=provider_autocomplete(Action.IMAGINE))
    async def default_provider(
        self, interaction: discord.Interaction, channel: Channel, provider: str | None = None
    ) -> None:
        config = ui_context(interaction.client).config
        await change(
            interaction,
            lambda s: access.edit_channel_provider(config, s, str(channel.id), provider),
        )

    @server.command(name="modes", description="Speed modes members may ask for on a provider")
    @app_commands.describe(provider="A configured provider", modes='"relax", "fast relax" or "all"')
    @app_commands.autocomplete(provider=provider_autocomplete(Action.IMAGINE))
    async def modes(self, interaction: discord.Interaction, provider: str, modes: str) -> None:
        config = ui_context(interaction.client).config
        await change(interaction, lambda s: access.edit_modes(config, s, provider, modes))

    # ---- limits per role (the spending rules apply them) ----

    @server.command(name="limits", description="Credits and jobs for members with a role")
    @app_commands.describe(
        role="Members with this role",
        daily="Credits per day",
        monthly="Credits per month",
        active="Jobs running at once",
    )
    async def limits(
        self,
        interaction: discord.Interaction,
        role: discord.Role,
        daily: app_commands.Range[float, 0] | None = None,
        monthly: app_commands.Range[float, 0] | None = None,
        active: app_commands.Range[int, 0] | None = None,
    ) -> None:
        """With no limit given, the role's limits are cleared (the defaults apply)."""
        await change(
            interaction,
            lambda s: access.edit_role_limits(
                s, str(role.id), daily=daily, monthly=monthly, max_active=active
            ),
        )

    # ---- moderation settings (the moderation rules apply them) ----

    @banned.command(name="add", description="Refuse prompts with this word here")
    @app_commands.describe(word="A word or phrase (case does not matter)")
    async def banned_add(self, interaction: discord.Interaction, word: str) -> None:
        await change(interaction, lambda s: access.edit_banned_words(s, "add", word))

    @banned.command(name="remove", description="Take a word off the list")
    @app_commands.describe(word="The word to take off")
    async def banned_remove(self, interaction: discord.Interaction, word: str) -> None:
        await change(interaction, lambda s: access.edit_banned_words(s, "remove", word))

    @banned.command(name="list", description="The words refused in prompts here")
    async def banned_list(self, interaction: discord.Interaction) -> None:
        if not await defer_private(interaction):
            return
        async with guarded(interaction):
            ctx = ui_context(interaction.client)
            settings = await ctx.engine.settings.get(_manager_guild(interaction))
            assert settings is not None
            words = ", ".join(f"`{w}`" for w in settings.banned_words) or Text("(none)")
            await tell(interaction, Text("**Banned words here**: {words}", words=words))

    @audit.command(name="set", description="Report refusals and settings changes here")
    @app_commands.describe(channel="Where the lines go (keep it private to managers)")
    async def audit_set(self, interaction: discord.Interaction, channel: Channel) -> None:
        await change(interaction, lambda s: access.edit_audit_channel(s, str(channel.id)))

    @audit.command(name="clear", description="Stop reporting to an audit channel")
    async def audit_clear(self, interaction: discord.Interaction) -> None:
        await change(interaction, lambda s: access.edit_audit_channel(s, None))

    @server.command(name="image-check", description="Result images flagged as not safe")
    @app_commands.describe(mode="off, post flagged images as spoilers, or withhold them")
    async def image_check(
        self, interaction: discord.Interaction, mode: Literal["off", "spoiler", "withhold"]
    ) -> None:
        await change(interaction, lambda s: access.edit_image_check(s, mode))


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Server())
