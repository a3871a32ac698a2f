"""Configuration (DESIGN §2): the kernel declares its own sections (server, storage, community,
operators, outbox, metrics, logging, texts); every channel and feature declares its section
beside its code as a ``Setting``, and ``config_schema`` puts them together into the config type
of one siyu, as Django puts its installed apps' settings together. ``config[SETTING]`` reads a
section, typed. ``config.example.toml`` documents every key; a bad file raises ``ConfigError``
whose lines each name the key and the problem.
"""
from bot.config.loading import ConfigError, config_file, config_from_dict, load_config
from bot.config.schema import (
    Config,
    LoggingConfig,
    MetricsConfig,
    OutboxConfig,
    Section,
    Setting,
    config_schema,
    read_texts,
    zone_name,
)

__all__ = [
    "Config", "ConfigError", "LoggingConfig", "MetricsConfig", "OutboxConfig", "Section", "Setting", "config_from_dict",
    "config_file", "config_schema", "load_config", "read_texts", "zone_name",
]
