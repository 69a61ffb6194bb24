"""The adaptive poll schedule (bot/engine/poll_schedule.py): pure arithmetic, so every
rule is checked here on its own numbers."""

from __future__ import annotations

import itertools

import pytest

from bot.engine.poll_schedule import (
    CALLBACK_TRUST,
    CAP_FACTOR,
    GROWTH,
    QUEUED_FACTOR,
    SAFETY_FACTOR,
    STEP_MARGIN,
    PollTrack,
    callbacks_work,
    next_poll,
    round_gap,
)

BASE = 3.0


def plan(track: PollTrack, now: float, *, queued: bool = False, callbacks: bool = False) -> float:
    return next_poll(track, now, base=BASE, queued=queued, callbacks_work=callbacks)


def test_a_queued_job_is_polled_slower_than_a_running_one() -> None:
    track = PollTrack()
    track.observe(0.0, changed=True, running=False)
    assert plan(track, 0.0, queued=True) == pytest.approx(QUEUED_FACTOR * BASE)
    running = PollTrack()
    running.observe(0.0, changed=True, running=True)
    assert plan(running, 0.0) == pytest.approx(BASE)


def test_quiet_polls_back_off_up_to_the_cap() -> None:
    track = PollTrack()
    track.observe(0.0, changed=True, running=True)
    gaps = []
    now = 0.0
    for _ in range(12):
        now = plan(track, now)
        gaps.append(now - (track.polled_at or 0.0))
        track.observe(now, changed=False, running=True)
    assert gaps[0] == pytest.approx(BASE)
    assert gaps[1] == pytest.approx(BASE * GROWTH)
    assert all(later >= earlier for earlier, later in itertools.pairwise(gaps))
    assert max(gaps) == pytest.approx(CAP_FACTOR * BASE)  # the bound a finished job waits


def test_a_queue_that_does_not_move_is_also_capped() -> None:
    track = PollTrack()
    for n in range(20):
        track.observe(n * 100.0, changed=n == 0, running=False)
    assert plan(track, 2000.0, queued=True) == pytest.approx(2000.0 + CAP_FACTOR * BASE)


def test_a_news_resets_the_backoff() -> None:
    track = PollTrack()
    for n in range(6):
        track.observe(float(n), changed=False, running=True)
    track.observe(10.0, changed=True, running=True)
    assert plan(track, 10.0) == pytest.approx(10.0 + BASE)


def relay_track(step: float, steps: int) -> tuple[PollTrack, float]:
    """A job on a relay, polled every BASE seconds while its progress moves every `step`
    seconds (changes land at 0, step, 2 step, ...). Returns the track and the time."""
    track = PollTrack()
    now = 0.0
    track.observe(now, changed=True, running=True)
    last_step = 0
    while last_step < steps:
        now += BASE
        current = int(now // step)
        track.observe(now, changed=current != last_step, running=True)
        last_step = current
    return track, now


def test_progress_in_15_second_steps_is_polled_just_after_each_step() -> None:
    track, now = relay_track(15.0, 3)
    assert track.step == pytest.approx(15.0, abs=BASE)  # the pace was learnt
    due = plan(track, now)
    expected = (track.changed_at or 0.0) + (track.step or 0.0)
    assert due == pytest.approx(expected + STEP_MARGIN * (track.step or 0.0))
    assert due - now > 2 * BASE  # no polls every 3 s in between


def test_following_the_pace_keeps_it_instead_of_halving_it() -> None:
    """Polls placed just after each expected step see each step at once; the guess of
    when the step happened must stay at the step, or the pace would shrink every time."""
    track, now = relay_track(15.0, 3)
    step_before = track.step or 0.0
    for _ in range(5):
        now = plan(track, now)
        track.observe(now, changed=True, running=True)
    assert track.step == pytest.approx(step_before)


def test_a_late_step_is_looked_for_again_soon() -> None:
    track, now = relay_track(15.0, 3)
    now = plan(track, now)
    track.observe(now, changed=False, running=True)  # the step is late
    assert plan(track, now) == pytest.approx(now + BASE * GROWTH)


def test_a_fast_pace_is_polled_at_the_base_interval() -> None:
    track, now = relay_track(2.0, 8)  # changes at every poll: no slower pace to follow
    assert plan(track, now) == pytest.approx(now + BASE)


def test_time_in_the_queue_is_not_taken_for_the_pace() -> None:
    track = PollTrack()
    track.observe(0.0, changed=True, running=False)
    track.observe(60.0, changed=True, running=True)  # started after a minute queued
    assert track.step is None
    track.observe(63.0, changed=True, running=True)  # the first step: no pace yet
    assert track.step is None
    track.observe(66.0, changed=True, running=True)
    assert track.step == pytest.approx(3.0)


def test_working_callbacks_leave_only_a_safety_net() -> None:
    track, now = relay_track(15.0, 3)
    assert plan(track, now, callbacks=True) == pytest.approx(now + SAFETY_FACTOR * BASE)
    assert plan(PollTrack(), 5.0, queued=True, callbacks=True) == 5.0 + SAFETY_FACTOR * BASE


def test_callbacks_count_as_working_only_while_fresh() -> None:
    assert not callbacks_work(None, 100.0)
    assert callbacks_work(100.0, 100.0 + CALLBACK_TRUST)
    assert not callbacks_work(100.0, 100.0 + CALLBACK_TRUST + 1)


def test_round_gap_follows_the_interval_and_is_at_most_a_second() -> None:
    assert round_gap(0.3) == pytest.approx(0.1)
    assert round_gap(3.0) == pytest.approx(1.0)
    assert round_gap(60.0) == pytest.approx(1.0)


def test_every_gap_is_bounded() -> None:
    """Whatever happened, no job waits more than the stated bound for its next poll."""
    for queued in (False, True):
        track = PollTrack()
        for n in range(30):
            track.observe(float(n * 7), changed=n % 5 == 0, running=not queued)
            due = plan(track, n * 7.0, queued=queued)
            assert n * 7.0 < due <= n * 7.0 + CAP_FACTOR * BASE
