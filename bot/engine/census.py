"""What the store holds, counted at the moment someone asks (the bot's /metrics and
/healthz read it at scrape time, so a figure never drifts from the store's own rows).

Read-only queries: they take no lock and never claim the store.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from bot.engine.store import Store

# A store that does not answer a trivial query in this long is reported unreachable.
PING_TIMEOUT = 3.0


class StoreUnreachable(Exception):
    """The store cannot be read now (worded for the operator)."""


@dataclass(frozen=True)
class Spend:
    provider: str
    charged: float  # credits charged since the ledger began
    refunded: float  # credits given back since the ledger began


async def job_counts(store: Store) -> dict[tuple[str, str], int]:
    """Jobs per (status, provider), over every job the store keeps."""
    async with store.db.execute(
        "SELECT status, provider, COUNT(*) FROM jobs GROUP BY status, provider"
    ) as cursor:
        rows = await cursor.fetchall()
    return {(str(r[0]), str(r[1])): int(r[2]) for r in rows}


async def spend(store: Store) -> list[Spend]:
    """Credits charged and refunded per provider since the ledger began (it only grows:
    a refund is a row of its own, so both sums are counters)."""
    async with store.db.execute(
        "SELECT COALESCE(provider, ''), "
        "SUM(CASE WHEN kind = 'charge' THEN credits ELSE 0 END), "
        "-SUM(CASE WHEN kind = 'refund' THEN credits ELSE 0 END) "
        "FROM ledger GROUP BY provider ORDER BY provider"
    ) as cursor:
        rows = await cursor.fetchall()
    return [Spend(str(r[0]), float(r[1] or 0), float(r[2] or 0)) for r in rows]


async def ping(store: Store, timeout: float = PING_TIMEOUT) -> None:
    """Raise StoreUnreachable unless the store answers a read now."""
    # An SQLite file removed or unmounted under a running bot still answers from its open
    # handle, while every write from then on is lost at the next start: say so.
    path = getattr(store, "path", None)  # SQLite only: PostgreSQL has no file
    if isinstance(path, Path) and str(path) != ":memory:" and not path.exists():
        raise StoreUnreachable(f"the database file {path} is gone")
    try:
        async with asyncio.timeout(timeout):
            async with store.db.execute("SELECT 1 FROM jobs LIMIT 1") as cursor:
                await cursor.fetchall()
    except TimeoutError:
        raise StoreUnreachable(f"the store did not answer within {timeout:g} s") from None
    except Exception as err:
        raise StoreUnreachable(f"the store cannot be read ({type(err).__name__})") from None
