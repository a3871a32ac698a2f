"""Config from the environment as an operator meets it: an error names the variable that caused
it, a misspelt ``SIYU_*`` variable is an error with the closest real one (not silently ignored),
and no config error repeats a secret (a password, a token, a key) to the terminal or the logs."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot.builtin import config_from_dict, load_config
from bot.config import ConfigError
from tests.test_cli import SIYU, clean_env


def error_of(data: dict[str, object], env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, env=env)
    return info.value


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    result = subprocess.run([str(SIYU), "run"], cwd=tmp_path, env={**clean_env(), "SIYU_SERVER_PORT": "abc"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "SIYU_SERVER_PORT" in result.stderr and "'abc'" in result.stderr
    assert "built-in defaults" not in result.stderr  # the defaults are fine: the variable is not
    assert "environment" in result.stderr


def test_problems_in_the_file_and_the_environment_name_both(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nport = "http"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"SIYU_SIGNIN_DAILY_POINTS": "many"})
    assert info.value.source == f"{path} and the environment"
    assert sorted(key for key, _message in info.value.problems) == [
        "SIYU_SIGNIN_DAILY_POINTS (signin.daily_points)", "server.port"]


@pytest.mark.parametrize(("name", "meant"), [
    ("SIYU_CHECKIN_DAILY_POINT", "SIYU_SIGNIN_DAILY_POINTS"),  # the old table's name, the key misspelt
    ("SIYU_SIGNIN_DAILY_POINT", "SIYU_SIGNIN_DAILY_POINTS"),
    ("SIYU_SERVER_PROT", "SIYU_SERVER_PORT"),
    ("SIYU_WECOMSECRET", "SIYU_WECOM_SECRET"),
])
def test_a_misspelt_variable_is_an_error_with_the_closest_match(name: str, meant: str) -> None:
    error = error_of({}, {name: "20"})
    assert error.problems == [(name, f"not a config variable; did you mean {meant}?")]


def test_the_misspelt_variable_stops_siyu_run(tmp_path: Path) -> None:
    env = {**clean_env(), "SIYU_CHECKIN_DAILY_POINT": "20"}
    result = subprocess.run([str(SIYU), "run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "SIYU_CHECKIN_DAILY_POINT" in result.stderr and "SIYU_SIGNIN_DAILY_POINTS" in result.stderr
    assert not (tmp_path / "siyu.db").exists()


def test_a_table_that_only_a_file_can_hold_says_so() -> None:
    [(key, message)] = error_of({}, {"SIYU_TASKS_NAME": "x"}).problems
    assert key == "SIYU_TASKS_NAME" and "config file" in message


def test_variables_that_are_not_config_keys_are_left_alone() -> None:
    env = {"SIYU_CONFIG": "x.toml", "SIYU_TEST_DATABASE_URL": "postgresql+psycopg://h/db",
           "SIYU_REQUIRE_BROWSER": "1", "SIYU_CHROMIUM": "/usr/bin/chromium", "SIYU_HOME": "/srv"}
    assert config_from_dict({}, env=env).server.port == 8080


def test_the_old_table_name_still_works_with_a_note() -> None:
    config = config_from_dict({}, env={"SIYU_CHECKIN_DAILY_POINTS": "20"})
    assert config.signin.daily_points == 20
    assert config.deprecations == ("SIYU_CHECKIN_DAILY_POINTS is deprecated: it is now SIYU_SIGNIN_DAILY_POINTS",)


# --- secrets are never repeated -------------------------------------------------------------------


def test_a_short_console_password_is_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[storage]\nurl = "sqlite:///{tmp_path / "s.db"}"\n\n'
                    '[[console.users]]\nname = "ann"\nrole = "admin"\npassword = "123456"\n', encoding="utf-8")
    result = subprocess.run([str(SIYU), "run", "--config", str(path)], cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "console.users.0.password" in result.stderr and "12" in result.stderr
    assert "123456" not in result.stderr


@pytest.mark.parametrize(("data", "env", "secret"), [
    ({"wecom": {"secret": 1234567}}, {}, "1234567"),
    ({"metrics": {"token": 98765432}}, {}, "98765432"),
    ({"wecom": {"encoding_aes_key": 31415926}}, {}, "31415926"),
    ({"bridge": {"secret": ["s3cr3t-in-a-list"]}}, {}, "s3cr3t-in-a-list"),
    ({}, {"SIYU_STORAGE_URL": "mysql+x://admin:pa55word@db/siyu"}, "pa55word"),
    ({}, {"SIYU_STORAGE_URL": "not a url://admin:pa55word@db"}, "pa55word"),
    ({"console": {"users": [{"name": "ann", "role": "nobody", "password": "hunter2hunter2"}]}}, {}, "hunter2hunter2"),
])
def test_no_config_error_repeats_a_secret(data: dict[str, object], env: dict[str, str], secret: str) -> None:
    error = error_of(data, env)
    assert error.problems
    assert secret not in str(error) and all(secret not in message for _key, message in error.problems)
