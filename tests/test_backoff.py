"""The one backoff formula."""

from __future__ import annotations

import pytest

from bot.backoff import Backoff


def test_doubles_up_to_the_cap_within_the_jitter_band() -> None:
    backoff = Backoff(base=1.0, cap=10.0, jitter=0.5)
    for attempt, full in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (4, 10.0), (50, 10.0)]:
        for _ in range(50):
            assert full / 2 <= backoff.delay(attempt) <= full


def test_no_jitter_is_exact_and_huge_attempts_do_not_overflow() -> None:
    backoff = Backoff(base=2.0, cap=60.0, jitter=0.0)
    assert [backoff.delay(a) for a in range(6)] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
    assert backoff.delay(10**6) == 60.0
    assert backoff.delay(-3) == 2.0


def test_retry_after_is_the_wait_and_is_capped() -> None:
    assert Backoff(base=15.0, cap=300.0).delay(0, retry_after=0.5) == 0.5
    assert Backoff(base=0.5, cap=20.0, retry_after_cap=60.0).delay(0, retry_after=3600) == 60.0
    assert Backoff(base=1.0, cap=4.0, jitter=0.0).delay(2, retry_after=0) == 4.0


def test_bad_figures_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(base=1.0, cap=2.0, jitter=1.5)
