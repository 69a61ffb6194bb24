"""The Discord bot: an AutoShardedBot that wires the engine, the presenter and the cogs.

- Intents: `guilds` (slash commands and buttons arrive as interactions, which need
  no intent; the guild cache gives channels and upload limits) and `guild_reactions`
  (✉️ and ❌ on job messages). No message content, no members.
- `discord.api_base_url` moves every REST call (interaction callbacks included) to a
  proxy such as nirn-proxy, or to the fake Discord in tests: `Route.BASE` is set before
  login. The gateway URL comes from `GET /gateway/bot` through that base.
- Shard clusters: `[discord] shard_count`/`shard_ids` (or `run --shard-ids`) pick the
  shards this process connects; the gateway address is always asked through
  `api_base_url` (discord.py would dial its built-in one with a fixed shard count).
- `[http]` serves `/healthz` and `/metrics` (bot.health, bot.metrics) beside callbacks.
- The engine starts in `setup_hook` (after login, before the gateway) and stops on
  SIGTERM/SIGINT: running jobs stay in the store and resume at the next start, where the
  presenter finds their messages again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket

from bot.callbacks import CallbackReceiver
from bot.config import Config
from bot.engine import census
from bot.engine.models import EventKind, JobUpdate, Origin
from bot.engine.ownership import StoreInUse
from bot.engine.service import Engine
from bot.health import GatewayState, Health
from bot.http_server import HttpServer
from bot.metrics import BotMetrics
from bot.ui import actions
from bot.ui.audit_channel import AuditChannel
from bot.ui.buttons import JobButton, build_view
from bot.ui.context import UiContext, ui_context
from bot.ui.discord_sender import DiscordSender
from bot.ui.image_check import ImageCheck, build_detector
from bot.ui.presenter import Presenter
from bot.ui.translator import CatalogueTranslator
from bot.web.pages import PREFIX as PAGES_PREFIX
from bot.web.pages import WebPages
from bot.web.signing import signer_for

log = logging.getLogger(__name__)

EXTENSIONS = (
    "cogs.imagine",
    "cogs.tools",
    "cogs.admin",
    "cogs.server",
    "cogs.info",
    "cogs.reactions",
    "cogs.show",
    "cogs.settings",
    "cogs.prefer",
    "cogs.gallery",
)
EXIT_OK, EXIT_FAILED, EXIT_BAD_CONFIG = 0, 1, 2
# Seconds of shutdown spent posting results that are already known.
DRAIN_SECONDS = 10.0


class StartupError(Exception):
    """The bot cannot start with this configuration (worded for the operator)."""


class AtelierTree(app_commands.CommandTree[discord.Client]):
    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Every command and autocomplete: refused in a server not allowed."""
        return await actions.guild_admitted(ui_context(interaction.client), interaction)


def intents() -> discord.Intents:
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_reactions = True  # ✉️ and ❌ on job messages (not privileged)
    return wanted


def shard_options(config: Config) -> dict[str, Any]:
    """A shard cluster: this process connects `shard_ids` of `shard_count` (discord.py
    wants neither key rather than None: unset, it asks Discord how many and runs all)."""
    options: dict[str, Any] = {}
    if config.discord.shard_count is not None:
        options["shard_count"] = config.discord.shard_count
    if config.discord.shard_ids:
        options["shard_ids"] = list(config.discord.shard_ids)
    return options


