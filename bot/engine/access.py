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
from bot.engine.audit import AuditKind, AuditLog
from bot.engine.intake import RequestError
from bot.engine.models import Job, JobRequest, Origin
from bot.engine.prompt import PromptError, parse_prompt
from bot.engine.settings import RoleLimits, ServerSettings, SettingsStore
from bot.i18n import Text, tr
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


def channel_allowed(
    channel_id: str | None, settings: ServerSettings | None, parent_id: str | None = None
) -> bool:
    """Whether the server lets Atelier be used in this channel, or in this thread's
    channel `parent_id` (a thread of an allowed channel is allowed with it)."""
    if settings is None or not settings.channel_ids:
        return True
    return any(c is not None and c in settings.channel_ids for c in (channel_id, parent_id))


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


def provider_where(request: JobRequest, settings: ServerSettings | None) -> str | None:
    """The default provider where the request was made: its channel's, else (in a
    thread without one) the thread's channel's."""
    return channel_provider(request.channel_id, settings) or channel_provider(
        request.parent_channel_id, settings
    )


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
        raise RequestError(Text("Atelier is not available in this server."), reason="guild")
    settings = await settings_store.get(request.guild_id)
    if not channel_allowed(request.channel_id, settings, request.parent_channel_id):
        assert settings is not None
        raise RequestError(
            Text(
                "Atelier can be used here only in {channels}.",
                channels=_listed(settings.channel_ids, "#"),
            ),
            reason="channel",
        )
    return Admission(settings, request.provider or provider_where(request, settings))


def check_use(
    config: Config, admission: Admission, request: JobRequest, provider: str, parent: Job | None
) -> None:
    """Whether the asker may act on `parent` (a job of this server) and use `provider`
    in the mode asked for (the prompt's, else the parent's, else the provider's
    configured default); RequestError when not."""
    # Front ends check this too (a forged button); the engine never trusts them to.
    foreign = parent is not None and parent.guild_id != request.guild_id
    if foreign and request.origin is Origin.DISCORD:
        raise RequestError(Text("This button is not available here."), reason="guild")
    settings = admission.settings
    mode = request_mode(request, parent)
    if not provider_allowed(provider, request.role_ids, settings):
        assert settings is not None
        roles = _listed(settings.provider_roles.get(provider, []), "@&")
        raise RequestError(
            Text(
                "The provider {provider} is only for members with {roles} here.",
                provider=provider,
                roles=roles,
            ),
            reason="role",
        )
    mode = mode or default_mode(config, provider)
    modes = allowed_modes(config, provider, settings)
    if mode is not None and mode not in modes:
        allowed = ", ".join(f"--{m}" for m in modes) or "none"
        raise RequestError(
            Text(
                "--{mode} is not allowed on {provider} here (allowed: {allowed}); "
                "remove --{mode} or use another mode.",
                mode=mode,
                provider=provider,
                allowed=allowed,
            ),
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


# ---- changing a server's settings (/server ...): checked here, shown by the cog ----

IMAGE_CHECKS = ("off", "spoiler", "withhold")


@dataclass(frozen=True)
class Change:
    """One settings change, for the manager's answer and the audit: what, from, to."""

    what: str
    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.what}: {self.before} → {self.after}"

    def render(self, locale: str | None) -> str:
        """The change in `locale` (its parts are `Text` where they are words)."""
        return tr(locale, "{what}: {before} → {after}", **vars(self))


def _listed(items: Sequence[str], sigil: str = "") -> str:
    if not items:
        return Text("(none)")
    return ", ".join(f"<{sigil}{i}>" if sigil else i for i in items)


def edit_channels(settings: ServerSettings, op: str, channel_id: str | None = None) -> Change:
    """`op` is "add", "remove" or "clear" (every channel again)."""
    before = list(settings.channel_ids)
    if op == "add" and channel_id is not None and channel_id not in before:
        settings.channel_ids.append(channel_id)
    elif op == "remove" and channel_id is not None:
        if channel_id not in before:
            raise RequestError(
                Text("<#{channel_id}> is not on the list.", channel_id=channel_id),
                reason="settings",
            )
        settings.channel_ids.remove(channel_id)
    elif op == "clear":
        settings.channel_ids.clear()
    after = settings.channel_ids
    return Change(
        Text("channels"),
        _listed(before, "#") if before else Text("every channel"),
        _listed(after, "#") if after else Text("every channel"),
    )


