"""The presenter's pacing: per-message throttling, coalescing, the per-channel pacer
shared by all jobs, finals that are never dropped, and errors that do not cascade.

Units: a recording sender and a stub engine, real asyncio time with short intervals
(a 0.5 s pacer window instead of 5 s), and a fake clock for the Pacer itself.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.engine.models import EventKind, FollowUp, How, Job, JobStatus, JobUpdate, Support
from bot.ui.outgoing import MessageGone, Outgoing, Throttled, TooLarge
from bot.ui.pacer import Pacer
from bot.ui.presenter import Presenter
from bot.vocab import Action
from tests.test_engine import ScriptedProvider, make_engine

# The engine tests run on both stores (tests/stores.py).
pytestmark = pytest.mark.both_stores

CHANNEL = 500


def png(size: int = 64, noise: bool = False) -> bytes:
    image = (
        Image.effect_noise((size, size), 80).convert("RGB")
        if noise
        else Image.new("RGB", (size, size), (200, 30, 30))
    )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class StubEngine:
    def __init__(self, media: Path) -> None:
        self.jobs: dict[str, Job] = {}
        self.attached: list[tuple[str, str, str]] = []
        self.delivered: list[str] = []
        self.media = media

    def support(self, provider_name: str, action: Action) -> Support | None:
        return Support(How.NATIVE)

    async def get(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        return copy(job) if job else None

    async def preview(self, job: Job) -> bytes | None:
        return png()

    async def attach_message(self, job_id: str, channel_id: str, message_id: str) -> None:
        self.attached.append((job_id, channel_id, message_id))

    async def mark_delivered(self, job_id: str) -> None:
        self.delivered.append(job_id)

    def media_path(self, relative: str) -> Path:
        return self.media / relative


@dataclass
class Write:
    at: float
    kind: str  # "send" | "edit" | "delete"
    channel: int
    message_id: int
    message: Outgoing
    reply_to: int | None = None


@dataclass
class RecordingSender:
    writes: list[Write] = field(default_factory=list)
    fail_edits: list[Exception] = field(default_factory=list)
    fail_sends: list[Exception] = field(default_factory=list)
    gone: set[int] = field(default_factory=set)
    limit: int = 10 * 1024 * 1024
    next_id: int = 1000

    async def send(self, channel_id: int, message: Outgoing, *, reply_to: int | None) -> int:
        await asyncio.sleep(0)
        if self.fail_sends:
            raise self.fail_sends.pop(0)
        self.next_id += 1
        self.writes.append(
            Write(time.monotonic(), "send", channel_id, self.next_id, message, reply_to)
        )
        return self.next_id

    async def edit(self, channel_id: int, message_id: int, message: Outgoing) -> None:
        await asyncio.sleep(0)
        if message_id in self.gone:
            raise MessageGone("10008")
        if self.fail_edits:
            raise self.fail_edits.pop(0)
        self.writes.append(Write(time.monotonic(), "edit", channel_id, message_id, message))

    async def delete(self, channel_id: int, message_id: int) -> None:
        await asyncio.sleep(0)
        if message_id in self.gone:
            raise MessageGone("10008")
        self.gone.add(message_id)
        self.writes.append(Write(time.monotonic(), "delete", channel_id, message_id, Outgoing("")))

    def upload_limit(self, guild_id: str | None) -> int:
        return self.limit

    def jump_url(self, guild_id: str | None, channel_id: int, message_id: int) -> str:
        return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def make_job(job_id: str, **kw: Any) -> Job:
    defaults: dict[str, Any] = {
        "action": Action.IMAGINE,
        "provider": "stub",
        "status": JobStatus.RUNNING,
        "prompt": "a cat",
        "origin": "discord",
        "user_id": "42",
        "guild_id": "7",
        "channel_id": str(CHANNEL),
    }
    defaults.update(kw)
    return Job(id=job_id, **defaults)


def copy(job: Job) -> Job:
    return Job.from_json(job.to_json())


@pytest.fixture
def media(tmp_path: Path) -> Path:
    return tmp_path


def presenter_for(
    engine: StubEngine, sender: RecordingSender, *, interval: float = 0.3, per_window: int = 4
) -> Presenter:
    pacer = Pacer(per_window, window=0.5)
    return Presenter(
        engine, sender, edit_interval=interval, channel_edits_per_5s=per_window, pacer=pacer
    )


def finish(engine: StubEngine, job: Job, media: Path) -> Job:
    (media / job.id).mkdir(parents=True, exist_ok=True)
    (media / job.id / "grid.png").write_bytes(png(256, noise=True))
    job.status = JobStatus.SUCCEEDED
    job.progress = 100
    job.grid = f"{job.id}/grid.png"
    job.followups = [FollowUp(Action.UPSCALE, i) for i in range(1, 5)]
    engine.jobs[job.id] = copy(job)
    return job


async def wait_until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


async def test_progress_is_throttled_and_coalesced(media: Path) -> None:
    engine, sender = StubEngine(media), RecordingSender()
    presenter = presenter_for(engine, sender, interval=0.3)
    job = make_job("aaaaaaaaaa", progress=0)
    engine.jobs[job.id] = copy(job)
    message_id = await presenter.announce(copy(job), CHANNEL, limit=1 << 20)
    assert message_id is not None
    started = time.monotonic()
    for step in range(1, 61):  # 60 updates in ~1.2 s
        job.progress = step
        presenter.on_update(JobUpdate(copy(job), EventKind.PROGRESS))
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)
    edits = [w for w in sender.writes if w.kind == "edit"]
    elapsed = time.monotonic() - started
    # At most one edit per interval (plus the first), never one per update.
    assert 2 <= len(edits) <= elapsed / 0.3 + 1
    gaps = [b.at - a.at for a, b in itertools.pairwise(edits)]
    assert all(gap >= 0.28 for gap in gaps), gaps
    # Coalesced: the last edit shows the newest state, not an intermediate one.
    assert "60%" in edits[-1].message.content
    await presenter.close(1)


async def test_channel_pacer_is_shared_and_finals_are_not_dropped(media: Path) -> None:
    engine, sender = StubEngine(media), RecordingSender()
    presenter = presenter_for(engine, sender, interval=0.05, per_window=4)
    jobs = [make_job(f"bbbbbbbbb{n}", progress=0) for n in range(6)]
    for job in jobs:
        engine.jobs[job.id] = copy(job)
        await presenter.announce(copy(job), CHANNEL)
    for step in range(1, 31):
        for job in jobs:
            job.progress = step * 3
            presenter.on_update(JobUpdate(copy(job), EventKind.PROGRESS))
        await asyncio.sleep(0.03)
    for job in jobs:
        presenter.on_update(JobUpdate(copy(finish(engine, job, media)), EventKind.SUCCEEDED))

    def results() -> list[Write]:
        return [w for w in sender.writes if w.kind == "send" and w.message.files]

    await wait_until(lambda: len(results()) == 6 and presenter.pending_finals() == 0, 20)
    # Every result was posted as a new message (no parent: not a reply), its grid attached.
    assert len({w.message_id for w in results()}) == 6
    assert all(w.reply_to is None for w in results())
    # Never more than 4 writes in any 0.5 s window in this channel.
    times = sorted(w.at for w in sender.writes)
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t < start + 0.5 - 1e-3) <= 4
    # The progress messages end deleted, each after its result: one message per job.
    progress_ids = {w.message_id for w in sender.writes if w.kind == "send" and not w.message.files}
    deleted = [w for w in sender.writes if w.kind == "delete"]
    assert len(progress_ids) == 6 and {w.message_id for w in deleted} == progress_ids
    await presenter.close(1)


async def test_deleted_message_gets_result_anew_and_job_goes_on(media: Path) -> None:
    engine, sender = StubEngine(media), RecordingSender()
    presenter = presenter_for(engine, sender)
    job = make_job("cccccccccc", progress=10)
    engine.jobs[job.id] = copy(job)
    message_id = await presenter.announce(copy(job), CHANNEL, reply_to=77)
    assert message_id is not None
    sender.gone.add(message_id)
    job.progress = 50
    presenter.on_update(JobUpdate(copy(job), EventKind.PROGRESS))
    await asyncio.sleep(0.5)
    presenter.on_update(JobUpdate(copy(finish(engine, job, media)), EventKind.SUCCEEDED))
    await wait_until(lambda: any(w.message.files for w in sender.writes), 5)
    result = next(w for w in sender.writes if w.message.files)
    assert result.kind == "send" and result.reply_to == 77  # the parent, not the deleted one
    await presenter.close(1)


async def test_throttled_edits_back_off_without_cascading(media: Path) -> None:
    engine, sender = StubEngine(media), RecordingSender()
    presenter = presenter_for(engine, sender, interval=0.05)
    job = make_job("dddddddddd", progress=0)
    engine.jobs[job.id] = copy(job)
    await presenter.announce(copy(job), CHANNEL)
    sender.fail_edits = [Throttled(0.6)]
    attempts_before = len(sender.writes)
    for step in range(1, 21):
        job.progress = step * 5
        presenter.on_update(JobUpdate(copy(job), EventKind.PROGRESS))
        await asyncio.sleep(0.025)
    # During the 0.6 s block nothing else was tried in the channel.
    assert len(sender.writes) == attempts_before
    await asyncio.sleep(0.8)
    edits = [w for w in sender.writes if w.kind == "edit"]
    assert edits and "100%" in edits[-1].message.content
    await presenter.close(1)


async def test_too_large_upload_is_reencoded_smaller(media: Path) -> None:
    engine, sender = StubEngine(media), RecordingSender()
    presenter = presenter_for(engine, sender)
    job = make_job("eeeeeeeeee", progress=0)
    engine.jobs[job.id] = copy(job)
    await presenter.announce(copy(job), CHANNEL, limit=10 * 1024 * 1024)
    sender.fail_sends = [TooLarge("40005")]
    presenter.on_update(JobUpdate(copy(finish(engine, job, media)), EventKind.SUCCEEDED))
    await wait_until(lambda: any(w.message.files for w in sender.writes), 5)
    result = next(w for w in sender.writes if w.message.files)
    assert result.message.files is not None
    assert len(result.message.files[0].data) <= 6 * 1024 * 1024
    await presenter.close(1)


async def test_small_limit_reencodes_and_says_so(media: Path) -> None:
    engine, sender = StubEngine(media), RecordingSender()
    presenter = presenter_for(engine, sender)
    job = make_job("ffffffffff", progress=0)
    engine.jobs[job.id] = copy(job)
    await presenter.announce(copy(job), CHANNEL, limit=40_000)
    presenter.on_update(JobUpdate(copy(finish(engine, job, media)), EventKind.SUCCEEDED))
    await wait_until(lambda: any(w.message.files for w in sender.writes), 5)
    result = next(w for w in sender.writes if w.message.files)
    assert result.message.files and len(result.message.files[0].data) <= 40_000
    assert "Re-encoded" in result.message.content
    await presenter.close(1)


async def test_failure_edits_the_job_message(media: Path) -> None:
    engine, sender = StubEngine(media), RecordingSender()
    presenter = presenter_for(engine, sender)
    job = make_job("gggggggggg", progress=0)
    engine.jobs[job.id] = copy(job)
    message_id = await presenter.announce(copy(job), CHANNEL)
    job.status, job.failure = JobStatus.FAILED, "[Banned prompt detected] forbidden"
    presenter.on_update(JobUpdate(copy(job), EventKind.FAILED))
    await wait_until(lambda: any("Failed" in w.message.content for w in sender.writes), 5)
    failed = next(w for w in sender.writes if "Failed" in w.message.content)
    assert failed.kind == "edit" and failed.message_id == message_id
    assert failed.message.rows == []  # no Cancel button any more
    await presenter.close(1)


async def test_resumed_job_is_found_by_its_stored_message(media: Path) -> None:
    engine, sender = StubEngine(media), RecordingSender()
    presenter = presenter_for(engine, sender)
    job = make_job("hhhhhhhhhh", progress=30, message_id="4242")
    job.created_at = time.time() - 3600  # from a previous process
    presenter.on_update(JobUpdate(copy(job), EventKind.PROGRESS))
    await wait_until(lambda: bool(sender.writes), 5)
    assert sender.writes[0].kind == "edit" and sender.writes[0].message_id == 4242
    await presenter.close(1)


async def test_unannounced_job_from_before_a_restart_gets_a_message(media: Path) -> None:
    engine, sender = StubEngine(media), RecordingSender()
    presenter = presenter_for(engine, sender)
    job = make_job("jjjjjjjjjj", progress=30)
    job.created_at = time.time() - 3600
    presenter.on_update(JobUpdate(copy(job), EventKind.PROGRESS))
    await wait_until(lambda: bool(sender.writes), 5)
    assert sender.writes[0].kind == "send"
    assert engine.attached and engine.attached[0][0] == job.id
    await presenter.close(1)


def test_pacer_with_fake_clock() -> None:
    now = [100.0]
    pacer = Pacer(2, window=5.0, global_per_second=3, clock=lambda: now[0])
    assert pacer.try_take(1)
    assert not pacer.try_take(1)  # writes in a channel are spaced, not bursts
    assert pacer.ready_in(1) == pytest.approx(2.5)  # window / per_channel
    now[0] += 2.5
    assert pacer.try_take(1)
    assert not pacer.try_take(1)  # the channel's window is full
    assert pacer.ready_in(1) == pytest.approx(2.5)
    assert pacer.try_take(2) and pacer.try_take(3)
    assert not pacer.try_take(4)  # the global window (3 per second) is full
    now[0] += 1.0
    assert pacer.try_take(4)
    now[0] += 4.0
    assert pacer.try_take(1)
    pacer.block(1, 10)
    now[0] += 5.0
    assert not pacer.try_take(1) and pacer.ready_in(1) == pytest.approx(5.0)
    pacer._urgent_waiting[4] += 1  # an urgent write waits: progress must not take its slot
    assert not pacer.try_take(4) and pacer.try_take(4, urgent=True)


async def test_a_job_done_before_its_message_could_post_gets_only_its_result(
    media: Path,
) -> None:
    engine, sender = StubEngine(media), RecordingSender()
    presenter = presenter_for(engine, sender, per_window=1)  # one write per 0.5 s
    first = make_job("eeeeeeeee0", progress=0)
    late = make_job("eeeeeeeee1", progress=0)
    for job in (first, late):
        engine.jobs[job.id] = copy(job)
    await presenter.announce(copy(first), CHANNEL)
    waiting = asyncio.create_task(presenter.announce(copy(late), CHANNEL, reply_to=77))
    await asyncio.sleep(0.05)  # `late` waits for the channel's next slot...
    presenter.on_update(JobUpdate(copy(finish(engine, late, media)), EventKind.SUCCEEDED))
    posted = await waiting  # ...and by then it is done: just the result is posted
    late_writes = [w for w in sender.writes if w.message_id == posted]
    assert len(late_writes) == 1 and late_writes[0].message.files
    assert late_writes[0].reply_to == 77
    assert sum(1 for w in sender.writes if w.kind == "send") == 2  # no progress message
    await presenter.close(1)


class PreviewingProvider(ScriptedProvider):
    """Previews under its own scheme, like the sandbox's: one is slow, one is far larger
    than asked for (an adapter that ignores the cap), one is fine."""

    async def download(self, url: str, max_bytes: int) -> bytes:
        if url.startswith("slow://"):
            await asyncio.sleep(5)
        if url.startswith("huge://"):
            return png(512, noise=True)
        return png()


async def test_previews_come_through_the_engine_and_a_bad_one_is_skipped(
    tmp_path: Path,
) -> None:
    engine = make_engine(tmp_path, PreviewingProvider())
    engine.preview_max_bytes, engine.preview_timeout = 64 * 1024, 0.3
    await engine.start(run=False)
    sender = RecordingSender()
    presenter = Presenter(engine, sender, edit_interval=0.05, channel_edits_per_5s=50)
    job = make_job("pppppppppp", provider="scripted", progress=10)

    def edits() -> list[Write]:
        return [w for w in sender.writes if w.kind == "edit"]

    try:
        assert await presenter.announce(copy(job), CHANNEL) is not None
        for n, url in enumerate(("slow://1", "huge://2", "ok://3"), 1):
            job.progress, job.preview_url = 10.0 + n, url
            presenter.on_update(JobUpdate(copy(job), EventKind.PROGRESS))
            await wait_until(lambda n=n: any(f"{10 + n}%" in w.message.content for w in edits()))
        # Neither the slow nor the oversized preview broke the progress edits; they
        # went out without an image, and the good one came with its image attached.
        by_figure = {f"{10 + n}%": n for n in (1, 2, 3)}
        shown = {by_figure[k]: w for w in edits() for k in by_figure if k in w.message.content}
        assert not shown[1].message.files and not shown[1].message.embeds
        assert not shown[2].message.files and not shown[2].message.embeds
        assert [f.name for f in shown[3].message.files or []] == ["preview.png"]
    finally:
        await presenter.close(1)
        await engine.stop()


async def test_result_is_posted_then_the_progress_message_deleted(media: Path) -> None:
    engine, sender = StubEngine(media), RecordingSender()
    presenter = presenter_for(engine, sender)
    job = make_job("kkkkkkkkkk", progress=40)
    engine.jobs[job.id] = copy(job)
    progress_id = await presenter.announce(copy(job), CHANNEL, reply_to=77)
    assert progress_id is not None
    presenter.on_update(JobUpdate(copy(finish(engine, job, media)), EventKind.SUCCEEDED))
    await wait_until(lambda: presenter.pending_finals() == 0, 5)
    kinds = [(w.kind, w.message_id) for w in sender.writes]
    result = next(w for w in sender.writes if w.message.files)
    # The result replies to the parent's message and mentions the requester; then, and
    # only then, the progress message goes, and the store points at the result.
    assert result.reply_to == 77 and result.message.mention_user == "42"
    assert kinds.index(("delete", progress_id)) > kinds.index(("send", result.message_id))
    assert next(w for w in sender.writes if w.kind == "delete").message_id == progress_id
    assert engine.attached[-1] == (job.id, str(CHANNEL), str(result.message_id))
    assert engine.delivered == [job.id]
    # No edit ever said "finished" and no message but the result is left.
    assert not any(w.kind == "edit" and "Finished" in w.message.content for w in sender.writes)
    await presenter.close(1)


async def test_a_progress_message_already_gone_is_fine_to_delete(media: Path) -> None:
    engine, sender = StubEngine(media), RecordingSender()
    presenter = presenter_for(engine, sender)
    job = make_job("qqqqqqqqqq", progress=40, message_id="4343")
    job.created_at = time.time() - 3600  # resumed: its message is known from the store
    sender.gone.add(4343)  # deleted while the bot was down
    presenter.on_update(JobUpdate(copy(finish(engine, job, media)), EventKind.SUCCEEDED))
    await wait_until(lambda: engine.delivered == [job.id], 5)
    assert [w.kind for w in sender.writes] == ["send"]
    await presenter.close(1)


async def test_delivered_waits_for_the_delete(media: Path) -> None:
    """A restart between the result and the delete shows the outcome again (and Discord's
    nonce makes that post the same message); it never leaves the progress behind."""
    engine, sender = StubEngine(media), RecordingSender()
    presenter = presenter_for(engine, sender, per_window=1)  # one write per 0.5 s
    job = make_job("mmmmmmmmmm", progress=40)
    engine.jobs[job.id] = copy(job)
    await presenter.announce(copy(job), CHANNEL)
    presenter.on_update(JobUpdate(copy(finish(engine, job, media)), EventKind.SUCCEEDED))
    await wait_until(lambda: any(w.message.files for w in sender.writes), 5)
    result = next(w for w in sender.writes if w.message.files)
    assert result.message.nonce == f"atelier-r-{job.id}"
    assert not any(w.kind == "delete" for w in sender.writes) and engine.delivered == []
    await wait_until(lambda: engine.delivered == [job.id], 5)
    assert any(w.kind == "delete" for w in sender.writes)
    await presenter.close(1)


async def test_resumed_follow_up_replies_to_its_parents_message(media: Path) -> None:
    engine, sender = StubEngine(media), RecordingSender()
    presenter = presenter_for(engine, sender)
    parent = make_job("nnnnnnnnn0", status=JobStatus.SUCCEEDED, message_id="9090")
    engine.jobs[parent.id] = copy(parent)
    child = make_job(
        "nnnnnnnnn1", action=Action.UPSCALE, index=2, parent_id=parent.id, message_id="9191"
    )
    child.created_at = time.time() - 3600
    presenter.on_update(JobUpdate(copy(finish(engine, child, media)), EventKind.SUCCEEDED))
    await wait_until(lambda: engine.delivered == [child.id], 5)
    result = next(w for w in sender.writes if w.message.files)
    assert result.reply_to == 9090
    assert [(w.kind, w.message_id) for w in sender.writes][-1] == ("delete", 9191)
    await presenter.close(1)


async def test_failure_leaves_one_message_and_deletes_nothing(media: Path) -> None:
    engine, sender = StubEngine(media), RecordingSender()
    presenter = presenter_for(engine, sender)
    job = make_job("rrrrrrrrrr", progress=5)
    engine.jobs[job.id] = copy(job)
    message_id = await presenter.announce(copy(job), CHANNEL)
    job.status, job.failure = JobStatus.FAILED, "no credit left"
    presenter.on_update(JobUpdate(copy(job), EventKind.FAILED))
    await wait_until(lambda: engine.delivered == [job.id], 5)
    assert [w.kind for w in sender.writes] == ["send", "edit"]
    assert sender.writes[-1].message_id == message_id
    await presenter.close(1)
