"""The shape of siyu's configuration: the base of every section, ``Setting`` (a section a
channel or feature owns), the kernel's own sections, and ``config_schema``, which puts a whole
siyu's sections together. Reading a file is ``bot.config.loading``."""
from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, overload
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    create_model,
    field_validator,
    model_validator,
)

from storage.engine import DatabaseURLError, parse_url

if TYPE_CHECKING:
    from bot.channels.base import Capability, ChannelKind
    from bot.feature import Feature, Hook

T = TypeVar("T")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
S = TypeVar("S", bound="Section")
KERNEL_TEXTS = Path(__file__).resolve().parent.parent / "texts.toml"


class Section(BaseModel):
    # strict: TOML has real types, so "8080" for a port is a mistake worth naming.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    # Reverse proxies (addresses or networks) whose X-Forwarded-For names the client
    # (``bot.http.client_address``); from anyone else the header is ignored: a client can forge it.
    trusted_proxies: list[str] = Field(default_factory=list)
    # The HTTPS address members reach siyu at (WeCom's trusted domain points here): the member
    # center's links and its web-authorization redirect. Plain http only for a loopback address
    # (development, tests). Empty: http://<host>:<port>, for this machine only.
    public_url: str = Field("", max_length=512)
    _networks: tuple[IPNetwork, ...] = PrivateAttr(default=())

    @field_validator("public_url")
    @classmethod
    def _public(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"{value!r} is not an address such as https://club.example.com")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError(f"{value!r}: members' browsers need https (plain http only for 127.0.0.1 or localhost)")
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network (such as 127.0.0.1 or 10.0.0.0/8)"
                                 ) from None
        return value

    @model_validator(mode="after")
    def _parsed(self) -> ServerConfig:
        self._networks = tuple(ipaddress.ip_network(entry, strict=False) for entry in self.trusted_proxies)
        return self

    @property
    def base_url(self) -> str:
        """``public_url``, else this machine's address (no trailing slash)."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def proxy_networks(self) -> tuple[IPNetwork, ...]:
        """``trusted_proxies``, parsed once."""
        return self._networks


class StorageConfig(Section):
    url: str = "sqlite:///siyu.db"
    echo: bool = False
    write_lanes: int = Field(2, ge=1, le=64)
    inbox_keep_days: int = Field(30, ge=1, le=3650)

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
    # Who is an admin from the start, each as "channel:id" (an identity is both, DESIGN §11):
    # ["wecom:ZhangSan", "sandbox:boss"].
    admins: list[str] = Field(default_factory=list)

    @field_validator("admins")
    @classmethod
    def _identities(cls, value: list[str]) -> list[str]:
        for admin in value:
            channel, colon, external_id = admin.partition(":")
            if not colon:
                raise ValueError(f'admin "{admin}" names no channel: an identity is a channel and an id, '
                                 f'e.g. "wecom:{admin}" or "sandbox:{admin}"')
            if not channel or not external_id.strip() or len(external_id) > 128:
                raise ValueError(f'admin "{admin}" must be "channel:id"')
        return value

    def identities(self) -> list[tuple[str, str]]:
        """The admins as (channel, id)."""
        return [(channel, external_id) for channel, _, external_id in (a.partition(":") for a in self.admins)]


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
    # Settled messages (delivered, failed, withdrawn) are deleted after this many days.
    keep_days: int = Field(30, ge=1, le=3650)


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

    def running(self, channel: str) -> frozenset[Capability]:
        """What the channel called ``channel`` can do in this siyu as configured: nothing when
        it is switched off or is not a channel at all (the REST API, the console)."""
        for kind in self.channels:
            if channel in kind.capabilities and kind.enabled(self):
                return kind.capabilities[channel]
        return frozenset()

    @model_validator(mode="after")
    def _admins_on_known_channels(self) -> Config:
        known = [name for kind in type(self).channels for name in kind.capabilities]
        for channel, _ in self.operators.identities():
            if known and channel not in known:
                raise ValueError(f"[operators] admins: no channel {channel!r}; the channels are {', '.join(known)}")
        return self

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
    texts = dict(read_texts(KERNEL_TEXTS))
    moved: dict[str, str] = {}
    owners: list[ChannelKind | Feature] = [*channels, *features]
    for owner in owners:
        for setting in owner.settings:
            if setting.key in fields or setting.key in Config.model_fields:
                raise ValueError(f"{owner.name}: config key [{setting.key}] is taken")
            fields[setting.key] = (setting.kind, Field(default_factory=setting.default))
        if owner.texts is not None:
            for key, value in read_texts(owner.texts).items():
                if key in texts:
                    raise ValueError(f"{owner.name}: text {key!r} is defined twice")
                texts[key] = value
        moved.update(owner.moved)
    schema = create_model(name, __base__=Config, **fields)
    schema.channels, schema.features = channels, features
    schema.text_defaults, schema.moved = texts, moved
    return schema


def read_texts(path: Path) -> dict[str, str]:
    with path.open("rb") as fh:
        return tomllib.load(fh)
