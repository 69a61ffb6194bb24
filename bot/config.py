"""Configuration: the TOML file, `${VAR}` expansion, and the defaults.

This is the only module that reads files or environment variables for settings.
Secrets are `SecretStr`: they print as `**********` in reprs, logs and errors.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.vocab import Action

DEFAULT_CONFIG_FILE = "config.toml"
CONFIG_ENV = "ATELIER_CONFIG"


class ConfigError(Exception):
    """A configuration problem, worded for the person who edits the file."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DiscordConfig(_Section):
    token: SecretStr | None = None
    api_base_url: str = "https://discord.com/api/v10"
    guild_ids: list[int] = Field(default_factory=list)
    # Servers Atelier serves; empty: every server it is added to. Others are refused
    # and left (keep the bot private: turn off "Public Bot" in the Developer Portal).
    allowed_guild_ids: list[int] = Field(default_factory=list)
    # Who may press a job's buttons: "anyone" in the channel, or only its "requester".
    button_access: Literal["anyone", "requester"] = "anyone"
    # Fewest seconds between two progress edits of one message.
    edit_interval: float = Field(default=3.0, ge=0.5, le=60)
    # Most message creates/edits per channel per 5 s window (Discord allows about 5).
    channel_edits_per_5s: int = Field(default=4, ge=1, le=10)
    # Largest attachment accepted for /imagine, /describe, /blend, in MiB.
    max_attachment_mib: float = Field(default=10, gt=0, le=100)
    # Shard clusters: this process connects `shard_ids` (all when empty) of `shard_count`
    # shards. Unset: Discord's recommended count, every shard in this process.
    shard_count: int | None = Field(default=None, ge=1, le=100_000)
    shard_ids: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shards_fit(self) -> DiscordConfig:
        problem = shard_problem(self.shard_ids, self.shard_count)
        if problem:
            raise ValueError(problem)
        return self


def shard_problem(shard_ids: list[int], shard_count: int | None) -> str:
    """What is wrong with a shard choice ("" when nothing), worded for the operator."""
    if shard_ids and shard_count is None:
        return "shard_ids needs shard_count too (how many shards the whole bot has)"
    if shard_count is not None:
        outside = [i for i in shard_ids if not 0 <= i < shard_count]
        if outside:
            return f"shard ids must be 0 to {shard_count - 1} with shard_count {shard_count}"
    if len(set(shard_ids)) != len(shard_ids):
        return "shard_ids lists a shard twice"
    return ""


class StorageConfig(_Section):
    path: str = "data/atelier.db"
    media_dir: str = "data/media"
    # A PostgreSQL database instead of the SQLite file at `path`: "postgresql://user@host/db"
    # (the password is best left to $PGPASSWORD or ~/.pgpass, out of the config file).
    url: str = ""
    # PostgreSQL: seconds a process's hold on a job lasts unless renewed (every third of
    # it); after a process dies, another one takes its jobs over within this time.
    lease_seconds: float = Field(default=30.0, ge=1.0, le=3600.0)

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                'must be a PostgreSQL URL such as "postgresql://atelier@localhost/atelier" '
                "(leave it out to use the SQLite file at [storage] path)"
            )
        return value

    @property
    def target(self) -> str:
        """What the store opens: the PostgreSQL URL when set, else the SQLite path."""
        return self.url or self.path


class EngineConfig(_Section):
    # A job with no result after this many minutes ends as failed.
    job_deadline_minutes: float = Field(default=30, gt=0, le=24 * 60)
    # Largest image downloaded from a provider, in MiB.
    max_download_mib: float = Field(default=50, gt=0, le=500)
    # Seconds one image download may take in all (retries and redirects included), on
    # top of request_timeout per read: a host that trickles bytes fails the job here.
    download_timeout_seconds: float = Field(default=60, gt=0, le=3600)
    # Jobs one user may have running at once (0 = no limit).
    max_active_per_user: int = Field(default=0, ge=0)
    # Jobs one user may send to providers in any 24 hours (0 = no limit).
    max_jobs_per_user_per_day: int = Field(default=0, ge=0)
    # Largest attachment accepted, in pixels (width x height), checked from the file's
    # header before it is decoded: 8192 x 8192 by default. Pillow's own bomb guard
    # starts at about 89 million.
    max_attachment_pixels: int = Field(default=8192 * 8192, ge=1_000_000, le=89_000_000)
    # New jobs are refused ("disk") while the media folder's disk has less free space
    # than this, in MiB, before anything is sent or charged (0 = no floor).
    min_free_mib: float = Field(default=500, ge=0)


