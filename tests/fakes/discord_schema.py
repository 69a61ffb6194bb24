"""Validate request bodies sent to the fake Discord.

Two layers:

1. The ``requestBody`` schema of the matching operation in Discord's official OpenAPI
   description (``discord-openapi.json``), checked with ``jsonschema`` (Draft 2020-12).
2. Documented limits that the OpenAPI file does not encode (or encodes more loosely):
   content length, embed totals, action rows, ``custom_id`` uniqueness, modal limits,
   command name rules, ...

Everything is exposed through :class:`DiscordSchema`; :func:`get_schema` returns a
process-wide instance so the 1.2 MB spec is parsed and the validators are built once.

Deliberate leniency: ``SnowflakeType`` in the spec only allows strings, but Discord
accepts integers for snowflakes and discord.py sends ``{"id": 0}`` for new attachments,
so integers >= 0 are accepted as snowflakes.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped,unused-ignore]
import referencing
from referencing.jsonschema import DRAFT202012

__all__ = [
    "LIMITS",
    "DiscordSchema",
    "check_command_limits",
    "check_interaction_callback_limits",
    "check_message_limits",
    "find_spec_path",
    "get_schema",
]

SPEC_ENV_VAR = "DISCORD_OPENAPI_PATH"
_SPEC_NAME = "discord-openapi.json"
_SPEC_URI = "urn:discord-openapi"

# Documented limits (https://discord.com/developers/docs) that shape bodies.
LIMITS: dict[str, int] = {
    "content": 2000,
    "embeds": 10,
    "embed_title": 256,
    "embed_description": 4096,
    "embed_fields": 25,
    "embed_field_name": 256,
    "embed_field_value": 1024,
    "embed_footer_text": 2048,
    "embed_author_name": 256,
    "embed_total": 6000,
    "action_rows": 5,
    "row_buttons": 5,
    "custom_id": 100,
    "button_label": 80,
    "select_options": 25,
    "select_placeholder": 150,
    "select_option_text": 100,
    "components_v2_total": 40,
    "attachments": 10,
    "modal_title": 45,
    "modal_components": 5,
    "text_input_label": 45,
    "text_input_placeholder": 100,
    "text_input_length": 4000,
    "label_label": 45,
    "label_description": 100,
    "choices": 25,
    "choice_name": 100,
    "choice_value": 100,
    "command_name": 32,
    "command_description": 100,
    "command_options": 25,
    "command_total_chars": 4000,
    "global_chat_commands": 100,
}

FLAG_EPHEMERAL = 1 << 6
FLAG_IS_COMPONENTS_V2 = 1 << 15

# Component types
_ACTION_ROW = 1
_BUTTON = 2
_SELECT_TYPES = {3, 5, 6, 7, 8}
_TEXT_INPUT = 4
_SECTION = 9
_TEXT_DISPLAY = 10
_THUMBNAIL = 11
_CONTAINER = 17
_LABEL = 18

_BUTTON_LINK = 5
_BUTTON_PREMIUM = 6

# (method, OpenAPI path) of every operation whose body the fake validates.
VALIDATED_OPERATIONS: tuple[tuple[str, str], ...] = (
    ("POST", "/channels/{channel_id}/messages"),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}"),
    ("POST", "/interactions/{interaction_id}/{interaction_token}/callback"),
    ("POST", "/webhooks/{webhook_id}/{webhook_token}"),
    ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/@original"),
    ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"),
    ("PUT", "/applications/{application_id}/commands"),
    ("POST", "/applications/{application_id}/commands"),
    ("PATCH", "/applications/{application_id}/commands/{command_id}"),
    ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands"),
    ("POST", "/applications/{application_id}/guilds/{guild_id}/commands"),
    ("PATCH", "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}"),
)

# Interaction callback type -> schema name (the spec's body is an anyOf of these).
_CALLBACK_SCHEMAS: dict[int, str] = {
    1: "PongInteractionCallbackRequest",
    4: "CreateMessageInteractionCallbackRequest",
    5: "CreateMessageInteractionCallbackRequest",
    6: "UpdateMessageInteractionCallbackRequest",
    7: "UpdateMessageInteractionCallbackRequest",
    8: "ApplicationCommandAutocompleteCallbackRequest",
    9: "ModalInteractionCallbackRequest",
    12: "LaunchActivityInteractionCallbackRequest",
}

_MAX_ERROR_CHARS = 300


def find_spec_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Locate ``discord-openapi.json``.

    Order: the explicit argument, ``$DISCORD_OPENAPI_PATH``, a copy somewhere in the
    repository (``reference/``, ``tests/fakes/``, ``tests/data/``, ``docs/``), then
    ``/work/shared/reference/``.
    """
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(Path(explicit))
    env = os.environ.get(SPEC_ENV_VAR)
    if env:
        candidates.append(Path(env))
    here = Path(__file__).resolve().parent
    repo = here.parent.parent
    for sub in ("reference", "tests/fakes", "tests/data", "tests/reference", "docs", "shared"):
        candidates.append(repo / sub / _SPEC_NAME)
    # CI and developers keep ../shared beside the clone.
    candidates.append(repo.parent / "shared" / "reference" / _SPEC_NAME)
    candidates.append(Path("/work/shared/reference") / _SPEC_NAME)
    for cand in candidates:
        if cand.is_file():
            return cand
    return None


