"""Each member's own preferences in a server (`/settings`, `/prefer`), and how they
shape a new prompt.

Stored per (server, member) in the `user_prefs` table, one JSON document each, so a
new preference needs no migration; keys this version does not know are kept.

What a preference does to a request (`PreferenceStore.apply`, called by the engine
before its rules run):

- `--NAME` custom options in the prompt are replaced by their values (an option may
  use other options; a loop, or a name that is neither an option nor a parameter, is
  refused by name);
- V1-V4 carry the member's variation strength ("high": strong, "low": subtle), which
  each adapter sends its own way (MaaS-MJ's variation type; midjourney-proxy cannot
  choose: its Midjourney account's own setting decides);
- for a new /imagine only: the default provider when the request names none, then the
  suffix's words after the prompt's words, then the suffix's parameters and the
  settings (model version, raw, stylize, speed) for each parameter the prompt does not
  set itself. The prompt's own parameters always win; a default the provider does not
  take, or one that would clash with the prompt (`--niji` beside `--v`), is left out.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from bot.engine import access
from bot.engine.intake import RequestError
from bot.engine.models import JobRequest, Origin
from bot.engine.prompt import PARAMS, PromptError, parse_prompt, resolve_name
from bot.engine.settings import ServerSettings
from bot.engine.store import Store
from bot.i18n import Text
from bot.providers.base import Provider
from bot.vocab import MODES, Action

if TYPE_CHECKING:
    from bot.engine.service import Engine

log = logging.getLogger(__name__)

# Midjourney's four Stylize steps in /settings.
STYLIZE_STEPS: dict[str, int] = {"low": 50, "med": 100, "high": 250, "very high": 750}
VARIATION_STRENGTHS = ("high", "low")  # what V1-V4 do: strong or subtle
MAX_SUFFIX_CHARS = 1000
MAX_OPTION_CHARS = 1000
MAX_OPTIONS = 50
MAX_EXPANSION_DEPTH = 10
_OPTION_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# A token that names a parameter, as the prompt rules read it ("--ar", "—ar").
_FLAG = re.compile(r"(?:--|\u2014)[-\u2014]*([A-Za-z]\S*)")


class PreferenceError(RequestError):
    """A preference that cannot be set or used, worded for the member."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="preferences")


