"""The custom_id format: round trips, length, and refusal of anything else."""

from __future__ import annotations

import re

import pytest

from bot.engine.models import new_job_id
from bot.ui import custom_ids
from bot.ui.custom_ids import Target
from bot.vocab import PAN_VARIANTS, ZOOM_VARIANTS, Action


def all_targets() -> list[Target]:
    # A fixed job id: the test ids must be the same in every pytest-xdist worker.
    job = "gncvfaptn9"
    targets = [Target(custom_ids.CANCEL, job)]
    for action in Action:
        for index in range(0, 6):
            targets.append(Target(action.value, job, index))
    targets += [Target(Action.ZOOM.value, job, 0, v) for v in ZOOM_VARIANTS]
    targets += [Target(Action.PAN.value, job, 3, v) for v in PAN_VARIANTS]
    return targets


@pytest.mark.parametrize("target", all_targets(), ids=str)
def test_button_round_trip_and_length(target: Target) -> None:
    text = custom_ids.button_id(target)
    assert len(text) <= custom_ids.MAX_LENGTH
    assert custom_ids.parse_button(text) == target
    # discord.py routes with fullmatch on the template: it must accept every id we make.
    assert re.fullmatch(custom_ids.BUTTON_TEMPLATE, text)
    assert custom_ids.parse_modal(text) is None


def test_example_format_is_stable() -> None:
    # Messages already posted carry these ids forever: the format must not drift.
    assert custom_ids.button_id(Target("upscale", "0123456789", 2)) == "at1:upscale:0123456789:2"
    assert custom_ids.button_id(Target("zoom", "0123456789", 0, "1.5")) == (
        "at1:zoom:0123456789:0:1.5"
    )
    assert custom_ids.modal_id(Target("inpaint", "0123456789", 1)) == "at1m:inpaint:0123456789:1"


def test_longest_possible_id_fits() -> None:
    target = Target("a" * 24, "z" * 10, 99, "9" * 16)
    text = custom_ids.button_id(target)
    assert len(text) <= 100
    assert custom_ids.parse_button(text) == target


def test_modal_round_trip() -> None:
    target = Target(Action.INPAINT.value, new_job_id(), 1)
    text = custom_ids.modal_id(target)
    assert custom_ids.parse_modal(text) == target
    assert custom_ids.parse_button(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "at1",
        "at1:upscale:0123456789",  # no index
        "at2:upscale:0123456789:2",  # unknown version
        "at1:upscale:012345678:2",  # short job id
        "at1:upscale:0123456789i:2",  # long job id
        "at1:upscale:ABCDEFGHJK:2",  # upper case
        "at1:upscale:0123456789:2:",  # empty variant
        "at1:Upscale:0123456789:2",
        "at1:upscale:0123456789:123",
        "MJ::JOB::upsample::1::abc",
        "at1:upscale:0123456789:2:x:y",
    ],
)
def test_foreign_ids_are_refused(text: str) -> None:
    assert custom_ids.parse_button(text) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"action": "Upscale", "job_id": "0123456789"},
        {"action": "upscale", "job_id": "012345678"},
        {"action": "upscale", "job_id": "0123456789", "index": 100},
        {"action": "upscale", "job_id": "0123456789", "variant": "Left"},
        {"action": "upscale", "job_id": "0123456789", "variant": "x" * 17},
    ],
)
def test_bad_targets_cannot_be_built(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Target(**kwargs)  # type: ignore[arg-type]
