"""Who may use Atelier, where, on which provider and mode (bot/engine/access.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config, parse_config
from bot.engine import access
from bot.engine.audit import AuditKind
from bot.engine.models import Job, JobRequest, JobStatus, Origin
from bot.engine.service import Engine, RequestError
from bot.engine.settings import ServerSettings
from bot.vocab import Action

# The engine tests run on both stores (tests/stores.py).
pytestmark = pytest.mark.both_stores

GUILD, OTHER = "111", "222"


def config(tmp_path: Path, *, discord: dict[str, Any] | None = None, **sandbox: Any) -> Config:
    return parse_config(
        {
            "discord": discord or {},
            "storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "media")},
            "providers": [
                {
                    "name": "sandbox",
                    "kind": "sandbox",
                    "duration": 0,
                    "size": 64,
                    "state_dir": str(tmp_path / "sandbox"),
                    **sandbox,
                },
                {
                    "name": "other",
                    "kind": "sandbox",
                    "duration": 0,
                    "size": 64,
                    "state_dir": str(tmp_path / "other"),
                },
            ],
        }
    )


def ask(prompt: str = "a cat", **fields: Any) -> JobRequest:
    values: dict[str, Any] = {
        "origin": Origin.DISCORD,
        "user_id": "7",
        "guild_id": GUILD,
        "channel_id": "50",
    }
    values.update(fields)
    return JobRequest(Action.IMAGINE, prompt=prompt, **values)


# ---- pure rules ----


def test_guild_allowed() -> None:
    assert access.guild_allowed(OTHER, [], Origin.DISCORD)  # no list: every server
    assert access.guild_allowed(GUILD, [111], Origin.DISCORD)
    assert not access.guild_allowed(OTHER, [111], Origin.DISCORD)
    assert not access.guild_allowed(None, [111], Origin.DISCORD)  # a direct message
    assert access.guild_allowed(None, [111], Origin.CLI)  # the operator's terminal


def test_channel_and_provider_rules() -> None:
    settings = ServerSettings(GUILD, channel_ids=["50"], provider_roles={"sandbox": ["9"]})
    assert access.channel_allowed("50", settings)
    assert not access.channel_allowed("51", settings)
    assert access.channel_allowed("51", None)
    assert access.channel_allowed("51", ServerSettings(GUILD))
    # A thread (51) of an allowed channel (50) is allowed; a thread of another is not.
    assert access.channel_allowed("51", settings, parent_id="50")
    assert not access.channel_allowed("51", settings, parent_id="52")
    assert access.provider_allowed("sandbox", ["8", "9"], settings)
    assert not access.provider_allowed("sandbox", ["8"], settings)
    assert access.provider_allowed("other", [], settings)  # not restricted


def test_modes_are_narrowed_never_widened(tmp_path: Path) -> None:
    cfg = config(tmp_path, allowed_modes=["relax", "fast"])
    assert access.operator_modes(cfg, "sandbox") == ("fast", "relax")
    assert access.operator_modes(cfg, "other") == ("fast", "relax", "turbo")
    narrowed = ServerSettings(GUILD, allowed_modes={"sandbox": ["relax", "turbo"]})
    assert access.allowed_modes(cfg, "sandbox", narrowed) == ("relax",)
    assert access.allowed_modes(cfg, "sandbox", None) == ("fast", "relax")


def test_button_access_and_channel_provider(tmp_path: Path) -> None:
    cfg = config(tmp_path, discord={"button_access": "anyone"})
    assert access.button_access(cfg, None) == "anyone"
    assert access.button_access(cfg, ServerSettings(GUILD, button_access="requester")) == (
        "requester"
    )
    settings = ServerSettings(GUILD, channel_providers={"50": "other"})
    assert access.channel_provider("50", settings) == "other"
    assert access.channel_provider("51", settings) is None


def test_request_mode_reads_the_prompt_then_the_parent() -> None:
    parent = Job(id="abcdefghjk", action=Action.IMAGINE, provider="sandbox", mode="relax")
    assert access.request_mode(ask("a cat --turbo"), None) == "turbo"
    assert access.request_mode(ask("a cat"), None) is None
    assert access.request_mode(ask(""), parent) == "relax"
    assert access.request_mode(ask("a cat --fast"), parent) == "fast"


# ---- through the engine ----


async def refused(engine: Engine, request: JobRequest) -> RequestError:
    with pytest.raises(RequestError) as caught:
        await engine.submit(request)
    assert await engine.recent(10) == []  # nothing stored
    return caught.value


async def test_engine_refuses_a_guild_not_allowed(tmp_path: Path) -> None:
    async with Engine(config(tmp_path, discord={"allowed_guild_ids": [111]})) as engine:
        err = await refused(engine, ask(guild_id=OTHER))
        assert err.reason == "guild"
        entries = await engine.audit.entries(0)
        assert [(e.kind, e.outcome, e.guild_id) for e in entries] == [
            (AuditKind.REFUSAL, "guild", OTHER)
        ]
        cli = await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat"))  # no guild
        assert cli.provider == "sandbox"


async def test_engine_applies_the_server_settings(tmp_path: Path) -> None:
    async with Engine(config(tmp_path, allowed_modes=["relax"])) as engine:
        settings = ServerSettings(
            GUILD,
            channel_ids=["50"],
            provider_roles={"other": ["9"]},
            channel_providers={"50": "other"},
        )
        await engine.settings.save(settings, by="1")
        err = await refused(engine, ask(channel_id="51"))
        assert err.reason == "channel" and "<#50>" in str(err)
        err = await refused(engine, ask(role_ids=["8"]))  # the channel's default: other
        assert err.reason == "role" and "other" in str(err) and "<@&9>" in str(err)
        err = await refused(engine, ask("a cat --turbo", provider="sandbox"))
        assert err.reason == "mode not allowed" and "--turbo" in str(err)
        assert "sandbox" in str(err)
        job = await engine.submit(ask(role_ids=["9"]))
        assert job.provider == "other"
        relaxed = await engine.submit(ask("a cat --relax", provider="sandbox"))
        assert relaxed.mode == "relax"
        outcomes = [e.outcome for e in await engine.audit.entries(0) if e.kind is AuditKind.REFUSAL]
        assert outcomes == ["channel", "role", "mode not allowed"]
        # A thread of channel 50 is served there, with 50's default provider; a thread of
        # channel 51 is refused as 51 is.
        in_thread = await engine.submit(
            ask(channel_id="60", parent_channel_id="50", role_ids=["9"])
        )
        assert in_thread.provider == "other" and in_thread.channel_id == "60"
        before = len(await engine.recent(10))
        with pytest.raises(RequestError) as caught:
            await engine.submit(ask(channel_id="61", parent_channel_id="51"))
        assert caught.value.reason == "channel" and "<#50>" in str(caught.value)
        assert len(await engine.recent(10)) == before  # nothing stored


# ---- changing settings (/server) ----


def test_edits_say_what_changed(tmp_path: Path) -> None:
    cfg = config(tmp_path, allowed_modes=["fast", "relax"])
    s = ServerSettings(GUILD)
    assert str(access.edit_channels(s, "add", "50")) == "channels: every channel → <#50>"
    access.edit_channels(s, "add", "51")
    assert s.channel_ids == ["50", "51"]
    assert str(access.edit_channels(s, "remove", "50")) == "channels: <#50>, <#51> → <#51>"
    with pytest.raises(RequestError):
        access.edit_channels(s, "remove", "50")
    access.edit_channels(s, "clear")
    assert s.channel_ids == []
    change = access.edit_provider_roles(cfg, s, "add", "sandbox", "9")
    assert str(change) == "roles for sandbox: every member → <@&9>"
    access.edit_provider_roles(cfg, s, "clear", "sandbox")
    assert s.provider_roles == {}  # nothing left over
    with pytest.raises(RequestError, match="no provider"):
        access.edit_provider_roles(cfg, s, "add", "nope", "9")
    assert str(access.edit_button_access(cfg, s, "requester")) == (
        "who may press buttons: anyone → requester"
    )
    access.edit_button_access(cfg, s, None)
    assert s.button_access is None
    change = access.edit_channel_provider(cfg, s, "50", "other")
    assert str(change) == "default provider in <#50>: sandbox → other"
    access.edit_channel_provider(cfg, s, "50", None)
    assert s.channel_providers == {}


def test_modes_within_the_operators(tmp_path: Path) -> None:
    cfg = config(tmp_path, allowed_modes=["fast", "relax"])
    s = ServerSettings(GUILD)
    assert access.parse_modes("all") == [] and access.parse_modes("--relax, fast") == [
        "fast",
        "relax",
    ]
    with pytest.raises(RequestError, match="not a mode"):
        access.parse_modes("slow")
    with pytest.raises(RequestError, match="--turbo"):
        access.edit_modes(cfg, s, "sandbox", "turbo")
    assert str(access.edit_modes(cfg, s, "sandbox", "relax")) == (
        "modes on sandbox: fast, relax → relax"
    )
    access.edit_modes(cfg, s, "sandbox", "all")
    assert s.allowed_modes == {}


def test_limits_words_audit_channel_image_check() -> None:
    s = ServerSettings(GUILD)
    change = access.edit_role_limits(s, "9", daily=5, max_active=1)
    assert str(change) == "limits for <@&9>: the defaults → daily 5, active 1"
    assert s.role_limits["9"].daily_credits == 5 and s.role_limits["9"].monthly_credits is None
    access.edit_role_limits(s, "9")
    assert s.role_limits == {}
    with pytest.raises(RequestError):
        access.edit_role_limits(s, "9", daily=-1)
    change = access.edit_banned_words(s, "add", "  Kraken ")
    assert s.banned_words == ["kraken"] and "kraken" not in str(change)
    access.edit_banned_words(s, "remove", "KRAKEN")
    assert s.banned_words == []
    assert str(access.edit_audit_channel(s, "60")) == "audit channel: none → <#60>"
    assert str(access.edit_image_check(s, "withhold")) == "image check: off → withhold"
    with pytest.raises(RequestError):
        access.edit_image_check(s, "blur")


async def test_a_saved_change_is_audited(tmp_path: Path) -> None:
    async with Engine(config(tmp_path)) as engine:
        settings = await engine.settings.get(GUILD)
        assert settings is not None
        change = access.edit_channels(settings, "add", "50")
        await access.save_change(
            engine.settings, engine.audit, settings, change, by="1", channel_id="50"
        )
        stored = await engine.settings.get(GUILD)
        assert stored is not None and stored.channel_ids == ["50"]
        lines = access.describe(engine.config, stored)
        assert "**Channels**: <#50>" in lines
        entries = await engine.audit.entries(0)
        assert [(e.kind, e.user_id, e.detail) for e in entries] == [
            (AuditKind.SETTINGS, "1", "channels: every channel → <#50>")
        ]


async def test_the_engine_refuses_a_follow_up_from_another_server(tmp_path: Path) -> None:
    async with Engine(config(tmp_path)) as engine:
        job = await engine.submit(ask())
        for _ in range(200):
            got = await engine.get(job.id)
            if got is not None and got.finished:
                break
            await asyncio.sleep(0.05)
        assert got is not None and got.status is JobStatus.SUCCEEDED, got
        press = JobRequest(
            Action.UPSCALE,
            parent_id=job.id,
            index=1,
            origin=Origin.DISCORD,
            user_id="7",
            guild_id=OTHER,
            channel_id="90",
        )
        with pytest.raises(RequestError, match="not available here") as caught:
            await engine.submit(press)
        assert caught.value.reason == "guild"
        same_server = await engine.submit(replace(press, guild_id=GUILD, channel_id="50"))
        assert same_server.parent_id == job.id
