"""Configuration: TOML, found as DESIGN §2 says, overlaid with ``SIYU_<SECTION>_<KEY>`` variables.

The kernel declares its own sections here (server, storage, community, operators, outbox,
metrics, logging, texts). Every channel and feature declares its section beside its code as a
``Setting`` and ``config_schema`` puts them together into the config type of one siyu, as
Django puts its installed apps' settings together. ``config[SETTING]`` reads a section, typed.
``config.example.toml`` documents every key. A bad file raises ``ConfigError`` whose lines each
name the key and the problem.
"""
from __future__ import annotations

import os
import string
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from storage.engine import DatabaseURLError, parse_url

if TYPE_CHECKING:
    from bot.channels.base import Capability, ChannelKind
    from bot.feature import Feature, Hook

T = TypeVar("T")
S = TypeVar("S", bound="Section")
KERNEL_TEXTS = Path(__file__).resolve().parent / "texts.toml"


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` are ``(key, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__("\n".join(f"{source}: {key}: {msg}" for key, msg in problems))


class Section(BaseModel):
    # strict: TOML has real types, so "8080" for a port is a mistake worth naming.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def zone_name(value: str) -> str:
    """An IANA time zone name, or ValueError naming the mistake."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)") from None
    return value


class Setting(Generic[T]):
    """A config table that a channel or a feature owns: its TOML key, its type, its default.

        SIGNIN = Setting("signin", SigninConfig)                                    # [signin]
        REWARDS: Setting[list[RewardConfig]] = Setting("rewards", list[RewardConfig], default=list)  # [[rewards]]

    ``config[SIGNIN]`` is that table, typed (``config.signin`` works too, untyped)."""

    @overload
    def __init__(self: Setting[S], key: str, kind: type[S]) -> None: ...

    @overload
    def __init__(self, key: str, kind: Any, *, default: Callable[[], T]) -> None: ...

    def __init__(self, key: str, kind: Any, *, default: Callable[[], T] | None = None) -> None:
        self.key = key
        self.kind = kind
        self.default: Callable[[], T] = default if default is not None else kind

    def __repr__(self) -> str:
        return f"Setting({self.key!r})"


# -- the kernel's sections ----------------------------------------------------------------------


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)


class StorageConfig(Section):
    url: str = "sqlite:///siyu.db"
    echo: bool = False
    write_lanes: int = Field(2, ge=1, le=64)

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str) -> str:
        try:
            parse_url(value)
        except DatabaseURLError as exc:
            raise ValueError(str(exc)) from None
        return value


class CommunityConfig(Section):
    """The community's own clock: its days, weeks (from Monday) and months begin at midnight in
    ``timezone``: sign-ins, caps, leaderboards, quiet hours, playbooks, the console's days."""

    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return zone_name(value)


class OperatorsConfig(Section):
    # Member ids (as their channel knows them) who are admins from the start.
    admins: list[str] = Field(default_factory=list)


class OutboxConfig(Section):
    batch_size: int = Field(100, ge=1, le=1000)
    max_attempts: int = Field(5, ge=1, le=50)
    lease_s: float = Field(30.0, gt=0)
    send_timeout_s: float = Field(10.0, gt=0)
    poll_interval_s: float = Field(1.0, gt=0)
    # Sends in flight at once (a slow channel's latency is then overlapped, not summed).
    concurrency: int = Field(16, ge=1, le=256)
    # At most this many messages a minute into one group, whatever the channel allows.
    group_rate_per_min: float = Field(20.0, gt=0, le=6000)


class MetricsConfig(Section):
    """``GET /metrics`` in the Prometheus text format (docs/observability.md)."""

    enabled: bool = True
    # Scrapers must send "Authorization: Bearer <token>" (24+ characters; a secret: prefer
    # SIYU_METRICS_TOKEN). "" for none: then anyone who reaches the port may read it.
    token: str = Field("", max_length=256)

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value and len(value) < 24:
            raise ValueError('at least 24 characters, or "" for no token')
        return value


class LoggingConfig(Section):
    level: str = "INFO"
    # "text": a line a record, for people; "json": one JSON object a line, for log collectors.
    format: Literal["text", "json"] = "text"

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("one of DEBUG, INFO, WARNING, ERROR")
        return value.upper()


class Config(Section):
    """The kernel's sections. ``config_schema`` makes the config type of a whole siyu: these
    plus its channels' and features' sections, and the features themselves (its ClassVars)."""

    server: ServerConfig = ServerConfig()
    storage: StorageConfig = StorageConfig()
    community: CommunityConfig = CommunityConfig()
    operators: OperatorsConfig = OperatorsConfig()
    outbox: OutboxConfig = OutboxConfig()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    # User-facing text (zh-CN): each feature's defaults, overridable key by key.
    texts: dict[str, str] = Field(default_factory=dict)

    # What this siyu is made of, in order (DESIGN §10): set by ``config_schema``.
    channels: ClassVar[tuple[ChannelKind, ...]] = ()
    features: ClassVar[tuple[Feature, ...]] = ()
    # The default texts of the kernel, channels and features, by key.
    text_defaults: ClassVar[Mapping[str, str]] = {}
    # Old dotted keys still read, and where they moved ({"checkin.timezone": "community.timezone"}).
    moved: ClassVar[Mapping[str, str]] = {}

    _deprecations: tuple[str, ...] = PrivateAttr(default=())

    def __getitem__(self, setting: Setting[T]) -> T:
        value: T = getattr(self, setting.key)
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The community's time zone (``[community] timezone``)."""
        return ZoneInfo(self.community.timezone)

    @property
    def deprecations(self) -> tuple[str, ...]:
        """Keys this config still uses under an old name: for a warning at start."""
        return self._deprecations

    def hooked(self, hook: Hook[T]) -> list[T]:
        """What the features plug into ``hook``, in the features' order."""
        return [f.hooks[hook] for f in self.features if hook in f.hooks]

    def capabilities(self, channel: str) -> frozenset[Capability]:
        """What the channel called ``channel`` can do (nothing for one this siyu does not have),
        without starting it: planners decide by this before anything is sent."""
        for kind in self.channels:
            if channel in kind.capabilities:
                return kind.capabilities[channel]
        return frozenset()

    @model_validator(mode="after")
    def _features_agree(self) -> Config:
        """Rules across sections (a reward's level must be a tier of [levels] ...)."""
        for feature in type(self).features:
            for check in feature.checks:
                check(self)
        return self


def config_schema(channels: Iterable[ChannelKind] = (), features: Iterable[Feature] = (), *,
                  name: str = "SiyuConfig") -> type[Config]:
    """The config type of a siyu made of ``channels`` and ``features``: the kernel's sections,
    each one's settings, all their default texts. Two that claim one key are a mistake."""
    channels, features = tuple(channels), tuple(features)
    fields: dict[str, Any] = {}
    texts = dict(_read_texts(KERNEL_TEXTS))
    moved: dict[str, str] = {}
    owners: list[ChannelKind | Feature] = [*channels, *features]
    for owner in owners:
        for setting in owner.settings:
            if setting.key in fields or setting.key in Config.model_fields:
                raise ValueError(f"{owner.name}: config key [{setting.key}] is taken")
            fields[setting.key] = (setting.kind, Field(default_factory=setting.default))
        if owner.texts is not None:
            for key, value in _read_texts(owner.texts).items():
                if key in texts:
                    raise ValueError(f"{owner.name}: text {key!r} is defined twice")
                texts[key] = value
        moved.update(owner.moved)
    schema = create_model(name, __base__=Config, **fields)
    schema.channels, schema.features = channels, features
    schema.text_defaults, schema.moved = texts, moved
    return schema


def _read_texts(path: Path) -> dict[str, str]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


# -- loading ----------------------------------------------------------------------------------------


def _placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def _check_texts(overrides: Mapping[str, Any], defaults: Mapping[str, str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []
    merged = dict(defaults)
    for key, value in overrides.items():
        where = f"texts.{key}"
        if key not in defaults:
            problems.append((where, "unknown text; the known ones are listed in config.example.toml"))
        elif not isinstance(value, str):
            problems.append((where, f"must be a string, not {type(value).__name__}"))
        else:
            try:
                extra = _placeholders(value) - _placeholders(defaults[key])
            except ValueError as exc:
                problems.append((where, f"not a valid template: {exc}"))
                continue
            allowed = _placeholders(defaults[key])
            if extra:
                names = ", ".join(sorted("{" + p + "}" for p in allowed)) or "none"
                problems.append((where, f"unknown placeholder {', '.join(sorted(extra))}; allowed: {names}"))
                continue
            try:  # what parses can still fail to render: "{}", "{name!x}", "{name:d}"
                value.format_map({p: "" for p in allowed})
            except (ValueError, IndexError, KeyError) as exc:
                problems.append((where, f"not a valid template: {exc}"))
                continue
            merged[key] = value
    return merged, problems


def _env_overlay(data: dict[str, Any], env: Mapping[str, str], schema: type[Config]) -> tuple[dict[str, Any], list[str]]:
    """``SIYU_WECOM_SECRET=...`` sets ``[wecom] secret``; non-string keys take TOML literals. A
    renamed table's old variables (``SIYU_CHECKIN_...``) still count, with a note."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    notes: list[str] = []
    for section_name, field in schema.model_fields.items():
        section_model = field.annotation
        if not (isinstance(section_model, type) and issubclass(section_model, Section)):
            continue
        tables = [old for old, new in schema.moved.items() if new == section_name]
        for key, key_field in section_model.model_fields.items():
            names = [f"SIYU_{t}_{key}".upper() for t in (section_name, *tables)] + [
                "SIYU_" + old.replace(".", "_").upper() for old, new in schema.moved.items() if new == f"{section_name}.{key}"]
            found = [(name, env[name]) for name in names if name in env]
            if not found:
                continue
            name, raw = found[0]
            if name != names[0]:
                notes.append(f"{name} is deprecated: it is now {names[0]}")
            value: Any = raw
            if key_field.annotation is not str:
                try:
                    value = tomllib.loads(f"v = {raw}")["v"]
                except tomllib.TOMLDecodeError:
                    value = raw  # validation will name the key and the expected type
            data.setdefault(section_name, {})
            if isinstance(data[section_name], dict):
                data[section_name][key] = value
    return data, notes


def _move_old_keys(data: dict[str, Any], moved: Mapping[str, str]) -> list[str]:
    """Read keys (``table.key``) and whole tables (``table``) under their old names where the new
    one is not set; say so for each."""
    notes = []
    for old, new in moved.items():
        if "." not in old:  # a table renamed
            if old in data:
                table, target = data.pop(old), data.setdefault(new, {})
                if isinstance(table, dict) and isinstance(target, dict):
                    for key, value in table.items():
                        target.setdefault(key, value)
                notes.append(f"[{old}] is deprecated: it is now [{new}] (the old name still works)")
            continue
        old_table, _, old_key = old.rpartition(".")
        new_table, _, new_key = new.rpartition(".")
        source = data.get(old_table)
        if not isinstance(source, dict) or old_key not in source:
            continue
        value = source.pop(old_key)
        target = data.setdefault(new_table, {})
        if isinstance(target, dict) and new_key not in target:
            target[new_key] = value
        notes.append(f"[{old_table}] {old_key} is deprecated: write it as [{new_table}] {new_key} (the old key still works)")
    return notes


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    loc = [str(p) for p in error["loc"] if not str(p).startswith("function-after[")]
    key = ".".join(loc) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return key, "unknown key"
    if kind == "value_error":
        return key, str(error["msg"]).removeprefix("Value error, ")
    return key, f"{error['msg']} (got {error.get('input')!r})" if kind != "missing" else "missing"


def load_config(
    path: str | os.PathLike[str] | None = None, *, schema: type[Config] = Config, env: Mapping[str, str] | None = None,
) -> Config:
    """Load ``path``, else ``$SIYU_CONFIG``, else ``./config.toml``, else the built-in defaults."""
    env = os.environ if env is None else env
    explicit = path is not None or bool(env.get("SIYU_CONFIG"))
    chosen = Path(path or env.get("SIYU_CONFIG") or "config.toml")
    source = str(chosen)
    data: dict[str, Any] = {}
    if chosen.is_file():
        try:
            with chosen.open("rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([("(file)", f"not valid TOML: {exc}")], source) from None
        except OSError as exc:
            raise ConfigError([("(file)", f"cannot read: {exc.strerror}")], source) from None
    elif explicit:
        raise ConfigError([("(file)", "no such file")], source)
    else:
        source = "built-in defaults"
    return config_from_dict(data, schema=schema, env=env, source=source)


def config_from_dict(data: Mapping[str, Any], *, schema: type[Config] = Config, env: Mapping[str, str] | None = None,
                     source: str = "config") -> Config:
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    deprecations = _move_old_keys(data, schema.moved)
    data, env_notes = _env_overlay(data, env or {}, schema)
    deprecations += env_notes
    texts_raw = data.pop("texts", {})
    problems: list[tuple[str, str]] = []
    if not isinstance(texts_raw, dict):
        problems.append(("texts", "must be a table of strings"))
        texts_raw = {}
    texts, text_problems = _check_texts(texts_raw, schema.text_defaults or _read_texts(KERNEL_TEXTS))
    problems += text_problems
    config = None
    try:
        config = schema.model_validate({**data, "texts": texts})
    except ValidationError as exc:
        problems += [_describe(e) for e in exc.errors()]
    if problems or config is None:
        raise ConfigError(problems, source)
    config._deprecations = tuple(deprecations)
    return config
