"""The runner: ONE loop that polls every active job.

Each job has its own next-poll time, set from what is known about it (queued at the
provider, its pace of progress, whether the provider's callbacks work: see
poll_schedule). On each turn the loop takes the jobs that are due, groups them per
provider, adds the jobs that would be due before that provider's next round, cuts the
groups to the provider's batch size, and asks for each batch in one fetch. Errors
back a job off exponentially; a deadline ends a job that never finishes. Results are
collected (images downloaded at once, since provider URLs expire) in a task of their
own, so a slow download never holds up polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Sequence

from bot.backoff import Backoff
from bot.engine.events import EventBus
from bot.engine.loop import BackgroundLoop
from bot.engine.models import EventKind, Job, JobStatus
from bot.engine.poll_schedule import PollTrack, callbacks_work, next_poll, round_gap
from bot.engine.store import Store
from bot.i18n import N_
from bot.providers.base import Provider, ProviderError, TaskRef, TaskSnapshot, TaskState

log = logging.getLogger(__name__)

# A provider that forgets a task this many polls in a row has lost it.
NOT_FOUND_LIMIT = 3
MAX_BACKOFF = 120.0
POKE_GAP = 1.0  # seconds between two polls of one job caused by callbacks
# Polls caused by callbacks per second across all jobs; more are dropped (the runner
# polls those jobs anyway at their interval), so a flood of callbacks, forged or not,
# cannot turn into a flood of fetches.
POKES_PER_SECOND = 20
# Fetches in flight per provider: enough to overlap slow answers, few enough to be polite.
FETCHES_PER_PROVIDER = 4

Collector = Callable[[Provider, Job, TaskSnapshot], Awaitable[None]]


class Runner(BackgroundLoop):
    name = "atelier-runner"

    def __init__(
        self,
        store: Store,
        providers: dict[str, Provider],
        events: EventBus,
        collect: Collector,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.store = store
        self.providers = providers
        self.events = events
        self.collect = collect
        self.clock = clock
        self._jobs: dict[str, Job] = {}
        self._due: dict[str, float] = {}
        self._busy: set[str] = set()  # being fetched or collected
        self._last_poke: dict[str, float] = {}
        self._recent_pokes: deque[float] = deque()  # when the last polls by poke were set
        self._tracks: dict[str, PollTrack] = {}  # what polls showed of each job's pace
        self._poked: set[str] = set()  # jobs whose next poll a callback brought forward
        self._poked_while_busy: set[str] = set()  # ... or that a callback hit mid-fetch
        self._callbacks_seen: dict[str, float] = {}  # provider: last callback news came after
        self._next_round: dict[str, float] = {}  # provider: earliest time of its next round
        self._limits: dict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(FETCHES_PER_PROVIDER)
        )
        self.fetch_calls = 0  # for benchmarks

    # ---- lifecycle ----

    async def start(self, *, resume: bool = True) -> list[Job]:
        """Resume the jobs the store holds as active (unless `resume` is False: jobs
        leased between processes come through `follow`), then start the loop.

        Returns the jobs that were still waiting to be sent (WAITING: never sent, so
        safe to send now) for the dispatcher."""
        waiting = await self.follow(await self.store.active()) if resume else []
        self._start_loop()
        return waiting

    async def follow(self, jobs: Sequence[Job]) -> list[Job]:
        """Resume these stored active jobs here, as a restart resumes them (a process
        that took them over calls this too); the ones never sent, for the dispatcher."""
        interrupted: list[Job] = []
        waiting: list[Job] = []
        for job in jobs:
            never_sent = job.status is JobStatus.WAITING and job.task_id is None
            if never_sent and job.provider in self.providers:
                waiting.append(job)
                continue
            if job.task_id is None or job.status in (JobStatus.WAITING, JobStatus.SUBMITTING):
                # We cannot know whether the provider got it; sending it again could
                # charge twice, so it ends here, saying so.
                job.status = JobStatus.FAILED
                job.failure = N_(
                    "Atelier stopped while this job was being submitted, so it was not sent "
                    "again (that could charge twice). Run it again if it did not arrive."
                )
                job.finished_at = self.clock()
                interrupted.append(job)
            elif job.provider not in self.providers:
                job.status = JobStatus.FAILED
                job.failure = (
                    f"The provider {job.provider!r} is no longer configured, so this job "
                    "cannot be followed."
                )
                job.finished_at = self.clock()
                interrupted.append(job)
            else:
                self.track(job, delay=0)
        await self.store.save_many(interrupted)
        for job in interrupted:
            self.events.publish(job, EventKind.FAILED)
        return waiting

    # ---- jobs ----

    def track(self, job: Job, *, delay: float | None = None) -> None:
        provider = self.providers[job.provider]
        self._jobs[job.id] = job
        self._due[job.id] = self.clock() + (provider.poll_interval if delay is None else delay)
        self._wake.set()

    def poke(self, job_id: str) -> bool:
        """News may be waiting for this job (a provider callback): poll it soon.

        Pokes are hints and can come in floods, so a job is polled at most once a
        second because of them, never while it backs off after errors (the backoff
        decides), and at most POKES_PER_SECOND polls are brought forward across all
        jobs. A poke while the job's fetch is out makes the next poll come within
        POKE_GAP of that fetch's answer. Returns whether the job is being followed."""
        job = self._jobs.get(job_id)
        if job is None:
            return False
        now = self.clock()
        soonest = max(now, self._last_poke.get(job_id, -POKE_GAP) + POKE_GAP)
        if job_id in self._busy and not job.poll_errors:
            # The fetch out now may have been answered before this news: look again
            # soon after it, rather than at a safety-net gap planned from stale news.
            self._poked_while_busy.add(job_id)
            return True
        if job.poll_errors or self._due.get(job_id, now) <= soonest:
            return True
        while self._recent_pokes and self._recent_pokes[0] <= now - 1.0:
            self._recent_pokes.popleft()
        if len(self._recent_pokes) >= POKES_PER_SECOND:
            log.debug("poke for job %s dropped: over %d a second", job_id, POKES_PER_SECOND)
            # Not sooner than its interval, but not left to the rare safety-net poll of
            # a provider whose callbacks work either.
            interval = now + self.providers[job.provider].poll_interval
            self._due[job_id] = min(self._due.get(job_id, interval), interval)
            return True
        self._recent_pokes.append(now)
        self._due[job_id] = soonest
        self._last_poke[job_id] = soonest
        self._poked.add(job_id)
        self._wake.set()
        return True

    def forget(self, job_id: str) -> None:
        self._last_poke.pop(job_id, None)
        self._tracks.pop(job_id, None)
        self._poked.discard(job_id)
        self._poked_while_busy.discard(job_id)
        self._jobs.pop(job_id, None)
        self._due.pop(job_id, None)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def count_for(self, provider: str) -> int:
        """Jobs of a provider in flight there (sent, not finished)."""
        return sum(1 for job in self._jobs.values() if job.provider == provider)

    def leases_held(self) -> int:
        """Active jobs this process owns (follows, collects, presents). One process runs
        a store today, so these are all of them; a shared store's leases count here."""
        return len(self._jobs)

    # ---- the loop ----

    def _seconds_to_next(self) -> float:
        rounds = self._next_round
        waiting = [
            max(when, rounds.get(job.provider, when))
            for job_id, when in self._due.items()
            if job_id not in self._busy and (job := self._jobs.get(job_id)) is not None
        ]
        if not waiting:
            return 5.0
        return max(0.05, min(5.0, min(waiting) - self.clock()))

    async def _turn(self) -> None:
        now = self.clock()
        due: dict[str, list[Job]] = defaultdict(list)
        soon: dict[str, list[Job]] = defaultdict(list)  # due before the next round
        expired: list[Job] = []
        for job_id, when in list(self._due.items()):
            job = self._jobs.get(job_id)
            if job is None:  # forgotten while a fetch was out; nothing to poll
                self._due.pop(job_id, None)
                continue
            if job_id in self._busy:
                continue
            if when > now:
                if when <= now + round_gap(self.providers[job.provider].poll_interval):
                    soon[job.provider].append(job)
            elif job.deadline_at and now >= job.deadline_at:
                expired.append(job)
            else:
                due[job.provider].append(job)
        if expired:
            await self._expire(expired)
        for provider_name, jobs in due.items():
            if now < self._next_round.get(provider_name, now):
                continue  # this provider had its round moments ago; the jobs wait for the next
            provider = self.providers[provider_name]
            self._next_round[provider_name] = now + round_gap(provider.poll_interval)
            self._round(provider, [*jobs, *soon.get(provider_name, ())])

    def _round(self, provider: Provider, jobs: Sequence[Job]) -> None:
        """One round of a provider: its due jobs, as few batch calls as its size allows."""
        size = max(1, provider.batch_size)
        for start in range(0, len(jobs), size):
            batch = jobs[start : start + size]
            self._busy.update(j.id for j in batch)
            self._spawn(self._poll(provider, batch))

    async def _poll(self, provider: Provider, batch: Sequence[Job]) -> None:
        try:
            async with self._limits[provider.name]:
                self.fetch_calls += 1
                snapshots = await provider.fetch(
                    [
                        TaskRef(j.task_id, j.action, dict(j.provider_data))
                        for j in batch
                        if j.task_id
                    ]
                )
        except ProviderError as err:
            self._back_off(provider, batch, err)
            return
        except Exception as err:  # an adapter bug must not kill the jobs' polling
            log.exception("fetch from %s failed unexpectedly", provider.name)
            self._back_off(provider, batch, ProviderError(str(err) or type(err).__name__))
            return
        try:
            await self._apply_batch(provider, batch, snapshots)
        finally:
            self._busy.difference_update(j.id for j in batch)
            self._wake.set()

    def _back_off(self, provider: Provider, batch: Sequence[Job], err: ProviderError) -> None:
        now = self.clock()
        for job in batch:
            self._busy.discard(job.id)
            if job.id not in self._jobs:  # cancelled while we asked: nothing to plan
                continue
            job.poll_errors += 1
            job.provider_status = f"retrying: {err.kind}"
            backoff = Backoff(base=provider.poll_interval * 2, cap=MAX_BACKOFF, jitter=0.2)
            self._due[job.id] = now + backoff.delay(job.poll_errors - 1, err.retry_after)
        log.warning(
            "polling %d job(s) on %s failed (%s); backing off", len(batch), provider.name, err
        )
        self._wake.set()

    async def _apply_batch(
        self, provider: Provider, batch: Sequence[Job], snapshots: dict[str, TaskSnapshot]
    ) -> None:
        now = self.clock()
        changed: list[tuple[Job, EventKind]] = []
        for job in batch:
            if job.id not in self._jobs:  # cancelled while we asked
                continue
            job.poll_errors = 0
            snapshot = snapshots.get(job.task_id or "")
            if snapshot is None:
                job.not_found += 1
                if job.not_found >= NOT_FOUND_LIMIT:
                    self._end(
                        job,
                        JobStatus.FAILED,
                        f"{provider.name} no longer knows this job (task "
                        f"{job.task_id}); it may have expired there. Run it again.",
                    )
                    changed.append((job, EventKind.FAILED))
                else:
                    self._due[job.id] = now + provider.poll_interval
                continue
            job.not_found = 0
            news_by_callback = job.id in self._poked
            self._poked.discard(job.id)
            if snapshot.state is TaskState.SUCCEEDED:
                if news_by_callback:
                    self._callbacks_seen[provider.name] = now  # its callbacks bring real news
                # Collect in a task of its own; the job stays busy until it is done.
                self._due.pop(job.id, None)
                self._busy.add(job.id)
                self._spawn(self._collect(provider, job, snapshot), job_ids=[job.id])
                continue
            kind = apply_snapshot(job, snapshot)
            if kind and news_by_callback:
                self._callbacks_seen[provider.name] = now  # its callbacks bring real news
            if job.status.finished:
                job.finished_at = now
                self.forget(job.id)
            else:
                self._plan(provider, job, now, changed=kind is not None)
            if kind:
                changed.append((job, kind))
        if changed:
            await self.save_until_stored(
                lambda: self.store.save_many(job for job, _ in changed),
                [job.id for job, _ in changed],
            )
            for job, kind in changed:
                self.events.publish(job, kind)

    def _plan(self, provider: Provider, job: Job, now: float, *, changed: bool) -> None:
        """Set the job's next poll from what this poll showed (see poll_schedule)."""
        track = self._tracks.setdefault(job.id, PollTrack())
        track.observe(now, changed=changed, running=job.status is JobStatus.RUNNING)
        due = next_poll(
            track,
            now,
            base=provider.poll_interval,
            queued=job.status is JobStatus.SUBMITTED,
            callbacks_work=callbacks_work(self._callbacks_seen.get(provider.name), now),
        )
        if job.id in self._poked_while_busy:
            self._poked_while_busy.discard(job.id)
            due = min(due, now + POKE_GAP)
        # A deadline is never overslept by a long gap.
        self._due[job.id] = min(due, job.deadline_at) if job.deadline_at else due

    async def _collect(self, provider: Provider, job: Job, snapshot: TaskSnapshot) -> None:
        try:
            await self.collect(provider, job, snapshot)
        except ProviderError as err:
            self._end(job, JobStatus.FAILED, f"The job finished but {err}")
        except Exception as err:
            log.exception("collecting the results of %s failed", job.id)
            self._end(
                job,
                JobStatus.FAILED,
                f"The job finished but its images could not be saved ({err}).",
            )
        else:
            job.status = JobStatus.SUCCEEDED
            job.progress = 100.0
            job.finished_at = self.clock()
            self.forget(job.id)
        finally:
            self._busy.discard(job.id)
        await self.save_until_stored(lambda: self.store.save(job), [job.id])
        self.events.publish(job, EventKind.reached(job.status))

    def _end(self, job: Job, status: JobStatus, failure: str | None) -> None:
        """Mark a job finished and stop following it (the caller saves and announces)."""
        job.status = status
        job.failure = failure
        job.finished_at = self.clock()
        self.forget(job.id)

    async def _expire(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            minutes = max(1, round((job.deadline_at - job.created_at) / 60))
            self._end(
                job,
                JobStatus.FAILED,
                f"No result after {minutes} minutes, so Atelier gave up on this job "
                "(the provider may be overloaded or stuck). Try again later.",
            )
            provider = self.providers.get(job.provider)
            if provider is not None and job.task_id:
                self._spawn(_quiet_cancel(provider, job.task_id))
        ids = [job.id for job in jobs]

        async def save_and_announce() -> None:
            # Beside the loop: a store that refuses writes for a while must not stop
            # the polling of every other job.
            await self.save_until_stored(lambda: self.store.save_many(jobs), ids)
            for job in jobs:
                self.events.publish(job, EventKind.FAILED)

        self._spawn(save_and_announce(), job_ids=ids)


async def _quiet_cancel(provider: Provider, task_id: str) -> None:
    with contextlib.suppress(Exception):
        await provider.cancel(task_id)


def apply_snapshot(job: Job, snapshot: TaskSnapshot) -> EventKind | None:
    """Copy what changed from a (non-success) snapshot onto the job.

    Returns the event kind to announce, or None when nothing a user could see changed.
    """
    status = JobStatus.from_task(snapshot.state)
    before = (job.status, job.progress, job.preview_url, job.queue_position, job.failure)
    job.status = status
    if snapshot.progress is not None:
        job.progress = snapshot.progress
    if snapshot.preview_url:
        job.preview_url = snapshot.preview_url
    job.queue_position = snapshot.queue_position
    job.provider_status = snapshot.provider_status
    if snapshot.seed:
        job.seed = snapshot.seed
    if snapshot.extra:
        job.provider_data.update(snapshot.extra)
    if status is JobStatus.FAILED:
        job.failure = snapshot.failure or N_("The provider reported a failure without a reason.")
    elif status is JobStatus.CANCELLED:
        job.failure = snapshot.failure or N_("The job was cancelled at the provider.")
    after = (job.status, job.progress, job.preview_url, job.queue_position, job.failure)
    if after == before:
        return None
    if status is not before[0]:
        return EventKind.reached(status)
    return EventKind.PROGRESS
