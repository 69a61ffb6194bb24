"""Who may press what, and how a submitted form is read (units, no Discord)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import discord
import pytest

from bot.config import Config, DiscordConfig
from bot.engine.models import FollowUp, Job, JobStatus
from bot.providers.base import How, Support
from bot.ui import modals
from bot.ui.actions import check_press, opens_modal
from bot.ui.custom_ids import CANCEL, Target
from bot.vocab import Action

JOB = "0123456789"


class EngineStub:
    """The questions check_press asks the engine, for one provider "p"."""

    def __init__(self, offered: set[Action]) -> None:
        self.offered = offered

    def has_provider(self, name: str) -> bool:
        return name == "p"

    def offers(self, job: Job, action: Action, index: int = 0, variant: str = "") -> Support | None:
        served = job.provider == "p" and action in self.offered
        return Support(How.NATIVE) if served and job.offers(action, index, variant) else None


def ctx(access: str = "anyone", offered: set[Action] | None = None) -> Any:
    config = Config(discord=DiscordConfig(button_access=access))  # type: ignore[arg-type]
    engine = EngineStub(offered if offered is not None else set(Action))
    return SimpleNamespace(config=config, engine=engine)


def presser(user_id: int, *, manager: bool = False) -> Any:
    permissions = discord.Permissions(manage_guild=manager)
    return SimpleNamespace(user=SimpleNamespace(id=user_id), permissions=permissions)


def job(**kw: Any) -> Job:
    values: dict[str, Any] = {
        "action": Action.IMAGINE,
        "provider": "p",
        "status": JobStatus.SUCCEEDED,
        "user_id": "1",
        "followups": [FollowUp(Action.UPSCALE, 2), FollowUp(Action.ZOOM, variant="custom")],
        "texts": [],
    }
    values.update(kw)
    return Job(id=JOB, **values)


def test_missing_job() -> None:
    problem = check_press(ctx(), presser(1), None, Target("upscale", JOB, 2))
    assert problem and "no longer exists" in problem


def test_anyone_may_press_when_configured() -> None:
    assert check_press(ctx("anyone"), presser(2), job(), Target("upscale", JOB, 2)) is None


def test_requester_only() -> None:
    target = Target("upscale", JOB, 2)
    problem = check_press(ctx("requester"), presser(2), job(), target)
    assert problem and "<@1>" in problem
    assert check_press(ctx("requester"), presser(1), job(), target) is None
    assert check_press(ctx("requester"), presser(2, manager=True), job(), target) is None


def test_not_offered() -> None:
    problem = check_press(ctx(), presser(1), job(), Target("upscale", JOB, 3))
    assert problem and "not offered" in problem
    problem = check_press(ctx(offered={Action.ZOOM}), presser(1), job(), Target("upscale", JOB, 2))
    assert problem and "not offered" in problem
    problem = check_press(ctx(), presser(1), job(), Target("wobble", JOB, 0))
    assert problem and "no longer offers" in problem


def test_cancel_is_for_the_requester_or_managers() -> None:
    running = job(status=JobStatus.RUNNING)
    target = Target(CANCEL, JOB)
    assert check_press(ctx(), presser(1), running, target) is None
    assert check_press(ctx(), presser(2, manager=True), running, target) is None
    problem = check_press(ctx(), presser(2), running, target)
    assert problem and "Only the person" in problem
    problem = check_press(ctx(), presser(1), job(), target)
    assert problem and "already succeeded" in problem


def test_imagine_from_describe_needs_that_prompt() -> None:
    described = job(action=Action.DESCRIBE, texts=["a", "b"], followups=[])
    assert check_press(ctx(), presser(1), described, Target("imagine", JOB, 2)) is None
    problem = check_press(ctx(), presser(1), described, Target("imagine", JOB, 3))
    assert problem and "no prompt number 3" in problem


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (Target("inpaint", JOB, 1), True),
        (Target("zoom", JOB, 0, "custom"), True),
        (Target("zoom", JOB, 0, "2"), False),
        (Target("upscale", JOB, 1), False),
    ],
)
def test_which_buttons_open_a_form(target: Target, expected: bool) -> None:
    assert opens_modal(target) is expected


def test_read_values_from_labels_and_rows() -> None:
    components = [
        {"type": 18, "component": {"type": 3, "custom_id": "area", "values": ["left", "top"]}},
        {"type": 18, "component": {"type": 4, "custom_id": "box", "value": "1,2,3,4"}},
        {"type": 1, "components": [{"type": 4, "custom_id": "prompt", "value": "hi"}]},
        {"type": 10},
    ]
    assert modals.read_values(components) == {
        "area": ["left", "top"],
        "box": ["1,2,3,4"],
        "prompt": ["hi"],
    }


def test_forms_fit_discords_limits() -> None:
    source = job(prompt="p" * 5000)
    for form in (
        modals.region_modal(Target("inpaint", JOB, 1), source),
        modals.zoom_modal(Target("zoom", JOB, 0, "custom"), source),
    ):
        payload = form.to_dict()
        assert len(payload["title"]) <= 45 and len(payload["components"]) <= 5
        assert payload["custom_id"].startswith("at1m:")