class ModerationConfig(_Section):
    # Words and phrases refused in prompts on every server and in the terminal, before
    # anything is sent or charged (each server adds its own with /server). Matched on
    # word boundaries, ignoring case; Chinese/Japanese/Korean words as substrings.
    banned_words: list[str] = Field(default_factory=list)
    # Check result images before they are posted, in channels not marked NSFW: "off",
    # or "nudenet" (needs `pip install -e '.[nsfw]'`; its model ships in the package).
    # Each server then chooses what happens to a flagged image (/server image-check).
    image_check: Literal["off", "nudenet"] = "off"
    # Lowest detector score that flags an image (0-1).
    image_check_score: float = Field(default=0.5, gt=0, le=1)

    @field_validator("image_check")
    @classmethod
    def _detector_installed(cls, kind: str) -> str:
        if kind == "nudenet" and importlib.util.find_spec("nudenet") is None:
            raise ValueError(
                "image_check = \"nudenet\" needs the nsfw extra: pip install -e '.[nsfw]'"
            )
        return kind


class SpendingConfig(_Section):
    # Credits one user may spend per UTC day and per UTC month, across every server
    # (0 = no limit). A server's per-role limits may lower these, never raise them.
    daily_credits: float = Field(default=0, ge=0)
    monthly_credits: float = Field(default=0, ge=0)
    # The same press on the same job by the same user within this many seconds is one
    # job (a double click pays once).
    duplicate_seconds: float = Field(default=5, ge=0, le=60)


# What a configured paid provider gets when the file has no [spending] section: a
# paid key must never be silently unlimited (set 0 explicitly to mean "no limit").
PAID_DEFAULT_SPENDING = SpendingConfig(daily_credits=50, monthly_credits=500)


class MediaConfig(_Section):
    # Finished jobs' images are deleted this many days after the job was last used
    # (finished, or a button pressed on it); 0 = keep them by age for ever. Buttons on
    # a job whose images are gone answer so.
    retention_days: float = Field(default=30, ge=0)
    # The media folder is kept under this many MiB by deleting the least recently used
    # finished jobs' images first (0 = no cap). Running jobs and jobs used in the last
    # hour are never deleted.
    max_total_mib: float = Field(default=10240, ge=0)


class HttpConfig(_Section):
    # The bot's one HTTP server: provider callbacks (midjourney-proxy's notifyHook),
    # /healthz, /metrics and the web pages. It listens when `enabled` is true or a
    # public_url is set.
    enabled: bool = False
    # The address providers and members' browsers reach Atelier at, e.g.
    # "https://bot.example.com" (a reverse proxy in front of listen_port). Empty: no
    # callbacks and no web pages (health and metrics still served when enabled).
    public_url: str = ""
    listen_host: str = "0.0.0.0"
    listen_port: int = Field(default=8080, ge=0, le=65535)
    # The web pages' links (Vary (Region) editor, /gallery) expire after this many
    # minutes. The key that signs them: this, or one made once and kept beside the store
    # (web.key); never logged.
    link_minutes: float = Field(default=15, gt=0, le=24 * 60)
    link_secret: SecretStr | None = None

    @property
    def listening(self) -> bool:
        return self.enabled or bool(self.public_url)


class CallbacksConfig(_Section):
    # The older name of [http], from when it served callbacks only; still read, so
    # existing files keep working. [http] wins when both are given.
    public_url: str = ""
    listen_host: str = "0.0.0.0"
    listen_port: int = Field(default=8080, ge=0, le=65535)


