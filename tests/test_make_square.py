"""Make Square (Midjourney's outpaint of a non-square upscale to 1:1): the customId
midjourney-proxy servers pass through (`MJ::Outpaint::100::1::<hash>::SOLO`), pressed over
real HTTP against the fake server; its place on the upscale row; the sandbox's own."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bot.providers.base import FollowUp, PromptRejected, TaskSnapshot
from bot.providers.mj_proxy import MjProxyProvider, followup_for_custom_id
from bot.providers.sandbox import SandboxProvider
from bot.ui import custom_ids, layout
from bot.vocab import Action, button_label
from tests.fakes.mj_proxy_fake import FakeMjProxy
from tests.test_mj_proxy import imagine_done, press
from tests.test_mj_proxy import make as make_proxy
from tests.test_sandbox import Clock, follow, imagine, picture, run
from tests.test_sandbox import make as make_sandbox
from tests.test_ui_layout import UPSCALED, job_with, names, native

H = "4d6dc2a7-4808-48cb-b248-e8e1f352ece2"


def test_the_custom_id_is_make_square_and_the_zoom_outs_stay_zoom_outs() -> None:
    square = followup_for_custom_id(f"MJ::Outpaint::100::1::{H}::SOLO")
    assert square == FollowUp(Action.MAKE_SQUARE, ref=f"MJ::Outpaint::100::1::{H}::SOLO")
    zoom = followup_for_custom_id(f"MJ::Outpaint::50::1::{H}::SOLO")
    assert zoom is not None and (zoom.action, zoom.variant) == (Action.ZOOM, "2")
    assert button_label(Action.MAKE_SQUARE) == ("Make Square", None)


async def proxy_upscale(provider: MjProxyProvider) -> TaskSnapshot:
    grid = await imagine_done(provider, "a lighthouse --ar 3:2")
    return await press(provider, grid, Action.UPSCALE, 2)


@pytest.mark.asyncio
@pytest.mark.parametrize("flavour", ["trueai", "relay"])
async def test_make_square_on_an_mj_proxy_upscale_presses_the_servers_button(
    flavour: str, client: httpx.AsyncClient
) -> None:
    async with FakeMjProxy(flavour=flavour) as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make_proxy(fake, client)
        upscaled = await proxy_upscale(provider)
        offered = [f for f in upscaled.followups if f.action is Action.MAKE_SQUARE]
        assert len(offered) == 1
        ref = offered[0].ref
        # The customId is the server's own, from the upscale task's buttons.
        buttons = [b["customId"] for b in upscaled.extra["buttons"]]
        assert ref in buttons and ref.startswith("MJ::Outpaint::100::1::")
        squared = await press(provider, upscaled, Action.MAKE_SQUARE)
        assert fake.bodies("/submit/action")[-1]["customId"] == ref
        assert squared.grid and squared.followups  # four outpainted images, U1-U4 again
        assert fake.count("/submit/change") == 0 and fake.violations == []


def test_make_square_sits_on_the_upscale_row() -> None:
    rows = layout.followup_rows(job_with([*UPSCALED, FollowUp(Action.MAKE_SQUARE)]), native)
    assert names(rows)[0] == ["Upscale (Subtle)", "Upscale (Creative)", "Make Square"]
    target = custom_ids.parse_button(rows[0][2].custom_id)
    assert target == custom_ids.Target("make_square", "0123456789")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(tmp_path: Path, clock: Clock) -> SandboxProvider:
    return make_sandbox(tmp_path, clock)


@pytest.mark.asyncio
async def test_the_sandbox_squares_a_wide_upscale(sandbox: SandboxProvider, clock: Clock) -> None:
    grid = await run(sandbox, clock, imagine("harbour at dusk --ar 3:2", aspect="3:2"))
    upscale = await run(sandbox, clock, follow(grid, Action.UPSCALE, index=1))
    wide = await picture(sandbox, upscale)
    assert wide.width > wide.height
    assert FollowUp(Action.MAKE_SQUARE) in upscale.followups
    squared = await run(sandbox, clock, follow(upscale, Action.MAKE_SQUARE))
    assert squared.grid
    square = await picture(sandbox, squared)
    assert square.width == square.height  # a 2x2 grid of square images
    assert FollowUp(Action.UPSCALE, 1) in squared.followups
    with pytest.raises(PromptRejected, match="one image"):
        await sandbox.submit(follow(grid, Action.MAKE_SQUARE))


@pytest.mark.asyncio
async def test_a_square_upscale_offers_no_make_square(
    sandbox: SandboxProvider, clock: Clock
) -> None:
    grid = await run(sandbox, clock, imagine("a square tile"))
    upscale = await run(sandbox, clock, follow(grid, Action.UPSCALE, index=2))
    assert FollowUp(Action.MAKE_SQUARE) not in upscale.followups
