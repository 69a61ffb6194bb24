"""The audit trail and the store's atomic step."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest

from bot.engine.audit import AuditEntry, AuditKind, AuditLog, to_csv
from bot.engine.store import Store


async def test_entries_are_kept_in_order_filtered_and_exported(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    await store.open()
    now = [1000.0]
    audit = AuditLog(store, lambda: now[0])
    heard: list[AuditEntry] = []
    audit.subscribe(heard.append)
    try:
        await audit.record(AuditKind.JOB, guild_id="1", user_id="u", job_id="j1", credits=2)
        now[0] = 2000.0
        await audit.record(
            AuditKind.REFUSAL, guild_id="2", user_id="u", outcome="banned word", detail="x,y"
        )
        assert [e.kind for e in await audit.entries(0)] == [AuditKind.JOB, AuditKind.REFUSAL]
        assert [e.job_id for e in await audit.entries(0, guild_id="1")] == ["j1"]
        assert [e.at for e in await audit.entries(1500)] == [2000.0]
        assert [e.kind for e in heard] == [AuditKind.JOB, AuditKind.REFUSAL]
        rows = list(csv.reader(io.StringIO(to_csv(await audit.entries(0)))))
        assert rows[0][:3] == ["at", "kind", "guild_id"]
        assert rows[2][1] == "refusal" and rows[2][-1] == "x,y" and rows[1][8] == "2.0"
    finally:
        await store.close()


async def test_a_failing_listener_does_not_lose_the_entry(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    await store.open()
    audit = AuditLog(store, lambda: 1.0)

    def broken(entry: AuditEntry) -> None:
        raise RuntimeError("listener bug")

    audit.subscribe(broken)
    try:
        await audit.record(AuditKind.SETTINGS, guild_id="1", outcome="changed")
        assert len(await audit.entries(0)) == 1
    finally:
        await store.close()


async def test_a_transaction_is_atomic_and_writers_do_not_interleave(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    await store.open()
    try:
        with pytest.raises(RuntimeError):
            async with store.transaction() as db:
                await db.execute("INSERT INTO audit (at, kind) VALUES (1, 'job')")
                raise RuntimeError("half way")
        async with store.db.execute("SELECT COUNT(*) FROM audit") as cursor:
            assert (await cursor.fetchone())[0] == 0  # rolled back whole

        # Check-then-write under the transaction: 20 at once against a limit of 2.
        async def take_one() -> bool:
            async with store.transaction() as db:
                async with db.execute("SELECT COUNT(*) FROM audit") as cursor:
                    (count,) = await cursor.fetchone()
                await asyncio.sleep(0)  # give the others every chance to interleave
                if count >= 2:
                    return False
                await db.execute("INSERT INTO audit (at, kind) VALUES (1, 'job')")
                return True

        taken = await asyncio.gather(*(take_one() for _ in range(20)))
        assert sum(taken) == 2
    finally:
        await store.close()


async def test_server_settings_round_trip_keep_unknown_keys_and_survive_bad_rows(
    tmp_path: Path,
) -> None:
    from bot.engine.settings import RoleLimits, ServerSettings, SettingsStore

    store = Store(tmp_path / "a.db")
    await store.open()
    try:
        settings = SettingsStore(store, lambda: 5.0)
        assert await settings.get(None) is None
        fresh = await settings.get("42")
        assert fresh == ServerSettings("42")
        fresh.banned_words = ["gore"]
        fresh.role_limits["7"] = RoleLimits(daily_credits=5)
        fresh.extras["from_the_future"] = {"x": 1}
        await settings.save(fresh, by="u1")
        again = await SettingsStore(store, lambda: 6.0).get("42")  # not from the cache
        assert again == fresh and again.role_limits["7"].daily_credits == 5
        copy = await settings.get("42")
        assert copy is not None
        copy.banned_words.append("changed")  # callers get copies
        assert (await settings.get("42")).banned_words == ["gore"]  # type: ignore[union-attr]

        await store.db.execute("UPDATE guild_settings SET data = '[1, 2]' WHERE guild_id = '42'")
        await store.db.commit()
        assert await SettingsStore(store, lambda: 7.0).get("42") == ServerSettings("42")
    finally:
        await store.close()
