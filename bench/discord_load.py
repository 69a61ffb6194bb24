"""The Discord layer under load: the real bot against the fake Discord.

    /work/venv/bin/python bench/discord_load.py [--commands 50] [--channels 5] [--jobs 100]
                                                [--duration 8] [--size 256]

Run from the repository root. It starts a FakeDiscord (tests/fakes/discord_fake.py: REST
v10 + gateway on 127.0.0.1, which records every request, enforces per-route rate limits
and checks every body against Discord's OpenAPI description), then starts the REAL bot as
a subprocess, `python -m bot run --config <temp config>`, with the sandbox provider (jobs
of `--duration` seconds, `--size` px grids, so that drawing stays cheap) and the default
[discord] settings (edit_interval 3 s, channel_edits_per_5s 4). Storage and the bot's log
live in a temp directory, kept and named when something fails. The bot is stopped with
SIGTERM (SIGKILL after 20 s) at the end, also after errors or Ctrl-C.

What it prints:

1. Acknowledgement latency (run A). `--commands` /imagine commands are injected at once
   (asyncio.gather) spread over `--channels` channels. Latency is the fake's own record:
   from the INTERACTION_CREATE dispatch to the bot's first interaction callback. Printed:
   p50 / p99 / max, and how many missed Discord's 3 s deadline (no callback, or a late
   one, which Discord would answer with 10062 Unknown interaction).
2. Discord requests per completed job, for run A and run B. Every REST request the bot
   made during the run (429-answered ones included, they are requests too), divided by
   the jobs whose result was posted, broken down by route. A run lasts until every result
   is posted AND every job's progress message is deleted (one message per job). Not
   counted: everything before the first command (login, `GET /gateway/bot`, command sync;
   listed once as "excluded"). Gateway traffic and CDN downloads are not REST requests.
3. 429s with many jobs in ONE channel (run B). `--jobs` /imagine commands are injected
   in one burst into a single channel. Printed: the 429 answers the fake sent (with the
   route of each), the peak requests per wall-clock second, the channel's message creates,
   edits and deletes, the wall time until all results were posted and until the run settled, and
   the limits the fake enforced.

Last, the number of body violations the fake found (schema, limits, late or missing
acks): it should be 0. The exit status is 0 when every job completed, there was no
violation and the bot stopped cleanly; 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.config import SandboxConfig, load_config  # noqa: E402
from tests.discord_helpers import BotProcess, is_result, job_id_in  # noqa: E402
from tests.fakes.discord_fake import (  # noqa: E402
    FakeDiscord,
    FakeMessage,
    InteractionRecord,
    RecordedRequest,
)

ACK_DEADLINE = 3.0

ROUTE_NAMES = {
    FakeDiscord.ROUTE_MESSAGE_CREATE: "message create (job message, result)",
    FakeDiscord.ROUTE_MESSAGE_EDIT: "message edit (progress)",
    FakeDiscord.ROUTE_MESSAGE_DELETE: "message delete (progress message, after the result)",
    FakeDiscord.ROUTE_CALLBACK: "interaction callback",
    FakeDiscord.ROUTE_ORIGINAL_EDIT: "webhook edit @original",
    FakeDiscord.ROUTE_WEBHOOK_MESSAGE_EDIT: "webhook edit (follow-up)",
    FakeDiscord.ROUTE_FOLLOWUP: "webhook follow-up (POST)",
}


class BenchError(Exception):
    """The run could not be completed (a timeout, the bot died, ...)."""


# ------------------------------------------------------------------ small helpers


def route_name(request: RecordedRequest) -> str:
    return ROUTE_NAMES.get(request.key, request.key)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def max_in_window(times: Sequence[float], window: float) -> int:
    """The most events in any `window` seconds."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def channel_posts(fake: FakeDiscord, channel_id: int) -> list[FakeMessage]:
    """Normal messages the bot posted in a channel (not interaction responses)."""
    return [
        m
        for m in fake.channel_messages(channel_id)
        if m.webhook_id is None and not m.ephemeral and m.author.get("bot")
    ]


def settled_counts(fake: FakeDiscord, channels: Sequence[int]) -> tuple[int, int]:
    """(results posted, job messages left beside them: progress not yet deleted)."""
    results = left = 0
    for channel_id in channels:
        for message in channel_posts(fake, channel_id):
            if is_result(message):
                results += 1
            elif job_id_in(message):
                left += 1
    return results, left


