"""Which buttons a finished job gets, and in what order: Midjourney's layout.

Only the follow-ups the job's provider reported (`job.followups`) become buttons, so
nothing is shown that cannot be served. Emulated actions say so in their label.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.engine.models import Action, FollowUp, Job
from bot.providers.base import How, Support
from bot.ui import custom_ids
from bot.ui.custom_ids import Target
from bot.ui.outgoing import ButtonSpec

SupportOf = Callable[[Action], Support | None]

MAX_ROWS = 5
MAX_PER_ROW = 5
KEYCAPS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣")
PAN_EMOJI = {"left": "⬅️", "right": "➡️", "up": "⬆️", "down": "⬇️"}
_PAN_ORDER = ("left", "right", "up", "down")
_ZOOM_ORDER = ("2", "1.5", "custom")

# One row each, in this order: a grid gets rows 1-2 (U1-U4 🔄 / V1-V4), an upscale the
# rest. Anything a provider offers beyond these is appended after them.
_GROUPS: tuple[tuple[Action, ...], ...] = (
    (Action.UPSCALE, Action.REROLL),
    (Action.VARIATION,),
    (Action.UPSCALE_SUBTLE, Action.UPSCALE_CREATIVE),
    (Action.VARY_SUBTLE, Action.VARY_STRONG, Action.INPAINT),
    (Action.ZOOM,),
    (Action.PAN,),
)


def _sort_key(followup: FollowUp) -> tuple[int, int]:
    if followup.action is Action.ZOOM:
        order = _ZOOM_ORDER.index(followup.variant) if followup.variant in _ZOOM_ORDER else 9
    elif followup.action is Action.PAN:
        order = _PAN_ORDER.index(followup.variant) if followup.variant in _PAN_ORDER else 9
    else:
        order = 0
    return (followup.index, order)


def label_for(followup: FollowUp) -> tuple[str | None, str | None]:
    """(label, emoji) of one follow-up button."""
    action, index, variant = followup.action, followup.index, followup.variant
    if action is Action.UPSCALE:
        return f"U{index}", None
    if action is Action.VARIATION:
        return f"V{index}", None
    if action is Action.REROLL:
        return None, "🔄"
    if action is Action.UPSCALE_SUBTLE:
        return "Upscale (Subtle)", None
    if action is Action.UPSCALE_CREATIVE:
        return "Upscale (Creative)", None
    if action is Action.VARY_SUBTLE:
        return "Vary (Subtle)", "🪄"
    if action is Action.VARY_STRONG:
        return "Vary (Strong)", "🪄"
    if action is Action.INPAINT:
        return "Vary (Region)", "🖌️"
    if action is Action.ZOOM:
        if variant == "custom":
            return "Custom Zoom", "🔍"
        return f"Zoom Out {variant}x", "🔍"
    if action is Action.PAN:
        return None, PAN_EMOJI.get(variant, "↔️")
    return action.value.replace("_", " ").title(), None


def _button(job: Job, followup: FollowUp, support: Support | None) -> ButtonSpec:
    label, emoji = label_for(followup)
    if support is not None and support.how is How.EMULATED:
        # Emulated: the label says so, the message's note line says how.
        label = f"{label} (emulated)" if label else "(emulated)"
    target = Target(followup.action.value, job.id, followup.index, followup.variant)
    return ButtonSpec(custom_ids.button_id(target), label=label, emoji=emoji)


def followup_rows(job: Job, support_of: SupportOf) -> list[list[ButtonSpec]]:
    """The result message's buttons, at most 5 rows of 5."""
    offered = [f for f in job.followups if support_of(f.action) is not None]
    seen: set[tuple[Action, int, str]] = set()
    unique: list[FollowUp] = []
    for followup in offered:
        key = (followup.action, followup.index, followup.variant)
        if key not in seen:  # custom_ids must be unique within a message
            seen.add(key)
            unique.append(followup)
    rows: list[list[ButtonSpec]] = []
    grouped = {a for group in _GROUPS for a in group}
    extra = [a for a in dict.fromkeys(f.action for f in unique) if a not in grouped]
    groups = [*_GROUPS, *((a,) for a in extra)]
    for group in groups:
        members = [f for f in unique if f.action in group]
        members.sort(key=lambda f: (group.index(f.action), *_sort_key(f)))
        for start in range(0, len(members), MAX_PER_ROW):
            chunk = members[start : start + MAX_PER_ROW]
            rows.append([_button(job, f, support_of(f.action)) for f in chunk])
    return _pack(rows)


def _pack(rows: list[list[ButtonSpec]]) -> list[list[ButtonSpec]]:
    """Merge neighbouring short rows until there are at most 5; drop what still overflows."""
    while len(rows) > MAX_ROWS:
        for i in range(len(rows) - 1):
            if len(rows[i]) + len(rows[i + 1]) <= MAX_PER_ROW:
                rows[i : i + 2] = [rows[i] + rows[i + 1]]
                break
        else:
            return rows[:MAX_ROWS]
    return rows


def emulation_notes(job: Job, support_of: SupportOf, names: dict[Action, str]) -> list[str]:
    """One line per emulated follow-up action: what the provider does instead."""
    notes: list[str] = []
    for action in dict.fromkeys(f.action for f in job.followups):
        support = support_of(action)
        if support is not None and support.how is How.EMULATED:
            how = f": {support.note}" if support.note else ""
            notes.append(f"{names.get(action, action.value)} is emulated on {job.provider}{how}.")
    return notes


def text_rows(job: Job) -> list[list[ButtonSpec]]:
    """1️⃣-5️⃣ under a describe or shorten result: imagine that prompt."""
    buttons = [
        ButtonSpec(
            custom_ids.button_id(Target(Action.IMAGINE.value, job.id, n)),
            emoji=KEYCAPS[n - 1],
        )
        for n in range(1, min(len(job.texts), len(KEYCAPS)) + 1)
    ]
    return [buttons] if buttons else []


def cancel_row(job: Job) -> list[list[ButtonSpec]]:
    target = Target(custom_ids.CANCEL, job.id)
    return [[ButtonSpec(custom_ids.button_id(target), label="Cancel", emoji="✖️", style="danger")]]
