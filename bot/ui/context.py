"""What the Discord layer shares: config, engine, presenter and sender, hung on the bot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from bot.config import Config
from bot.engine.service import Engine

if TYPE_CHECKING:
    from bot.ui.discord_sender import DiscordSender
    from bot.ui.presenter import Presenter


@dataclass
class UiContext:
    config: Config
    engine: Engine
    presenter: Presenter
    sender: DiscordSender


def ui_context(client: discord.Client) -> UiContext:
    """The context the bot carries (set in bot/app.py before any command can run)."""
    context = getattr(client, "atelier", None)
    if not isinstance(context, UiContext):
        raise RuntimeError("the Atelier context is not set on this client")
    return context
