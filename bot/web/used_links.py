"""Which editor links were used for a submit: each works once, across restarts and
processes of one store (the `used_links` table, migration 7).

A nonce is taken before the job is submitted, so two submits racing with one link
start one job; when the engine refuses the request (a bad prompt, a quota) the nonce
is given back, so the member can fix the prompt and submit again.
"""

from __future__ import annotations

import time

from bot.engine.store import Store


async def take(store: Store, nonce: str) -> bool:
    """Record `nonce` as used; False when it already was."""
    async with store.transaction() as db:
        # RETURNING gives a row only when the insert happened, on both databases.
        cursor = await db.execute(
            "INSERT INTO used_links (nonce, used_at) VALUES (?, ?) ON CONFLICT DO NOTHING"
            " RETURNING nonce",
            (nonce, time.time()),
        )
        return await cursor.fetchone() is not None


async def give_back(store: Store, nonce: str) -> None:
    async with store.transaction() as db:
        await db.execute("DELETE FROM used_links WHERE nonce = ?", (nonce,))


async def was_used(store: Store, nonce: str) -> bool:
    async with store.db.execute("SELECT 1 FROM used_links WHERE nonce = ?", (nonce,)) as cursor:
        return await cursor.fetchone() is not None
