"""Which buttons a finished job gets, and in what order: Midjourney's layout.

Only the follow-ups the job's provider reported (`job.followups`) become buttons, so
nothing is shown that cannot be served. Emulated actions say so in their label.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.engine.models import FollowUp, How, Job, Support
from bot.i18n import Text
from bot.ui import custom_ids
from bot.ui.custom_ids import Target
from bot.ui.outgoing import ButtonSpec
from bot.vocab import KEYCAPS, PAN_VARIANTS, ZOOM_VARIANTS, Action, action_name, button_label

SupportOf = Callable[[Action], Support | None]

MAX_ROWS = 5
MAX_PER_ROW = 5

# One row each, in this order: a grid gets rows 1-2 (U1-U4 🔄 / V1-V4), an upscale the
# rest. Anything a provider offers beyond these is appended after them.
_GROUPS: tuple[tuple[Action, ...], ...] = (
    (Action.UPSCALE, Action.REROLL),
    (Action.VARIATION,),
    (Action.UPSCALE_SUBTLE, Action.UPSCALE_CREATIVE, Action.MAKE_SQUARE),
    (Action.VARY_SUBTLE, Action.VARY_STRONG, Action.INPAINT),
    (Action.ZOOM,),
    (Action.PAN,),
    # Midjourney's video buttons: Animate on an upscale, Extend on a selected video.
    (Action.ANIMATE_HIGH, Action.ANIMATE_LOW, Action.EXTEND_HIGH, Action.EXTEND_LOW),
)


def _sort_key(followup: FollowUp) -> tuple[int, int]:
    if followup.action is Action.ZOOM:
        order = ZOOM_VARIANTS.index(followup.variant) if followup.variant in ZOOM_VARIANTS else 9
    elif followup.action is Action.PAN:
        order = PAN_VARIANTS.index(followup.variant) if followup.variant in PAN_VARIANTS else 9
    else:
        order = 0
    return (followup.index, order)


def _button(job: Job, followup: FollowUp, support: Support | None) -> ButtonSpec:
    label, emoji = button_label(followup.action, followup.index, followup.variant)
    if support is not None and support.how is How.EMULATED:
        # Emulated: the label says so, the message's note line says how.
        label = Text("{label} (emulated)", label=label) if label else Text("(emulated)")
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


def emulation_notes(job: Job, support_of: SupportOf) -> list[str]:
    """One line per emulated follow-up action: what the provider does instead."""
    notes: list[str] = []
    for action in dict.fromkeys(f.action for f in job.followups):
        support = support_of(action)
        if support is not None and support.how is How.EMULATED:
            how = f": {support.note}" if support.note else ""
            name, provider = action_name(action), job.provider
            notes.append(
                Text(
                    "{action} is emulated on {provider}{how}.",
                    action=name,
                    provider=provider,
                    how=how,
                )
            )
    return notes


# The variant of the "Imagine all" button under a describe result (index 0).
IMAGINE_ALL = "all"


def text_rows(job: Job) -> list[list[ButtonSpec]]:
    """Under a describe or shorten result: 1️⃣-5️⃣ (each opens a form with that prompt,
    then imagines it); a describe also gets "Imagine all" and 🔄 (describe again)."""
    count = min(len(job.texts), len(KEYCAPS))
    buttons = [
        ButtonSpec(
            custom_ids.button_id(Target(Action.IMAGINE.value, job.id, n)), emoji=KEYCAPS[n - 1]
        )
        for n in range(1, count + 1)
    ]
    if not buttons:
        return []
    rows = [buttons]
    if job.action is Action.DESCRIBE:
        imagine_all = Target(Action.IMAGINE.value, job.id, 0, IMAGINE_ALL)
        more = [
            ButtonSpec(custom_ids.button_id(imagine_all), label=Text("Imagine all"), emoji="🎨")
        ]
        if job.inputs:  # describing again needs the image, kept as the job's input
            again = Target(Action.DESCRIBE.value, job.id)
            more.append(ButtonSpec(custom_ids.button_id(again), emoji="🔄"))
        rows.append(more)
    return rows


def cancel_row(job: Job) -> list[list[ButtonSpec]]:
    target = Target(custom_ids.CANCEL, job.id)
    return [
        [ButtonSpec(custom_ids.button_id(target), label=Text("Cancel"), emoji="✖️", style="danger")]
    ]
