"""The audit trail: who did what, where, at what cost, with what outcome.

Every job, refusal, refund and settings change is one row of the store's `audit` table,
written by the engine (never by a front end), so `atelier audit` and a server's audit
channel tell the same story. Rows are appended, never changed.
"""

from __future__ import annotations

import csv
import enum
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, fields
from typing import Any

from bot.engine.store import Store

log = logging.getLogger(__name__)


class AuditKind(enum.StrEnum):
    JOB = "job"  # a job was accepted (charged) and, later, how it ended
    REFUSAL = "refusal"  # a request turned away before anything was spent
    REFUND = "refund"  # credits given back (the provider failed, or nothing was sent)
    CANCEL = "cancel"
    SETTINGS = "settings"  # a server's managers changed its settings


@dataclass(frozen=True)
class AuditEntry:
    at: float
    kind: AuditKind
    guild_id: str | None = None
    channel_id: str | None = None
    user_id: str | None = None
    job_id: str | None = None
    provider: str | None = None
    action: str | None = None
    credits: float = 0.0
    outcome: str = ""  # in a few words: "sent", "banned word", "mode not allowed", ...
    detail: str = ""  # the specifics, for managers (never a secret)


_COLUMNS = tuple(f.name for f in fields(AuditEntry))
_INSERT = f"INSERT INTO audit ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"

Listener = Callable[[AuditEntry], None]


class AuditLog:
    """Appends entries to the store and tells listeners (a Discord audit channel)."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def record(
        self,
        kind: AuditKind,
        *,
        guild_id: str | None = None,
        channel_id: str | None = None,
        user_id: str | None = None,
        job_id: str | None = None,
        provider: str | None = None,
        action: str | None = None,
        credits: float = 0.0,
        outcome: str = "",
        detail: str = "",
    ) -> AuditEntry:
        entry = AuditEntry(
            self.clock(), kind, guild_id, channel_id, user_id, job_id, provider, action,
            credits, outcome, detail,
        )  # fmt: skip
        async with self.store.transaction() as db:
            await db.execute(_INSERT, _row(entry))
        for listener in list(self._listeners):
            try:
                listener(entry)
            except Exception:  # a listener's bug must not undo or block the record
                log.exception("an audit listener failed on a %s entry", entry.kind)
        return entry

    async def entries(
        self, since: float, *, guild_id: str | None = None, limit: int = 10_000
    ) -> list[AuditEntry]:
        """Entries since `since` (epoch seconds), oldest first; one server's if named."""
        where = "at >= ?"
        args: list[object] = [since]
        if guild_id is not None:
            where += " AND guild_id = ?"
            args.append(guild_id)
        query = f"SELECT {', '.join(_COLUMNS)} FROM audit WHERE {where} ORDER BY id LIMIT ?"
        async with self.store.db.execute(query, (*args, limit)) as cursor:
            rows = await cursor.fetchall()
        return [entry for row in rows if (entry := _entry(row)) is not None]


def _row(entry: AuditEntry) -> tuple[object, ...]:
    return tuple(value.value if isinstance(value, enum.Enum) else value for value in astuple(entry))


def _entry(row: Sequence[Any]) -> AuditEntry | None:
    """An entry from a row; None (and a log line) for a kind this version does not know."""
    at, kind, guild_id, channel_id, user_id, job_id, provider, action, credits, outcome, detail = (
        row
    )
    try:
        known = AuditKind(str(kind))
    except ValueError:  # written by a newer Atelier
        log.warning("skipping an audit row of unknown kind %r", kind)
        return None
    text = _text_or_none
    return AuditEntry(
        float(at), known, text(guild_id), text(channel_id), text(user_id), text(job_id),
        text(provider), text(action), float(credits), str(outcome), str(detail),
    )  # fmt: skip


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def to_csv(entries: Sequence[AuditEntry]) -> str:
    """The entries as CSV with a header row (for `atelier audit --csv`)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_COLUMNS)
    for entry in entries:
        writer.writerow(_row(entry))
    return out.getvalue()