class AtelierBot(commands.AutoShardedBot):
    def __init__(self, config: Config) -> None:
        # Made first: discord.py's HTTP session is traced from its creation on.
        self.metrics = BotMetrics(config.discord.api_base_url)
        super().__init__(
            command_prefix=commands.when_mentioned,  # unused: everything is a slash command
            help_command=None,
            intents=intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            member_cache_flags=discord.MemberCacheFlags.none(),
            chunk_guilds_at_startup=False,
            # A 429 asking for a longer wait raises instead of blocking a channel's
            # writer; the presenter then backs that channel off and coalesces.
            max_ratelimit_timeout=30.0,
            tree_cls=AtelierTree,
            http_trace=self.metrics.discord.trace,
            **shard_options(config),
        )
        self.config = config
        self.engine = Engine(config)
        self.metrics.watch(self.engine)
        sender = DiscordSender(self, build_view)
        presenter = Presenter(
            self.engine,
            sender,
            edit_interval=config.discord.edit_interval,
            channel_edits_per_5s=config.discord.channel_edits_per_5s,
        )
        self.atelier = UiContext(config, self.engine, presenter, sender)
        presenter.locale_of = sender.guild_locale  # channel messages in the server's language
        if self.engine.leasing.enable():  # PostgreSQL: shared with other `atelier run`s
            presenter.leases = self.engine.leasing
        # Refusals and settings changes, posted to each server's audit channel (paced).
        self.audit_channel = AuditChannel(self.engine.settings, sender, presenter.pacer)
        self.audit_channel.locale_of = sender.guild_locale
        self.engine.audit.subscribe(self.audit_channel.on_entry)
        moderation = config.moderation
        detector = build_detector(moderation.image_check, moderation.image_check_score)
        if detector is not None:
            presenter.image_check = ImageCheck(detector, self.engine.settings, self._is_nsfw)
        self._unsubscribe: object = None
        self._shutting_down = False
        self.http_server: HttpServer | None = None
        self.web_pages: WebPages | None = None  # the editor and gallery (public_url)
        if config.http.listening:
            self.http_server = self._build_http_server()

    def _build_http_server(self) -> HttpServer:
        """Each part of the bot served over HTTP hangs its routes here."""
        settings = self.config.http
        server = HttpServer(settings.listen_host, settings.listen_port)
        if settings.public_url:  # providers can only call back to a public address
            server.add_routes(CallbackReceiver(self.engine).routes())
            # Members' browsers reach the pages there too: links need that address.
            self.web_pages = WebPages(self.atelier, signer_for(self.config))
            server.app.add_subapp(PAGES_PREFIX, self.web_pages.app())
        server.add_routes(Health(self.gateway_state, self._ping_store).routes())
        server.add_routes(self.metrics.routes())
        return server

    def gateway_state(self) -> GatewayState:
        shards = {shard_id: not info.is_closed() for shard_id, info in self.shards.items()}
        return GatewayState(ready=self.is_ready(), shards=shards)

    async def _ping_store(self) -> None:
        await census.ping(self.engine.store)

    async def launch_shards(self) -> None:
        # discord.py dials its built-in gateway address with a fixed shard count, and
        # after a failed resume whatever the count; the address is asked for instead,
        # through api_base_url (a REST proxy, or the fake Discord in tests).
        count, url, _ = await self.http.get_bot_gateway()
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        if self.shard_count is None:  # unset: Discord's recommended count, all here
            self.shard_count = count
        await super().launch_shards()

    async def setup_hook(self) -> None:
        # Subscribe before the engine starts: jobs failed at resume are announced then.
        self._unsubscribe = self.engine.subscribe(self.atelier.presenter.on_update)
        try:
            await self.engine.start()
        except StoreInUse as err:  # a second bot would send and post everything twice
            raise StartupError(str(err)) from err
        except Exception as err:
            raise StartupError(f"cannot open the store {self.engine.store.where}: {err}") from err
        # Outcomes reached while no process was showing them (a kill -9 between a job
        # finishing and its result being posted) are shown now.
        # (Shared with other processes, the lease keeper takes those a dead one left.)
        shown_elsewhere = self.engine.leasing.active
        for job in [] if shown_elsewhere else await self.engine.undelivered(Origin.DISCORD):
            self.atelier.presenter.on_update(JobUpdate(job, EventKind.reached(job.status)))
        if (server := self.http_server) is not None:
            try:
                await server.start()
            except OSError as err:
                raise StartupError(
                    f"cannot listen for HTTP on {server.host}:{server.port} ({err});"
                    " change [http] listen_port."
                ) from err
        self.add_dynamic_items(JobButton)
        self.add_listener(actions.on_modal_submit, "on_interaction")
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        await self.tree.set_translator(CatalogueTranslator())  # zh-CN names and descriptions
        await self.sync_commands()

    async def sync_commands(self) -> None:
        """To the configured guilds (instant), else globally."""
        try:
            if self.config.discord.guild_ids:
                for guild_id in self.config.discord.guild_ids:
                    guild = discord.Object(guild_id)
                    self.tree.copy_global_to(guild=guild)
                    synced = await self.tree.sync(guild=guild)
                    log.info("synced %d commands to guild %s", len(synced), guild_id)
                # Global copies left by an earlier global sync would show every command
                # twice in these guilds: clear them (the guild copies stay).
                self.tree.clear_commands(guild=None)
                await self.tree.sync()

            else:
                synced = await self.tree.sync()
                log.info("synced %d global commands", len(synced))
        except discord.HTTPException as err:
            # The bot still serves commands registered earlier; say so and go on.
            log.error("command sync failed: %s", err)

    async def on_ready(self) -> None:
        log.info("connected as %s, in %d guilds", self.user, len(self.guilds))
        for guild in list(self.guilds):
            await self._leave_unless_allowed(guild)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self._leave_unless_allowed(guild)

    async def on_guild_available(self, guild: discord.Guild) -> None:
        await self._leave_unless_allowed(guild)  # back from an outage, list changed since

    async def _leave_unless_allowed(self, guild: discord.Guild) -> None:
        """A server not in `[discord] allowed_guild_ids` is left (someone added a
        private bot through its invite link, or the list changed)."""
        allowed = self.config.discord.allowed_guild_ids
        if not allowed or guild.id in allowed:
            return
        log.warning("leaving server %s: it is not in [discord] allowed_guild_ids", guild.id)
        try:
            await guild.leave()
        except discord.HTTPException as err:
            log.error("could not leave server %s: %s", guild.id, err)

    def _is_nsfw(self, channel_id: int) -> bool:
        """Whether a channel is marked NSFW (unknown: no, so its images are checked)."""
        channel = self.get_channel(channel_id)
        is_nsfw = getattr(channel, "is_nsfw", None)
        return bool(is_nsfw()) if callable(is_nsfw) else False

    async def close(self) -> None:
        if not self._shutting_down:
            self._shutting_down = True
            log.info("shutting down: running jobs stay in the store and resume next start")
            if self.http_server is not None:
                with contextlib.suppress(Exception):
                    await self.http_server.stop()
            with contextlib.suppress(Exception):
                await self.engine.stop_polling()  # no new outcomes from here on
            await self.atelier.presenter.close(DRAIN_SECONDS)
            await self.audit_channel.close()
            if callable(self._unsubscribe):
                self._unsubscribe()
            try:
                await self.engine.stop()
            except Exception:
                log.exception("stopping the engine failed")
        await super().close()


