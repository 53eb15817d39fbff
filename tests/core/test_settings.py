from dataclasses import dataclass, field
from typing import Literal

import pytest

from stixbridge.errors import ConfigError
from stixbridge.secrets import Secret, missing_secrets_allowed
from stixbridge.settings import LineFinder, Settings, build_settings


@dataclass
class Example(Settings):
    url: str = ""
    limit: int = 10
    ratio: float = 0.5
    verify_tls: bool = True
    mode: Literal["a", "b"] = "a"
    tags: list[str] = field(default_factory=list)
    password: Secret | None = None


def test_settings_build_types():
    built = build_settings(Example, {"url": "http://127.0.0.1", "limit": 5, "ratio": 1, "tags": ["x"]}, "sinks[0]")
    assert built.limit == 5
    assert built.ratio == 1.0
    assert built.tags == ["x"]


def test_settings_unknown_key_named_with_line():
    text = 'url = "x"\nlimmit = 3\n'
    with pytest.raises(ConfigError, match=r"unknown key 'limmit' in sinks\[0\].*line 2"):
        build_settings(Example, {"url": "x", "limmit": 3}, "sinks[0]", LineFinder(text))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"limit": "5"}, "sinks.limit must be a whole number"),
        ({"limit": True}, "sinks.limit must be a whole number"),
        ({"verify_tls": "no"}, "sinks.verify_tls must be true or false"),
        ({"mode": "c"}, "expected one of 'a', 'b'"),
        ({"tags": "x"}, "sinks.tags must be a list"),
    ],
)
def test_settings_wrong_types_rejected(data, message):
    with pytest.raises(ConfigError, match=message):
        build_settings(Example, data, "sinks")


def test_settings_secret_from_env(monkeypatch):
    monkeypatch.setenv("EXAMPLE_PASSWORD", "hunter2-sentinel")
    built = build_settings(Example, {"password": {"env": "EXAMPLE_PASSWORD"}}, "sinks")
    assert built.password is not None
    assert built.password.reveal() == "hunter2-sentinel"
    assert "hunter2-sentinel" not in repr(built)
    assert "hunter2-sentinel" not in str(built)


def test_settings_secret_literal_rejected():
    with pytest.raises(ConfigError, match="secret and must name an environment variable") as info:
        build_settings(Example, {"password": "hunter2-sentinel"}, "sinks")
    assert "hunter2-sentinel" not in str(info.value)


def test_settings_secret_env_missing(monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE which is not set"):
        build_settings(Example, {"password": {"env": "NOT_SET_ANYWHERE"}}, "sinks")


def test_settings_secret_env_empty(monkeypatch):
    monkeypatch.setenv("EXAMPLE_PASSWORD", "")
    with pytest.raises(ConfigError, match="EXAMPLE_PASSWORD, which is set but empty"):
        build_settings(Example, {"password": {"env": "EXAMPLE_PASSWORD"}}, "sinks")


def test_settings_secret_env_name_empty():
    with pytest.raises(ConfigError, match="names no environment variable"):
        build_settings(Example, {"password": {"env": " "}}, "sinks")


def test_settings_missing_secret_allowed_for_reading(monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with missing_secrets_allowed():
        built = build_settings(Example, {"password": {"env": "NOT_SET_ANYWHERE"}}, "sinks")

    assert built.password is not None
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE is not set"):
        built.password.reveal()
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE which is not set"):
        build_settings(Example, {"password": {"env": "NOT_SET_ANYWHERE"}}, "sinks")
