"""The web pages in a real browser: Debian's Chromium, driven by Playwright, against
the real bot (`python -m bot run`) with its pages at a public URL, the fake Discord and
the mj-proxy fake. One bot and one browser serve the module.

Drawn areas reach the provider as the mask it receives; links that expired, were
forged or were used already are refused; a gallery lists its member's jobs only.
Skipped, with the reason, where /usr/bin/chromium is missing.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from PIL import Image

from bot.engine.store import is_postgres_url
from bot.web import signing
from tests import stores
from tests.discord_helpers import job_id_in
from tests.fakes.discord_fake import FakeMessage
from tests.web_helpers import (
    MAAS,
    WebEnv,
    chromium_missing,
    editor_link,
    gallery_link,
    link_of,
    until,
    web_env,
)

MISSING = chromium_missing()
# CI installs Chromium and sets this: there a missing browser fails the tests instead of
# skipping them, so they can never pass silently.
REQUIRED = os.environ.get("ATELIER_TEST_BROWSER", "") == "required"
pytestmark = [
    pytest.mark.skipif(
        MISSING is not None and not REQUIRED, reason=f"browser tests need Chromium: {MISSING}"
    ),
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.both_stores,
]

Point = tuple[float, float]
RECTANGLE = ((0.10, 0.12), (0.42, 0.36))  # two corners, as fractions of the image
LASSO = [(0.60, 0.20), (0.88, 0.32), (0.80, 0.72), (0.58, 0.82), (0.50, 0.50)]
# Pixels this close to a drawn edge may fall either way (the pointer lands on whole
# CSS pixels; the mask is rasterised from the corners).
EDGE_SLACK = 1.5


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> AsyncIterator[WebEnv]:
    async with web_env(tmp_path_factory.mktemp("web-pages")) as state:
        yield state


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upscale(env: WebEnv) -> FakeMessage:
    return await env.upscale(await env.fake.add_channel("editor"))


# ------------------------------------------------------------------ geometry


def inside(polygon: Sequence[Point], x: float, y: float) -> bool:
    hit = False
    for (x0, y0), (x1, y1) in zip(polygon, [*polygon[1:], polygon[0]], strict=True):
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            hit = not hit
    return hit


def edge_distance(polygon: Sequence[Point], x: float, y: float) -> float:
    best = math.inf
    for (x0, y0), (x1, y1) in zip(polygon, [*polygon[1:], polygon[0]], strict=True):
        dx, dy = x1 - x0, y1 - y0
        t = max(0.0, min(1.0, ((x - x0) * dx + (y - y0) * dy) / ((dx * dx + dy * dy) or 1)))
        best = min(best, math.hypot(x - (x0 + t * dx), y - (y0 + t * dy)))
    return best


def mask_mismatches(mask: Image.Image, polygons: list[list[Point]]) -> list[str]:
    """Pixels clearly inside a drawn area that are not white, or clearly outside every
    area that are not black (polygons in the mask's pixels)."""
    wrong = []
    for y in range(mask.height):
        for x in range(mask.width):
            cx, cy = x + 0.5, y + 0.5
            if min(edge_distance(p, cx, cy) for p in polygons) < EDGE_SLACK:
                continue
            want = any(inside(p, cx, cy) for p in polygons)
            value = mask.getpixel((x, y))
            assert isinstance(value, int)
            if (value >= 128) != want:
                wrong.append(f"({x},{y})={value} want {'white' if want else 'black'}")
    return wrong


# ------------------------------------------------------------------ page helpers


async def open_editor(env: WebEnv, url: str) -> tuple[Any, dict[str, float]]:
    page = await env.browser.new_page(viewport={"width": 1100, "height": 900})
    response = await page.goto(url)
    assert response is not None and response.status == 200, await page.content()
    await until(
        page,
        "document.getElementById('overlay').width > 0"
        " && document.getElementById('overlay').width"
        " === document.getElementById('picture').naturalWidth",
    )
    box = await page.locator("#overlay").bounding_box()
    assert box is not None
    return page, box


async def drag(page: Any, points: list[Point], steps: int = 8) -> None:
    await page.mouse.move(*points[0])
    await page.mouse.down()
    for point in points[1:]:
        await page.mouse.move(*point, steps=steps)
    await page.mouse.up()


def on_screen(box: dict[str, float], point: Point) -> Point:
    # Whole CSS pixels, as a pointer lands (the expected mask is built from these).
    return (
        round(box["x"] + point[0] * box["width"]),
        round(box["y"] + point[1] * box["height"]),
    )


def in_pixels(box: dict[str, float], size: tuple[int, int], point: Point) -> Point:
    return (
        (point[0] - box["x"]) / box["width"] * size[0],
        (point[1] - box["y"]) / box["height"] * size[1],
    )


async def draw_two(page: Any, box: dict[str, float]) -> list[list[Point]]:
    """The rectangle and the lasso; their corners on the screen."""
    await page.click("#tool-rect")
    (a, b) = (on_screen(box, p) for p in RECTANGLE)
    await drag(page, [a, b])
    await page.click("#tool-lasso")
    lasso = [on_screen(box, p) for p in LASSO]
    await drag(page, lasso)
    return [[a, (b[0], a[1]), b, (a[0], b[1])], lasso]


async def draw_shapes(page: Any, box: dict[str, float]) -> list[list[Point]]:
    """A rectangle and a lasso (after trying Clear and Undo); their screen corners."""
    await drag(page, [on_screen(box, (0.3, 0.6)), on_screen(box, (0.45, 0.9))])
    await page.click("#clear")
    assert await page.inner_text("#count") == "No areas yet"
    drawn = await draw_two(page, box)
    await drag(page, [on_screen(box, p) for p in ((0.1, 0.6), (0.3, 0.7), (0.2, 0.9))])
    assert await page.inner_text("#count") == "3 areas"
    await page.click("#undo")
    assert await page.inner_text("#count") == "2 areas"
    return drawn


def stored_polygons(env: WebEnv, job_id: str) -> Any:
    data = stores.job_data(env.tmp / "data" / "atelier.db", job_id)
    return data.get("polygons") if data else None


# ------------------------------------------------------------------ tests


async def test_drawn_areas_reach_mj_proxy_as_its_mask(env: WebEnv, upscale: FakeMessage) -> None:
    url = await editor_link(env, upscale)
    assert url.startswith(f"{env.public_url}/atelier/edit/")
    page, box = await open_editor(env, url)
    headers = (await page.goto(url)).headers  # the answer's own headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert await page.get_attribute("html", "lang") == "en-US"  # an en-US member's page
    await until(page, "document.getElementById('overlay').width > 0")
    drawn = await draw_shapes(page, box)
    await page.fill("#prompt", "a red lantern on the quay")
    masks_before = sum(t.mask is not None for t in env.proxy.tasks.values())
    await page.click("#submit")
    await page.wait_for_selector("#result-link", timeout=20000)
    child_id = await page.get_attribute("#status", "data-job")
    assert child_id and "Started job" in await page.inner_text("#status")
    assert await page.is_disabled("#submit")

    def child(m: FakeMessage) -> bool:
        ref = m.message_reference or {}
        return ref.get("message_id") == str(upscale.id) and job_id_in(m) == child_id

    message = await env.find(upscale.channel_id, child, "the child's message", 20)
    assert "a red lantern on the quay" in message.content
    link = await page.get_attribute("#result-link", "href")
    assert link and link.endswith(f"/{upscale.channel_id}/{message.id}")

    masked = [t for t in env.proxy.tasks.values() if t.mask is not None]
    assert len(masked) == masks_before + 1, env.why()
    mask = masked[-1].mask
    assert mask is not None and mask.size == (512, 512)
    polygons = [[in_pixels(box, mask.size, p) for p in shape] for shape in drawn]
    wrong = mask_mismatches(mask, polygons)
    assert not wrong, f"{len(wrong)} pixels differ: {wrong[:10]}"
    assert stored_polygons(env, child_id) is not None
    await env.result(upscale.channel_id, child_id)
    # The same link again: the page and a replayed submit are both refused.
    replay = await page.evaluate(
        """async () => {
            const root = document.getElementById('editor');
            const answer = await fetch(root.dataset.submit, {method: 'POST',
                headers: {'Content-Type': 'application/json',
                          'X-Atelier-CSRF': root.dataset.csrf},
                body: JSON.stringify({prompt: 'again',
                                      shapes: [[[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]]})});
            return [answer.status, (await answer.json()).error];
        }"""
    )
    assert replay[0] == 409 and "already used" in replay[1]
    again = await page.goto(url)
    assert again is not None and again.status == 409
    assert "already used" in await page.inner_text("#problem")
    assert not env.proxy.violations and not env.fake.violations, env.why()
    await page.close()


async def submit_drawing(
    env: WebEnv, upscale: FakeMessage, *, refused_first: bool = False
) -> tuple[str, list[list[Point]]]:
    """Open the editor of `upscale`, draw the two areas, submit: the child job's id and
    the areas in the image's pixels. `refused_first`: a prompt the engine refuses is
    submitted first; the page says why and the link still works for the fixed one."""
    page, box = await open_editor(env, await editor_link(env, upscale))
    drawn = await draw_two(page, box)
    size = await page.evaluate(
        "[document.getElementById('picture').naturalWidth,"
        " document.getElementById('picture').naturalHeight]"
    )
    if refused_first:
        await page.fill("#prompt", "a fox --chaos 500")
        await page.click("#submit")
        await until(page, "document.getElementById('status').textContent.includes('chaos')")
        assert not await page.is_disabled("#submit")
        await page.fill("#prompt", "a fox --chaos 50")
    await page.click("#submit")
    await page.wait_for_selector("#result-link", timeout=20000)
    child = await page.get_attribute("#status", "data-job")
    await page.close()
    assert child
    return child, [[in_pixels(box, tuple(size), p) for p in shape] for shape in drawn]


async def test_the_same_drawing_reaches_maas_mj_as_areas_and_the_sandbox(env: WebEnv) -> None:
    where = await env.fake.add_channel("other-providers")
    maas_up, sandbox_up = await asyncio.gather(
        env.upscale(where, provider=MAAS), env.upscale(where, provider="sandbox")
    )
    maas_child, drawn = await submit_drawing(env, maas_up)
    await env.result(where, maas_child)
    areas = env.maas.api_requests("/tob/inpaint")[-1].json["mask"]["areas"]
    assert len(areas) == 2, areas
    for area, shape in zip(areas, drawn, strict=True):
        assert (area["width"], area["height"]) == (512, 512)
        sent = list(zip(area["points"][0::2], area["points"][1::2], strict=True))
        # Every corner sent lies on what was drawn, and every drawn corner was sent.
        assert all(edge_distance(shape, x, y) <= EDGE_SLACK for x, y in sent), (sent, shape)
        assert all(
            min(math.dist(corner, point) for point in sent) <= EDGE_SLACK for corner in shape
        ), (sent, shape)
    sandbox_child, _ = await submit_drawing(env, sandbox_up, refused_first=True)
    await env.result(where, sandbox_child)
    # The sandbox job holds the same areas (fractions of its own image).
    ours, theirs = stored(env, sandbox_child), stored(env, maas_child)
    assert len(ours) == len(theirs) == 2
    for mine, other in zip(ours, theirs, strict=True):  # each on the other's outline
        assert all(edge_distance(other, x, y) < 0.01 for x, y in mine), (mine, other)
        assert all(edge_distance(mine, x, y) < 0.01 for x, y in other), (mine, other)
    assert not env.maas.violations, env.why()


def stored(env: WebEnv, job_id: str) -> list[list[Point]]:
    return [[tuple(p) for p in shape] for shape in stored_polygons(env, job_id)]


def key_file(env: WebEnv) -> Path:
    """The key the bot made: beside its SQLite file, or in media_dir on PostgreSQL."""
    data = env.tmp / "data"
    on_postgresql = is_postgres_url(stores.target_for(data / "atelier.db"))
    return (data / "media" if on_postgresql else data) / signing.KEY_FILE


def signed(env: WebEnv, claims: signing.Claims, *, key: str | None = None, age: int = 0) -> str:
    """A token as the bot makes them (its key, read from beside the store), `age` s old."""
    secret = key or key_file(env).read_text().strip()

    class Aged(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age

    serializer = URLSafeTimedSerializer(secret, salt=signing._SALT, signer=Aged)
    return serializer.dumps(claims.to_wire())


async def test_expired_forged_and_cross_site_links_are_refused(
    env: WebEnv, upscale: FakeMessage
) -> None:
    url = await editor_link(env, upscale)
    token = url.rsplit("/", 1)[1]
    key = key_file(env).read_text().strip()
    real = signing.LinkSigner(key, 60).verify(token, signing.EDIT)
    page = await env.browser.new_page()
    base = f"{env.public_url}/atelier/edit/"
    cases = {
        "expired": (signed(env, real, age=16 * 60), 410),
        "not valid": (signed(env, real, key="another bot's key"), 403),
    }
    for words, (bad, status) in cases.items():
        response = await page.goto(base + bad)
        assert response is not None and response.status == status, words
        assert words in await page.inner_text("#problem")
        assert "script-src 'self'" in response.headers["content-security-policy"]
    # A submit without the page's CSRF value (another site's form, or a script) is refused.
    answer = await page.request.post(
        url,
        data='{"prompt": "", "shapes": [[[0,0],[1,0],[1,1]]]}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status == 403 and "reload the page" in (await answer.json())["error"]
    answer = await page.request.post(
        url,
        data="{}",
        headers={"Content-Type": "application/json", "Origin": "https://evil.example"},
    )
    assert answer.status == 403 and "another site" in (await answer.json())["error"]
    await page.close()


async def test_gallery_lists_a_members_jobs_and_not_anothers(
    env: WebEnv, upscale: FakeMessage
) -> None:
    fake = env.fake
    other = fake.add_user("bob")
    where = await fake.add_channel("bobs-channel")
    bobs_job = await env.imagine(where, "a quiet forest of birches", user_id=other)
    await env.result(where, bobs_job)
    mine = job_id_in(upscale)
    assert mine

    page = await env.browser.new_page(viewport={"width": 1200, "height": 900})
    rec = await gallery_link(env, where)
    assert rec.original is not None and rec.original.ephemeral
    await page.goto(link_of(rec))
    listed = [await li.get_attribute("data-job") for li in await page.query_selector_all("li.job")]
    assert mine in listed and bobs_job not in listed
    assert "harbour" in await page.inner_text("main")
    # The action by its human name, not its stored value ("upscale").
    assert "Upscale" in await page.locator("li.job .action").all_inner_texts()
    # The first job's images are served by the bot through the signed link.
    await until(
        page,
        "[...document.querySelectorAll('li.job')][0].querySelectorAll('img').length > 0"
        " && [...document.querySelectorAll('li.job')][0].querySelector('img').naturalWidth > 0",
    )

    await page.goto(link_of(await gallery_link(env, where, user_id=other)))
    listed = [await li.get_attribute("data-job") for li in await page.query_selector_all("li.job")]
    assert listed == [bobs_job]
    # Bob's link cannot fetch the first member's images.
    token = page.url.rsplit("/", 1)[1]
    theirs = await page.request.get(f"{env.public_url}/atelier/gallery/{token}/image/{mine}/1")
    assert theirs.status == 404
    # Filters: prompt words and provider.
    await page.fill("#q", "harbour")
    await page.click("button[type=submit]")
    assert await page.query_selector_all("li.job") == []
    # Everyone's gallery: refused to a member, opened to a manager (the server's owner).
    refused = await gallery_link(env, where, user_id=other, everyone=True)
    assert refused.original is not None and "Manage Server" in refused.original.content
    manager = await gallery_link(env, where, user_id=int(fake.owner["id"]), everyone=True)
    await page.goto(link_of(manager))
    listed = [await li.get_attribute("data-job") for li in await page.query_selector_all("li.job")]
    assert mine in listed and bobs_job in listed
    await page.goto(f"{page.url}?q=birches")
    listed = [await li.get_attribute("data-job") for li in await page.query_selector_all("li.job")]
    assert listed == [bobs_job]
    await page.close()
    assert not fake.violations, env.why()  # the link buttons are valid components


async def test_a_link_is_judged_as_its_member_when_it_is_used(
    env: WebEnv, upscale: FakeMessage
) -> None:
    """Bob's link to the first member's job is refused once only its requester may
    press its buttons (the page asks what the button would ask, as Bob)."""
    fake = env.fake
    owner, bob = int(fake.owner["id"]), fake.add_user("bob-later")
    url = await editor_link(env, upscale, user_id=bob)  # allowed: anyone may press
    rec = await fake.send_slash_command(
        "server buttons", {"who": "requester"}, channel_id=upscale.channel_id, user_id=owner
    )
    assert (await rec.wait_response(10)).content.startswith("✅")
    page = await env.browser.new_page()
    try:
        response = await page.goto(url)
        assert response is not None and response.status == 403
        assert "Only the person who started job" in await page.inner_text("#problem")
        # The requester's own link still opens.
        mine = await editor_link(env, upscale)
        response = await page.goto(mine)
        assert response is not None and response.status == 200
    finally:
        await page.close()
        rec = await fake.send_slash_command(
            "server buttons", {"who": "default"}, channel_id=upscale.channel_id, user_id=owner
        )
        await rec.wait_response(10)


ZH = "zh-CN"


async def test_a_zh_cn_members_pages_speak_chinese(env: WebEnv, upscale: FakeMessage) -> None:
    """The member's Discord locale travels in the signed link: the editor (its
    script's words too), its submit's answer, a refused link and the gallery are in
    Chinese, from the same catalogue as the bot's messages."""
    rec = await env.press(upscale, "Vary (Region)", locale=ZH)
    await rec.wait_response(10)
    assert rec.original is not None and "编辑器" in rec.original.content
    url = link_of(rec)
    page, box = await open_editor(env, url)
    assert await page.get_attribute("html", "lang") == ZH
    assert "局部重绘" in await page.inner_text("h1")
    assert "矩形" in await page.inner_text("#tool-rect")
    assert await page.inner_text("#count") == "尚未绘制区域"
    await page.click("#submit")  # nothing drawn yet: the script says so, in Chinese
    assert "请先至少画出一个" in await page.inner_text("#status")
    await drag(page, [on_screen(box, p) for p in RECTANGLE])
    assert await page.inner_text("#count") == "1 个区域"
    await page.click("#submit")
    await page.wait_for_selector("#result-link", timeout=20000)
    assert "已开始任务" in await page.inner_text("#status")
    child = await page.get_attribute("#status", "data-job")
    assert child
    # A link we refuse: used, then expired (still its member's language).
    again = await page.goto(url)
    assert again is not None and again.status == 409
    assert "此链接已用于开始一个任务" in await page.inner_text("#problem")
    key = key_file(env).read_text().strip()
    claims = signing.LinkSigner(key, 60).verify(url.rsplit("/", 1)[1], signing.EDIT)
    assert claims.locale == ZH
    old = await page.goto(f"{env.public_url}/atelier/edit/{signed(env, claims, age=16 * 60)}")
    assert old is not None and old.status == 410
    assert "此链接已过期" in await page.inner_text("#problem")
    assert await page.get_attribute("html", "lang") == ZH
    # The gallery: headings, the action's translated name.
    await page.goto(link_of(await gallery_link(env, upscale.channel_id, locale=ZH)))
    assert await page.get_attribute("html", "lang") == ZH
    assert await page.inner_text("h1") == "你的任务"
    assert "最新的在前" in await page.inner_text("#listed")
    actions = await page.locator("li.job .action").all_inner_texts()
    assert "放大" in actions and "局部重绘" in actions, actions
    await page.close()
    await env.result(upscale.channel_id, child)


async def test_a_link_works_only_in_the_browser_that_opened_it_first(
    env: WebEnv, upscale: FakeMessage
) -> None:
    """Each new page is a browser context of its own: another browser, with no cookie."""
    url = await editor_link(env, upscale)
    mine, _ = await open_editor(env, url)
    cookies = [c for c in await mine.context.cookies() if c["name"].startswith("atelier_link_")]
    assert len(cookies) == 1 and cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    # Another browser: the page, its image and a submit (with its own CSRF) are refused.
    other = await env.browser.new_page()
    refused = await other.goto(url)
    assert refused is not None and refused.status == 403
    assert "another browser" in await other.inner_text("#problem")
    image = await other.request.get(f"{url}/image")
    assert image.status == 403
    await other.goto(await editor_link(env, upscale))  # its own link: its CSRF value
    answer = await other.evaluate(
        """async (url) => {
            const root = document.getElementById('editor');
            const answer = await fetch(url, {method: 'POST',
                headers: {'Content-Type': 'application/json',
                          'X-Atelier-CSRF': root.dataset.csrf},
                body: JSON.stringify({prompt: 'mine now',
                                      shapes: [[[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]]})});
            return [answer.status, (await answer.json()).error];
        }""",
        url,
    )
    assert answer[0] == 403 and "another browser" in answer[1], answer
    # The first browser follows the link again from another site (as from Discord: its
    # SameSite=Strict cookie is withheld then): the page opens, image and all.
    await mine.goto("about:blank")
    await mine.set_content(f'<a id="go" href="{url}">the link</a>')
    requests: list[Any] = []
    mine.on("request", lambda r: requests.append(r) if r.url == url else None)
    await mine.click("#go")
    await mine.wait_for_selector("#editor", timeout=10000)  # after the hop page
    seen = [(await r.all_headers()).get("sec-fetch-site") for r in requests]
    # Withheld from the cross-site click, sent on the hop page's reload from our origin.
    assert seen[:2] == ["cross-site", "same-origin"], seen
    await until(
        mine,
        "!!document.getElementById('picture')"
        " && document.getElementById('picture').naturalWidth > 0",
    )
    assert mine.url == url
    await other.close()
    await mine.close()
