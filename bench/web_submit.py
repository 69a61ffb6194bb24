"""The web editor end to end: time from Submit to the child job's first Discord message,
and the screenshots of both pages.

    .venv/bin/python bench/web_submit.py [--rounds 10] [--screenshots docs]

Run from the repository root. It starts the fake Discord, the mj-proxy fake and the REAL
bot (`python -m bot run`, its pages at a public URL on 127.0.0.1), and Debian's Chromium
(/usr/bin/chromium, driven by Playwright; nothing is downloaded). A sandbox upscale is
made once; then, `--rounds` times: Vary (Region) is pressed (the private answer holds
the editor's link), the page is opened, a rectangle and a lasso are drawn, and Submit is
clicked. Measured from the click (the browser's input reaching the page) to the moment
the fake Discord stored the child job's first message, and to the page showing the link.

Rounds are `--gap` seconds apart (default 5: Discord's per-channel write window, which
the bot paces itself to, is empty again), so that a figure is one submit's own and not
a queue behind the previous round's result. Printed: each round, then p50 / p90 / max
of both, in milliseconds. With `--screenshots DIR` the editor
(areas drawn, before Submit) and the member's gallery are saved as DIR/editor.png and
DIR/gallery.png.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.discord_helpers import job_id_in
from tests.fakes.discord_fake import FakeMessage
from tests.web_helpers import (
    WebEnv,
    chromium_missing,
    editor_link,
    gallery_link,
    link_of,
    until,
    web_env,
)

RECTANGLE = [(0.08, 0.55), (0.40, 0.92)]
LASSO = [(0.55, 0.10), (0.90, 0.18), (0.86, 0.55), (0.66, 0.62), (0.52, 0.35)]


async def draw(page: object, box: dict[str, float]) -> None:
    mouse = page.mouse  # type: ignore[attr-defined]

    def at(point: tuple[float, float]) -> tuple[float, float]:
        return box["x"] + point[0] * box["width"], box["y"] + point[1] * box["height"]

    for tool, points in (("#tool-rect", RECTANGLE), ("#tool-lasso", LASSO)):
        await page.click(tool)  # type: ignore[attr-defined]
        await mouse.move(*at(points[0]))
        await mouse.down()
        for point in points[1:]:
            await mouse.move(*at(point), steps=10)
        await mouse.up()


async def one_round(env: WebEnv, upscale: FakeMessage, shots: Path | None) -> tuple[float, float]:
    page = await env.browser.new_page(viewport={"width": 1000, "height": 900})
    await page.goto(await editor_link(env, upscale))
    await until(page, "document.getElementById('overlay').width > 0")
    box = await page.locator("#overlay").bounding_box()
    await draw(page, box)
    await page.fill("#prompt", "a red lantern hanging on the quay")
    if shots is not None:
        await page.screenshot(path=str(shots / "editor.png"), full_page=True)
    before = {m.id for m in env.posts(upscale.channel_id)}
    clicked = time.monotonic()
    await page.click("#submit")
    await page.wait_for_selector("#result-link", timeout=30000)
    answered = time.monotonic()
    child = await page.get_attribute("#status", "data-job")

    def first(m: FakeMessage) -> bool:
        return m.id not in before and job_id_in(m) == child

    message = await env.find(upscale.channel_id, first, "the child's first message", 30)
    await page.close()
    assert child
    return message.created_at - clicked, answered - clicked, child


async def gallery_shot(env: WebEnv, channel_id: int, shots: Path) -> None:
    page = await env.browser.new_page(viewport={"width": 1200, "height": 900})
    await page.goto(link_of(await gallery_link(env, channel_id)))
    await until(
        page,
        "[...document.querySelectorAll('li.job img')].slice(0, 4)"
        ".every(i => i.complete && i.naturalWidth > 0)",
    )
    await page.screenshot(path=str(shots / "gallery.png"))
    await page.close()


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    return (
        f"{name}: p50 {statistics.median(ms):.0f} ms · p90 {p90:.0f} ms · "
        f"max {ms[-1]:.0f} ms ({len(ms)} submits)"
    )


async def main(rounds: int, shots: Path | None, gap: float) -> int:
    missing = chromium_missing()
    if missing:
        print(f"web_submit: {missing}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="atelier-web-") as tmp:
        # Every round presses Vary (Region) on one job: not the double click that
        # [spending] duplicate_seconds turns into one job.
        more = "[spending]\nduplicate_seconds = 0\n"
        async with web_env(Path(tmp), sandbox_size=768, more_toml=more) as env:
            where = await env.fake.add_channel("web-bench")
            upscale = await env.upscale(
                where, provider="sandbox", prompt="a harbour town at dawn, boats, warm light"
            )
            to_message, to_page = [], []
            for n in range(rounds):
                first, answer, child = await one_round(env, upscale, shots if n == 0 else None)
                to_message.append(first)
                to_page.append(answer)
                print(
                    f"round {n + 1}: first message {first * 1000:.0f} ms, "
                    f"page {answer * 1000:.0f} ms"
                )
                await asyncio.sleep(gap)  # the channel's 5 s write window empties
            if shots is not None:
                await env.result(where, child)  # the gallery shows every job finished
                await gallery_shot(env, where, shots)
    print(summary("Submit -> child job's first Discord message", to_message))
    print(summary("Submit -> the page shows the link", to_page))
    if shots is not None:
        print(f"screenshots: {shots / 'editor.png'}, {shots / 'gallery.png'}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--screenshots", type=Path, default=None)
    parser.add_argument("--gap", type=float, default=5.0, help="seconds between submits")
    args = parser.parse_args()
    if args.screenshots is not None:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    sys.exit(asyncio.run(main(args.rounds, args.screenshots, args.gap)))
