"""Without `[http] public_url` there are no web pages: /gallery says how to turn them on,
and Vary (Region) keeps its form (tests/test_discord_e2e.py presses it)."""

from __future__ import annotations

import pytest

from tests.test_discord_e2e import Env, channel, env  # noqa: F401 - env is the fixture

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_gallery_without_a_public_url_says_what_the_owner_sets(env: Env) -> None:  # noqa: F811
    where = await channel(env, "no-pages")
    rec = await env.fake.send_slash_command("gallery", {}, channel_id=where)
    answer = await rec.wait_response(10)
    assert answer.ephemeral and "[http] public_url" in answer.content, answer.content
    assert not answer.components  # no link to a page that does not exist
    env.clean()
