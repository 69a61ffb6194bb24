"""Reading tasks: many at once through list-by-condition where the server has it, else
one by one (in parallel, a few at a time)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from bot.providers.base import BadResponse
from bot.providers.mj_proxy._snapshot import parse_progress
from bot.providers.mj_proxy._tables import STATUS_RANK, TASK_MISSING
from bot.providers.mj_proxy._wire import Wire, looks_html

log = logging.getLogger(__package__)  # one logger for the adapter

Task = dict[str, Any]  # one task's JSON as the server sent it

# Ids per list-by-condition request. novicezk, trueai and new-api put no cap on the list
# (their source, read 2026-12); 200 keeps one answer to a few hundred KB and the ids
# under SQLite's 999 bound parameters (new-api looks them up in one IN (...) query).
BATCH_IDS = 200

# Where servers put the list in a list-by-condition answer that is not a bare list.
_LIST_KEYS = ("data", "list", "content", "records", "result")


async def fetch_one(wire: Wire, task_id: str) -> Task | None:
    """One task as the server sent it, or None when the server does not know it."""
    answer = await wire.http.send("GET", f"/mj/task/{task_id}/fetch", idempotent=True)
    if answer.status in (401, 403):
        raise wire.errors.status_error(answer, "task lookups")
    if answer.status in (204, 404):
        return None
    data: Any = None
    if answer.status >= 400:
        data = answer.json_or_none()
        if isinstance(data, dict) and data.get("code") in (3, 4):
            return None  # relays: 400 {"code": 4, "description": "task_no_found"}
        raise wire.errors.status_error(answer, "task lookups")
    data = answer.json()
    if data is None:
        return None  # novicezk: empty 200 for an unknown id
    if not isinstance(data, dict):
        raise BadResponse(
            f"{wire.name} answered a task lookup with something unexpected: "
            f"{wire.errors.snippet(answer)!r}",
            provider=wire.name,
        )
    if "status" not in data and "id" not in data:
        if data.get("code") in (3, 4) or data.get("success") is False:
            return None
        raise BadResponse(
            f"{wire.name} answered a task lookup without a task: {wire.errors.snippet(answer)!r}",
            provider=wire.name,
        )
    return data


def _rank(task: Mapping[str, Any]) -> tuple[int, float]:
    status = str(task.get("status") or "").upper()
    progress = parse_progress(task.get("progress")) or 0.0
    return STATUS_RANK.get(status, 5), progress


class TaskReader:
    """Reads tasks by id, and remembers when the server turns out to lack the batch call."""

    def __init__(self, wire: Wire, *, batch: bool) -> None:
        self.wire = wire
        self.batch_ok = batch  # unset once POST /mj/task/list-by-condition is missing

    async def read(
        self, task_ids: Sequence[str], *, batch_size: int, concurrency: int
    ) -> dict[str, Task]:
        """The tasks the server knows among `task_ids` (asked once each), by id."""
        ids = list(dict.fromkeys(task_id for task_id in task_ids if task_id))
        tasks: dict[str, Task] = {}
        rest = ids
        if self.batch_ok and ids:
            rest = []
            for start in range(0, len(ids), batch_size):
                chunk = ids[start : start + batch_size]
                found = await self._batch(chunk) if self.batch_ok else None
                if found is None:
                    rest.extend(chunk)
                else:
                    tasks.update(found)
        if rest:
            tasks.update(await self._each(rest, concurrency))
        return tasks

    async def _batch(self, ids: list[str]) -> dict[str, Task] | None:
        """Tasks by id through list-by-condition, or None when the server lacks it."""
        wire = self.wire
        answer = await wire.http.send(
            "POST", "/mj/task/list-by-condition", json_body={"ids": ids}, idempotent=True
        )
        if answer.status in (401, 403):
            raise wire.errors.status_error(answer, "task lookups")
        if answer.status in (404, 405) or looks_html(answer):
            # Absent on this server (HTML: a relay's web UI answering an unknown route).
            log.info("%s: no list-by-condition; polling tasks one by one", wire.name)
            self.batch_ok = False
            return None
        if answer.status >= 400:
            raise wire.errors.status_error(answer, "task lookups")
        data = answer.json()
        if isinstance(data, dict):
            listed = next((data[k] for k in _LIST_KEYS if isinstance(data.get(k), list)), None)
            if listed is None:
                if TASK_MISSING.search(wire.errors.error_text(data) or ""):
                    self.batch_ok = False
                return None  # unreadable this time: one by one, which reports real errors
            data = listed
        if not isinstance(data, list):
            return None
        return _furthest_rows(data, set(ids))

    async def _each(self, ids: list[str], concurrency: int) -> dict[str, Task]:
        gate = asyncio.Semaphore(concurrency)

        async def one(task_id: str) -> tuple[str, Task | None]:
            async with gate:
                return task_id, await fetch_one(self.wire, task_id)

        results = await asyncio.gather(*(one(task_id) for task_id in ids), return_exceptions=True)
        found: dict[str, Task] = {}
        for result in results:
            # An error for one id would otherwise read as "task unknown": report it instead.
            if isinstance(result, BaseException):
                raise result
            task_id, task = result
            if task is not None:
                found[task_id] = task
        return found


def _furthest_rows(rows: list[Any], wanted: set[str]) -> dict[str, Task]:
    """The listed tasks we asked for, by id. new-api may list one id twice (a second row
    after /submit/modal, the first stuck at MODAL): keep the row that is further along."""
    found: dict[str, Task] = {}
    for task in rows:
        if not isinstance(task, dict) or str(task.get("id")) not in wanted:
            continue
        task_id = str(task["id"])
        if task_id not in found or _rank(task) >= _rank(found[task_id]):
            found[task_id] = task
    return found