async def wait_quiet(fake: FakeDiscord, quiet: float, timeout: float) -> None:
    """Wait until the fake got no request for `quiet` seconds (or `timeout` passed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = fake.requests[-1].time if fake.requests else 0.0
        if time.monotonic() - last >= quiet:
            return
        await asyncio.sleep(0.1)


@dataclass
class Run:
    """One batch of commands, from the first dispatch until everything is shown."""

    name: str
    channels: list[int]
    commands: int
    first_request: int = 0  # index into fake.requests
    last_request: int = 0
    started_wall: float = 0.0
    started: float = 0.0
    results_at: float = 0.0  # all results posted
    settled_at: float = 0.0  # and all progress messages edited to "Finished"
    records: list[InteractionRecord] = field(default_factory=list)
    results: int = 0

    def requests(self, fake: FakeDiscord) -> list[RecordedRequest]:
        return fake.requests[self.first_request : self.last_request]


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.fake = FakeDiscord()
        self.bot: BotProcess | None = None
        self.ok = True

    # -------------------------------------------------------------- setup

    def write_config(self) -> Path:
        data = self.tmp / "data"
        data.mkdir(parents=True, exist_ok=True)
        path = self.tmp / "config.toml"
        # [discord] gets only what is needed to reach the fake: the pacing settings keep
        # their defaults, which is what is being measured.
        path.write_text(
            f"""
[discord]
token = "{self.fake.token}"
api_base_url = "{self.fake.base_url}"
guild_ids = [{self.fake.guild_id}]

[storage]
path = "{data / "atelier.db"}"
media_dir = "{data / "media"}"

