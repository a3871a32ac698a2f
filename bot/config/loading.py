"""Reading the configuration: TOML, found as DESIGN §2 says, overlaid with
``SIYU_<SECTION>_<KEY>`` variables, old key names moved to their new place (with a note), the
texts checked against their defaults; every problem named by its key (``ConfigError``)."""
from __future__ import annotations

import os
import string
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.config.schema import KERNEL_TEXTS, Config, Section, read_texts


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` are ``(key, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__("\n".join(f"{source}: {key}: {msg}" for key, msg in problems))



def _placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def _check_texts(overrides: Mapping[str, Any],
                 defaults: Mapping[str, str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
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


def _env_overlay(data: dict[str, Any], env: Mapping[str, str],
                 schema: type[Config]) -> tuple[dict[str, Any], list[str]]:
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
                "SIYU_" + old.replace(".", "_").upper() for old, new in schema.moved.items()
                if new == f"{section_name}.{key}"]
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
        notes.append(f"[{old_table}] {old_key} is deprecated: write it as [{new_table}] {new_key} "
                     "(the old key still works)")
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
    texts, text_problems = _check_texts(texts_raw, schema.text_defaults or read_texts(KERNEL_TEXTS))
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