def run_bot(config: Config) -> int:
    """Run until SIGTERM/SIGINT. Exit 2 when the token is missing or rejected."""
    token = config.discord.token.get_secret_value().strip() if config.discord.token else ""
    if not token:
        print(
            "atelier: discord.token is not set; put it in [discord] token, e.g. "
            'token = "${DISCORD_TOKEN}", and export DISCORD_TOKEN.',
            file=sys.stderr,
        )
        return EXIT_BAD_CONFIG
    discord.http.Route.BASE = config.discord.api_base_url.rstrip("/")
    return asyncio.run(_serve(config, token))


async def _serve(config: Config, token: str) -> int:
    bot = AtelierBot(config)
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def stop() -> None:
        if not stopping:
            stopping.append(loop.create_task(bot.close()))

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            loop.add_signal_handler(sig, stop)
    try:
        # Refuse before logging in to Discord, not after: a second bot on this store would
        # send and post everything twice.
        bot.engine.claim_store()
    except StoreInUse as err:
        print(f"atelier: {err}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        async with bot:
            await bot.start(token)
    except discord.LoginFailure:
        print(
            "atelier: Discord rejected discord.token (401 Unauthorized); check the bot "
            "token in the Developer Portal.",
            file=sys.stderr,
        )
        return EXIT_BAD_CONFIG
    except (discord.PrivilegedIntentsRequired, StartupError) as err:
        print(f"atelier: {err}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except Exception as err:
        log.exception("the bot stopped on an error")
        print(f"atelier: the bot stopped: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if stopping:
            await asyncio.gather(*stopping, return_exceptions=True)
    return EXIT_OK
