"""Members' preferences (bot/engine/preferences.py): merge rules, custom options, the
suffix, and the store; then through `Engine.submit` to the stored job's prompt."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.config import Config, MaasMjConfig, parse_config
from bot.engine.models import JobRequest, Origin
from bot.engine.preferences import (
    PreferenceError,
    Preferences,
    check_option_name,
    expand_options,
    merge,
    version_choices,
)
from bot.engine.service import Engine, RequestError
from bot.providers.base import RetryPolicy, SubmitRequest, task_refs
from bot.providers.maas_mj import MaasMjProvider
from bot.vocab import ALL_PARAMS, Action
from tests.fakes.maas_fake import FakeMaasMj

# The engine tests run on both stores (tests/stores.py).
pytestmark = pytest.mark.both_stores

GUILD = "111"
EVERY = frozenset(ALL_PARAMS)


# ---- pure rules ----


def test_the_prompts_own_parameters_win() -> None:
    defaults = {"version": "7", "stylize": "250", "raw": ""}
    assert merge("a cat --s 50", "", defaults, EVERY) == "a cat --s 50 --v 7 --raw"
    assert merge("a cat", "", defaults, EVERY) == "a cat --v 7 --stylize 250 --raw"
    assert merge("a cat --v 6", "--v 5 --ar 16:9", {"version": "7"}, EVERY) == (
        "a cat --v 6 --ar 16:9"
    )


def test_the_suffix_words_go_after_the_prompts_words_and_before_its_parameters() -> None:
    assert merge("a cat --ar 2:3", "in watercolor --chaos 5", {}, EVERY) == (
        "a cat in watercolor --ar 2:3 --chaos 5"
    )


def test_suffix_beats_settings_and_clashing_defaults_are_left_out() -> None:
    # --niji in the prompt: the settings' --v would clash, so it is not added.
    assert merge("a cat --niji 6", "", {"version": "7"}, EVERY) == "a cat --niji 6"
    assert merge("a cat --style cute", "", {"raw": ""}, EVERY) == "a cat --style cute"
    assert merge("a cat", "--stylize 600", {"stylize": "100"}, EVERY) == "a cat --stylize 600"
    # A speed in the prompt wins over the one in the settings.
    assert merge("a cat --relax", "", {"fast": ""}, EVERY) == "a cat --relax"


def test_defaults_the_provider_does_not_take_are_left_out() -> None:
    flux = frozenset({"aspect", "seed"})
    assert merge("a cat", "--ar 16:9 --s 200", {"version": "7"}, flux) == "a cat --ar 16:9"


def test_a_prompt_the_rules_refuse_is_left_for_the_engine_to_refuse() -> None:
    assert merge("a cat --bogus", "--ar 1:1", {}, EVERY) == "a cat --bogus"
    assert merge("a   cat", "", {}, EVERY) == "a   cat"  # nothing to add: untouched


def test_options_expand_recursively() -> None:
    options = {"film": "--ar 3:2 --grain", "grain": "--chaos 10 --s 300"}
    assert expand_options("a cat --film", options) == "a cat --ar 3:2 --chaos 10 --s 300"
    assert expand_options("a cat --FILM", options) == "a cat --ar 3:2 --chaos 10 --s 300"
    assert expand_options("a cat --ar 1:1", options) == "a cat --ar 1:1"


def test_a_recursive_option_is_refused_by_name() -> None:
    options = {"a": "--b", "b": "--c 1", "c": "--a"}
    with pytest.raises(PreferenceError, match=r"--a refers back to itself \(--a → --b → --c → --a"):
        expand_options("x --a", options)
    with pytest.raises(PreferenceError, match="--self refers back"):
        expand_options("x --self", {"self": "--self"})


def test_an_option_using_an_unknown_name_is_refused_by_name() -> None:
    with pytest.raises(PreferenceError, match="--look uses --nowhere"):
        expand_options("x --look", {"look": "--nowhere 3"})


def test_option_names() -> None:
    assert check_option_name("--Film") == "film"
    for bad in ("ar", "v", "video", "1abc", "a b", ""):
        with pytest.raises(PreferenceError):
            check_option_name(bad)


def test_settings_become_parameters() -> None:
    prefs = Preferences(GUILD, "7", version="niji 6", raw=True, stylize=750)
    assert prefs.defaults() == {"niji": "6", "raw": "", "stylize": "750"}
    assert Preferences(GUILD, "7", version="niji").defaults() == {"niji": ""}
    assert Preferences(GUILD, "7", version="6.1").defaults() == {"version": "6.1"}


def test_unknown_keys_are_kept() -> None:
    prefs = Preferences.from_json(GUILD, "7", {"remix": True, "future": [1]})
    assert prefs.remix and prefs.to_json()["future"] == [1]


# ---- through the engine ----


def config(tmp_path: Path, **sandbox: Any) -> Config:
    def provider(name: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "kind": "sandbox",
            "duration": 0,
            "size": 64,
            "state_dir": str(tmp_path / name),
            **extra,
        }

    return parse_config(
        {
            "storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "media")},
            "providers": [provider("sandbox", **sandbox), provider("other")],
        }
    )


def ask(prompt: str, **fields: Any) -> JobRequest:
    values: dict[str, Any] = {
        "origin": Origin.DISCORD,
        "user_id": "7",
        "guild_id": GUILD,
        "channel_id": "50",
    }
    values.update(fields)
    return JobRequest(Action.IMAGINE, prompt=prompt, **values)


async def test_preferences_reach_the_job(tmp_path: Path) -> None:
    async with Engine(config(tmp_path, allowed_modes=["relax"])) as engine:
        prefs = await engine.preferences.get(GUILD, "7")
        prefs.suffix, prefs.options = "in ink --ar 16:9", {"sharp": "--s 900"}
        prefs.version, prefs.mode, prefs.provider = "6.1", "fast", "other"
        await engine.preferences.save(prefs)
        job = await engine.submit(ask("a fox --sharp"))
        # The preferred provider (no mode rules there), so the preferred speed too.
        assert job.provider == "other"
        assert job.prompt == "a fox in ink --s 900 --ar 16:9 --v 6.1 --fast"
        # A provider named in the request wins; relax only there, so no --fast.
        job = await engine.submit(ask("a fox --ar 1:1", provider="sandbox"))
        assert job.prompt == "a fox in ink --ar 1:1 --v 6.1"
        # Another member, and the same member in another server: untouched.
        assert (await engine.submit(ask("a fox", user_id="8"))).prompt == "a fox"
        assert (await engine.submit(ask("a fox", guild_id="222"))).prompt == "a fox"
        with pytest.raises(RequestError, match="--loop"):
            prefs.options = {"loop": "--loop"}
            await engine.preferences.save(prefs)
            await engine.submit(ask("a fox --loop"))


async def test_reset_keeps_suffix_and_options(tmp_path: Path) -> None:
    async with Engine(config(tmp_path)) as engine:
        prefs = await engine.preferences.get(GUILD, "7")
        prefs.raw, prefs.remix, prefs.suffix = True, True, "--ar 2:3"
        await engine.preferences.save(prefs)
        fresh = await engine.preferences.reset(GUILD, "7")
        assert not fresh.raw and not fresh.remix and fresh.suffix == "--ar 2:3"
        assert (await engine.preferences.get(GUILD, "7")).suffix == "--ar 2:3"
        assert "7" in version_choices(list(engine.providers.values()))


# ---- variation strength: what V1-V4 do, as each provider takes it ----


async def test_v1_carries_the_members_variation_strength(tmp_path: Path) -> None:
    async with Engine(config(tmp_path)) as engine:
        grid = await engine.submit(ask("a heron"))
        for _ in range(200):
            done = await engine.get(grid.id)
            if done is not None and done.finished:
                break
            await asyncio.sleep(0.05)
        prefs = await engine.preferences.get(GUILD, "7")
        prefs.variation = "low"
        await engine.preferences.save(prefs)
        v1 = JobRequest(
            Action.VARIATION,
            parent_id=grid.id,
            index=1,
            origin=Origin.DISCORD,
            user_id="7",
            guild_id=GUILD,
            channel_id="50",
        )
        low = await engine.submit(v1)
        assert low.strength == "low"
        # The sandbox draws it as subtly as Vary (Subtle).
        tasks = [json.loads(p.read_bytes()) for p in (tmp_path / "sandbox" / "tasks").iterdir()]
        assert {t["draw"] for t in tasks if t["id"] == low.task_id} == {"vary_subtle"}
        prefs.variation = "high"
        await engine.preferences.save(prefs)
        high = await engine.submit(replace(v1, index=2))
        assert high.strength == "high"


async def test_maas_mj_takes_low_variation_as_its_subtle_type() -> None:
    key, endpoint = "RWsecretKEY0Gd", "eljciTfuqTxBSjXl"
    async with (
        FakeMaasMj(key=key, endpoint=endpoint, variation=True) as fake,
        httpx.AsyncClient() as client,
    ):
        settings = MaasMjConfig.model_validate(
            {
                "name": "mj",
                "kind": "maas-mj",
                "base_url": fake.base_url,
                "endpoint": endpoint,
                "api_key": key,
            }
        )
        provider = MaasMjProvider(
            settings, client, policy=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
        )
        grid = await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a heron"))
        for _ in range(20):
            if (await provider.fetch(task_refs([grid.task_id])))[grid.task_id].state.finished:
                break
        for strength, kind in (("low", 0), ("high", 1), ("", 1)):
            v3 = SubmitRequest(
                Action.VARIATION, parent_task_id=grid.task_id, index=3, strength=strength
            )
            await provider.submit(v3)
            sent = fake.api_requests("/tob/variation")[-1].json
            assert sent == {"jobId": grid.task_id, "imageNo": 2, "type": kind}
        assert fake.violations == []
