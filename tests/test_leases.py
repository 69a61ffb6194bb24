"""Leases on both databases (`store_target`): each active job followed by one live
process, taken over when that process stops renewing, delivered once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from bot.engine.leases import LeaseKeeper
from bot.engine.models import Job, JobStatus, Origin
from bot.engine.store import Store
from bot.vocab import Action

A, B = "host-a:1:aaaa", "host-b:2:bbbb"


def _job(job_id: str, status: JobStatus = JobStatus.RUNNING) -> Job:
    return Job(id=job_id, action=Action.IMAGINE, provider="p", status=status, task_id="t")


@pytest.fixture
async def stores(store_target: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one database, as two processes would have; the first wrote jobs."""
    first, second = Store(store_target), Store(store_target)
    await first.open()
    await second.open()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_a_leased_job_stays_with_its_owner_until_the_lease_runs_out(
    stores: tuple[Store, Store],
) -> None:
    first, second = stores
    await first.save_many([_job("job0000001"), _job("job0000002")])
    assert await first.leases.lease(A, ["job0000001"], 0.3) == ["job0000001"]
    assert await second.leases.lease(B, ["job0000001"], 30) == []  # A holds it
    # B takes over what nobody follows: the never-leased job, not A's.
    assert [j.id for j in await second.leases.take_over(B, 30)] == ["job0000002"]
    assert await second.leases.holder("job0000001") == A
    assert await first.leases.renew(A, 0.3) == ["job0000001"]  # A lives on
    await asyncio.sleep(0.4)  # ... and then stops renewing
    taken = await second.leases.take_over(B, 30)
    assert [j.id for j in taken] == ["job0000001"] and taken[0].status is JobStatus.RUNNING
    assert await second.leases.holder("job0000001") == B
    assert await first.leases.renew(A, 30) == []  # A learns it lost the job


async def test_finished_jobs_are_never_taken_over(stores: tuple[Store, Store]) -> None:
    first, second = stores
    await first.save_many([_job("done000001", JobStatus.SUCCEEDED), _job("live000001")])
    assert [j.id for j in await second.leases.take_over(B)] == ["live000001"]
    assert await second.leases.take_over(A) == []  # held by B now


async def test_processes_taking_over_together_split_the_jobs(
    stores: tuple[Store, Store],
) -> None:
    first, second = stores
    ids = [f"job{n:07d}" for n in range(60)]
    await first.save_many([_job(i) for i in ids])

    async def take(store: Store, owner: str) -> list[str]:
        got: list[str] = []
        while batch := await store.leases.take_over(owner, 30, limit=5):
            got += [j.id for j in batch]
        return got

    by_a, by_b = await asyncio.gather(take(first, A), take(second, B))
    assert sorted(by_a + by_b) == ids  # every job taken, none twice
    assert not set(by_a) & set(by_b)
    for job_id in ids:
        assert await first.leases.holder(job_id) == (A if job_id in by_a else B)


async def test_an_outcome_is_delivered_once_by_its_jobs_holder(
    stores: tuple[Store, Store],
) -> None:
    first, second = stores
    await first.save(_job("done000001", JobStatus.SUCCEEDED))
    await first.leases.lease(A, ["done000001"])
    assert not await second.leases.claim_delivery(B, "done000001")  # not B's job
    claims = await asyncio.gather(
        *(store.leases.claim_delivery(A, "done000001") for store in (first, second) * 5)
    )
    assert claims.count(True) == 1
    job = await first.get("done000001")
    assert job is not None and job.delivered_at is not None
    assert await first.undelivered("cli", 0) == []


async def test_the_keeper_renews_gives_back_at_stop_and_adopts_the_dead(
    stores: tuple[Store, Store],
) -> None:
    first, second = stores
    await first.save_many([_job("job0000001"), _job("job0000002")])
    adopted: list[str] = []
    lost: list[str] = []

    async def adopt(jobs: Sequence[Job]) -> None:
        adopted.extend(j.id for j in jobs)

    keeper = LeaseKeeper(first, adopt, lost.extend, seconds=0.3, owner=A)
    assert await keeper.lease(["job0000001"]) == ["job0000001"]
    keeper.start()
    try:
        await asyncio.sleep(0.8)  # more than two expiries: only renewal keeps it
        assert await second.leases.take_over(B, 30) == []
        assert adopted == ["job0000002"]  # the job nobody followed
        assert keeper.held == {"job0000001", "job0000002"} and lost == []
    finally:
        await keeper.stop()
    # A clean stop gives the leases back: another process takes over at once.
    assert sorted(j.id for j in await second.leases.take_over(B, 30)) == [
        "job0000001",
        "job0000002",
    ]


