"""Each server's own settings, chosen by its managers (`/server ...`), kept in the store.

The operator's TOML is the default for every server and the outer bound: a server may
narrow what the owner allows (fewer modes, fewer channels, lower limits), never widen
it. One JSON document per server in the `guild_settings` table, so a new setting needs
no migration; keys this version does not know are kept, so an older process never
erases a newer one's settings.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bot.engine.store import Store

log = logging.getLogger(__name__)


@dataclass
class RoleLimits:
    """Limits for members with one role; None means the operator's default applies."""

    daily_credits: float | None = None
    monthly_credits: float | None = None
    max_active: int | None = None


@dataclass
class ServerSettings:
    guild_id: str
    # Channels (ids) where Atelier may be used; empty: every channel it can see.
    channel_ids: list[str] = field(default_factory=list)
    # Provider name -> role ids that may use it; a provider not listed: every member.
    provider_roles: dict[str, list[str]] = field(default_factory=dict)
    # Who may press a job's buttons: "anyone" or "requester"; None: [discord] button_access.
    button_access: str | None = None
    # Channel id -> the provider a request there uses when it names none.
    channel_providers: dict[str, str] = field(default_factory=dict)
    # Provider name -> the modes members may ask for (within the provider's allowed_modes).
    allowed_modes: dict[str, list[str]] = field(default_factory=dict)
    # Role id -> limits for members with that role (the most generous of a member's
    # roles applies, still within the operator's [spending] bounds).
    role_limits: dict[str, RoleLimits] = field(default_factory=dict)
    # Words refused in prompts here, beside [moderation] banned_words.
    banned_words: list[str] = field(default_factory=list)
    # Where refusals and settings changes are reported; None: nowhere.
    audit_channel_id: str | None = None
    # What happens to result images a detector flags, in channels not marked NSFW:
    # "off" (no check), "spoiler" or "withhold".
    image_check: str = "off"
    # Keys written by a newer Atelier, kept as they were.
    extras: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        extras = data.pop("extras")
        data.pop("guild_id")
        return {**extras, **data}

    @classmethod
    def from_json(cls, guild_id: str, data: dict[str, Any]) -> ServerSettings:
        known = {f.name for f in fields(cls)} - {"guild_id", "extras"}
        values = {k: v for k, v in data.items() if k in known}
        extras = {k: v for k, v in data.items() if k not in known}
        values["role_limits"] = {
            str(role): RoleLimits(**limits)
            for role, limits in values.get("role_limits", {}).items()
        }
        return cls(guild_id=guild_id, extras=extras, **values)


class SettingsStore:
    """Read and write servers' settings; reads are cached (every request reads them)."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        self._cache: dict[str, ServerSettings] = {}

    async def get(self, guild_id: str | None) -> ServerSettings | None:
        """The server's settings (defaults where it chose none); None outside a server
        (the terminal, direct messages), where only the operator's config applies."""
        if guild_id is None:
            return None
        cached = self._cache.get(guild_id)
        if cached is None:
            cached = await self._read(guild_id)
            self._cache[guild_id] = cached
        return ServerSettings.from_json(guild_id, cached.to_json())  # a copy to change

    async def save(self, settings: ServerSettings, *, by: str | None) -> None:
        document = json.dumps(settings.to_json(), separators=(",", ":"), sort_keys=True)
        async with self.store.transaction() as db:
            await db.execute(
                "INSERT INTO guild_settings (guild_id, data, updated_at, updated_by) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET "
                "data = excluded.data, updated_at = excluded.updated_at, "
                "updated_by = excluded.updated_by",
                (settings.guild_id, document, self.clock(), by),
            )
        self._cache[settings.guild_id] = ServerSettings.from_json(
            settings.guild_id, settings.to_json()
        )

    async def _read(self, guild_id: str) -> ServerSettings:
        async with self.store.db.execute(
            "SELECT data FROM guild_settings WHERE guild_id = ?", (guild_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return ServerSettings(guild_id)
        try:
            data = json.loads(row[0])
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            return ServerSettings.from_json(guild_id, data)
        except (ValueError, TypeError) as err:
            # A hand-edited row must not lock a server out: its defaults apply, loudly.
            log.error(
                "the settings of server %s cannot be read (%s); using defaults", guild_id, err
            )
            return ServerSettings(guild_id)
