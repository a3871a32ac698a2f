"""Configuration as an operator meets it: defaults, where the file is found, the example file,
environment overlays, and errors that name the key and the problem."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from bot.builtin import SiyuConfig as Config
from bot.builtin import config_from_dict, default_texts, load_config
from bot.config import ConfigError, Section

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"
AES_KEY = "a" * 43
PUBLIC = {"public_url": "https://club.example.com"}  # the member center's WeCom sign-in returns there
WECOM_OK = {
    "enabled": True, "corp_id": "ww0123456789", "agent_id": 1000002,
    "secret": "s3cret", "token": "tok", "encoding_aes_key": AES_KEY,
}


def problems_of(data: dict[str, Any], env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, env=env or {})
    return info.value.problems


def keys_of(problems: list[tuple[str, str]]) -> list[str]:
    return [key for key, _ in problems]


@pytest.fixture
def in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory without config.toml."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- defaults -------------------------------------------------------------------------------------


def test_no_file_gives_a_working_default(in_empty_dir: Path) -> None:
    config = load_config(None, env={})
    assert config.storage.url == "sqlite:///siyu.db"
    assert config.sandbox.enabled is True
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)
    assert config.wecom.enabled is False
    assert config.operators.admins == []
    assert config.logging.level == "INFO"
    assert config.texts == default_texts()


def test_defaults_from_no_file_equal_defaults_from_an_empty_dict(in_empty_dir: Path) -> None:
    assert load_config(None, env={}).model_dump() == config_from_dict({}).model_dump()


# --- config.example.toml --------------------------------------------------------------------------


def test_example_file_loads_and_equals_the_defaults(in_empty_dir: Path) -> None:
    assert load_config(EXAMPLE, env={}).model_dump() == load_config(None, env={}).model_dump()


def test_example_file_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    missing = []

    def check(name: str, model: type[Section]) -> None:
        assert f"[{name}]" in text, f"section [{name}] is not in config.example.toml"
        section_text = text.split(f"\n[{name}]\n", 1)[1].split("\n[", 1)[0]
        lines = [ln.strip().removeprefix("#").strip() for ln in section_text.splitlines()]
        for key, field in model.model_fields.items():
            if isinstance(field.annotation, type) and issubclass(field.annotation, Section):
                check(f"{name}.{key}", field.annotation)  # a nested table: [wecom.group_quota]
            elif not any(ln.startswith(f"{key} =") for ln in lines):
                missing.append(f"{name}.{key}")

    for section_name, field in Config.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, Section):
            check(section_name, model)
    assert missing == []


def test_example_file_lists_every_text_commented_out_with_its_default() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    texts_part = text.split("\n[texts]\n", 1)[1]
    commented = [ln.removeprefix("# ") for ln in texts_part.splitlines() if ln.startswith("# ")]
    uncommented = "\n".join(ln for ln in commented if ln.split(" = ", 1)[0].isidentifier() and " = " in ln)
    listed = tomllib.loads(uncommented)
    assert listed == default_texts()
    # Commented out: the example itself overrides nothing.
    assert tomllib.loads(text).get("texts", {}) == {}


def test_example_file_mentions_the_secret_variables_and_supported_databases() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for name in ("SIYU_WECOM_SECRET", "SIYU_WECOM_TOKEN", "SIYU_WECOM_ENCODING_AES_KEY"):
        assert name in text
    assert "postgresql+psycopg://" in text and "sqlite:///siyu.db" in text


def test_example_postgres_url_is_accepted(in_empty_dir: Path) -> None:
    config = config_from_dict({"storage": {"url": "postgresql+psycopg://user:pass@host/db"}})
    assert config.storage.url == "postgresql+psycopg://user:pass@host/db"


# --- where the file is found ----------------------------------------------------------------------


def write(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def test_cwd_config_toml_beats_defaults(in_empty_dir: Path) -> None:
    write(in_empty_dir / "config.toml", "[server]\nport = 8001\n")
    assert load_config(None, env={}).server.port == 8001


def test_siyu_config_beats_cwd_config_toml(in_empty_dir: Path) -> None:
    write(in_empty_dir / "config.toml", "[server]\nport = 8001\n")
    env_file = write(in_empty_dir / "env.toml", "[server]\nport = 8002\n")
    assert load_config(None, env={"SIYU_CONFIG": str(env_file)}).server.port == 8002


def test_explicit_path_beats_siyu_config(in_empty_dir: Path) -> None:
    write(in_empty_dir / "config.toml", "[server]\nport = 8001\n")
    env_file = write(in_empty_dir / "env.toml", "[server]\nport = 8002\n")
    explicit = write(in_empty_dir / "explicit.toml", "[server]\nport = 8003\n")
    assert load_config(explicit, env={"SIYU_CONFIG": str(env_file)}).server.port == 8003
    assert load_config(str(explicit), env={"SIYU_CONFIG": str(env_file)}).server.port == 8003


def test_explicit_missing_file_is_an_error_naming_it(in_empty_dir: Path) -> None:
    write(in_empty_dir / "config.toml", "[server]\nport = 8001\n")  # not silently used instead
    with pytest.raises(ConfigError) as info:
        load_config(in_empty_dir / "nope.toml", env={})
    assert "nope.toml" in info.value.source and "nope.toml" in str(info.value)
    assert info.value.problems == [("(file)", "no such file")]


def test_missing_siyu_config_file_is_an_error_naming_it(in_empty_dir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"SIYU_CONFIG": "elsewhere.toml"})
    assert "elsewhere.toml" in str(info.value)


def test_invalid_toml_is_an_error_naming_the_file(in_empty_dir: Path) -> None:
    bad = write(in_empty_dir / "bad.toml", "[server\nport = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad, env={})
    assert "bad.toml" in str(info.value)
    [(key, message)] = info.value.problems
    assert key == "(file)" and "not valid TOML" in message


def test_file_errors_name_the_file_as_source(in_empty_dir: Path) -> None:
    bad = write(in_empty_dir / "typo.toml", "[server]\nprot = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad, env={})
    assert "typo.toml" in info.value.source
    assert "server.prot: unknown key" in str(info.value)


# --- errors name the key and the problem ----------------------------------------------------------


def test_unknown_key_is_named_with_the_closest_key() -> None:
    assert problems_of({"server": {"prot": 8080}}) == [("server.prot", "unknown key; did you mean server.port?")]
    assert problems_of({"signin": {"daily_point": 20}}) == [
        ("signin.daily_point", "unknown key; did you mean signin.daily_points?")]
    assert problems_of({"server": {"zzz": 1}}) == [("server.zzz", "unknown key")]  # nothing close: no guess


def test_unknown_section_is_named() -> None:
    assert problems_of({"sever": {"port": 8080}}) == [("sever", "unknown key; did you mean server?")]


def test_string_port_is_a_type_error_naming_the_key() -> None:
    [(key, message)] = problems_of({"server": {"port": "8080"}})
    assert key == "server.port"
    assert "integer" in message and "'8080'" in message


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_port_out_of_range(port: int) -> None:
    [(key, message)] = problems_of({"server": {"port": port}})
    assert key == "server.port" and str(port) in message


@pytest.mark.parametrize("port", [1, 65535])
def test_port_range_edges_are_fine(port: int) -> None:
    assert config_from_dict({"server": {"port": port}}).server.port == port


def test_several_problems_are_all_reported() -> None:
    problems = problems_of({"server": {"port": "x", "prot": 1}, "outbox": {"batch_size": 0}})
    assert sorted(keys_of(problems)) == ["outbox.batch_size", "server.port", "server.prot"]


@pytest.mark.parametrize("url", ["mysql://u:p@h/db", "postgresql+asyncpg://u:p@h/db", "sqlite://", "not a url"])
def test_unsupported_database_url_names_storage_url(url: str) -> None:
    [(key, _message)] = problems_of({"storage": {"url": url}})
    assert key == "storage.url"


def test_unsupported_database_says_what_is_supported() -> None:
    [(_key, message)] = problems_of({"storage": {"url": "mysql://u:p@h/db"}})
    assert "SQLite" in message and "PostgreSQL" in message


def test_logging_level_is_checked_and_normalised() -> None:
    assert config_from_dict({"logging": {"level": "debug"}}).logging.level == "DEBUG"
    [(key, message)] = problems_of({"logging": {"level": "TRACE"}})
    assert key == "logging.level" and "INFO" in message


def test_outbox_float_keys_accept_whole_numbers() -> None:
    # TOML `lease_s = 30` is an integer; it is a perfectly good number of seconds.
    assert config_from_dict({"outbox": {"lease_s": 30}}).outbox.lease_s == 30


# --- [wecom] --------------------------------------------------------------------------------------


def test_wecom_enabled_without_secrets_lists_each_missing_key() -> None:
    [(key, message)] = problems_of({"wecom": {"enabled": True}})
    assert key == "wecom"
    for name in ("corp_id", "agent_id", "secret", "token", "encoding_aes_key"):
        assert name in message
        assert f"SIYU_WECOM_{name.upper()}" in message


def test_wecom_enabled_lists_only_what_is_missing() -> None:
    data = {"wecom": {**WECOM_OK, "secret": "", "token": ""}}
    [(_key, message)] = problems_of(data)
    assert "secret" in message and "token" in message
    assert "corp_id" not in message and "agent_id" not in message


def test_wecom_complete_config_is_accepted() -> None:
    config = config_from_dict({"wecom": WECOM_OK, "server": PUBLIC})
    assert config.wecom.enabled and config.wecom.agent_id == 1000002


def test_wecom_disabled_needs_no_secrets() -> None:
    assert config_from_dict({"wecom": {"enabled": False}}).wecom.secret == ""


@pytest.mark.parametrize("aes_key", ["a" * 42, "a" * 44, "a" * 42 + "=", "a" * 42 + "/"])
def test_wecom_bad_encoding_aes_key(aes_key: str) -> None:
    [(key, message)] = problems_of({"wecom": {**WECOM_OK, "encoding_aes_key": aes_key}})
    assert key == "wecom" and "encoding_aes_key" in message and "43" in message
@pytest.mark.parametrize("odd", ["１", "中"])
def test_wecom_encoding_aes_key_must_be_ascii(odd: str) -> None:
    problems_of({"wecom": {**WECOM_OK, "encoding_aes_key": "a" * 42 + odd}})


def test_wecom_agent_id_must_be_an_integer() -> None:
    [(key, _message)] = problems_of({"wecom": {"agent_id": "1000002"}})
    assert key == "wecom.agent_id"


# --- environment overlay --------------------------------------------------------------------------


def test_env_secret_fills_the_wecom_secret() -> None:
    data = {"wecom": {**WECOM_OK, "secret": ""}, "server": PUBLIC}
    config = config_from_dict(data, env={"SIYU_WECOM_SECRET": "from-env"})
    assert config.wecom.secret == "from-env"


def test_env_supplies_every_wecom_secret_for_an_enabled_channel() -> None:
    env = {
        "SIYU_WECOM_CORP_ID": "ww1", "SIYU_WECOM_AGENT_ID": "1000002", "SIYU_WECOM_SECRET": "s",
        "SIYU_WECOM_TOKEN": "t", "SIYU_WECOM_ENCODING_AES_KEY": AES_KEY,
    }
    config = config_from_dict({"wecom": {"enabled": True}, "server": PUBLIC}, env=env)
    assert config.wecom.agent_id == 1000002 and config.wecom.encoding_aes_key == AES_KEY


def test_env_wins_over_the_file(in_empty_dir: Path) -> None:
    path = write(in_empty_dir / "c.toml", '[wecom]\nsecret = "in-file"\n')
    assert load_config(path, env={"SIYU_WECOM_SECRET": "in-env"}).wecom.secret == "in-env"


def test_env_port_becomes_an_int() -> None:
    config = config_from_dict({}, env={"SIYU_SERVER_PORT": "9000"})
    assert config.server.port == 9000 and isinstance(config.server.port, int)


def test_env_bad_port_is_an_error_naming_server_port() -> None:
    [(key, message)] = problems_of({}, env={"SIYU_SERVER_PORT": "abc"})
    assert key == "SIYU_SERVER_PORT (server.port)" and "abc" in message


def test_env_port_out_of_range_is_an_error() -> None:
    [(key, _message)] = problems_of({}, env={"SIYU_SERVER_PORT": "70000"})
    assert key == "SIYU_SERVER_PORT (server.port)"


def test_env_string_keys_are_taken_verbatim() -> None:
    env = {"SIYU_SERVER_HOST": "0.0.0.0", "SIYU_WECOM_TOKEN": "123", "SIYU_STORAGE_URL": "sqlite:///other.db"}
    config = config_from_dict({}, env=env)
    assert (config.server.host, config.wecom.token, config.storage.url) == ("0.0.0.0", "123", "sqlite:///other.db")


def test_env_bools_and_lists_are_toml_literals() -> None:
    env = {"SIYU_SANDBOX_ENABLED": "false", "SIYU_OPERATORS_ADMINS": '["wecom:alice", "sandbox:bob"]'}
    config = config_from_dict({}, env=env)
    assert config.sandbox.enabled is False and config.operators.admins == ["wecom:alice", "sandbox:bob"]


def test_env_bad_database_url_names_storage_url() -> None:
    [(key, _message)] = problems_of({}, env={"SIYU_STORAGE_URL": "mysql://h/db"})
    assert key == "SIYU_STORAGE_URL (storage.url)"


def test_unrelated_env_is_ignored() -> None:
    # A misspelt SIYU_ key is an error (tests/test_config_env.py); other programs' variables are not ours.
    env = {"SIYU_TEST_DATABASE_URL": "sqlite:///t.db", "SIYU_REQUIRE_BROWSER": "1", "SIYU_FOO": "1", "HOME": "/x"}
    assert config_from_dict({}, env=env).server.port == 8080


def test_load_config_reads_os_environ_by_default(in_empty_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIYU_CONFIG", raising=False)
    monkeypatch.setenv("SIYU_SERVER_PORT", "9001")
    assert load_config().server.port == 9001


# --- [texts] --------------------------------------------------------------------------------------


def test_override_one_text_keeps_the_others() -> None:
    config = config_from_dict({"texts": {"error": "出错了，请稍后再试。"}})
    assert config.texts["error"] == "出错了，请稍后再试。"
    defaults = default_texts()
    assert {k: v for k, v in config.texts.items() if k != "error"} == {
        k: v for k, v in defaults.items() if k != "error"}


def test_override_may_use_fewer_placeholders() -> None:
    config = config_from_dict({"texts": {"welcome_group": "欢迎 {name}！"}})
    assert config.texts["welcome_group"] == "欢迎 {name}！"


def test_override_may_use_escaped_braces() -> None:
    assert config_from_dict({"texts": {"error": "出错了 {{-_-}}"}}).texts["error"] == "出错了 {{-_-}}"


def test_unknown_text_key_is_an_error() -> None:
    [(key, message)] = problems_of({"texts": {"welcom_group": "hi"}})
    assert key == "texts.welcom_group" and "unknown text" in message


def test_unknown_placeholder_is_an_error_naming_the_allowed_ones() -> None:
    [(key, message)] = problems_of({"texts": {"welcome_group": "欢迎 {nickname} 加入 {group}"}})
    assert key == "texts.welcome_group"
    assert "nickname" in message and "{name}" in message and "{group}" in message


def test_placeholder_in_a_text_that_has_none_is_an_error() -> None:
    [(key, message)] = problems_of({"texts": {"error": "出错了 {name}"}})
    assert key == "texts.error" and "none" in message


@pytest.mark.parametrize("template", ["{", "}", "你好 {name"])
def test_malformed_template_is_an_error(template: str) -> None:
    [(key, message)] = problems_of({"texts": {"fallback": template}})
    assert key == "texts.fallback" and "not a valid template" in message


def test_non_string_text_is_an_error() -> None:
    [(key, message)] = problems_of({"texts": {"error": 5}})
    assert key == "texts.error" and "string" in message


def test_texts_must_be_a_table() -> None:
    assert keys_of(problems_of({"texts": "hello"})) == ["texts"]


def test_text_problems_and_section_problems_are_reported_together() -> None:
    problems = problems_of({"server": {"prot": 1}, "texts": {"nope": "x"}})
    assert sorted(keys_of(problems)) == ["server.prot", "texts.nope"]
def test_positional_placeholder_is_an_error() -> None:
    problems_of({"texts": {"error": "出错了 {}"}})
def test_bad_conversion_is_an_error() -> None:
    problems_of({"texts": {"welcome_contact": "你好 {name!x}"}})


# --- [operators] admins: identities --------------------------------------------------------------


def test_an_admin_without_a_channel_is_refused_with_the_qualified_form() -> None:
    [(key, message)] = problems_of({"operators": {"admins": ["boss"]}})
    assert key == "operators.admins" and '"wecom:boss"' in message and '"sandbox:boss"' in message


def test_an_admin_on_a_channel_siyu_does_not_have_is_refused() -> None:
    [(_key, message)] = problems_of({"operators": {"admins": ["wechat:boss"]}})
    assert "wechat" in message and "sandbox" in message and "wecom" in message


def test_admins_are_identities() -> None:
    config = config_from_dict({"operators": {"admins": ["wecom:ZhangSan", "sandbox:boss"]}})
    assert config.operators.identities() == [("wecom", "ZhangSan"), ("sandbox", "boss")]