@dataclass
class Preferences:
    guild_id: str  # "" in direct messages
    user_id: str
    # "7", "6.1", ... (--v) or "niji", "niji 6" (--niji); None: the provider's default.
    version: str | None = None
    raw: bool = False
    stylize: int | None = None
    mode: str | None = None  # "fast" | "relax" | "turbo"; None: the provider's default
    remix: bool = False
    variation: str = "high"  # "high" (strong) | "low" (subtle)
    provider: str | None = None
    suffix: str = ""
    options: dict[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        extras = data.pop("extras")
        data.pop("guild_id")
        data.pop("user_id")
        return {**extras, **data}

    @classmethod
    def from_json(cls, guild_id: str, user_id: str, data: Mapping[str, Any]) -> Preferences:
        known = {f.name for f in fields(cls)} - {"guild_id", "user_id", "extras"}
        values = {k: v for k, v in data.items() if k in known}
        extras = {k: v for k, v in data.items() if k not in known}
        return cls(guild_id=guild_id, user_id=user_id, extras=extras, **values)

    def defaults(self) -> dict[str, str]:
        """The parameters the settings add to a prompt that does not set them."""
        out: dict[str, str] = {}
        if self.version:
            name, _, value = self.version.partition(" ")
            if name == "niji":
                out["niji"] = value
            else:
                out["version"] = self.version
        if self.raw:
            out["raw"] = ""
        if self.stylize is not None:
            out["stylize"] = str(self.stylize)
        return out


def version_choices(providers: Sequence[Provider]) -> list[str]:
    """The model versions /settings offers: --v and --niji values some provider takes."""
    accepted = frozenset().union(*(p.accepted_params for p in providers))
    out: list[str] = []
    if "version" in accepted:
        out += list(PARAMS["version"].choices)
    if "niji" in accepted:
        out += ["niji", *(f"niji {v}" for v in PARAMS["niji"].choices)]
    return out


# ---- pure rules: option names, expansion, merging ----


def check_option_name(name: str) -> str:
    """The option's name as stored (lower case, no dashes), or PreferenceError."""
    clean = name.strip().lstrip("-\u2014").lower()
    if not _OPTION_NAME.fullmatch(clean):
        raise PreferenceError(
            Text(
                "{name!r} cannot name an option: use a letter, then letters, digits, - or _ "
                "(up to 32).",
                name=name,
            )
        )
    if _is_parameter(clean):
        raise PreferenceError(
            Text("--{name} is a parameter already; give your option another name.", name=clean)
        )
    return clean


def _is_parameter(name: str) -> bool:
    """Whether the prompt rules know `--name` (a parameter, or one they refuse by name)."""
    if resolve_name(name) is not None:
        return True
    try:
        parse_prompt(f"x --{name}")
    except PromptError as err:
        return err.param is not None  # None: "not a parameter Atelier knows"
    return True


def expand_options(prompt: str, options: Mapping[str, str]) -> str:
    """The prompt with every `--NAME` of `options` replaced by its value (recursively)."""
    tokens = prompt.split()
    expanded = _expand(tokens, options, ()) if options else tokens
    return prompt if expanded == tokens else " ".join(expanded)


def _expand(tokens: Sequence[str], options: Mapping[str, str], chain: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for token in tokens:
        match = _FLAG.fullmatch(token)
        name = match.group(1).lower() if match else ""
        if not name or name not in options:
            if chain and name and not _is_parameter(name):
                raise PreferenceError(
                    Text(
                        "Your option --{option} uses --{name}, which is neither a parameter "
                        "nor one of your options.",
                        option=chain[-1],
                        name=name,
                    )
                )
            out.append(token)
            continue
        if name in chain:
            loop = " → ".join(f"--{n}" for n in (*chain, name))
            raise PreferenceError(
                Text("Your option --{name} refers back to itself ({loop}).", name=name, loop=loop)
            )
        if len(chain) >= MAX_EXPANSION_DEPTH:
            raise PreferenceError(
                Text("Your option --{name} nests options too deeply.", name=chain[0])
            )
        out += _expand(options[name].split(), options, (*chain, name))
    return out


def _split(text: str) -> tuple[list[str], list[list[str]]]:
    """(words and image URLs, parameter groups: each a flag token and its values)."""
    tokens = text.split()
    start = next((i for i, t in enumerate(tokens) if _FLAG.fullmatch(t)), len(tokens))
    groups: list[list[str]] = []
    for token in tokens[start:]:
        if _FLAG.fullmatch(token):
            groups.append([token])
        else:
            groups[-1].append(token)
    return tokens[:start], groups


def merge(prompt: str, suffix: str, defaults: Mapping[str, str], accepted: frozenset[str]) -> str:
    """The prompt with the suffix's words after its own, then each parameter of the
    suffix and of `defaults` the prompt does not set, where `accepted` and the prompt
    rules allow it. A prompt the rules refuse is returned as it was (the engine says why)."""
    if not suffix.strip() and not defaults:
        return prompt
    try:
        own = parse_prompt(prompt)
    except PromptError:
        return prompt
    words, groups = _split(prompt)
    extra_words, extra_groups = _split(suffix)
    tokens = words + extra_words + [t for group in groups for t in group]
    candidates = extra_groups + [[PARAMS[n].flag, *v.split()] for n, v in defaults.items()]
    present = set(own.params)
    for group in candidates:
        name = resolve_name(group[0])
        if name is None or name in present or name not in accepted:
            continue
        try:
            parse_prompt(" ".join(tokens + group))
        except PromptError:
            continue  # clashes with the prompt (--niji beside --v), or a bad value
        tokens += group
        present.add(name)
    if extra_words:
        try:
            parse_prompt(" ".join(tokens))
        except PromptError:
            return prompt  # the suffix's words broke it (too long): the prompt alone
    return " ".join(tokens)


# ---- the store, and applying to requests ----


class PreferenceStore:
    """Read and write members' preferences, and apply them to their requests."""

    def __init__(self, engine: Engine) -> None:
        # Read from the engine when used: its providers may be plugged in after this.
        self.engine = engine

    @property
    def store(self) -> Store:
        return self.engine.store

    async def get(self, guild_id: str | None, user_id: str) -> Preferences:
        guild = guild_id or ""
        async with self.store.db.execute(
            "SELECT data FROM user_prefs WHERE guild_id = ? AND user_id = ?", (guild, user_id)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return Preferences(guild, user_id)
        try:
            data = json.loads(row[0])
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            return Preferences.from_json(guild, user_id, data)
        except (ValueError, TypeError) as err:
            log.error("the preferences of user %s cannot be read (%s); using none", user_id, err)
            return Preferences(guild, user_id)

    async def save(self, prefs: Preferences) -> None:
        document = json.dumps(prefs.to_json(), separators=(",", ":"), sort_keys=True)
        async with self.store.transaction() as db:
            await db.execute(
                "INSERT INTO user_prefs (guild_id, user_id, data, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (guild_id, user_id) DO UPDATE SET "
                "data = excluded.data, updated_at = excluded.updated_at",
                (prefs.guild_id, prefs.user_id, document, self.engine.clock()),
            )

    async def reset(self, guild_id: str | None, user_id: str) -> Preferences:
        """Back to the defaults of /settings; the suffix and options stay (/prefer)."""
        old = await self.get(guild_id, user_id)
        fresh = Preferences(old.guild_id, user_id, suffix=old.suffix, options=old.options)
        await self.save(fresh)
        return fresh

    def modes_for(
        self, provider: str | None, guild_settings: ServerSettings | None
    ) -> tuple[str, ...]:
        """The speeds a member may pick for `provider` here (the server's mode rules)."""
        return access.allowed_modes(
            self.engine.config, provider or self.engine.default_provider, guild_settings
        )

    async def apply(self, request: JobRequest) -> JobRequest:
        """The request as the member's preferences make it (see the module doc)."""
        user_id = request.user_id
        if user_id is None or request.origin is not Origin.DISCORD:
            return request
        if request.action is Action.VARIATION and not request.strength:
            prefs = await self.get(request.guild_id, user_id)
            request = replace(request, strength=prefs.variation)
        if not request.prompt.strip():
            return request
        prefs = await self.get(request.guild_id, user_id)
        prompt = expand_options(request.prompt, prefs.options)
        if request.action is not Action.IMAGINE or request.parent_id:
            return replace(request, prompt=prompt)
        provider_name = request.provider
        if provider_name is None and prefs.provider in self.engine.providers:
            provider_name = prefs.provider
        guild_settings = await self.engine.settings.get(request.guild_id)
        target = (
            provider_name
            or access.provider_where(request, guild_settings)
            or self.engine.default_provider
        )
        provider = self.engine.providers.get(target)
        if provider is None:  # the engine refuses the name itself
            return replace(request, prompt=prompt, provider=provider_name)
        defaults = prefs.defaults()
        if prefs.mode in MODES and prefs.mode in self.modes_for(target, guild_settings):
            defaults[prefs.mode] = ""
        suffix = expand_options(prefs.suffix, prefs.options)
        prompt = merge(prompt, suffix, defaults, provider.accepted_params)
        return replace(request, prompt=prompt, provider=provider_name)


# ---- /prefer edits: each changes `prefs` and returns what to tell the member ----


def set_suffix(prefs: Preferences, value: str) -> str:
    text = " ".join(value.split())
    if len(text) > MAX_SUFFIX_CHARS:
        raise PreferenceError(
            Text("A suffix is at most {limit} characters.", limit=MAX_SUFFIX_CHARS)
        )
    expand_options(text, prefs.options)  # a loop or an unknown option is refused now
    prefs.suffix = text
    return (
        Text("Your suffix is now `{text}`.", text=text) if text else Text("Your suffix is cleared.")
    )


def set_option(prefs: Preferences, name: str, value: str) -> str:
    clean = check_option_name(name)
    text = " ".join(value.split())
    if not text or len(text) > MAX_OPTION_CHARS:
        raise PreferenceError(
            Text("An option's value is 1 to {limit} characters.", limit=MAX_OPTION_CHARS)
        )
    if clean not in prefs.options and len(prefs.options) >= MAX_OPTIONS:
        raise PreferenceError(
            Text("You have {count} options already; delete one first.", count=MAX_OPTIONS)
        )
    options = {**prefs.options, clean: text}
    expand_options(f"x --{clean}", options)  # refuses a loop by name, before it is kept
    prefs.options = options
    return Text("--{name} now stands for `{text}`.", name=clean, text=text)


def delete_option(prefs: Preferences, name: str) -> str:
    clean = name.strip().lstrip("-\u2014").lower()
    if clean not in prefs.options:
        raise PreferenceError(Text("You have no option named --{name}.", name=clean))
    del prefs.options[clean]
    return Text("--{name} is deleted.", name=clean)


def list_options(prefs: Preferences) -> str:
    if not prefs.options:
        return Text("You have no options yet; add one with /prefer option set.")
    lines = [f"`--{name}` → `{value}`" for name, value in sorted(prefs.options.items())]
    return Text("**Your options**\n{lines}", lines="\n".join(lines))
