"""The shared words: actions, Midjourney's parameter names, and the labels users see.

The engine, the providers and the Discord layer all import this module, and it imports
nothing of theirs, so a new action or `--param` is one edit here (plus the rules that
give it meaning: `bot.engine.prompt` for a parameter's values, an adapter for how it is
sent), never a list copied by hand into three modules.
"""

from __future__ import annotations

import enum

from bot.i18n import Text


class Action(enum.StrEnum):
    """Everything a user can ask for. A job has exactly one action."""

    IMAGINE = "imagine"
    UPSCALE = "upscale"  # U1-U4: index 1-4
    VARIATION = "variation"  # V1-V4: index 1-4
    REROLL = "reroll"  # 🔄
    UPSCALE_SUBTLE = "upscale_subtle"
    UPSCALE_CREATIVE = "upscale_creative"
    VARY_SUBTLE = "vary_subtle"
    VARY_STRONG = "vary_strong"
    ZOOM = "zoom"  # variant: "2" | "1.5" | "custom"
    PAN = "pan"  # variant: "left" | "right" | "up" | "down"
    INPAINT = "inpaint"  # Vary (Region): regions (+ optional prompt)
    MAKE_SQUARE = "make_square"  # outpaint a non-square upscale to 1:1
    DESCRIBE = "describe"
    BLEND = "blend"
    SHORTEN = "shorten"
    SWAP_FACE = "swap_face"
    # Midjourney's video buttons: Animate on an upscale makes four short videos; Extend on
    # one selected video (U1-U4 of the video grid) makes it longer. Low / high is the motion.
    ANIMATE_LOW = "animate_low"
    ANIMATE_HIGH = "animate_high"
    EXTEND_LOW = "extend_low"
    EXTEND_HIGH = "extend_high"


# The actions whose result is video, not images: only providers that say so serve them.
VIDEO_ACTIONS: frozenset[Action] = frozenset(
    {Action.ANIMATE_LOW, Action.ANIMATE_HIGH, Action.EXTEND_LOW, Action.EXTEND_HIGH}
)

ZOOM_VARIANTS = ("2", "1.5", "custom")
PAN_VARIANTS = ("left", "right", "up", "down")
BLEND_DIMENSIONS = ("PORTRAIT", "SQUARE", "LANDSCAPE")
MODES = ("fast", "relax", "turbo")


class Param(enum.StrEnum):
    """Midjourney's prompt parameters by their canonical names (`--ar` is `aspect`).

    `bot.engine.prompt` gives each its spellings and ranges; adapters say which they take.
    """

    ASPECT = "aspect"
    CHAOS = "chaos"
    NO = "no"
    QUALITY = "quality"
    SEED = "seed"
    STOP = "stop"
    STYLIZE = "stylize"
    SREF = "sref"
    SW = "sw"
    SV = "sv"
    CREF = "cref"
    CW = "cw"
    OREF = "oref"
    OW = "ow"
    TILE = "tile"
    VERSION = "version"
    NIJI = "niji"
    RAW = "raw"
    STYLE = "style"
    WEIRD = "weird"
    IW = "iw"
    DRAFT = "draft"
    EXP = "exp"
    FAST = "fast"
    RELAX = "relax"
    TURBO = "turbo"
    ZOOM = "zoom"  # Custom Zoom's factor, sent with the zoom button's form
    STEPS = "steps"  # a Flux setting, not a Midjourney one


ALL_PARAMS: frozenset[str] = frozenset(Param)
MODE_PARAMS: frozenset[str] = frozenset({Param.FAST, Param.RELAX, Param.TURBO})
# What Midjourney itself takes in a prompt: everything but the Flux-only --steps and
# --zoom, which only Custom Zoom's form sends.
MIDJOURNEY_PARAMS: frozenset[str] = ALL_PARAMS - {Param.STEPS, Param.ZOOM}


# --------------------------------------------------------------------------- labels

ACTION_NAMES: dict[Action, str] = {
    Action.IMAGINE: Text("Imagine"),
    Action.UPSCALE: Text("Upscale"),
    Action.VARIATION: Text("Variation"),
    Action.REROLL: Text("Reroll"),
    Action.UPSCALE_SUBTLE: Text("Upscale (Subtle)"),
    Action.UPSCALE_CREATIVE: Text("Upscale (Creative)"),
    Action.VARY_SUBTLE: Text("Vary (Subtle)"),
    Action.VARY_STRONG: Text("Vary (Strong)"),
    Action.ZOOM: Text("Zoom Out"),
    Action.PAN: Text("Pan"),
    Action.INPAINT: Text("Vary (Region)"),
    Action.MAKE_SQUARE: Text("Make Square"),
    Action.DESCRIBE: Text("Describe"),
    Action.BLEND: Text("Blend"),
    Action.SHORTEN: Text("Shorten"),
    Action.SWAP_FACE: Text("Face swap"),
    Action.ANIMATE_LOW: Text("Animate (Low motion)"),
    Action.ANIMATE_HIGH: Text("Animate (High motion)"),
    Action.EXTEND_LOW: Text("Extend (Low motion)"),
    Action.EXTEND_HIGH: Text("Extend (High motion)"),
}

KEYCAPS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣")
PAN_EMOJI = {"left": "⬅️", "right": "➡️", "up": "⬆️", "down": "⬇️"}

# Button (label, emoji) per action where neither depends on the index or variant.
_BUTTONS: dict[Action, tuple[str | None, str | None]] = {
    Action.REROLL: (None, "🔄"),
    Action.UPSCALE_SUBTLE: (Text("Upscale (Subtle)"), None),
    Action.UPSCALE_CREATIVE: (Text("Upscale (Creative)"), None),
    Action.VARY_SUBTLE: (Text("Vary (Subtle)"), "🪄"),
    Action.VARY_STRONG: (Text("Vary (Strong)"), "🪄"),
    Action.INPAINT: (Text("Vary (Region)"), "🖌️"),
    Action.MAKE_SQUARE: (Text("Make Square"), None),
    Action.ANIMATE_LOW: (Text("Animate (Low motion)"), "🎞️"),
    Action.ANIMATE_HIGH: (Text("Animate (High motion)"), "🎞️"),
    Action.EXTEND_LOW: (Text("Extend (Low motion)"), "🎞️"),
    Action.EXTEND_HIGH: (Text("Extend (High motion)"), "🎞️"),
}


def action_name(action: Action) -> str:
    """How users read an action's name: "Upscale (Subtle)", "Vary (Region)"."""
    return ACTION_NAMES.get(action, action.value.replace("_", " ").title())


def button_label(
    action: Action, index: int = 0, variant: str = ""
) -> tuple[str | None, str | None]:
    """(label, emoji) of one follow-up button, Midjourney's way: U1, V2, 🔄, Zoom Out 2x."""
    if action is Action.UPSCALE:
        return f"U{index}", None
    if action is Action.VARIATION:
        return f"V{index}", None
    if action is Action.ZOOM:
        if variant == "custom":
            return Text("Custom Zoom"), "🔍"
        return Text("Zoom Out {variant}x", variant=variant), "🔍"
    if action is Action.PAN:
        return None, PAN_EMOJI.get(variant, "↔️")
    return _BUTTONS.get(action, (action_name(action), None))


def numbered(texts: list[str]) -> list[str]:
    """Texts prefixed 1️⃣ 2️⃣ ... the way Midjourney lists describe and shorten results."""
    return [
        f"{KEYCAPS[n] if n < len(KEYCAPS) else f'{n + 1}.'} {text}" for n, text in enumerate(texts)
    ]
