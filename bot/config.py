"""Configuration: TOML, found as DESIGN §2 says, overlaid with ``SIYU_<SECTION>_<KEY>`` variables.

Every key is declared here with its type and default; ``config.example.toml`` documents them.
A bad file raises ``ConfigError`` whose lines each name the key and the problem.
"""
from __future__ import annotations

import os
import re
import string
import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import Field, ValidationError, field_validator, model_validator

from bot.config_points import (  # noqa: F401  (re-exported: the points economy's sections)
    CheckinConfig, LeaderboardConfig, LevelsConfig, LifecycleConfig, PointsConfig, RewardConfig, TaskConfig, Tier,
)
from bot.config_broadcasts import GroupQuotaConfig, PlaybookConfig, SchedulerConfig  # noqa: F401
from bot.config_console import ConsoleConfig
from bot.config_section import Section
from storage.engine import DatabaseURLError, parse_url

DEFAULT_TEXTS_PATH = Path(__file__).resolve().parent.parent / "handlers" / "texts.toml"


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` are ``(key, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__("\n".join(f"{source}: {key}: {msg}" for key, msg in problems))


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


class SandboxConfig(Section):
    enabled: bool = True
    # At most this many sends a second (None: no limit), so a demo or a test can watch a
    # fan-out progress.
    send_rate_per_s: float | None = Field(None, gt=0, le=100_000)
    # Each send takes this long, like a real network call (benchmarks). Default 0.
    send_latency_ms: int = Field(0, ge=0, le=10_000)


class WecomConfig(Section):
    enabled: bool = False
    corp_id: str = ""
    agent_id: int | None = None
    secret: str = ""
    token: str = ""
    encoding_aes_key: str = ""
    api_base_url: str = "https://qyapi.weixin.qq.com/cgi-bin/"
    replay_window_s: int = Field(300, ge=0)
    # 微信客服: pull WeChat users' one-to-one messages on kf_msg_or_event and reply with
    # kf/send_msg (channel wecom_kf). The app must be allowed to manage the 客服 accounts.
    kf: bool = False
    # Send a question's numbered options (KOC screening, votes ...) as a 微信客服 menu to tap.
    kf_menus: bool = True
    # Customer groups: the receive quota, the daily digest and owners' tasks.
    group_quota: GroupQuotaConfig = GroupQuotaConfig()

    @model_validator(mode="after")
    def _secrets_when_enabled(self) -> "WecomConfig":
        if self.enabled:
            missing = [k for k in ("corp_id", "secret", "token", "encoding_aes_key") if not getattr(self, k)]
            if self.agent_id is None:
                missing.append("agent_id")
            if missing:
                raise ValueError(
                    "required when [wecom] enabled = true: "
                    + ", ".join(f"{k} (or SIYU_WECOM_{k.upper()})" for k in missing)
                )
            if not re.fullmatch(r"[A-Za-z0-9]{43}", self.encoding_aes_key):
                raise ValueError("encoding_aes_key must be the 43 letters and digits WeCom shows")
        return self


class BridgeConfig(Section):
    """A gateway relaying hosted WeChat clients (docs/bridge.md). Hosted clients risk bans:
    keep the send rate low."""

    enabled: bool = False
    # The shared HMAC secret, 32+ characters. A secret: prefer SIYU_BRIDGE_SECRET.
    secret: str = ""
    # Where siyu POSTs outbound messages.
    gateway_url: str = ""
    # The hosted account siyu speaks as (sent with every outbound message).
    account: str = Field("default", min_length=1, max_length=128)
    # Inbound events whose timestamp is further than this from siyu's clock are refused.
    replay_window_s: int = Field(300, ge=10, le=3600)
    # Sends per second through the gateway, for all its groups (per-group: [outbox]).
    send_rate_per_s: float = Field(1.0, gt=0, le=50)

    @model_validator(mode="after")
    def _needed(self) -> "BridgeConfig":
        if self.enabled:
            if len(self.secret) < 32:
                raise ValueError("required when [bridge] enabled = true: secret of 32+ characters (or SIYU_BRIDGE_SECRET)")
            if not self.gateway_url.startswith(("http://", "https://")):
                raise ValueError("required when [bridge] enabled = true: gateway_url (http:// or https://)")
        return self


class RobotConfig(Section):
    """A WeCom group robot in the operators' internal group: reports and alerts go there."""

    enabled: bool = False
    # The robot's webhook key (the key= of its webhook URL). A secret: prefer SIYU_ROBOT_KEY.
    key: str = ""
    # The name siyu gives that group in the outbox (messages to chat "ops" on channel robot).
    chat: str = Field("ops", min_length=1, max_length=64)
    api_base_url: str = "https://qyapi.weixin.qq.com/cgi-bin/"
    # Local time of the daily report ("" for none).
    daily_report_at: str = "09:00"
    # Alert when a broadcast ends with failed groups, and when KOC applications wait for review.
    alerts: bool = True

    @model_validator(mode="after")
    def _key(self) -> "RobotConfig":
        if self.enabled and not self.key:
            raise ValueError("required when [robot] enabled = true: key (or SIYU_ROBOT_KEY)")
        if self.daily_report_at and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", self.daily_report_at):
            raise ValueError('daily_report_at is a local time "HH:MM", or ""')
        return self


class ApiToken(Section):
    # A bearer token for the REST API: at least 24 characters (a secret: keep it out of git).
    token: str = Field(min_length=24, max_length=256)
    role: Literal["viewer", "operator", "admin"] = "viewer"
    # Who uses it, as the audit trail names them (api:<name>).
    name: str = Field("api", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


class ApiConfig(Section):
    """The REST API under /api/ (for the brand's CRM and other systems)."""

    enabled: bool = True
    tokens: list[ApiToken] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> "ApiConfig":
        if len({t.token for t in self.tokens}) != len(self.tokens):
            raise ValueError("api tokens must be distinct")
        return self


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


class Question(Section):
    """One onboarding question. ``choice`` answers are one of ``choices`` (or its number);
    ``number`` answers are whole numbers within ``min``..``max``; ``text`` is free text."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    text: str = Field(min_length=1, max_length=500)
    kind: Literal["choice", "number", "text"] = "text"
    choices: list[str] = Field(default_factory=list)
    min: int | None = None
    max: int | None = None
    # A choice answer also becomes a tag of the member (e.g. the city "上海").
    tag: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> "Question":
        if self.kind == "choice" and len(self.choices) < 2:
            raise ValueError(f"question {self.key!r}: a choice question needs at least 2 choices")
        if self.kind != "choice" and (self.choices or self.tag):
            raise ValueError(f"question {self.key!r}: choices and tag are for choice questions")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"question {self.key!r}: min is greater than max")
        return self


def _default_questions() -> list[Question]:
    return [
        Question(key="city", text="你在哪个城市？", kind="choice", choices=["北京", "上海", "广州", "深圳", "其他"], tag=True),
        Question(key="age", text="方便说下你的年龄吗？（回复数字）", kind="number", min=1, max=120),
        Question(key="source", text="你是从哪里知道我们的？", kind="text"),
    ]


class OnboardingConfig(Section):
    enabled: bool = True
    # When onboarding starts: a contact is added, a member's first one-to-one message, a group join.
    start_on: list[Literal["contact_added", "first_message", "member_joined"]] = Field(
        default_factory=lambda: ["contact_added"])
    questions: list[Question] = Field(default_factory=_default_questions, min_length=1, max_length=20)
    remind_after_s: int = Field(86_400, ge=60)
    close_after_s: int = Field(172_800, ge=60)

    @model_validator(mode="after")
    def _order(self) -> "OnboardingConfig":
        if self.close_after_s <= self.remind_after_s:
            raise ValueError("close_after_s must be later than remind_after_s")
        keys = [q.key for q in self.questions]
        if len(set(keys)) != len(keys) or "consent" in keys:
            raise ValueError("question keys must be unique and not 'consent'")
        return self


class KocRubric(Section):
    """Points toward the 0–100 KOC score (the total is capped at 100)."""

    bought: int = Field(25, ge=0, le=100)
    activities_often: int = Field(20, ge=0, le=100)
    activities_sometimes: int = Field(10, ge=0, le=100)
    per_platform: int = Field(5, ge=0, le=100)
    platforms_max: int = Field(15, ge=0, le=100)
    followers_100: int = Field(5, ge=0, le=100)
    followers_1000: int = Field(10, ge=0, le=100)
    followers_10000: int = Field(20, ge=0, le=100)
    hours_2: int = Field(5, ge=0, le=100)
    hours_5: int = Field(10, ge=0, le=100)
    # Below this score the recommendation still goes to review, marked as weak.
    pass_score: int = Field(40, ge=0, le=100)


class KocConfig(Section):
    enabled: bool = True
    # A member who sends this (one-to-one) starts a screening.
    keyword: str = Field("申请KOC", min_length=1, max_length=32)
    # After this many messages a member is invited once (0: never).
    activity_threshold: int = Field(0, ge=0)
    remind_after_s: int = Field(86_400, ge=60)
    expire_after_s: int = Field(259_200, ge=60)
    rubric: KocRubric = KocRubric()

    @model_validator(mode="after")
    def _order(self) -> "KocConfig":
        if self.expire_after_s <= self.remind_after_s:
            raise ValueError("expire_after_s must be later than remind_after_s")
        return self


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
    server: ServerConfig = ServerConfig()
    storage: StorageConfig = StorageConfig()
    sandbox: SandboxConfig = SandboxConfig()
    wecom: WecomConfig = WecomConfig()
    operators: OperatorsConfig = OperatorsConfig()
    api: ApiConfig = ApiConfig()
    console: ConsoleConfig = ConsoleConfig()
    robot: RobotConfig = RobotConfig()
    bridge: BridgeConfig = BridgeConfig()
    outbox: OutboxConfig = OutboxConfig()
    onboarding: OnboardingConfig = OnboardingConfig()
    koc: KocConfig = KocConfig()
    checkin: CheckinConfig = CheckinConfig()
    rewards: list[RewardConfig] = Field(default_factory=list)
    tasks: list[TaskConfig] = Field(default_factory=list)
    levels: LevelsConfig = LevelsConfig()
    points: PointsConfig = PointsConfig()
    leaderboard: LeaderboardConfig = LeaderboardConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    sop: list[PlaybookConfig] = Field(default_factory=list)
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    # Channel codes (渠道活码 State) → the tags a member who came by that code gets.
    channel_codes: dict[str, list[str]] = Field(default_factory=dict)
    # User-facing text (zh-CN): defaults in handlers/texts.toml, overridable key by key.
    texts: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _playbook_names(self) -> "Config":
        names = [p.name for p in self.sop]
        if len(set(names)) != len(names):
            raise ValueError("[[sop]] names must be unique")
        return self

    @model_validator(mode="after")
    def _reward_levels(self) -> "Config":
        tiers = [t.name for t in self.levels.tiers]
        for reward in self.rewards:
            if reward.min_level is not None and reward.min_level not in tiers:
                raise ValueError(f"reward {reward.name!r}: min_level {reward.min_level!r} is not a tier of [levels] "
                                 f"({', '.join(tiers)})")
        return self

    @field_validator("channel_codes")
    @classmethod
    def _codes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for code, tags in value.items():
            if not 1 <= len(code) <= 64:
                raise ValueError(f"channel code {code!r} must be 1 to 64 characters")
            for tag in tags:
                if not 1 <= len(tag) <= 64:
                    raise ValueError(f"tag {tag!r} of channel code {code!r} must be 1 to 64 characters")
        return value


def default_texts() -> dict[str, str]:
    with DEFAULT_TEXTS_PATH.open("rb") as fh:
        return tomllib.load(fh)


def _placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def _check_texts(overrides: Mapping[str, Any], defaults: dict[str, str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
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


def _env_overlay(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """``SIYU_WECOM_SECRET=...`` sets ``[wecom] secret``; non-string keys take TOML literals."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for section_name, field in Config.model_fields.items():
        section_model = field.annotation
        if not (isinstance(section_model, type) and issubclass(section_model, Section)):
            continue
        for key, key_field in section_model.model_fields.items():
            raw = env.get(f"SIYU_{section_name}_{key}".upper())
            if raw is None:
                continue
            value: Any = raw
            if key_field.annotation is not str:
                try:
                    value = tomllib.loads(f"v = {raw}")["v"]
                except tomllib.TOMLDecodeError:
                    value = raw  # validation will name the key and the expected type
            data.setdefault(section_name, {})
            if isinstance(data[section_name], dict):
                data[section_name][key] = value
    return data


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    loc = [str(p) for p in error["loc"] if p not in ("function-after[_secrets_when_enabled(), WecomConfig]",)]
    key = ".".join(loc) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return key, "unknown key"
    if kind == "value_error":
        return key, str(error["msg"]).removeprefix("Value error, ")
    return key, f"{error['msg']} (got {error.get('input')!r})" if kind != "missing" else "missing"


def load_config(
    path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None,
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
    return config_from_dict(data, env=env, source=source)


def config_from_dict(data: Mapping[str, Any], *, env: Mapping[str, str] | None = None, source: str = "config") -> Config:
    data = _env_overlay(dict(data), env or {})
    texts_raw = data.pop("texts", {})
    problems: list[tuple[str, str]] = []
    if not isinstance(texts_raw, dict):
        problems.append(("texts", "must be a table of strings"))
        texts_raw = {}
    texts, text_problems = _check_texts(texts_raw, default_texts())
    problems += text_problems
    try:
        config = Config.model_validate({**data, "texts": texts})
    except ValidationError as exc:
        problems += [_describe(e) for e in exc.errors()]
        config = None
    if problems:
        raise ConfigError(problems, source)
    assert config is not None
    return config
