"""Reading the configuration: TOML, found as DESIGN §2 says, overlaid with
``SIYU_<SECTION>_<KEY>`` variables, old key names moved to their new place (with a note), the
texts checked against their defaults; every problem named by its key (``ConfigError``)."""
from __future__ import annotations

import difflib
import os
import re
import string
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot import links
from bot.config.schema import KERNEL_TEXTS, Config, Section, read_texts


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` are ``(key, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__("\n".join(f"{source}: {key}: {msg}" for key, msg in problems))



def _placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def _check_texts(overrides: Mapping[str, Any], defaults: Mapping[str, str], link_keys: frozenset[str] = frozenset(),
                 link_targets: Mapping[str, links.LinkTarget] | None = None,
                 ) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Overrides checked against their defaults; a text of ``link_keys`` may also use the link
    placeholders of ``link_targets`` ({member_center:mall}) with a page that exists."""
    link_targets = link_targets or {}
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
            with_links = key in link_keys and bool(link_targets)
            if with_links:
                extra -= set(link_targets)
                if found := links.text_problems(value, link_targets):
                    problems.append((where, "; ".join(found)))
                    continue
            if extra:
                names = ", ".join(sorted("{" + p + "}" for p in allowed)) or "none"
                problems.append((where, f"unknown placeholder {', '.join(sorted(extra))}; allowed: {names}"))
                continue
            try:  # what parses can still fail to render: "{}", "{name!x}", "{name:d}"
                value.format_map({p: "" for p in allowed} | (links.sample(link_targets) if with_links else {}))
            except (ValueError, IndexError, KeyError) as exc:
                problems.append((where, f"not a valid template: {exc}"))
                continue
            merged[key] = value
    return merged, problems


# SIYU_* variables that are not config keys: the config file's path, and the test suite's.
NOT_CONFIG = frozenset({"SIYU_CONFIG", "SIYU_TEST_DATABASE_URL", "SIYU_REQUIRE_BROWSER", "SIYU_CHROMIUM"})


def _env_names(schema: type[Config]) -> dict[str, tuple[str, str]]:
    """Every variable that sets a key, ``SIYU_SERVER_PORT`` → ``("server", "port")``; the new
    names first, then a renamed table's or key's old ones (``SIYU_CHECKIN_...``)."""
    names: dict[str, tuple[str, str]] = {}
    for section_name, field in schema.model_fields.items():
        section_model = field.annotation
        if not (isinstance(section_model, type) and issubclass(section_model, Section)):
            continue
        tables = [old for old, new in schema.moved.items() if new == section_name]
        for key in section_model.model_fields:
            for name in [f"SIYU_{t}_{key}".upper() for t in (section_name, *tables)] + [
                    "SIYU_" + old.replace(".", "_").upper() for old, new in schema.moved.items()
                    if new == f"{section_name}.{key}"]:
                names.setdefault(name, (section_name, key))
    return names


def _unknown_variables(env: Mapping[str, str], names: Mapping[str, tuple[str, str]],
                       schema: type[Config]) -> list[tuple[str, str]]:
    """A ``SIYU_*`` variable that looks like a config key but is none (a misspelt one would
    otherwise be ignored without a word): named, with the closest known variable."""
    current = sorted(name for name, (section, key) in names.items() if name == f"SIYU_{section}_{key}".upper())
    tables = sorted({*schema.model_fields, *(old for old in schema.moved if "." not in old)}, key=len, reverse=True)
    problems = []
    for name in sorted(env):
        if not name.startswith("SIYU_") or name in names or name in NOT_CONFIG:
            continue
        table = next((t for t in tables if name.startswith(f"SIYU_{t.upper()}_")), None)
        close = difflib.get_close_matches(name, current, n=1, cutoff=0.8)
        if table is None and not close:
            continue  # not ours to judge (another program's SIYU_ variable)
        if table is not None and table in schema.model_fields and not _is_section(schema, table):
            problems.append((name, f"[{table}] cannot come from the environment: write it in the config file"))
            continue
        hint = close or difflib.get_close_matches(name, [n for n in current if table and n.startswith(
            f"SIYU_{schema.moved.get(table, table).upper()}_")], n=1, cutoff=0.5)
        problems.append((name, "not a config variable" + (f"; did you mean {hint[0]}?" if hint else
                                                           "; config.example.toml lists the keys")))
    return problems


def _is_section(schema: type[Config], name: str) -> bool:
    annotation = schema.model_fields[name].annotation
    return isinstance(annotation, type) and issubclass(annotation, Section)


def _env_overlay(data: dict[str, Any], env: Mapping[str, str], schema: type[Config],
                 ) -> tuple[dict[str, Any], list[str], dict[str, str], list[tuple[str, str]]]:
    """``SIYU_WECOM_SECRET=...`` sets ``[wecom] secret``; non-string keys take TOML literals. A
    renamed table's old variables (``SIYU_CHECKIN_...``) still count, with a note. Also returns
    which variable set each key (``"server.port": "SIYU_SERVER_PORT"``), for problems to name
    it, and the variables that look like keys but are none."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    notes: list[str] = []
    origins: dict[str, str] = {}
    names = _env_names(schema)
    for name, (section_name, key) in names.items():
        if name not in env or f"{section_name}.{key}" in origins:
            continue  # the new name, listed first, wins over an old one
        current = f"SIYU_{section_name}_{key}".upper()
        if name != current:
            notes.append(f"{name} is deprecated: it is now {current}")
        raw = env[name]
        value: Any = raw
        section_model = schema.model_fields[section_name].annotation
        assert isinstance(section_model, type) and issubclass(section_model, Section)
        if section_model.model_fields[key].annotation is not str:
            try:
                value = tomllib.loads(f"v = {raw}")["v"]
            except tomllib.TOMLDecodeError:
                value = raw  # validation will name the key and the expected type
        data.setdefault(section_name, {})
        if isinstance(data[section_name], dict):
            data[section_name][key] = value
            origins[f"{section_name}.{key}"] = name
    return data, notes, origins, _unknown_variables(env, names, schema)


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


# Keys whose values are never printed back (a config error goes to a terminal and to logs).
SECRET_KEY = re.compile(r"password|secret|token|(^|_)key$", re.IGNORECASE)
URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def _shown(value: Any) -> Any:
    """``value`` as a problem may show it: secrets inside tables and URLs masked."""
    if isinstance(value, dict):
        return {k: "***" if SECRET_KEY.search(str(k)) else _shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(v) for v in value]
    if isinstance(value, str):
        return URL_PASSWORD.sub(r"\1***@", value)
    return value


def _keys_at(schema: type[Any], loc: Sequence[str]) -> list[str]:
    """The keys a table at ``loc`` (a section, or the top level) may have: what a misspelt key
    is compared with."""
    model: Any = schema
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        model = field.annotation if field is not None else None
        if not isinstance(model, type):
            return []
    return list(getattr(model, "model_fields", {}))


def _describe(error: Mapping[str, Any], schema: type[Any] = Config) -> tuple[str, str]:
    loc = [str(p) for p in error["loc"] if not str(p).startswith("function-after[")]
    key = ".".join(loc) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(loc[-1], _keys_at(schema, loc[:-1]), n=1, cutoff=0.6) if loc else []
        return key, "unknown key" + (f"; did you mean {'.'.join([*loc[:-1], close[0]])}?" if close else "")
    if kind == "value_error":
        return key, URL_PASSWORD.sub(r"\1***@", str(error["msg"]).removeprefix("Value error, "))
    if kind == "missing":
        return key, "missing"
    names = [p for p in loc if not p.isdigit()]
    if names and SECRET_KEY.search(names[-1]):  # what was given is not repeated, only its kind
        return key, f"{error['msg']} (the value given is a secret: not shown)"
    return key, f"{error['msg']} (got {_shown(error.get('input'))!r})"


def _from_env(problem: tuple[str, str], origins: Mapping[str, str]) -> tuple[str, str]:
    """A problem with a key the environment set names the variable: ``SIYU_SERVER_PORT (server.port)``."""
    key, message = problem
    name = origins.get(".".join(key.split(".")[:2]))
    return (f"{name} ({key})", message) if name else problem


def _chosen(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    return Path(path or env.get("SIYU_CONFIG") or "config.toml")


def config_file(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The file ``load_config`` reads for ``path`` (None: no file, the built-in defaults), for the
    log line that says which configuration a process runs on."""
    chosen = _chosen(path, os.environ if env is None else env)
    return chosen if chosen.is_file() else None


def load_config(
    path: str | os.PathLike[str] | None = None, *, schema: type[Config] = Config, env: Mapping[str, str] | None = None,
) -> Config:
    """Load ``path``, else ``$SIYU_CONFIG``, else ``./config.toml``, else the built-in defaults."""
    env = os.environ if env is None else env
    explicit = path is not None or bool(env.get("SIYU_CONFIG"))
    chosen = _chosen(path, env)
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
    data, env_notes, origins, problems = _env_overlay(data, env or {}, schema)
    deprecations += env_notes
    texts_raw = data.pop("texts", {})
    if not isinstance(texts_raw, dict):
        problems.append(("texts", "must be a table of strings"))
        texts_raw = {}
    texts, text_problems = _check_texts(
        texts_raw, schema.text_defaults or read_texts(KERNEL_TEXTS),
        frozenset(k for f in schema.features for k in f.link_texts),
        {t.name: t for f in schema.features for h, t in f.hooks.items() if h is links.LINKS})
    problems += text_problems
    config = None
    try:
        config = schema.model_validate({**data, "texts": texts})
    except ValidationError as exc:
        problems += [_from_env(_describe(e, schema), origins) for e in exc.errors()]
    if problems or config is None:
        from_env = [key.startswith("SIYU_") for key, _ in problems]
        if all(from_env):  # the file (or the defaults) are fine: the environment is not
            source = "the environment (SIYU_* variables)"
        elif any(from_env):
            source = f"{source} and the environment"
        raise ConfigError(problems, source)
    config._deprecations = tuple(deprecations)
    return config