class _ProviderBase(_Section):
    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    # Seconds between polls of one running task (the runner batches across tasks).
    poll_interval: float | None = Field(default=None, gt=0, le=300)
    # Seconds for one HTTP request to the provider.
    request_timeout: float = Field(default=30, gt=0, le=300)
    # Jobs sent to this provider at once (0 = no limit); more wait in Atelier's queue,
    # in order, instead of being refused (midjourney-proxy accounts queue ~10 each).
    max_concurrent: int = Field(default=0, ge=0, le=10_000)
    # Speed modes members may ask for here (--fast/--relax/--turbo); empty: every mode.
    # A server's managers may narrow this further with /server modes.
    allowed_modes: list[Literal["fast", "relax", "turbo"]] = Field(default_factory=list)
    # Origins besides base_url's whose image links may point at a private address (a
    # self-hosted relay's own image store, e.g. "http://10.0.0.7:9000"). Any other image
    # link, and every redirect target, must resolve to public addresses only.
    image_origins: list[str] = Field(default_factory=list)
    # Credits each action costs here, by action name (imagine, upscale, variation, ...);
    # an action not listed costs 1. A U1-U4 that only picks an image costs nothing.
    costs: dict[str, float] = Field(default_factory=dict)

    @field_validator("costs")
    @classmethod
    def _known_actions(cls, costs: dict[str, float]) -> dict[str, float]:
        known = {action.value for action in Action}
        for key, value in costs.items():
            if key not in known:
                raise ValueError(
                    f"costs: {key!r} is not an action; use one of: {', '.join(sorted(known))}"
                )
            if value < 0:
                raise ValueError(f"costs: {key} must not be negative")
        return costs


class MjProxyConfig(_ProviderBase):
    kind: Literal["mj-proxy"]
    base_url: str
    api_key: SecretStr | None = None
    # How the key travels; the servers disagree (see README):
    #   "bearer"        Authorization: Bearer <key> + mj-api-secret: <key>
    #                   (new-api relays, 佩奇/aigc369, novicezk)
    #   "mj-api-secret" mj-api-secret: <key>         (novicezk)
    #   "authorization" Authorization: <key>         (trueai, verbatim)
    auth_style: Literal["bearer", "mj-api-secret", "authorization"] = "bearer"
    # Default speed for jobs whose prompt does not say --fast/--relax/--turbo.
    mode: Literal["fast", "relax", "turbo"] | None = None
    # "path": /mj-relax/mj/... (trueai, aggregators); "prompt": add --relax to the prompt.
    mode_style: Literal["path", "prompt"] = "prompt"
    bot_type: Literal["MID_JOURNEY", "NIJI_JOURNEY"] = "MID_JOURNEY"
    account_filter: dict[str, Any] | None = None
    notify_hook: str | None = None
    # Poll with POST /mj/task/list-by-condition (falls back to one-by-one when absent).
    batch_fetch: bool = True
    # Offer the extras of midjourney-proxy-plus and the aggregators (shorten, face swap).
    plus_extras: bool = True

    @model_validator(mode="after")
    def _mode_allowed(self) -> MjProxyConfig:
        # Otherwise every prompt without its own mode would be refused.
        if self.mode and self.allowed_modes and self.mode not in self.allowed_modes:
            raise ValueError(f"mode {self.mode!r} is not one of allowed_modes {self.allowed_modes}")
        return self


class MaasMjConfig(_ProviderBase):
    kind: Literal["maas-mj"]
    base_url: str = "https://genaiapi.cloudsway.net/v1/ai"
    endpoint: str = Field(min_length=1)
    api_key: SecretStr | None = None


class MaasFluxConfig(_ProviderBase):
    kind: Literal["maas-flux"]
    base_url: str = "https://genaiapi.cloudsway.net/v2/ai"
    endpoint: str = Field(min_length=1)
    api_key: SecretStr | None = None
    batchsize: int = Field(default=4, ge=1, le=8)
    steps: int = Field(default=4, ge=4, le=10)


class SandboxConfig(_ProviderBase):
    kind: Literal["sandbox"]
    # Seconds a sandbox job takes from submit to result.
    duration: float = Field(default=6.0, ge=0, le=600)
    # Long side of the generated images, in pixels.
    size: int = Field(default=1024, ge=64, le=4096)
    # Prompts containing any of these words fail like a banned prompt (for trying errors).
    banned_words: list[str] = Field(default_factory=lambda: ["forbidden"])
    # Where the sandbox keeps its tasks, so that they survive a restart like a real server's.
    state_dir: str = "data/sandbox"


ProviderConfig = Annotated[
    MjProxyConfig | MaasMjConfig | MaasFluxConfig | SandboxConfig,
    Field(discriminator="kind"),
]


def _default_providers() -> list[ProviderConfig]:
    # With no config file at all, the offline sandbox is the one provider.
    return [SandboxConfig(name="sandbox", kind="sandbox")]


