"""The terminal front end: `atelier run | imagine | wait | jobs | usage | audit | check`.

Exit codes (a contract, see DESIGN.md): 0 success, 1 the job failed (or a provider
check failed), 2 bad input or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TextIO

from bot.config import Config, ConfigError, load_config, shard_problem
from bot.engine.audit import to_csv
from bot.engine.models import Job, JobRequest, JobStatus, JobUpdate, Origin
from bot.engine.ownership import StoreInUse
from bot.engine.service import Engine, RequestError
from bot.engine.spending import ledger_csv
from bot.vocab import Action

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


CONFIG_HELP = (
    "the TOML configuration (default: ./config.toml, else $ATELIER_CONFIG, else built-in "
    "defaults with the offline sandbox provider)"
)


def build_parser() -> argparse.ArgumentParser:
    # --config is accepted before or after the command. The commands' copy must not have
    # a default of its own, or it would overwrite one given before the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=CONFIG_HELP)
    parser = argparse.ArgumentParser(
        prog="atelier", description="Midjourney's way of working, on your image provider."
    )
    parser.add_argument("--config", metavar="PATH", default=None, help=CONFIG_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", parents=[common], help="start the Discord bot")
    run.add_argument(
        "--shard-ids",
        type=shard_ids,
        metavar="IDS",
        help="the shards this process connects, e.g. 0,1 (needs --shard-count or "
        "[discord] shard_count; overrides [discord] shard_ids)",
    )
    run.add_argument(
        "--shard-count",
        type=int,
        metavar="N",
        help="how many shards the whole bot has (overrides [discord] shard_count)",
    )
    imagine = commands.add_parser(
        "imagine", parents=[common], help="run one /imagine job here, with live progress"
    )
    imagine.add_argument("prompt", help='the prompt, e.g. "a lighthouse at dusk --ar 3:2"')
    imagine.add_argument("--provider", help="a provider name from the config")
    imagine.add_argument(
        "--out", default="out", metavar="DIR", help="where to save the images (default: out/)"
    )
    wait_cmd = commands.add_parser(
        "wait", parents=[common], help="follow a job started earlier and save its images"
    )
    wait_cmd.add_argument("job_id", help="the job id, as `atelier jobs` shows it")
    wait_cmd.add_argument(
        "--out", default="out", metavar="DIR", help="where to save the images (default: out/)"
    )
    jobs = commands.add_parser("jobs", parents=[common], help="list recent jobs")
    jobs.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    usage = commands.add_parser(
        "usage", parents=[common], help="jobs sent to providers per user and provider"
    )
    usage.add_argument("--days", type=float, default=1, help="how far back (default 1)")
    usage.add_argument(
        "--csv", action="store_true", help="print the ledger (credits per user) as CSV"
    )
    audit = commands.add_parser(
        "audit", parents=[common], help="the audit trail: jobs, refusals, refunds, settings"
    )
    audit.add_argument("--days", type=float, default=1, help="how far back (default 1)")
    audit.add_argument("--csv", action="store_true", help="print CSV (every column), to export")
    commands.add_parser(
        "check", parents=[common], help="validate the config and reach every provider"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.command == "run" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO; URLs carry no secrets, but the noise helps nobody.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(f"atelier: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if args.command == "run":
            from bot.app import run_bot

            problem = apply_shards(config, args.shard_ids, args.shard_count)
            if problem:
                print(f"atelier: {problem}.", file=sys.stderr)
                return EXIT_BAD_INPUT
            return run_bot(config)
        if args.command == "imagine":
            return asyncio.run(imagine(config, args.prompt, args.provider, Path(args.out)))
        if args.command == "wait":
            return asyncio.run(wait(config, args.job_id, Path(args.out)))
        if args.command == "usage":
            return asyncio.run(show_usage(config, args.days, as_csv=args.csv))
        if args.command == "audit":
            return asyncio.run(show_audit(config, args.days, as_csv=args.csv))
        if args.command == "jobs":
            return asyncio.run(list_jobs(config, args.limit))
        return asyncio.run(check(config))
    except _StoreUnreadable as err:
        print(f"atelier: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(
            "\natelier: interrupted; running jobs stay in the store and resume at the next "
            "start (`atelier jobs` lists them).",
            file=sys.stderr,
        )
        return 130


def shard_ids(text: str) -> list[int]:
    """`--shard-ids 0,1` -> [0, 1]."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of shard numbers; write them like 0,1"
        ) from None


def apply_shards(config: Config, ids: list[int] | None, count: int | None) -> str:
    """Put `--shard-ids`/`--shard-count` over the config's; what is wrong, or ""."""
    if ids is None and count is None:
        return ""
    chosen_ids = config.discord.shard_ids if ids is None else ids
    chosen_count = config.discord.shard_count if count is None else count
    if chosen_count is not None and chosen_count < 1:
        return "--shard-count must be 1 or more"
    problem = shard_problem(chosen_ids, chosen_count)
    if problem:
        return problem.replace("shard_ids", "--shard-ids").replace("shard_count", "--shard-count")
    config.discord = config.discord.model_copy(
        update={"shard_ids": chosen_ids, "shard_count": chosen_count}
    )
    return ""


