"""What the two languages cost: reading the catalogue, and rendering job messages.

    .venv/bin/python bench/i18n_render.py [--renders 20000]

Run from the repository root. Prints the time to read the zh-CN catalogue with Babel
(once per process: it is cached), the messages it holds, and the time per render of a
finished job's result message (header, seed, the buttons of an upscale) in en-US and in
zh-CN, so the cost of looking every string up is visible next to English's.
"""

from __future__ import annotations

import argparse
import time

from bot import i18n
from bot.engine.models import FollowUp, How, Job, JobStatus, Support
from bot.ui import render
from bot.vocab import Action


def sample_job() -> Job:
    job = Job(
        id="ab12cd34ef",
        action=Action.UPSCALE,
        provider="sandbox",
        index=2,
        prompt="a red fox in snow --ar 3:2",
        user_id="42",
        parent_id="zz12cd34ef",
        mode="fast",
        status=JobStatus.SUCCEEDED,
        seed="1234",
    )
    job.followups = [
        FollowUp(a)
        for a in (Action.UPSCALE_SUBTLE, Action.VARY_SUBTLE, Action.VARY_STRONG, Action.INPAINT)
    ]
    return job


def per_render(locale: str, job: Job, count: int) -> float:
    def support(action: Action) -> Support | None:
        return Support(How.NATIVE)

    start = time.perf_counter()
    for _ in range(count):
        render.result(job, support, locale=locale)
    return (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=20000)
    args = parser.parse_args()
    start = time.perf_counter()
    catalogue = i18n.catalogue("zh-CN")
    loaded = time.perf_counter() - start
    assert catalogue is not None
    print(f"zh-CN catalogue: {len(catalogue)} messages, read in {loaded * 1000:.1f} ms (once)")
    job = sample_job()
    for locale in (i18n.ENGLISH, "zh-CN"):
        seconds = per_render(locale, job, args.renders)
        print(f"result message, {locale}: {seconds * 1e6:.1f} µs per render ({args.renders} runs)")


if __name__ == "__main__":
    main()
