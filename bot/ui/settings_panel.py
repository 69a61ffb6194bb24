"""The /settings panel: a private message of buttons and selects, as on Midjourney.

Each component's custom_id is `at1s:<setting>[:<value>]` (see `custom_ids`); a press
changes the presser's own preferences in this server, stores them, and redraws the
panel in place. Presses are handled by one `on_interaction` listener that reads the
store, never by the View object, so a panel opened before a restart still works.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import discord

from bot.engine.preferences import STYLIZE_STEPS, Preferences, version_choices
from bot.i18n import N_, Text, tr
from bot.ui import actions, custom_ids
from bot.ui.context import UiContext, ui_context
from bot.ui.replies import UserError, guarded, member_locale
from bot.vocab import Action

DEFAULT = "default"  # the select option that clears a choice
PANEL_TTL = 15 * 60.0  # how long this process keeps a panel's View object around
_ON, _OFF = discord.ButtonStyle.success, discord.ButtonStyle.secondary
# Midjourney's names of the Stylize steps, for the buttons' labels.
STYLIZE_NAMES = {
    "low": N_("low"),
    "med": N_("med"),
    "high": N_("high"),
    "very high": N_("very high"),
}


@dataclass(frozen=True)
class Choices:
    """What the panel may offer this member here."""

    versions: Sequence[str]
    providers: Sequence[str]
    modes: Sequence[str]
    # The member's provider honours High/Low Variation Mode (mj-proxy cannot send it).
    variation: bool = True


async def choices_for(ctx: UiContext, prefs: Preferences) -> Choices:
    engine = ctx.engine
    guild_settings = await engine.settings.get(prefs.guild_id or None)
    return Choices(
        versions=version_choices(list(engine.providers.values())),
        providers=engine.providers_for(Action.IMAGINE),
        modes=engine.preferences.modes_for(prefs.provider, guild_settings),
        variation=_takes_strength(ctx, prefs.provider),
    )


def _takes_strength(ctx: UiContext, chosen: str | None) -> bool:
    engine = ctx.engine
    name = chosen if chosen in engine.providers else engine.config.provider(None).name
    return bool(getattr(engine.providers[name], "takes_variation_strength", False))


def _stylize_name(value: int | None) -> str | None:
    return next((name for name, v in STYLIZE_STEPS.items() if v == value), None)


def summary(prefs: Preferences, locale: str | None = None) -> list[str]:
    """The member's settings as lines (the panel's text, and /info)."""
    stylize = _stylize_name(prefs.stylize)
    model = prefs.version and (prefs.version if "niji" in prefs.version else f"v {prefs.version}")
    default, none = tr(locale, "default"), tr(locale, "none")
    on, off = tr(locale, "on"), tr(locale, "off")
    options = ", ".join(f"--{name}" for name in sorted(prefs.options)) or none
    values = {
        "model": model or default,
        "raw": on if prefs.raw else off,
        "stylize": f"{stylize} ({prefs.stylize})" if stylize else default,
        "speed": prefs.mode or default,
        "remix": on if prefs.remix else off,
        "variation": prefs.variation,
        "provider": prefs.provider or default,
        "suffix": f"`{prefs.suffix}`" if prefs.suffix else none,
        "options": options,
    }
    return [
        tr(locale, "Model: {model} · Raw: {raw} · Stylize: {stylize}", **values),
        tr(locale, "Speed: {speed} · Remix: {remix} · Variation: {variation}", **values),
        tr(locale, "Provider: {provider} · Suffix: {suffix} · Options: {options}", **values),
    ]


def panel_text(prefs: Preferences, locale: str | None = None) -> str:
    title = tr(locale, "**Your settings in this server**")
    return "\n".join([title, *summary(prefs, locale)])[:2000]


def _button(
    label: str, setting: str, value: str = "", *, on: bool = False
) -> discord.ui.Button[Any]:
    return discord.ui.Button(
        label=label, custom_id=custom_ids.settings_id(setting, value), style=_ON if on else _OFF
    )


def _select(
    setting: str,
    placeholder: str,
    values: Sequence[str],
    chosen: str | None,
    shown: Text,
    locale: str | None,
) -> discord.ui.Select[Any]:
    first = tr(locale, "Default {what}", what=shown)
    options = [discord.SelectOption(label=first, value=DEFAULT, default=not chosen)]
    options += [
        discord.SelectOption(
            label=f"{shown.render(locale)} {v}"[:100], value=v, default=v == chosen
        )
        for v in values[:24]
    ]
    return discord.ui.Select(
        custom_id=custom_ids.settings_id(setting), placeholder=placeholder, options=options
    )


def _variation_buttons(prefs: Preferences, locale: str | None) -> list[discord.ui.Item[Any]]:
    return [
        _button(
            tr(locale, "High Variation Mode"), "variation", "high", on=prefs.variation == "high"
        ),
        _button(tr(locale, "Low Variation Mode"), "variation", "low", on=prefs.variation == "low"),
    ]


def panel_view(prefs: Preferences, choices: Choices, locale: str | None = None) -> discord.ui.View:
    view = discord.ui.View(timeout=PANEL_TTL)

    versions = _select(
        "version",
        tr(locale, "Model version"),
        choices.versions,
        prefs.version,
        Text("model"),
        locale,
    )
    providers = _select(
        "provider",
        tr(locale, "Default provider"),
        choices.providers,
        prefs.provider,
        Text("provider"),
        locale,
    )
    rows: list[list[discord.ui.Item[Any]]] = [
        [versions],
        [providers],
        [
            _button(tr(locale, "Raw Mode"), "raw", on=prefs.raw),
            _button(tr(locale, "Remix Mode"), "remix", on=prefs.remix),
            *(_variation_buttons(prefs, locale) if choices.variation else ()),
        ],
        [
            _button(
                tr(locale, "Stylize {step}", step=Text(STYLIZE_NAMES.get(name, name))),
                "stylize",
                name.replace(" ", "_"),
                on=prefs.stylize == v,
            )
            for name, v in STYLIZE_STEPS.items()
        ],
        [
            *(
                _button(tr(locale, "{mode} mode", mode=m.title()), "mode", m, on=prefs.mode == m)
                for m in choices.modes
            ),
            _button(tr(locale, "Reset Settings"), "reset"),
        ],
    ]
    for number, row in enumerate(rows):
        for item in row:
            item.row = number
            view.add_item(item)
    return view


def change(prefs: Preferences, setting: str, value: str, choices: Choices) -> str | None:
    """Apply one press to `prefs`; a sentence for the presser when it cannot be."""
    if setting == "raw":
        prefs.raw = not prefs.raw
    elif setting == "remix":
        prefs.remix = not prefs.remix
    elif setting == "variation" and value in ("high", "low"):
        prefs.variation = value
    elif setting == "stylize" and value.replace("_", " ") in STYLIZE_STEPS:
        step = STYLIZE_STEPS[value.replace("_", " ")]
        prefs.stylize = None if prefs.stylize == step else step
    elif setting == "mode" and value in choices.modes:
        prefs.mode = None if prefs.mode == value else value
    elif setting == "version" and (value == DEFAULT or value in choices.versions):
        prefs.version = None if value == DEFAULT else value
    elif setting == "provider" and (value == DEFAULT or value in choices.providers):
        prefs.provider = None if value == DEFAULT else value
    else:
        return Text("That choice is not offered here any more; open /settings again.")
    return None


async def show(interaction: discord.Interaction) -> None:
    """Answer /settings with the member's panel (privately)."""
    ctx = ui_context(interaction.client)
    prefs = await ctx.engine.preferences.get(_guild(interaction), str(interaction.user.id))
    locale = member_locale(interaction)
    view = panel_view(prefs, await choices_for(ctx, prefs), locale)
    await interaction.response.send_message(panel_text(prefs, locale), view=view, ephemeral=True)