class Config(_Section):
    discord: DiscordConfig = Field(default_factory=DiscordConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    callbacks: CallbacksConfig = Field(default_factory=CallbacksConfig)
    media: MediaConfig = Field(default_factory=MediaConfig)
    spending: SpendingConfig = Field(default_factory=SpendingConfig)
    moderation: ModerationConfig = Field(default_factory=ModerationConfig)
    providers: list[ProviderConfig] = Field(default_factory=_default_providers)
    # Provider used when a request names none; defaults to the first one.
    default_provider: str | None = None
    source: str = Field(default="(built-in defaults)", exclude=True)

    @field_validator("providers")
    @classmethod
    def _unique_names(cls, providers: list[Any]) -> list[Any]:
        if not providers:
            raise ValueError("at least one [[providers]] entry is needed")
        seen: set[str] = set()
        for provider in providers:
            if provider.name in seen:
                raise ValueError(f"provider name {provider.name!r} is used twice")
            seen.add(provider.name)
        return providers

    @model_validator(mode="after")
    def _paid_is_never_silently_unlimited(self) -> Config:
        # Built-in defaults (no file, the free offline sandbox) may be unlimited; a file
        # that configures a paid provider and says nothing of [spending] gets a budget.
        paid = any(p.kind != "sandbox" for p in self.providers)
        if paid and "spending" not in self.model_fields_set:
            self.spending = PAID_DEFAULT_SPENDING.model_copy()
        return self

    @model_validator(mode="after")
    def _callbacks_is_http(self) -> Config:
        if "callbacks" in self.model_fields_set and "http" not in self.model_fields_set:
            self.http = HttpConfig(**self.callbacks.model_dump())
        return self

    @model_validator(mode="after")
    def _default_exists(self) -> Config:
        names = [p.name for p in self.providers]
        if self.default_provider is not None and self.default_provider not in names:
            raise ValueError(
                f"default_provider {self.default_provider!r} is not one of {', '.join(names)}"
            )
        return self

    def provider(self, name: str | None) -> ProviderConfig:
        wanted = name or self.default_provider or self.providers[0].name
        for provider in self.providers:
            if provider.name == wanted:
                return provider
        names = ", ".join(p.name for p in self.providers)
        raise ConfigError(f"There is no provider named {wanted!r}; configured: {names}.")


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: Any, env: Mapping[str, str], where: str) -> Any:
    """Replace ${VAR} in every string; a missing variable is a clear error."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(
                    f"{where}: the environment variable {name} is not set "
                    f"(export {name}=... or put the value in the file)."
                )
            return env[name]

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, env, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def resolve_path(explicit: str | None, env: Mapping[str, str] | None = None) -> Path | None:
    """The config file to read: --config, else $ATELIER_CONFIG, else ./config.toml if present."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.exists() else None


def load_config(explicit: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the configuration. Raises ConfigError with file, key and reason."""
    env = os.environ if env is None else env
    path = resolve_path(explicit, env)
    if path is None:
        return Config()
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (give --config PATH, or create it).")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read: {err}") from None
    expanded = _expand(raw, env, str(path))
    return parse_config(expanded, source=str(path))


def parse_config(data: Mapping[str, Any], *, source: str = "(inline)") -> Config:
    try:
        config = Config.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(_explain(err, source, data)) from None
    config.source = source
    return config


def _explain(err: ValidationError, source: str, data: Mapping[str, Any]) -> str:
    lines = [f"{source}: the configuration is not valid:"]
    for problem in err.errors()[:10]:
        lines.append(f"  - {_key_path(problem['loc'], data)}: {_reason(problem)}")
    return "\n".join(lines)


def _key_path(loc: tuple[Any, ...], data: Mapping[str, Any]) -> str:
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int):
            name = ""
            if isinstance(node, list) and 0 <= item < len(node) and isinstance(node[item], dict):
                name = str(node[item].get("name", ""))
            parts[-1] = f"{parts[-1]}[{item}{' ' + repr(name) if name else ''}]"
            node = node[item] if isinstance(node, list) and 0 <= item < len(node) else None
        else:
            # Discriminated unions put the tag ("mj-proxy") in the path; skip it.
            if isinstance(node, dict) and item == node.get("kind") and item not in node:
                continue
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"


def _reason(problem: Mapping[str, Any]) -> str:
    kind = problem.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key (check its spelling against config.example.toml)"
    if kind == "missing":
        return "required key is missing"
    if kind == "string_pattern_mismatch":
        return "use only letters, digits, '-', '_' and '.' (no spaces)"
    if kind == "union_tag_invalid":
        return "kind must be one of mj-proxy, maas-mj, maas-flux, sandbox"
    return str(problem.get("msg", "invalid value"))
