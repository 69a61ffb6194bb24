"""Who may use Atelier, where, on which provider and in which mode.

The rules are pure functions of the operator's config, the server's settings and what
a front end knows of the person asking (`JobRequest.guild_id`, `channel_id`,
`role_ids`); the engine applies them in `_prepare` through `admit` and `check_use`,
before anything is stored, spent or sent. A front end may ask the same questions
earlier (to refuse a foreign server at once), never instead.

The operator's TOML is the outer bound: `[discord] allowed_guild_ids` and a provider's
`allowed_modes`. A server's settings only narrow what the operator allows.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from bot.config import Config
from bot.engine.intake import RequestError
from bot.engine.models import Job, JobRequest, Origin
from bot.engine.prompt import PromptError, parse_prompt
from bot.engine.settings import ServerSettings, SettingsStore
from bot.vocab import MODES

ANYONE, REQUESTER = "anyone", "requester"
BUTTON_ACCESS = (ANYONE, REQUESTER)


def guild_allowed(guild_id: str | None, allowed: Collection[int], origin: Origin) -> bool:
    """Whether a request from `guild_id` may be served. An empty list allows every
    server. The terminal has no server and is the operator's own; a Discord request
    with no server (a direct message) is not on any list, so it is refused."""
    if not allowed or origin is Origin.CLI:
        return True
    return guild_id is not None and guild_id.isdigit() and int(guild_id) in allowed


def channel_allowed(channel_id: str | None, settings: ServerSettings | None) -> bool:
    if settings is None or not settings.channel_ids:
        return True
    return channel_id is not None and channel_id in settings.channel_ids


def provider_allowed(
    provider: str, role_ids: Sequence[str], settings: ServerSettings | None
) -> bool:
    """Whether a member with `role_ids` may use `provider` (a provider the server did
    not restrict is open to every member)."""
    if settings is None:
        return True
    wanted = settings.provider_roles.get(provider)
    if not wanted:
        return True
    return any(role in wanted for role in role_ids)


def operator_modes(config: Config, provider: str) -> tuple[str, ...]:
    """The modes the operator allows on `provider` (every mode when it says nothing)."""
    for entry in config.providers:
        if entry.name == provider and entry.allowed_modes:
            return tuple(m for m in MODES if m in entry.allowed_modes)
    return MODES


def allowed_modes(
    config: Config, provider: str, settings: ServerSettings | None
) -> tuple[str, ...]:
    """The operator's modes on `provider`, narrowed by the server's choice (if any)."""
    modes = operator_modes(config, provider)
    chosen = settings.allowed_modes.get(provider) if settings is not None else None
    if chosen:
        modes = tuple(m for m in modes if m in chosen)
    return modes


def default_mode(config: Config, provider: str) -> str | None:
    """The mode a provider's jobs run in when the prompt names none (config `mode`)."""
    for entry in config.providers:
        if entry.name == provider:
            mode = getattr(entry, "mode", None)
            return mode if isinstance(mode, str) else None
    return None


def button_access(config: Config, settings: ServerSettings | None) -> str:
    """Who may press a job's buttons: the server's choice, else `[discord] button_access`."""
    if settings is not None and settings.button_access in BUTTON_ACCESS:
        return settings.button_access
    return config.discord.button_access


def channel_provider(channel_id: str | None, settings: ServerSettings | None) -> str | None:
    """The provider a request in this channel uses when it names none."""
    if settings is None or channel_id is None:
        return None
    return settings.channel_providers.get(channel_id)


def _mentions(ids: Sequence[str], sigil: str) -> str:
    return ", ".join(f"<{sigil}{i}>" for i in ids)


@dataclass(frozen=True)
class Admission:
    """A request let in: the server's settings and the provider it names (or the
    channel's default; None: the engine's default, or the parent job's)."""

    settings: ServerSettings | None
    provider: str | None


async def admit(config: Config, settings_store: SettingsStore, request: JobRequest) -> Admission:
    """Check the server and the channel of a request; RequestError when it may not be
    served there (`Engine.submit` records every refusal in the audit)."""
    if not guild_allowed(request.guild_id, config.discord.allowed_guild_ids, request.origin):
        raise RequestError("Atelier is not available in this server.", reason="guild")
    settings = await settings_store.get(request.guild_id)
    if not channel_allowed(request.channel_id, settings):
        assert settings is not None
        raise RequestError(
            f"Atelier can be used here only in {_mentions(settings.channel_ids, '#')}.",
            reason="channel",
        )
    return Admission(settings, request.provider or channel_provider(request.channel_id, settings))


def check_use(
    config: Config, admission: Admission, request: JobRequest, provider: str, mode: str | None
) -> None:
    """Whether the asker may use `provider` in `mode` (the prompt's, else the parent's,
    else the provider's configured default); RequestError when not."""
    settings = admission.settings
    if not provider_allowed(provider, request.role_ids, settings):
        assert settings is not None
        roles = _mentions(settings.provider_roles.get(provider, []), "@&")
        raise RequestError(
            f"The provider {provider} is only for members with {roles} here.", reason="role"
        )
    mode = mode or default_mode(config, provider)
    modes = allowed_modes(config, provider, settings)
    if mode is not None and mode not in modes:
        allowed = ", ".join(f"--{m}" for m in modes) or "none"
        raise RequestError(
            f"--{mode} is not allowed on {provider} here (allowed: {allowed}); "
            f"remove --{mode} or use another mode.",
            reason="mode not allowed",
        )


def request_mode(request: JobRequest, parent: Job | None) -> str | None:
    """The speed mode a request asks for: its prompt's --fast/--relax/--turbo, else
    its parent's (a follow-up runs like the job it follows). A prompt that does not
    parse names no mode here; the engine refuses it with its own message."""
    text = request.prompt.strip()
    if text:
        try:
            mode = parse_prompt(text).mode
        except PromptError:
            mode = None
        if mode is not None:
            return mode
    return parent.mode if parent is not None else None