def edit_provider_roles(
    config: Config, settings: ServerSettings, op: str, provider: str, role_id: str | None = None
) -> Change:
    """Roles that may use `provider`: "add" / "remove" one, or "clear" (every member)."""
    require_provider(config, provider)
    roles = settings.provider_roles.setdefault(provider, [])
    before = list(roles)
    if op == "add" and role_id is not None and role_id not in roles:
        roles.append(role_id)
    elif op == "remove" and role_id is not None:
        if role_id not in roles:
            raise RequestError(
                Text(
                    "<@&{role_id}> is not a role of {provider}.", role_id=role_id, provider=provider
                ),
                reason="settings",
            )
        roles.remove(role_id)
    elif op == "clear":
        roles.clear()
    if not roles:
        del settings.provider_roles[provider]

    def shown(ids: Sequence[str]) -> str:
        return _listed(ids, "@&") if ids else Text("every member")

    return Change(Text("roles for {provider}", provider=provider), shown(before), shown(roles))


def edit_button_access(config: Config, settings: ServerSettings, who: str | None) -> Change:
    """ "anyone", "requester", or None: the operator's `[discord] button_access`."""
    if who is not None and who not in BUTTON_ACCESS:
        raise RequestError(
            Text("Buttons are for {choices}.", choices=" or ".join(BUTTON_ACCESS)),
            reason="settings",
        )
    before = button_access(config, settings)
    settings.button_access = who
    return Change(Text("who may press buttons"), before, button_access(config, settings))


def edit_channel_provider(
    config: Config, settings: ServerSettings, channel_id: str, provider: str | None
) -> Change:
    """The provider a request in `channel_id` uses when it names none (None: the default)."""
    fallback = config.default_provider or config.providers[0].name
    before = settings.channel_providers.get(channel_id, fallback)
    if provider:
        require_provider(config, provider)
        settings.channel_providers[channel_id] = provider
    else:
        settings.channel_providers.pop(channel_id, None)
    what = Text("default provider in <#{channel_id}>", channel_id=channel_id)
    return Change(what, before, provider or fallback)


def parse_modes(text: str) -> list[str]:
    """ "relax", "fast, relax" or "all" (every mode the operator allows)."""
    words = [w.strip().lstrip("-").lower() for w in text.replace(",", " ").split()]
    if words == ["all"] or not words:
        return []
    unknown = [w for w in words if w not in MODES]
    if unknown:
        raise RequestError(
            Text(
                "{word!r} is not a mode; use {modes} or all.",
                word=unknown[0],
                modes=", ".join(MODES),
            ),
            reason="settings",
        )
    return [m for m in MODES if m in words]


def edit_modes(config: Config, settings: ServerSettings, provider: str, text: str) -> Change:
    """The modes members may ask for on `provider`, within what the operator allows."""
    require_provider(config, provider)
    wanted = parse_modes(text)
    offered = operator_modes(config, provider)
    beyond = [m for m in wanted if m not in offered]
    if beyond:
        raise RequestError(
            Text(
                "The operator does not allow --{mode} on {provider} (allowed: {allowed}).",
                mode=beyond[0],
                provider=provider,
                allowed=", ".join(offered),
            ),
            reason="settings",
        )
    before = ", ".join(allowed_modes(config, provider, settings))
    if wanted:
        settings.allowed_modes[provider] = wanted
    else:
        settings.allowed_modes.pop(provider, None)
    after = ", ".join(allowed_modes(config, provider, settings))
    return Change(Text("modes on {provider}", provider=provider), before, after)


def _limits_text(limits: RoleLimits | None) -> str:
    if limits is None:
        return Text("the defaults")
    parts = [
        f"{name} {value:g}"
        for name, value in (
            ("daily", limits.daily_credits),
            ("monthly", limits.monthly_credits),
            ("active", limits.max_active),
        )
        if value is not None
    ]
    return ", ".join(parts) or Text("the defaults")


