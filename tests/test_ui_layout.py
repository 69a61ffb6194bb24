"""Buttons from follow-ups (Midjourney's layout), message texts, regions and zoom input."""

from __future__ import annotations

import pytest

from bot.engine.models import FollowUp, Job, JobStatus
from bot.providers.base import How, Support
from bot.ui import custom_ids, layout, render
from bot.ui.regions import RegionError, parse_boxes, parse_zoom, regions_from, with_zoom
from bot.vocab import Action


def native(action: Action) -> Support:
    return Support(How.NATIVE)


def job_with(followups: list[FollowUp], **kw: object) -> Job:
    return Job(id="0123456789", action=Action.IMAGINE, provider="p", followups=followups, **kw)  # type: ignore[arg-type]


GRID = (
    [FollowUp(Action.UPSCALE, i) for i in range(1, 5)]
    + [FollowUp(Action.VARIATION, i) for i in range(1, 5)]
    + [FollowUp(Action.REROLL)]
)

UPSCALED = [
    FollowUp(Action.PAN, variant="down"),
    FollowUp(Action.PAN, variant="left"),
    FollowUp(Action.UPSCALE_CREATIVE),
    FollowUp(Action.UPSCALE_SUBTLE),
    FollowUp(Action.ZOOM, variant="custom"),
    FollowUp(Action.ZOOM, variant="2"),
    FollowUp(Action.ZOOM, variant="1.5"),
    FollowUp(Action.VARY_STRONG),
    FollowUp(Action.VARY_SUBTLE),
    FollowUp(Action.INPAINT),
    FollowUp(Action.PAN, variant="right"),
    FollowUp(Action.PAN, variant="up"),
]


def names(rows: list[list[object]]) -> list[list[str]]:
    return [[b.label or b.emoji for b in row] for row in rows]  # type: ignore[attr-defined]


def test_grid_layout_is_midjourneys() -> None:
    rows = layout.followup_rows(job_with(GRID), native)
    assert names(rows) == [["U1", "U2", "U3", "U4", "🔄"], ["V1", "V2", "V3", "V4"]]
    target = custom_ids.parse_button(rows[0][1].custom_id)
    assert target == custom_ids.Target("upscale", "0123456789", 2)


def test_upscale_layout() -> None:
    rows = layout.followup_rows(job_with(UPSCALED), native)
    assert names(rows) == [
        ["Upscale (Subtle)", "Upscale (Creative)"],
        ["Vary (Subtle)", "Vary (Strong)", "Vary (Region)"],
        ["Zoom Out 2x", "Zoom Out 1.5x", "Custom Zoom"],
        ["⬅️", "➡️", "⬆️", "⬇️"],
    ]


def test_only_served_followups_become_buttons_and_emulated_ones_say_so() -> None:
    def support(action: Action) -> Support | None:
        if action is Action.VARIATION:
            return Support(How.EMULATED, "a new imagine with the image as image prompt")
        if action is Action.REROLL:
            return None
        return Support(How.NATIVE)

    job = job_with(GRID)
    rows = layout.followup_rows(job, support)
    assert names(rows) == [
        ["U1", "U2", "U3", "U4"],
        ["V1 (emulated)", "V2 (emulated)", "V3 (emulated)", "V4 (emulated)"],
    ]
    message = render.result(job, support)
    assert "Variation is emulated on p: a new imagine with the image as image prompt" in (
        message.content
    )


def test_many_followups_fit_in_five_rows_with_unique_ids() -> None:
    job = job_with(GRID + UPSCALED + [FollowUp(Action.UPSCALE, 1)])  # a duplicate too
    rows = layout.followup_rows(job, native)
    assert len(rows) <= 5 and all(len(r) <= 5 for r in rows)
    ids = [b.custom_id for r in rows for b in r]
    assert len(ids) == len(set(ids))


def test_describe_result_has_keycaps_and_texts() -> None:
    job = Job(
        id="0123456789",
        action=Action.DESCRIBE,
        provider="p",
        status=JobStatus.SUCCEEDED,
        texts=["a red fox *in snow*", "b", "c", "d"],
        user_id="42",
    )
    message = render.result(job, native)
    assert [b.emoji for b in message.rows[0]] == ["1️⃣", "2️⃣", "3️⃣", "4️⃣"]
    assert custom_ids.parse_button(message.rows[0][1].custom_id) == custom_ids.Target(
        "imagine", "0123456789", 2
    )
    assert "1️⃣ a red fox \\*in snow\\*" in message.embeds[0]["description"]
    assert message.mention_user == "42"


def test_header_says_who_what_where() -> None:
    job = Job(
        id="0123456789",
        action=Action.UPSCALE,
        index=2,
        provider="sandbox",
        prompt="a cat " + "x" * 3000,
        mode="relax",
        user_id="42",
        parent_id="abcdefghjk",
    )
    text = render.header(job)
    assert "<@42>" in text and "Image #2" in text and "relax mode" in text
    assert "job `0123456789`" in text and "sandbox" in text and "`abcdefghjk`" in text
    assert len(render.progress(job).content) <= 2000


def test_progress_line_with_and_without_figure() -> None:
    job = Job(id="0123456789", action=Action.IMAGINE, provider="p", status=JobStatus.RUNNING)
    job.progress = 40
    assert "40%" in render.status_line(job) and "████████░" in render.status_line(job)
    job.progress = None
    job.submitted_at = 1_700_000_000
    assert "<t:1700000000:R>" in render.status_line(job)
    job.status, job.queue_position = JobStatus.SUBMITTED, 3
    assert "#3 in the queue" in render.status_line(job)


def test_failure_says_why_and_what_to_try() -> None:
    job = Job(
        id="0123456789",
        action=Action.IMAGINE,
        provider="p",
        status=JobStatus.FAILED,
        failure="[Banned prompt detected] forbidden",
    )
    content = render.failure(job).content
    assert "Failed" in content and "Banned prompt detected" in content and "Reword" in content


def test_region_presets_and_boxes() -> None:
    assert regions_from(["left"], "") == [(0.0, 0.0, 0.5, 1.0)]
    assert parse_boxes("10,20,60,90; 90%, 90%, 50%, 50%") == [
        (0.1, 0.2, 0.6, 0.9),
        (0.5, 0.5, 0.9, 0.9),
    ]
    assert len(regions_from(["center", "sky"], "0,0,10,10")) == 3
    for bad in ("1,2,3", "a,b,c,d", "0,0,150,50", "10,10,10.5,50"):
        with pytest.raises(RegionError):
            parse_boxes(bad)
    with pytest.raises(RegionError):
        regions_from([], " ")


def test_zoom_factor() -> None:
    assert parse_zoom("1.5") == 1.5 and parse_zoom(" 1,25x ") == 1.25 and parse_zoom("2") == 2
    for bad in ("0.5", "3", "big"):
        with pytest.raises(RegionError):
            parse_zoom(bad)
    assert with_zoom("a cat --zoom 2 --ar 3:2", 1.3) == "a cat --ar 3:2 --zoom 1.3"


def test_result_shows_the_seed_when_the_provider_gave_one() -> None:
    with_seed = job_with(GRID, status=JobStatus.SUCCEEDED, seed="636646138")
    assert "seed 636646138" in render.result(with_seed, native).content
    without = job_with(GRID, status=JobStatus.SUCCEEDED, seed=None)
    assert "seed" not in render.result(without, native).content