def _short(text: str, limit: int = _MAX_ERROR_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _loosen_snowflakes(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    original = schemas.get("SnowflakeType")
    if original is None:
        return
    schemas["SnowflakeType"] = {
        "anyOf": [original, {"type": "integer", "minimum": 0}],
    }


class DiscordSchema:
    """Pre-built validators for the request bodies of the operations the fake serves."""

    def __init__(self, spec_path: str | os.PathLike[str] | None = None) -> None:
        self.spec_path: Path | None = find_spec_path(spec_path)
        self.available: bool = self.spec_path is not None
        self._validators: dict[tuple[str, str, str], jsonschema.protocols.Validator] = {}
        self._callback_validators: dict[int, jsonschema.protocols.Validator] = {}
        if self.spec_path is None:
            return
        with open(self.spec_path, encoding="utf-8") as fh:
            spec: dict[str, Any] = json.load(fh)
        _loosen_snowflakes(spec)
        schemas: dict[str, Any] = spec["components"]["schemas"]
        pending: dict[tuple[str, str, str], str] = {}
        for index, (method, path) in enumerate(VALIDATED_OPERATIONS):
            op = spec["paths"].get(path, {}).get(method.lower())
            if not op or "requestBody" not in op:
                continue
            content: dict[str, Any] = op["requestBody"].get("content", {})
            json_schema = content.get("application/json", {}).get("schema")
            if json_schema is None:
                continue
            name = f"__fake_op_{index}"
            schemas[name] = copy.deepcopy(json_schema)
            pending[(method, path, "json")] = name
        resource = referencing.Resource.from_contents(spec, default_specification=DRAFT202012)
        registry: referencing.Registry[Any] = referencing.Registry().with_resource(
            _SPEC_URI, resource
        )
        cls = jsonschema.Draft202012Validator
        for key, name in pending.items():
            ref = {"$ref": f"{_SPEC_URI}#/components/schemas/{name}"}
            self._validators[key] = cls(ref, registry=registry)
        for cb_type, name in _CALLBACK_SCHEMAS.items():
            if name in schemas:
                ref = {"$ref": f"{_SPEC_URI}#/components/schemas/{name}"}
                self._callback_validators[cb_type] = cls(ref, registry=registry)
        # Warm up $ref resolution so the first real request is not slow.
        for validator in [*self._validators.values(), *self._callback_validators.values()]:
            validator.is_valid({})

    # ------------------------------------------------------------------ schema layer
    def schema_errors(self, method: str, route: str, body: Any) -> list[str]:
        """Errors of ``body`` against the OpenAPI requestBody schema of ``method route``."""
        method = method.upper()
        validator: jsonschema.protocols.Validator | None
        if route == "/interactions/{interaction_id}/{interaction_token}/callback":
            cb_type = body.get("type") if isinstance(body, Mapping) else None
            validator = self._callback_validators.get(cb_type) if isinstance(cb_type, int) else None
            if validator is None:
                validator = self._validators.get((method, route, "json"))
        else:
            validator = self._validators.get((method, route, "json"))
        if validator is None:
            return []
        errors = list(validator.iter_errors(body))
        if not errors:
            return []
        out: list[str] = []
        best = jsonschema.exceptions.best_match(errors)
        if best is not None:
            out.append(self._format_error(best))
        for err in errors:
            msg = self._format_error(err)
            if msg not in out:
                out.append(msg)
            if len(out) >= 5:
                break
        return out

    @staticmethod
    def _format_error(err: jsonschema.ValidationError) -> str:
        where = "/".join(str(p) for p in err.absolute_path) or "<body>"
        if err.context:
            deepest = max(err.context, key=lambda e: len(e.absolute_path))
            inner = "/".join(str(p) for p in deepest.absolute_path) or "<body>"
            return _short(f"schema: {inner}: {deepest.message}")
        return _short(f"schema: {where}: {err.message}")

    # ------------------------------------------------------------------ full check
    def validate(
        self,
        method: str,
        route: str,
        body: Any,
        *,
        file_count: int = 0,
    ) -> list[str]:
        """All problems of one request body: schema errors plus documented limits.

        ``route`` is the OpenAPI path template (``/channels/{channel_id}/messages``).
        ``body`` is the JSON body or the decoded ``payload_json`` of a multipart body.
        """
        problems: list[str] = []
        if self.available:
            problems.extend(self.schema_errors(method, route, body))
        problems.extend(check_limits(method, route, body, file_count=file_count))
        return problems


@functools.lru_cache(maxsize=4)
def _cached_schema(spec_path: str | None) -> DiscordSchema:
    return DiscordSchema(spec_path)


def get_schema(spec_path: str | os.PathLike[str] | None = None) -> DiscordSchema:
    """Process-wide :class:`DiscordSchema` (built once per spec path)."""
    return _cached_schema(None if spec_path is None else str(spec_path))


# ====================================================================== limits layer
_MESSAGE_ROUTES = {
    ("POST", "/channels/{channel_id}/messages"),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}"),
    ("POST", "/webhooks/{webhook_id}/{webhook_token}"),
    ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/@original"),
    ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"),
}
_COMMAND_LIST_ROUTES = {
    ("PUT", "/applications/{application_id}/commands"),
    ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands"),
}
_COMMAND_ROUTES = {
    ("POST", "/applications/{application_id}/commands"),
    ("PATCH", "/applications/{application_id}/commands/{command_id}"),
    ("POST", "/applications/{application_id}/guilds/{guild_id}/commands"),
    ("PATCH", "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}"),
}


def check_limits(method: str, route: str, body: Any, *, file_count: int = 0) -> list[str]:
    """Documented limits for ``method route`` (no OpenAPI needed)."""
    key = (method.upper(), route)
    if key in _MESSAGE_ROUTES:
        if not isinstance(body, Mapping):
            return ["body: expected a JSON object"]
        return check_message_limits(body, file_count=file_count)
    if key == ("POST", "/interactions/{interaction_id}/{interaction_token}/callback"):
        if not isinstance(body, Mapping):
            return ["body: expected a JSON object"]
        return check_interaction_callback_limits(body, file_count=file_count)
    if key in _COMMAND_LIST_ROUTES:
        if not isinstance(body, list):
            return ["body: expected a JSON array of commands"]
        return check_command_list_limits(body, global_scope="guilds" not in route)
    if key in _COMMAND_ROUTES:
        if not isinstance(body, Mapping):
            return ["body: expected a JSON object"]
        return check_command_limits(body, where="command", partial=method.upper() == "PATCH")
    return []


def _strlen(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def check_message_limits(
    body: Mapping[str, Any], *, file_count: int = 0, where: str = "message"
) -> list[str]:
    """Limits of a message-like body (create/edit message, webhook, callback data)."""
    problems: list[str] = []
    content = body.get("content")
    if isinstance(content, str) and len(content) > LIMITS["content"]:
        problems.append(
            f"{where}.content: {len(content)} chars > {LIMITS['content']} "
            "(Discord: 50035 BASE_TYPE_MAX_LENGTH)"
        )
    flags = body.get("flags") or 0
    v2 = isinstance(flags, int) and bool(flags & FLAG_IS_COMPONENTS_V2)
    embeds = body.get("embeds")
    if isinstance(embeds, list):
        problems.extend(check_embeds(embeds, where=f"{where}.embeds"))
        if v2 and embeds:
            problems.append(f"{where}.embeds: not allowed with IS_COMPONENTS_V2")
    if v2 and content:
        problems.append(f"{where}.content: not allowed with IS_COMPONENTS_V2")
    components = body.get("components")
    if isinstance(components, list):
        problems.extend(check_message_components(components, v2=v2, where=f"{where}.components"))
    attachments = body.get("attachments")
    if isinstance(attachments, list) and len(attachments) > LIMITS["attachments"]:
        problems.append(
            f"{where}.attachments: {len(attachments)} attachments > {LIMITS['attachments']}"
        )
    if file_count > LIMITS["attachments"]:
        problems.append(f"{where}: {file_count} uploaded files > {LIMITS['attachments']}")
    return problems


def check_embeds(embeds: Sequence[Any], *, where: str = "embeds") -> list[str]:
    problems: list[str] = []
    if len(embeds) > LIMITS["embeds"]:
        problems.append(f"{where}: {len(embeds)} embeds > {LIMITS['embeds']}")
    total = 0
    for i, embed in enumerate(embeds):
        if not isinstance(embed, Mapping):
            problems.append(f"{where}[{i}]: not an object")
            continue
        p = f"{where}[{i}]"
        checks = [
            ("title", embed.get("title"), LIMITS["embed_title"]),
            ("description", embed.get("description"), LIMITS["embed_description"]),
        ]
        footer = embed.get("footer")
        if isinstance(footer, Mapping):
            checks.append(("footer.text", footer.get("text"), LIMITS["embed_footer_text"]))
        author = embed.get("author")
        if isinstance(author, Mapping):
            checks.append(("author.name", author.get("name"), LIMITS["embed_author_name"]))
        fields = embed.get("fields") or []
        if isinstance(fields, list):
            if len(fields) > LIMITS["embed_fields"]:
                problems.append(f"{p}.fields: {len(fields)} fields > {LIMITS['embed_fields']}")
            for j, field in enumerate(fields):
                if not isinstance(field, Mapping):
                    continue
                name, value = field.get("name"), field.get("value")
                checks.append((f"fields[{j}].name", name, LIMITS["embed_field_name"]))
                checks.append((f"fields[{j}].value", value, LIMITS["embed_field_value"]))
                if not name or not value:
                    problems.append(f"{p}.fields[{j}]: name and value are required and non-empty")
        for label, value, limit in checks:
            n = _strlen(value)
            total += n
            if n > limit:
                problems.append(f"{p}.{label}: {n} chars > {limit}")
    if total > LIMITS["embed_total"]:
        problems.append(f"{where}: {total} characters in all embeds > {LIMITS['embed_total']}")
    return problems


def _walk_components(components: Iterable[Any]) -> Iterator[Mapping[str, Any]]:
    for comp in components:
        if not isinstance(comp, Mapping):
            continue
        yield comp
        children = comp.get("components")
        if isinstance(children, list):
            yield from _walk_components(children)
        for key in ("component", "accessory"):
            child = comp.get(key)
            if isinstance(child, Mapping):
                yield from _walk_components([child])


def _check_custom_ids(components: Sequence[Any], where: str) -> list[str]:
    problems: list[str] = []
    seen: dict[str, int] = {}
    for comp in _walk_components(components):
        cid = comp.get("custom_id")
        if cid is None:
            continue
        if not isinstance(cid, str) or not 1 <= len(cid) <= LIMITS["custom_id"]:
            n = len(cid) if isinstance(cid, str) else "non-string"
            problems.append(f"{where}: custom_id {str(cid)[:40]!r} length {n} not in 1..100")
        seen[cid] = seen.get(cid, 0) + 1
    for cid, count in seen.items():
        if count > 1:
            problems.append(f"{where}: custom_id {cid[:60]!r} used {count} times (must be unique)")
    return problems


def _check_button(comp: Mapping[str, Any], p: str) -> list[str]:
    problems: list[str] = []
    style = comp.get("style")
    label = comp.get("label")
    if _strlen(label) > LIMITS["button_label"]:
        problems.append(f"{p}.label: {_strlen(label)} chars > {LIMITS['button_label']}")
    if style == _BUTTON_LINK:
        if not comp.get("url"):
            problems.append(f"{p}: link button needs a url")
        if comp.get("custom_id") is not None:
            problems.append(f"{p}: link button cannot have a custom_id")
    elif style == _BUTTON_PREMIUM:
        if not comp.get("sku_id"):
            problems.append(f"{p}: premium button needs a sku_id")
    else:
        if not comp.get("custom_id"):
            problems.append(f"{p}: non-link button needs a custom_id")
        if comp.get("url") is not None:
            problems.append(f"{p}: only link buttons can have a url")
    if style != _BUTTON_PREMIUM and not label and not comp.get("emoji"):
        problems.append(f"{p}: button needs a label or an emoji")
    return problems


def _check_select(comp: Mapping[str, Any], p: str) -> list[str]:
    problems: list[str] = []
    if _strlen(comp.get("placeholder")) > LIMITS["select_placeholder"]:
        problems.append(f"{p}.placeholder: > {LIMITS['select_placeholder']} chars")
    if not comp.get("custom_id"):
        problems.append(f"{p}: select needs a custom_id")
    options = comp.get("options")
    if comp.get("type") == 3:
        if not isinstance(options, list) or not 1 <= len(options) <= LIMITS["select_options"]:
            n = len(options) if isinstance(options, list) else 0
            problems.append(f"{p}.options: {n} options not in 1..{LIMITS['select_options']}")
        else:
            for j, opt in enumerate(options):
                if not isinstance(opt, Mapping):
                    continue
                for key in ("label", "value", "description"):
                    if _strlen(opt.get(key)) > LIMITS["select_option_text"]:
                        problems.append(f"{p}.options[{j}].{key}: > 100 chars")
    max_values = comp.get("max_values")
    if isinstance(max_values, int) and not 1 <= max_values <= 25:
        problems.append(f"{p}.max_values: {max_values} not in 1..25")
    min_values = comp.get("min_values")
    if isinstance(min_values, int) and not 0 <= min_values <= 25:
        problems.append(f"{p}.min_values: {min_values} not in 0..25")
    return problems


def check_message_components(
    components: Sequence[Any], *, v2: bool = False, where: str = "components"
) -> list[str]:
    """Action rows / buttons / selects (and Components V2 totals) of a message."""
    problems: list[str] = []
    if v2:
        total = sum(1 for _ in _walk_components(components))
        if total > LIMITS["components_v2_total"]:
            problems.append(f"{where}: {total} components > {LIMITS['components_v2_total']}")
    elif len(components) > LIMITS["action_rows"]:
        problems.append(f"{where}: {len(components)} action rows > {LIMITS['action_rows']}")
    for i, top in enumerate(components):
        if not isinstance(top, Mapping):
            continue
        if not v2 and top.get("type") != _ACTION_ROW:
            problems.append(
                f"{where}[{i}]: top-level component type {top.get('type')} needs IS_COMPONENTS_V2"
            )
    for comp in _walk_components(components):
        ctype = comp.get("type")
        p = f"{where}<type {ctype}>"
        if ctype == _ACTION_ROW:
            children = [c for c in comp.get("components") or [] if isinstance(c, Mapping)]
            buttons = [c for c in children if c.get("type") == _BUTTON]
            selects = [c for c in children if c.get("type") in _SELECT_TYPES]
            if not children:
                problems.append(f"{p}: action row is empty")
            if len(buttons) > LIMITS["row_buttons"]:
                problems.append(f"{p}: {len(buttons)} buttons in a row > {LIMITS['row_buttons']}")
            if selects and len(children) > 1:
                problems.append(f"{p}: a select menu must be alone in its action row")
            if any(c.get("type") == _TEXT_INPUT for c in children):
                problems.append(f"{p}: text inputs are only allowed in modals")
        elif ctype == _BUTTON:
            problems.extend(_check_button(comp, f"{where}<button {comp.get('custom_id')!r}>"))
        elif ctype in _SELECT_TYPES:
            problems.extend(_check_select(comp, f"{where}<select {comp.get('custom_id')!r}>"))
    problems.extend(_check_custom_ids(components, where))
    return problems


def check_modal_limits(data: Mapping[str, Any], *, where: str = "modal") -> list[str]:
    problems: list[str] = []
    title = data.get("title")
    if not isinstance(title, str) or not 1 <= len(title) <= LIMITS["modal_title"]:
        problems.append(f"{where}.title: length {_strlen(title)} not in 1..{LIMITS['modal_title']}")
    cid = data.get("custom_id")
    if not isinstance(cid, str) or not 1 <= len(cid) <= LIMITS["custom_id"]:
        problems.append(f"{where}.custom_id: length {_strlen(cid)} not in 1..100")
    components = data.get("components")
    if not isinstance(components, list) or not components:
        problems.append(f"{where}.components: at least one component is required")
        return problems
    inputs = 0
    for i, top in enumerate(components):
        if not isinstance(top, Mapping):
            continue
        ttype = top.get("type")
        if ttype == _ACTION_ROW:
            inputs += 1
            children = top.get("components") or []
            if len(children) != 1:
                problems.append(
                    f"{where}.components[{i}]: a modal action row holds exactly 1 input"
                )
        elif ttype == _LABEL:
            inputs += 1
            if _strlen(top.get("label")) > LIMITS["label_label"]:
                problems.append(f"{where}.components[{i}].label: > {LIMITS['label_label']} chars")
            if _strlen(top.get("description")) > LIMITS["label_description"]:
                problems.append(f"{where}.components[{i}].description: > 100 chars")
            if not isinstance(top.get("component"), Mapping):
                problems.append(f"{where}.components[{i}]: label needs a component")
        elif ttype != _TEXT_DISPLAY:
            problems.append(f"{where}.components[{i}]: type {ttype} not allowed at modal top level")
    if inputs > LIMITS["modal_components"]:
        problems.append(f"{where}: {inputs} inputs > {LIMITS['modal_components']}")
    for comp in _walk_components(components):
        if comp.get("type") != _TEXT_INPUT:
            continue
        p = f"{where}<text_input {comp.get('custom_id')!r}>"
        if _strlen(comp.get("label")) > LIMITS["text_input_label"]:
            problems.append(f"{p}.label: > {LIMITS['text_input_label']} chars")
        if _strlen(comp.get("placeholder")) > LIMITS["text_input_placeholder"]:
            problems.append(f"{p}.placeholder: > {LIMITS['text_input_placeholder']} chars")
        if _strlen(comp.get("value")) > LIMITS["text_input_length"]:
            problems.append(f"{p}.value: > {LIMITS['text_input_length']} chars")
        lo, hi = comp.get("min_length"), comp.get("max_length")
        if isinstance(lo, int) and not 0 <= lo <= LIMITS["text_input_length"]:
            problems.append(f"{p}.min_length: {lo} not in 0..4000")
        if isinstance(hi, int) and not 1 <= hi <= LIMITS["text_input_length"]:
            problems.append(f"{p}.max_length: {hi} not in 1..4000")
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            problems.append(f"{p}: min_length {lo} > max_length {hi}")
    problems.extend(_check_custom_ids(components, f"{where}.components"))
    return problems


def check_choices(choices: Sequence[Any], *, where: str = "choices") -> list[str]:
    problems: list[str] = []
    if len(choices) > LIMITS["choices"]:
        problems.append(f"{where}: {len(choices)} choices > {LIMITS['choices']}")
    for j, choice in enumerate(choices):
        if not isinstance(choice, Mapping):
            continue
        name = choice.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= LIMITS["choice_name"]:
            problems.append(f"{where}[{j}].name: length {_strlen(name)} not in 1..100")
        value = choice.get("value")
        if isinstance(value, str) and len(value) > LIMITS["choice_value"]:
            problems.append(f"{where}[{j}].value: {len(value)} chars > {LIMITS['choice_value']}")
    return problems


def check_interaction_callback_limits(body: Mapping[str, Any], *, file_count: int = 0) -> list[str]:
    cb_type = body.get("type")
    data = body.get("data")
    where = f"callback(type={cb_type}).data"
    if cb_type in (4, 7) and isinstance(data, Mapping):
        return check_message_limits(data, file_count=file_count, where=where)
    if cb_type == 9:
        if not isinstance(data, Mapping):
            return [f"{where}: modal data is required"]
        return check_modal_limits(data, where=where)
    if cb_type == 8 and isinstance(data, Mapping):
        choices = data.get("choices")
        if isinstance(choices, list):
            return check_choices(choices, where=f"{where}.choices")
    if cb_type not in _CALLBACK_SCHEMAS:
        return [f"callback: unknown interaction callback type {cb_type!r}"]
    return []


_NAME_EXTRA = set("-_'")


def _valid_command_name(name: str, *, chat_input: bool) -> bool:
    if not 1 <= len(name) <= LIMITS["command_name"]:
        return False
    if not chat_input:
        return True
    if name != name.lower():
        return False
    return all(ch.isalnum() or ch in _NAME_EXTRA or ord(ch) >= 0x0900 for ch in name)


def _command_chars(cmd: Mapping[str, Any]) -> int:
    total = _strlen(cmd.get("name")) + _strlen(cmd.get("description"))
    for opt in cmd.get("options") or []:
        if not isinstance(opt, Mapping):
            continue
        total += _command_chars(opt)
        for choice in opt.get("choices") or []:
            if isinstance(choice, Mapping):
                total += _strlen(choice.get("name")) + len(str(choice.get("value", "")))
    return total


def _check_options(options: Sequence[Any], where: str) -> list[str]:
    problems: list[str] = []
    if len(options) > LIMITS["command_options"]:
        problems.append(f"{where}: {len(options)} options > {LIMITS['command_options']}")
    names: set[str] = set()
    seen_optional = False
    for i, opt in enumerate(options):
        if not isinstance(opt, Mapping):
            continue
        name = opt.get("name")
        p = f"{where}[{i}]({name!r})"
        if not isinstance(name, str) or not _valid_command_name(name, chat_input=True):
            problems.append(f"{p}.name: must be 1-32 lowercase letters/digits/-_")
        elif name in names:
            problems.append(f"{p}.name: duplicate option name")
        else:
            names.add(name)
        desc = opt.get("description")
        if not isinstance(desc, str) or not 1 <= len(desc) <= LIMITS["command_description"]:
            problems.append(f"{p}.description: length {_strlen(desc)} not in 1..100")
        otype = opt.get("type")
        if otype in (1, 2):
            problems.extend(_check_options(opt.get("options") or [], f"{p}.options"))
            continue
        required = bool(opt.get("required"))
        if required and seen_optional:
            problems.append(f"{p}: required options must come before optional ones")
        if not required:
            seen_optional = True
        choices = opt.get("choices")
        if isinstance(choices, list):
            problems.extend(check_choices(choices, where=f"{p}.choices"))
            if choices and opt.get("autocomplete"):
                problems.append(f"{p}: autocomplete cannot be used with choices")
        lo, hi = opt.get("min_length"), opt.get("max_length")
        if isinstance(lo, int) and not 0 <= lo <= 6000:
            problems.append(f"{p}.min_length: {lo} not in 0..6000")
        if isinstance(hi, int) and not 1 <= hi <= 6000:
            problems.append(f"{p}.max_length: {hi} not in 1..6000")
    return problems


def check_command_limits(
    cmd: Mapping[str, Any], *, where: str = "command", partial: bool = False
) -> list[str]:
    """Name/description/option rules of one application command."""
    problems: list[str] = []
    ctype = cmd.get("type", 1) or 1
    chat_input = ctype == 1
    name = cmd.get("name")
    p = f"{where}({name!r})"
    if (name is not None or not partial) and (
        not isinstance(name, str) or not _valid_command_name(name, chat_input=chat_input)
    ):
        problems.append(f"{p}.name: must be 1-32 chars (lowercase, no spaces for slash commands)")
    desc = cmd.get("description")
    if chat_input and (desc is not None or not partial):
        if not isinstance(desc, str) or not 1 <= len(desc) <= LIMITS["command_description"]:
            problems.append(f"{p}.description: length {_strlen(desc)} not in 1..100")
    elif not chat_input and desc:
        problems.append(f"{p}.description: must be empty for user/message commands")
    options = cmd.get("options")
    if isinstance(options, list):
        problems.extend(_check_options(options, f"{p}.options"))
    total = _command_chars(cmd)
    if total > LIMITS["command_total_chars"]:
        problems.append(f"{p}: {total} characters in total > {LIMITS['command_total_chars']}")
    return problems


def check_command_list_limits(commands: Sequence[Any], *, global_scope: bool) -> list[str]:
    problems: list[str] = []
    seen: set[tuple[int, str]] = set()
    chat = 0
    for i, cmd in enumerate(commands):
        if not isinstance(cmd, Mapping):
            problems.append(f"commands[{i}]: not an object")
            continue
        problems.extend(check_command_limits(cmd, where=f"commands[{i}]"))
        ctype = cmd.get("type", 1) or 1
        key = (ctype, str(cmd.get("name")))
        if key in seen:
            problems.append(f"commands[{i}]: duplicate command name {key[1]!r} for type {ctype}")
        seen.add(key)
        if ctype == 1:
            chat += 1
    if chat > LIMITS["global_chat_commands"]:
        scope = "global" if global_scope else "guild"
        problems.append(
            f"commands: {chat} {scope} slash commands > {LIMITS['global_chat_commands']}"
        )
    return problems
