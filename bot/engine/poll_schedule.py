"""When to poll each job next, from what is known about it, instead of one fixed interval.

Pure arithmetic (no I/O, no clock of its own): the runner feeds it what each poll saw
and asks it when the job is due again. All gaps are multiples of the provider's
`poll_interval` (`base`, 3 s by default), so a provider configured to be polled fast
(the sandbox, the tests) stays fast.

- Waiting in the provider's queue (SUBMITTED: NOT_START / SUBMITTED on midjourney-proxy):
  nothing to show but a place in a queue, so `QUEUED_FACTOR` x base, growing while
  nothing changes.
- Running, with a known pace: relays poll their upstream every ~15 s, so progress moves
  in steps. Once two changes have been seen `MIN_STEP_FACTOR` x base or more apart, the
  job is polled just after the next step is expected (`STEP_MARGIN` of a step later),
  not every `base` in between.
- Running, pace unknown, or a step overdue: base, then `GROWTH` times longer for each
  poll in a row that saw nothing new.
- Callbacks working for the provider (one of its callbacks was followed by news in the
  last `CALLBACK_TRUST` seconds): news come by callback, each one pokes the runner, so
  polls are only a safety net, every `SAFETY_FACTOR` x base.

The bound: without callbacks no job goes more than `CAP_FACTOR` x base between two polls
(15 s at the default 3 s), so a finished job is noticed within that, plus one provider
round (`round_gap`, at most 1 s). With working callbacks the end is normally noticed
within about a second (its callback's poke), and at worst within `SAFETY_FACTOR` x base
(30 s at the default) when that callback is lost. A job's deadline is never overslept:
the runner caps every due time at it.
"""

from __future__ import annotations

from dataclasses import dataclass

QUEUED_FACTOR = 2.0  # first gap while the job waits in the provider's queue
GROWTH = 1.5  # each quiet poll in a row makes the next gap this much longer ...
CAP_FACTOR = 5.0  # ... up to this many base intervals (the bound stated above)
SAFETY_FACTOR = 10.0  # gap of the safety-net polls while the provider's callbacks work
CALLBACK_TRUST = 120.0  # seconds a confirmed callback keeps callbacks "working"
MIN_STEP_FACTOR = 1.5  # a pace slower than this many base intervals is worth following
STEP_MARGIN = 0.1  # poll this fraction of a step after the step is expected
ROUND_FACTOR = 1 / 3  # one provider round (a batch call) at most every base / 3 ...
MAX_ROUND_GAP = 1.0  # ... and at least once a second when jobs are due


@dataclass(slots=True)
class PollTrack:
    """What the polls of one job have shown about its pace (slots: 1,000s are kept)."""

    polled_at: float | None = None  # when the last poll answered
    changed_at: float | None = None  # when the last change of a run is estimated to be
    step: float | None = None  # estimated seconds between two changes while running
    quiet: int = 0  # polls in a row that saw nothing new
    running: bool = False  # the last poll saw the job running (not queued)

    def observe(self, now: float, *, changed: bool, running: bool) -> None:
        """Record a poll answered at `now`; `changed`: it showed something new."""
        previous, self.polled_at = self.polled_at, now
        was_running, self.running = self.running, running
        if not changed:
            self.quiet += 1
            return
        self.quiet = 0
        if not (running and was_running):
            # Queued, or a run just seen starting: the time spent in a queue says
            # nothing about the run's pace, and when a run started is only known to
            # be since the previous poll (maybe a long queued gap ago, and its first
            # step may be past already). Two changes seen while running measure it.
            self.step = None
            self.changed_at = None
            return
        seen = self._when_changed(previous, now)
        if self.changed_at is not None and seen > self.changed_at:
            gap = seen - self.changed_at
            # Smoothed, so one late or early step does not throw the pace off.
            self.step = gap if self.step is None else (self.step + gap) / 2
        self.changed_at = seen

    def expected_change(self) -> float | None:
        """When the next step is due, if a pace is known."""
        if self.step is None or self.changed_at is None:
            return None
        return self.changed_at + self.step

    def _when_changed(self, previous: float | None, now: float) -> float:
        """The change happened after the previous poll and before this one. When the
        step was expected in between, that is the best guess (a poll placed just after
        an expected step must not halve the pace); otherwise the middle."""
        if previous is None:
            return now
        expected = self.expected_change()
        if expected is not None and previous < expected <= now:
            return expected
        return (previous + now) / 2


def next_poll(
    track: PollTrack, now: float, *, base: float, queued: bool, callbacks_work: bool
) -> float:
    """The time at which the job should be polled next."""
    cap = CAP_FACTOR * base
    if callbacks_work:
        return now + SAFETY_FACTOR * base
    backoff = base * GROWTH**track.quiet
    if queued:
        return now + min(cap, QUEUED_FACTOR * backoff)
    expected = track.expected_change()
    if expected is not None and track.step is not None and track.step >= MIN_STEP_FACTOR * base:
        just_after = expected + STEP_MARGIN * track.step
        if just_after > now:
            return min(just_after, now + cap)
        # The step is late: look again soon, then less and less often.
    return now + min(cap, backoff)


def round_gap(base: float) -> float:
    """Least time between two rounds of batch calls to one provider. Every job due
    before the next round may happen rides along in this one, so jobs that arrived at
    different times share batch calls instead of each making its own."""
    return min(MAX_ROUND_GAP, ROUND_FACTOR * base)


def callbacks_work(confirmed_at: float | None, now: float) -> bool:
    """Whether a callback of the provider was confirmed (news followed it) lately."""
    return confirmed_at is not None and now - confirmed_at <= CALLBACK_TRUST