async def test_the_keeper_lets_go_of_a_job_taken_over_while_it_stalled(
    stores: tuple[Store, Store],
) -> None:
    first, second = stores
    await first.save(_job("job0000001"))
    lost: list[str] = []

    async def adopt(jobs: Sequence[Job]) -> None:
        return None

    keeper = LeaseKeeper(first, adopt, lost.extend, seconds=0.2, owner=A)
    await keeper.lease(["job0000001"])
    await asyncio.sleep(0.3)  # stalled: no turn ran, the lease ran out
    assert [j.id for j in await second.leases.take_over(B, 30)] == ["job0000001"]
    await keeper._turn()
    assert lost == ["job0000001"] and keeper.held == set()


def _in(job_id: str, channel: str, status: JobStatus = JobStatus.RUNNING) -> Job:
    job = _job(job_id, status)
    job.origin, job.channel_id = Origin.DISCORD, channel
    return job


async def test_a_channel_stays_with_the_live_process_that_shows_it(
    stores: tuple[Store, Store],
) -> None:
    first, second = stores
    await first.save_many([_in("job0000001", "c1"), _in("job0000002", "c1")])
    await first.leases.lease(A, ["job0000001"])
    # B takes over the job nobody follows, but its channel is A's: A gets it.
    assert await second.leases.take_over(B, 30) == []
    assert await first.leases.holder("job0000002") == A
    # A new job in that channel goes to A too; one elsewhere stays with who placed it.
    await first.save_many([_in("job0000003", "c1"), _in("job0000004", "c2")])
    assert await second.leases.place(B, "job0000003", "c1") == A
    assert await second.leases.place(B, "job0000004", "c2") == B
    assert await second.leases.place(B, "job0000005", None) == B


async def test_an_outcome_a_dead_process_never_posted_is_taken_over(
    stores: tuple[Store, Store],
) -> None:
    first, second = stores
    done = _in("done000001", "c1", JobStatus.SUCCEEDED)
    await first.save_many([done, _job("done000002", JobStatus.SUCCEEDED)])  # a CLI one
    await first.leases.lease(A, ["done000001"], 0.2)
    assert await second.leases.take_over_undelivered(B, 0, 30) == []  # A still holds it
    await asyncio.sleep(0.3)
    taken = await second.leases.take_over_undelivered(B, 0, 30)
    assert [j.id for j in taken] == ["done000001"]
    assert await second.leases.claim_delivery(B, "done000001")
    await second.leases.release(B, ["done000001"])
    assert await second.leases.take_over_undelivered(A, 0, 30) == []  # delivered now


async def test_the_keeper_adopts_a_job_another_process_handed_to_it(
    stores: tuple[Store, Store],
) -> None:
    first, second = stores
    await first.save(_in("job0000001", "c1"))
    adopted: list[str] = []

    async def adopt(jobs: Sequence[Job]) -> None:
        adopted.extend(j.id for j in jobs)

    keeper = LeaseKeeper(first, adopt, lambda ids: None, seconds=30, owner=A)
    await keeper.lease(["job0000001"])
    await keeper._turn()
    assert adopted == []  # its own job is not adopted
    await first.save(_in("job0000002", "c1"))  # B's new job (one writer on SQLite)
    assert await second.leases.place(B, "job0000002", "c1") == A  # handed to A
    await keeper._turn()
    assert adopted == ["job0000002"] and keeper.held == {"job0000001", "job0000002"}
    await first.save(_job("job0000001", JobStatus.SUCCEEDED))  # finished: given back
    await keeper.release(["job0000001"])
    await keeper._turn()
    assert adopted == ["job0000002"]  # a job it gave back is not adopted again


async def test_a_job_stored_a_moment_ago_is_left_to_the_process_leasing_it(
    stores: tuple[Store, Store],
) -> None:
    first, second = stores
    await first.save(_job("new0000001"))  # stored; its process leases it next
    assert await second.leases.take_over(B, 30, fresh=30) == []
    assert await first.leases.lease(A, ["new0000001"]) == ["new0000001"]
    await first.save(_job("old0000001"))
    await asyncio.sleep(0.3)  # no lease for longer than `fresh`: its process is gone
    assert [j.id for j in await second.leases.take_over(B, 30, fresh=0.2)] == ["old0000001"]