# --------------------------------------------------------------------------- imagine


async def imagine(
    config: Config, prompt: str, provider: str | None, out: Path, *, stream: TextIO | None = None
) -> int:
    request = JobRequest(Action.IMAGINE, prompt=prompt, provider=provider, origin=Origin.CLI)
    return await _follow(config, out, stream or sys.stderr, request=request)


async def wait(config: Config, job_id: str, out: Path, *, stream: TextIO | None = None) -> int:
    """Follow a job started earlier (say, by an `imagine` that was interrupted)."""
    return await _follow(config, out, stream or sys.stderr, job_id=job_id)


async def _follow(
    config: Config,
    out: Path,
    stream: TextIO,
    *,
    request: JobRequest | None = None,
    job_id: str | None = None,
) -> int:
    engine = Engine(config)
    try:
        await engine.start()
    except StoreInUse as err:
        await engine.stop()
        if job_id is None:  # sending here would race the process that runs the store
            print(f"atelier: {err}", file=stream)
            return EXIT_BAD_INPUT
        followed = await _follow_elsewhere(config, job_id, out, stream)
        # None: that process went away meanwhile, so this one resumes the job itself.
        return await _follow(config, out, stream, job_id=job_id) if followed is None else followed
    except Exception as err:
        print(f"atelier: cannot open the store {engine.store.where}: {err}", file=stream)
        return EXIT_BAD_INPUT
    updates: asyncio.Queue[JobUpdate] = asyncio.Queue()
    unsubscribe = engine.subscribe(updates.put_nowait)
    bar = ProgressBar(stream)
    try:
        if request is not None:
            try:
                job: Job | None = await engine.submit(request)
            except RequestError as err:
                print(f"atelier: {err}", file=stream)
                return EXIT_BAD_INPUT
        else:
            job = await engine.get(job_id or "")
            if job is None:
                print(
                    f"atelier: there is no job {job_id} (`atelier jobs` lists them).", file=stream
                )
                return EXIT_BAD_INPUT
        assert job is not None
        bar.start(job, job.provider)
        while not job.finished:
            try:
                update = await asyncio.wait_for(updates.get(), 0.5)
            except TimeoutError:
                bar.draw(job)
                continue
            if update.job.id == job.id:
                job = update.job
                bar.draw(job)
        bar.done()
        return _outcome(engine, job, out, stream)
    finally:
        unsubscribe()
        await engine.stop()


async def _follow_elsewhere(config: Config, job_id: str, out: Path, stream: TextIO) -> int | None:
    """`wait` on a store another process runs: follow the job through the store alone
    (that process sends and polls it; this one never does), then save its images.

    Returns None when that process went away before the job finished."""
    engine = Engine(config)
    await engine.start(run=False)  # reads only: the store stays the other process's
    try:
        bar = ProgressBar(stream)
        job: Job | None = None
        async for job in engine.watch(job_id):
            if not bar.last_line:  # the first sight of it
                print(
                    f"atelier: another process runs {engine.store.where}; following job "
                    f"{job_id} there, read-only.",
                    file=stream,
                )
                bar.start(job, job.provider)
            bar.draw(job)
        if job is None:
            print(f"atelier: there is no job {job_id} (`atelier jobs` lists them).", file=stream)
            return EXIT_BAD_INPUT
        if not job.finished:
            return None
        bar.done()
        return _outcome(engine, job, out, stream)
    finally:
        await engine.stop()


def _outcome(engine: Engine, job: Job, out: Path, stream: TextIO) -> int:
    """Report a finished job: its images saved to `out`, or why it failed."""
    if job.status is not JobStatus.SUCCEEDED:
        print(f"atelier: job {job.id} {job.status.value}: {job.failure}", file=stream)
        return EXIT_FAILED
    for line in save_results(engine, job, out):
        print(line)
    return EXIT_OK