def edit_role_limits(
    settings: ServerSettings,
    role_id: str,
    *,
    daily: float | None = None,
    monthly: float | None = None,
    max_active: int | None = None,
) -> Change:
    """Limits for members with `role_id`; all None clears them (the defaults apply)."""
    if any(v is not None and v < 0 for v in (daily, monthly, max_active)):
        raise RequestError(Text("Limits cannot be negative."), reason="settings")
    before = _limits_text(settings.role_limits.get(role_id))
    if daily is None and monthly is None and max_active is None:
        settings.role_limits.pop(role_id, None)
    else:
        settings.role_limits[role_id] = RoleLimits(daily, monthly, max_active)
    after = _limits_text(settings.role_limits.get(role_id))
    return Change(Text("limits for <@&{role_id}>", role_id=role_id), before, after)


def edit_banned_words(settings: ServerSettings, op: str, word: str) -> Change:
    """ "add" or "remove" one word (or phrase) refused in prompts here."""
    word = " ".join(word.split()).lower()
    if not word:
        raise RequestError(Text("Give a word."), reason="settings")
    before = len(settings.banned_words)
    known = [w.lower() for w in settings.banned_words]
    if op == "add" and word not in known:
        settings.banned_words.append(word)
    elif op == "remove":
        if word not in known:
            raise RequestError(Text("{word!r} is not on the list.", word=word), reason="settings")
        del settings.banned_words[known.index(word)]
    # The word itself stays out of the audit channel's line: only the count changes.
    return Change(
        Text("banned words"),
        Text("{n} words", n=before),
        Text("{n} words", n=len(settings.banned_words)),
    )


def edit_audit_channel(settings: ServerSettings, channel_id: str | None) -> Change:
    before = settings.audit_channel_id
    settings.audit_channel_id = channel_id

    def shown(value: str | None) -> str:
        return f"<#{value}>" if value else Text("none")

    return Change(Text("audit channel"), shown(before), shown(channel_id))


def edit_image_check(settings: ServerSettings, mode: str) -> Change:
    if mode not in IMAGE_CHECKS:
        raise RequestError(
            Text("The image check is {choices}.", choices=", ".join(IMAGE_CHECKS)),
            reason="settings",
        )
    before = settings.image_check
    settings.image_check = mode
    return Change(Text("image check"), before, mode)


def require_provider(config: Config, provider: str) -> None:
    names = [p.name for p in config.providers]
    if provider not in names:
        raise RequestError(
            Text(
                "There is no provider {name!r}; configured: {names}.",
                name=provider,
                names=", ".join(names),
            ),
            reason="settings",
        )


async def save_change(
    settings_store: SettingsStore,
    audit: AuditLog,
    settings: ServerSettings,
    change: Change,
    *,
    by: str,
    channel_id: str | None,
) -> None:
    """Store the changed settings and write the audit SETTINGS entry (who, what, from → to)."""
    await settings_store.save(settings, by=by)
    await audit.record(
        AuditKind.SETTINGS,
        guild_id=settings.guild_id,
        channel_id=channel_id,
        user_id=by,
        outcome=change.what,
        detail=str(change),
    )


def describe(config: Config, settings: ServerSettings, locale: str | None = None) -> list[str]:
    """Every setting of a server, one readable line each (for /server show)."""
    channels = _listed(settings.channel_ids, "#") if settings.channel_ids else Text("every channel")
    lines = [
        tr(locale, "**Channels**: {channels}", channels=channels),
        tr(locale, "**Buttons**: {who}", who=button_access(config, settings)),
    ]
    for entry in config.providers:
        name = entry.name
        roles = settings.provider_roles.get(name, [])
        defaults = [c for c, p in settings.channel_providers.items() if p == name]
        line = tr(
            locale,
            "**{provider}**: for {roles}; modes {modes}",
            provider=name,
            roles=_listed(roles, "@&") if roles else Text("every member"),
            modes=", ".join(allowed_modes(config, name, settings)) or Text("none"),
        )
        if defaults:
            line += tr(locale, "; default in {channels}", channels=_listed(defaults, "#"))
        lines.append(line)
    for role, limits in settings.role_limits.items():
        text = _limits_text(limits)
        lines.append(tr(locale, "**Limits for <@&{role}>**: {limits}", role=role, limits=text))
    words = ", ".join(f"`{w}`" for w in settings.banned_words) or Text("(none)")
    lines.append(tr(locale, "**Banned words**: {words}", words=words))
    audit = f"<#{settings.audit_channel_id}>" if settings.audit_channel_id else Text("none")
    lines.append(tr(locale, "**Audit channel**: {channel}", channel=audit))
    lines.append(tr(locale, "**Image check**: {mode}", mode=settings.image_check))
    return lines
