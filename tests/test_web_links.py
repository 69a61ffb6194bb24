"""Signed links, drawn areas and who sees what in a gallery: the pieces of the web
pages that need no browser (tests/test_web_pages.py drives them in one)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from bot.config import Config
from bot.engine.models import Action, Job
from bot.engine.store import Store
from bot.web import gallery, used_links
from bot.web.shapes import MAX_POINTS, ShapeError, read_prompt, read_shapes
from bot.web.signing import (
    _SALT,
    EDIT,
    GALLERY,
    KEY_FILE,
    Claims,
    LinkError,
    LinkSigner,
    signing_key,
)

CLAIMS = Claims(EDIT, "111", "222", "333", ("r1",), False, job_id="abcdefghjk", index=1)


def test_a_link_round_trips_and_stays_short_enough_for_a_discord_button() -> None:
    signer = LinkSigner("key", 900)
    token = signer.sign(CLAIMS)
    assert signer.verify(token, EDIT) == CLAIMS
    big = Claims(
        EDIT,
        "1" * 19,
        "2" * 19,
        "3" * 19,
        job_id="abcdefghjk",
        reply_to="4" * 19,
        locale="zh-CN",
        parent_channel_id="5" * 19,  # pressed in a thread
    )
    assert len("https://atelier.example.com/atelier/edit/" + signer.sign(big)) < 512


def test_a_link_made_before_the_thread_field_still_opens() -> None:
    """A link signed by the previous version (its claims end at `locale`) keeps working
    for its 15 minutes across an upgrade."""
    serializer = URLSafeTimedSerializer("key", salt=_SALT)
    old = serializer.dumps(CLAIMS.to_wire()[:-1])
    assert LinkSigner("key", 900).verify(old, EDIT) == CLAIMS
    with pytest.raises(LinkError):
        LinkSigner("key", 900).verify(serializer.dumps(CLAIMS.to_wire()[:5]), EDIT)


def test_expired_forged_and_misdirected_links_are_refused() -> None:
    signer = LinkSigner("key", 900)

    class Old(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 901

    old = URLSafeTimedSerializer("key", salt=_SALT, signer=Old).dumps(CLAIMS.to_wire())
    with pytest.raises(LinkError, match="expired") as expired:
        signer.verify(old, EDIT)
    assert expired.value.status == 410
    with pytest.raises(LinkError, match="not valid"):
        signer.verify(LinkSigner("another key", 900).sign(CLAIMS), EDIT)
    token = signer.sign(CLAIMS)
    with pytest.raises(LinkError, match="not valid"):
        signer.verify(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), EDIT)
    with pytest.raises(LinkError, match="another page"):
        signer.verify(token, GALLERY)


def test_the_key_is_made_once_beside_the_store_and_readable_by_the_bot_only(
    tmp_path: Path,
) -> None:
    config = Config.model_validate({"storage": {"path": str(tmp_path / "data" / "a.db")}})
    first = signing_key(config)
    assert first == signing_key(config) and len(first) >= 40
    mode = os.stat(tmp_path / "data" / KEY_FILE).st_mode
    assert stat.S_IMODE(mode) == 0o600
    chosen = Config.model_validate(
        {"storage": {"path": str(tmp_path / "a.db")}, "http": {"link_secret": "s3cret"}}
    )
    assert signing_key(chosen) == "s3cret" and "s3cret" not in repr(chosen.http)


def test_on_postgresql_every_process_of_a_cluster_signs_with_the_one_key(tmp_path: Path) -> None:
    """Each process has a folder of its own but shares media_dir (as it must for the
    images): the key made by the first is the key of the second, so a link signed by
    one process opens on the other."""

    def process(name: str) -> Config:
        storage = {
            "url": "postgresql://atelier@db/atelier",
            "path": str(tmp_path / name / "atelier.db"),
            "media_dir": str(tmp_path / "shared-media"),
        }
        return Config.model_validate({"storage": storage})

    first = signing_key(process("one"))
    assert signing_key(process("two")) == first
    assert (tmp_path / "shared-media" / KEY_FILE).read_text(encoding="ascii") == first
    assert not (tmp_path / "one").exists() and not (tmp_path / "two").exists()


def test_drawn_areas_are_checked_with_a_sentence_that_says_what_to_do() -> None:
    square = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.1, 0.5]]
    assert read_shapes([square]) == [((0.1, 0.1), (0.5, 0.1), (0.5, 0.5), (0.1, 0.5))]
    # A stroke that left the image by a hair is pulled back to its edge.
    assert read_shapes([[[-0.01, 0.0], [1.02, 0.0], [0.5, 1.0]]])[0][:2] == ((0, 0), (1, 0))
    cases = {
        "at least one area": [],
        "corners": [[[0.1, 0.1], [0.2, 0.2]]],
        "pair of numbers": [[[0.1, 0.1], [0.2, "x"], [0.3, 0.1]]],
        "far outside": [[[0.1, 0.1], [9, 0.2], [0.3, 0.1]]],
        "too small": [[[0.1, 0.1], [0.1001, 0.1], [0.1, 0.1001]]],
    }
    for words, shapes in cases.items():
        with pytest.raises(ShapeError, match=words):
            read_shapes(shapes)
    with pytest.raises(ShapeError, match=f"between 3 and {MAX_POINTS}"):
        read_shapes([[[0.5 + 0.4 * (i % 2), i / 300] for i in range(MAX_POINTS + 1)]])
    with pytest.raises(ShapeError, match="at most 20"):
        read_shapes([square] * 21)
    assert read_prompt("  a red door  ") == "a red door"
    with pytest.raises(ShapeError, match="must be text"):
        read_prompt(5)


async def test_a_nonce_is_taken_once_across_store_openings(tmp_path: Path) -> None:
    path = tmp_path / "atelier.db"
    store = Store(path)
    await store.open()
    assert await used_links.take(store, "n1")
    assert not await used_links.take(store, "n1")
    assert await used_links.was_used(store, "n1")
    await used_links.give_back(store, "n1")
    assert not await used_links.was_used(store, "n1")
    assert await used_links.take(store, "n1")
    await store.close()
    again = Store(path)  # a restart (or the next process) sees it used
    await again.open()
    assert not await used_links.take(again, "n1")
    await again.close()


def test_a_gallery_never_shows_private_or_other_servers_jobs() -> None:
    def job(user: str, guild: str | None, **params: str) -> Job:
        return Job(
            "abcdefghjk",
            Action.IMAGINE,
            "sandbox",
            user_id=user,
            guild_id=guild,
            params=dict(params),
        )

    member = Claims(GALLERY, "111", "222", "333")
    manager = Claims(GALLERY, "999", "222", "333", is_manager=True, server_wide=True)
    assert gallery.visible(member, job("111", "222"))
    assert not gallery.visible(member, job("112", "222"))  # another member's
    assert not gallery.visible(member, job("111", "223"))  # another server's
    assert not gallery.visible(member, job("111", None))  # a direct message's
    assert not gallery.visible(member, job("111", "222", stealth=""))  # private
    assert gallery.visible(manager, job("112", "222"))
    assert not gallery.visible(manager, job("112", "222", stealth=""))
    assert not gallery.visible(manager, job("112", "223"))
    # server_wide without being a manager (a forged claim cannot be signed, but still)
    assert not gallery.visible(
        Claims(GALLERY, "111", "222", "333", server_wide=True), job("112", "222")
    )


def test_a_link_carries_its_members_locale_even_once_expired() -> None:
    from bot.web.words import browser_locale, page_locale

    signer = LinkSigner("key", 900)
    zh = Claims(EDIT, "1" * 19, "2" * 19, "3" * 19, job_id="abcdefghjk", locale="zh-CN")
    token = signer.sign(zh)
    assert signer.verify(token, EDIT).locale == "zh-CN"

    class Old(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 901

    old = URLSafeTimedSerializer("key", salt=_SALT, signer=Old).dumps(zh.to_wire())
    assert signer.locale_of(old) == "zh-CN"  # expired, but ours: its member's language
    assert signer.locale_of(LinkSigner("another key", 900).sign(zh)) is None
    assert page_locale("zh-CN") == "zh-CN" and page_locale("fr") == "en-US"
    assert page_locale("zh-TW") == "en-US"  # Traditional Chinese is not this catalogue
    assert browser_locale("zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert browser_locale("fr-FR, zh-Hans;q=0.5") == "zh-CN"
    assert browser_locale("zh-TW,en-GB;q=0.7") == "en-US"
    assert browser_locale("") == "en-US"