[[providers]]
name = "sandbox"
kind = "sandbox"
duration = {self.args.duration}
size = {self.args.size}
state_dir = "{data / "sandbox"}"
""",
            encoding="utf-8",
        )
        return path

    def print_settings(self, config_path: Path) -> None:
        config = load_config(str(config_path), env={})
        d, sandbox = config.discord, config.providers[0]
        assert isinstance(sandbox, SandboxConfig)  # the temp config's one provider
        rules = self.fake._rules  # the fake's per-route buckets (no public accessor)
        create = rules[FakeDiscord.ROUTE_MESSAGE_CREATE]
        edit = rules[FakeDiscord.ROUTE_MESSAGE_EDIT]
        delete = rules[FakeDiscord.ROUTE_MESSAGE_DELETE]
        hook = rules[FakeDiscord.ROUTE_ORIGINAL_EDIT]
        print("settings")
        print(
            f"  bot [discord]: edit_interval {d.edit_interval:g} s, "
            f"channel_edits_per_5s {d.channel_edits_per_5s} (defaults)"
        )
        print(
            f"  provider: sandbox, duration {sandbox.duration:g} s, size {sandbox.size} px, "
            f"poll_interval {sandbox.poll_interval or 'default'}"
        )
        print(
            f"  fake Discord limits: message create {create.limit}/{create.per:g} s per channel, "
            f"message edit {edit.limit}/{edit.per:g} s, message delete "
            f"{delete.limit}/{delete.per:g} s per channel (separate buckets), "
            f"webhook edits/follow-ups {hook.limit}/{hook.per:g} s per interaction token, "
            f"global {self.fake.global_rate_limit}/s (callbacks and webhooks exempt); "
            f"ack deadline {self.fake.ack_deadline:g} s"
        )

    async def start(self) -> None:
        await self.fake.start()
        config = self.write_config()
        self.print_settings(config)
        self.bot = BotProcess(config, self.tmp / "bot.log")
        await self.bot.start()
        try:
            await self.fake.wait_ready(60)
            await self.fake.wait_commands_synced(60)
        except TimeoutError as err:
            raise BenchError(f"the bot did not connect: {err}") from None
        await wait_quiet(self.fake, 1.5, 15)
        setup = Counter(r.key for r in self.fake.requests)
        print(f"\nexcluded: {len(self.fake.requests)} setup requests before the first command")
        for key, n in sorted(setup.items()):
            print(f"  {n:3d}  {key}")

    async def stop(self) -> int | None:
        code = None
        if self.bot is not None:
            code = await self.bot.stop()
        await self.fake.stop()
        return code

    def check_alive(self) -> None:
        if self.bot is None or not self.bot.running:
            raise BenchError("the bot process has exited")

    # -------------------------------------------------------------- a run

    async def run(self, name: str, channels: list[int], commands: int) -> Run:
        fake = self.fake
        run = Run(name, channels, commands)
        await wait_quiet(fake, 1.0, 30)
        run.first_request = len(fake.requests)
        run.started_wall, run.started = time.time(), time.monotonic()
        sends = [
            fake.send_slash_command(
                "imagine",
                {"prompt": f"{name} load test {n} --ar 3:2"},
                channel_id=channels[n % len(channels)],
            )
            for n in range(commands)
        ]
        run.records = list(await asyncio.gather(*sends))
        # Acks: wait up to a few seconds past the deadline; a missing one is a miss.
        await asyncio.gather(
            *(rec.wait_ack(ACK_DEADLINE + 5) for rec in run.records), return_exceptions=True
        )
        self.check_alive()

        # Worst case of the bot's pacing: three urgent writes per job (its message, the
        # result, the deletion of its message) at channel_edits_per_5s per 5 s in the
        # busiest channel.
        per_channel = math.ceil(commands / len(channels))
        budget = 3 * per_channel * 5 / 4 + self.args.duration * 3 + 120

        def results_done() -> bool:
            run.results = settled_counts(fake, channels)[0]
            return run.results >= commands or not self.check_running()

        def all_settled() -> bool:
            results, left = settled_counts(fake, channels)
            return (results >= commands and left == 0) or not self.check_running()

        try:
            await fake.wait_for(results_done, budget, what=f"{commands} results")
            self.check_alive()
            run.results_at = time.monotonic()
            remaining = budget - (run.results_at - run.started)
            await fake.wait_for(all_settled, max(remaining, 30), what="all jobs closed")
            self.check_alive()
        except TimeoutError:
            results, left = settled_counts(fake, channels)
            raise BenchError(
                f"run {name}: timed out after {time.monotonic() - run.started:.0f} s with "
                f"{results}/{commands} results posted, {left} progress messages left"
            ) from None
        run.settled_at = time.monotonic()
        run.last_request = len(fake.requests)
        return run

    def check_running(self) -> bool:
        return self.bot is not None and self.bot.running

    # -------------------------------------------------------------- reports

    def report_acks(self, run: Run) -> None:
        latencies = [r.ack_latency for r in run.records if r.ack_latency is not None]
        missed = [
            r
            for r in run.records
            if r.ack_latency is None or r.ack_latency > ACK_DEADLINE or r.late or not r.acked
        ]
        print(
            f"  ack latency ({len(latencies)}/{len(run.records)} acked): "
            + (
                f"p50 {percentile(latencies, 50) * 1000:.0f} ms, "
                f"p99 {percentile(latencies, 99) * 1000:.0f} ms, "
                f"max {max(latencies) * 1000:.0f} ms"
                if latencies
                else "none"
            )
        )
        replies = [
            r.original.edits[0].time - r.dispatched_at
            for r in run.records
            if r.original is not None and r.original.edits
        ]
        if replies:
            print(
                f'  private reply ("thinking…" edited to "on its way", after the job\'s '
                f"channel message is posted): p50 {percentile(replies, 50):.1f} s, "
                f"max {max(replies):.1f} s"
            )
        types = Counter(r.ack_type for r in run.records)
        print(
            f"  missed the {ACK_DEADLINE:g} s deadline: {len(missed)}"
            f"   (ack types: {dict(types)}; 5 = deferred)"
        )
        if missed:
            self.ok = False

    def report_times(self, run: Run) -> None:
        posted = sorted(
            m.created_at - run.started
            for channel in run.channels
            for m in channel_posts(self.fake, channel)
            if is_result(m)
        )
        print(
            f"  wall time (jobs take {self.args.duration:g} s): first result posted after "
            f"{posted[0]:.1f} s, median {percentile(posted, 50):.1f} s, all "
            f"{len(posted)} after {run.results_at - run.started:.1f} s; every progress "
            f"message deleted after {run.settled_at - run.started:.1f} s"
        )

    def report_requests(self, run: Run) -> None:
        requests = run.requests(self.fake)
        jobs = max(run.results, 1)
        by_route = Counter(route_name(r) for r in requests)
        limited = Counter(route_name(r) for r in requests if r.status == 429)
        print(
            f"  REST requests: {len(requests)} for {run.results} completed jobs "
            f"= {len(requests) / jobs:.2f} per job"
        )
        for route, n in by_route.most_common():
            extra = f"  (of which {limited[route]} answered 429)" if limited[route] else ""
            print(f"    {n / jobs:6.2f}/job  {n:5d}  {route}{extra}")

    def report_channel(self, run: Run) -> None:
        fake = self.fake
        requests = run.requests(fake)
        channel = run.channels[0]
        new_429 = [r for r in requests if r.status == 429]
        print(
            f"  429 answers from the fake: {len(new_429)} in this run "
            f"(fake.count_429 = {fake.count_429} since start)"
        )
        for (key, scope), n in Counter(
            (route_name(r), (r.response or {}).get("global")) for r in new_429
        ).most_common():
            print(f"    {n:5d}  {key}{'  (global limit)' if scope else ''}")
        per_second = {
            s: n
            for s, n in fake.requests_per_second().items()
            if int(run.started_wall) <= s <= int(run.started_wall + run.settled_at - run.started)
        }
        peak = max(per_second.values(), default=0)
        print(f"  peak requests per second (all routes, wall-clock seconds): {peak}")

        in_channel = [r for r in requests if r.path.startswith(f"/channels/{channel}/")]
        creates = [r for r in in_channel if r.key == FakeDiscord.ROUTE_MESSAGE_CREATE]
        edits = [r for r in in_channel if r.key == FakeDiscord.ROUTE_MESSAGE_EDIT]
        deletes = [r for r in in_channel if r.key == FakeDiscord.ROUTE_MESSAGE_DELETE]
        posts = channel_posts(fake, channel)
        print(
            f"  channel writes with the bot token: {len(creates)} creates "
            f"({sum(r.status == 200 for r in creates)} OK), {len(edits)} edits "
            f"({sum(r.status == 200 for r in edits)} OK), {len(deletes)} deletes "
            f"({sum(r.status == 204 for r in deletes)} OK); messages now in the channel: "
            f"{len(posts)} ({sum(is_result(m) for m in posts)} results), "
            f"{sum(m.edit_count for m in posts)} edits recorded on them"
        )
        writes = sorted(r.time for r in creates + edits + deletes)
        if len(writes) > 1:
            span = writes[-1] - writes[0]
            print(
                f"  channel write rate: {len(writes) / span * 5:.2f} per 5 s on average; "
                f"most in any sliding 5 s by arrival at the fake: {max_in_window(writes, 5.0)}"
            )
        self.report_times(run)

    def report_violations(self) -> None:
        violations = self.fake.violations
        print(f"\nbody violations (fake.violations): {len(violations)}")
        for text in violations[:20]:
            print(f"  {text}")
        unhandled = self.fake.unhandled
        if unhandled:
            print(f"unhandled routes: {len(unhandled)} e.g. {unhandled[:3]}")
        if violations or unhandled:
            self.ok = False

    # -------------------------------------------------------------- main

    async def main(self) -> None:
        args = self.args
        await self.start()

        channels = [await self.fake.add_channel(f"load-a-{n}") for n in range(args.channels)]
        print(
            f"\nrun A: {args.commands} /imagine at once (asyncio.gather) "
            f"over {len(channels)} channel(s)"
        )
        run_a = await self.run("A", channels, args.commands)
        print("1. acknowledgement")
        self.report_acks(run_a)
        print("2. requests per completed job")
        self.report_requests(run_a)
        self.report_times(run_a)

        one = await self.fake.add_channel("load-b")
        print(f"\nrun B: {args.jobs} /imagine in one burst into ONE channel")
        run_b = await self.run("B", [one], args.jobs)
        print("3. one busy channel")
        self.report_channel(run_b)
        print("  acknowledgement in this burst:")
        self.report_acks(run_b)
        print("  requests per completed job:")
        self.report_requests(run_b)

        self.report_violations()
        if run_a.results < args.commands or run_b.results < args.jobs:
            self.ok = False


async def amain(args: argparse.Namespace, tmp: Path, holder: list[Bench]) -> bool:
    bench = Bench(args, tmp)
    holder.append(bench)
    try:
        await bench.main()
    finally:
        code = await bench.stop()
        print(f"\nbot stopped (SIGTERM), exit code {code}")
        if code != 0:
            bench.ok = False
    return bench.ok


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--commands", type=int, default=50, help="run A: commands at once")
    parser.add_argument("--channels", type=int, default=5, help="run A: channels to spread over")
    parser.add_argument("--jobs", type=int, default=100, help="run B: jobs in one channel")
    parser.add_argument("--duration", type=float, default=8.0, help="sandbox job seconds")
    parser.add_argument("--size", type=int, default=256, help="sandbox grid size (px)")
    args = parser.parse_args(argv)
    if min(args.commands, args.channels, args.jobs) < 1:
        parser.error("--commands, --channels and --jobs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="atelier-discord-load-"))
    holder: list[Bench] = []
    ok = False
    try:
        ok = asyncio.run(amain(args, tmp, holder))
    except BenchError as err:
        print(f"\nFAILED: {err}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
    finally:
        # Belt and braces: the bot must not outlive the benchmark.
        bot = holder[0].bot if holder else None
        if bot is not None and bot.proc is not None and bot.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(bot.proc.pid, signal.SIGKILL)
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
        print("result: OK")
        return 0
    if holder and holder[0].bot is not None:
        print(f"--- bot log (tail) ---\n{holder[0].bot.log_text(3000)}", file=sys.stderr)
    print(f"result: FAILED (temp dir with config and bot log kept: {tmp})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