def save_results(engine: Engine, job: Job, out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    if job.grid:
        target = out / f"{job.id}-grid{Path(job.grid).suffix}"
        shutil.copyfile(engine.media_path(job.grid), target)
        lines.append(f"grid: {target}")
    for n, image in enumerate(job.images, 1):
        if not image:
            lines.append(f"image {n}: withheld by the provider's review")
            continue
        target = out / f"{job.id}-{n}{Path(image).suffix}"
        shutil.copyfile(engine.media_path(image), target)
        lines.append(f"image {n}: {target}")
    for n, text in enumerate(job.texts, 1):
        lines.append(f"{n}. {text}")
    return lines


class ProgressBar:
    """One line redrawn in place on a terminal; plain lines when piped."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.last_line = ""

    def start(self, job: Job, provider: str) -> None:
        self.started = time.monotonic()
        print(f"job {job.id} on {provider}: {job.prompt}", file=self.stream)

    def draw(self, job: Job) -> None:
        elapsed = time.monotonic() - self.started
        status = job.status.value.replace("_", " ")
        if job.progress is not None:
            filled = round(self.WIDTH * job.progress / 100)
            figure = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {job.progress:3.0f}%"
        else:
            figure = f"[{'.' * self.WIDTH}]"
        queue = f" queue #{job.queue_position}" if job.queue_position else ""
        line = f"{figure} {status}{queue} {elapsed:4.0f}s"
        if self.tty:
            self.stream.write("\r" + line.ljust(len(self.last_line)))
            self.stream.flush()
        elif line.split(" ")[:-1] != self.last_line.split(" ")[:-1]:
            print(line, file=self.stream)  # piped: only when something but time changed
        self.last_line = line

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------- jobs, check


class _StoreUnreadable(Exception):
    """The store a reading command needs cannot be opened; worded for the operator."""


@contextlib.asynccontextmanager
async def _reading(config: Config) -> AsyncIterator[Engine]:
    """An engine that only reads the store: nothing is polled or sent."""
    engine = Engine(config)
    try:
        await engine.start(run=False)
    except Exception as err:  # a missing folder, an unreachable database, ...
        await engine.stop()
        raise _StoreUnreadable(f"cannot open the store {engine.store.where}: {err}") from err
    try:
        yield engine
    finally:
        await engine.stop()


async def list_jobs(config: Config, limit: int) -> int:
    async with _reading(config) as engine:
        jobs = await engine.recent(limit)
    if not jobs:
        print("no jobs yet")
        return EXIT_OK
    for job in jobs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(job.created_at))
        what = job.action.value + (f" {job.index}" if job.index else "")
        prompt = job.prompt if len(job.prompt) <= 50 else job.prompt[:49] + "…"
        line = f"{job.id}  {when}  {job.status.value:<10} {job.provider:<12} {what:<12} {prompt}"
        if job.failure and job.status is JobStatus.FAILED:
            line += f"\n            ↳ {job.failure}"
        print(line)
    return EXIT_OK


async def show_usage(config: Config, days: float, *, as_csv: bool = False) -> int:
    async with _reading(config) as engine:
        rows = await engine.usage(days)
        ledger = await engine.spending.ledger(days)
    if as_csv:
        print(ledger_csv(ledger), end="")
        return EXIT_OK
    if not rows:
        print(f"no jobs sent to providers in the last {days:g} day(s)")
        return EXIT_OK
    print(f"{'user':<22} {'provider':<14} {'jobs':>6} {'ok':>6} {'failed':>6}")
    for row in rows:
        who = row.user_id or "(terminal)"
        print(f"{who:<22} {row.provider:<14} {row.jobs:>6} {row.succeeded:>6} {row.failed:>6}")
    if ledger:
        print(f"\n{'user':<22} {'provider':<14} {'charged':>8} {'refunded':>8} {'net':>8}")
    for line in ledger:
        who = line.user_id or "(terminal)"
        print(
            f"{who:<22} {line.provider:<14} {line.charged:>8g} {line.refunded:>8g} {line.net:>8g}"
        )
    return EXIT_OK


async def show_audit(config: Config, days: float, *, as_csv: bool = False) -> int:
    """The audit trail of the last `days`, oldest first: a table, or CSV to export."""
    async with _reading(config) as engine:
        entries = await engine.audit.entries(engine.clock() - days * 86400)
    if as_csv:
        sys.stdout.write(to_csv(entries))
        return EXIT_OK
    if not entries:
        print(f"no audit entries in the last {days:g} day(s)")
        return EXIT_OK
    print(f"{'when':<16} {'kind':<9} {'server':<20} {'user':<20} {'what':<22} outcome")
    for entry in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.at))
        what = " ".join(x for x in (entry.provider, entry.action, entry.job_id) if x) or "-"
        outcome = entry.outcome + (f" ({entry.detail})" if entry.detail else "")
        if entry.credits:
            outcome += f" [{entry.credits:g} credits]"
        where = entry.guild_id or "(terminal)"
        if entry.channel_id:
            where += f"/{entry.channel_id}"
        print(
            f"{when:<16} {entry.kind.value:<9} {where:<20} {entry.user_id or '-':<20} "
            f"{what:<22} {outcome}"
        )
    return EXIT_OK


async def check(config: Config) -> int:
    print(f"config: {config.source} is valid")
    engine = Engine(config)
    ok = True
    try:
        async for name, kind, result in engine.check_providers():
            ok = ok and result.ok
            print(f"{name:<16} {kind:<10} {result.status:<12} {result.detail}")
    finally:
        await engine.stop()
    return EXIT_OK if ok else EXIT_FAILED