def _guild(interaction: discord.Interaction) -> str | None:
    return str(interaction.guild_id) if interaction.guild_id else None


async def on_interaction(interaction: discord.Interaction) -> None:
    """Listener for every interaction: handles presses on a settings panel."""
    if interaction.type is not discord.InteractionType.component:
        return
    data: Mapping[str, Any] = interaction.data or {}
    parsed = custom_ids.parse_settings(str(data.get("custom_id", "")))
    if parsed is None:
        return
    setting, value = parsed
    ctx = ui_context(interaction.client)
    async with guarded(interaction):
        if not await actions.guild_admitted(ctx, interaction):
            return
        user_id, guild_id = str(interaction.user.id), _guild(interaction)
        store = ctx.engine.preferences
        if setting == "reset":
            prefs = await store.reset(guild_id, user_id)
        else:
            prefs = await store.get(guild_id, user_id)
            picked = [str(v) for v in data.get("values") or []]
            problem = change(
                prefs, setting, picked[0] if picked else value, await choices_for(ctx, prefs)
            )
            if problem:
                raise UserError(problem)
            await store.save(prefs)
        locale = member_locale(interaction)
        view = panel_view(prefs, await choices_for(ctx, prefs), locale)
        await interaction.response.edit_message(content=panel_text(prefs, locale), view=view)
