"""The one place that decides what a button's (or modal's) `custom_id` looks like.

A custom_id carries only what is needed to find the job again: a version tag, the
action, the job id, the image index and a variant, e.g. `at1:upscale:7k2m9q4x1z:2` or
`at1:zoom:7k2m9q4x1z:0:1.5`. Everything else is read from the store when the button is
pressed, so a button keeps working on a month-old message and across restarts.

The version tag lets a later format live beside this one: messages already posted keep
their `at1:` ids forever, so decoders for old tags must never be removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.engine.models import is_job_id

VERSION = "at1"
# Modal submissions get their own tag so that they can never be mistaken for a button.
MODAL_VERSION = "at1m"
# Not an engine action: the Cancel button on a running job's message.
CANCEL = "cancel"
MAX_LENGTH = 100  # Discord's limit for custom_id

_BODY = (
    r"(?P<action>[a-z_]{1,24}):(?P<job>[0-9a-z]{10}):(?P<index>[0-9]{1,2})"
    r"(?::(?P<variant>[a-z0-9.]{1,16}))?"
)
# What discord.py's DynamicItem matches (with fullmatch) to route a press to us.
BUTTON_TEMPLATE = rf"{VERSION}:{_BODY}"
_BUTTON = re.compile(BUTTON_TEMPLATE)
_MODAL = re.compile(rf"{MODAL_VERSION}:{_BODY}")
_VARIANT = re.compile(r"[a-z0-9.]{0,16}")


@dataclass(frozen=True)
class Target:
    """What a button or modal acts on: `action` of job `job_id` (image `index`, `variant`)."""

    action: str  # an engine Action value, or CANCEL
    job_id: str
    index: int = 0
    variant: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z_]{1,24}", self.action):
            raise ValueError(f"bad action for a custom_id: {self.action!r}")
        if not is_job_id(self.job_id):
            raise ValueError(f"bad job id for a custom_id: {self.job_id!r}")
        if not 0 <= self.index <= 99:
            raise ValueError(f"bad index for a custom_id: {self.index}")
        if not _VARIANT.fullmatch(self.variant):
            raise ValueError(f"bad variant for a custom_id: {self.variant!r}")


def _encode(tag: str, target: Target) -> str:
    text = f"{tag}:{target.action}:{target.job_id}:{target.index}"
    if target.variant:
        text += f":{target.variant}"
    assert len(text) <= MAX_LENGTH  # by construction: at most 4+1+24+1+10+1+2+1+16 chars
    return text


def _decode(pattern: re.Pattern[str], custom_id: str) -> Target | None:
    match = pattern.fullmatch(custom_id)
    if match is None:
        return None
    try:
        return Target(
            action=match["action"],
            job_id=match["job"],
            index=int(match["index"]),
            variant=match["variant"] or "",
        )
    except ValueError:
        return None


def button_id(target: Target) -> str:
    return _encode(VERSION, target)


def parse_button(custom_id: str) -> Target | None:
    """The target of a button's custom_id, or None when it is not one of ours."""
    return _decode(_BUTTON, custom_id)


def modal_id(target: Target) -> str:
    return _encode(MODAL_VERSION, target)


def parse_modal(custom_id: str) -> Target | None:
    return _decode(_MODAL, custom_id)


# The /settings panel's buttons and selects: `at1s:<setting>` or `at1s:<setting>:<value>`
# (e.g. `at1s:raw`, `at1s:stylize:very_high`). They name no job: a press acts on the
# presser's own preferences, read from the store, so an old panel still works.
SETTINGS_VERSION = "at1s"
_SETTING = re.compile(
    rf"{SETTINGS_VERSION}:(?P<setting>[a-z_]{{1,24}})(?::(?P<value>[a-z0-9_.]{{1,24}}))?"
)


def settings_id(setting: str, value: str = "") -> str:
    text = f"{SETTINGS_VERSION}:{setting}" + (f":{value}" if value else "")
    if _SETTING.fullmatch(text) is None:
        raise ValueError(f"bad settings custom_id: {text!r}")
    return text


def parse_settings(custom_id: str) -> tuple[str, str] | None:
    """(setting, value) of a settings panel component, or None when it is not one."""
    match = _SETTING.fullmatch(custom_id)
    return (match["setting"], match["value"] or "") if match else None
