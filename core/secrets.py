"""Secrets read from environment variables named in the configuration, masked everywhere else."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .errors import ConfigError

MASK = "********"
_MISSING_ALLOWED: ContextVar[bool] = ContextVar("stixbridge_missing_secrets_allowed", default=False)

# Config and log field names whose values are masked wherever they are printed.
SECRET_NAME_PATTERN = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|apikey|auth(orization)?|credential|private[_-]?key|^key$|cookie)",
    re.IGNORECASE,
)


class Secret:
    """A secret value that never shows itself in ``repr``, ``str``, f-strings or logs.

    Only :meth:`reveal` returns the value; call it at the last moment, where the value is handed to an
    HTTP library, and never keep the result in a long-lived attribute.
    """

    __slots__ = ("_env", "_value")

    def __init__(self, value: str | None, env: str = "") -> None:
        self._value = value
        self._env = env

    @classmethod
    def from_env(cls, name: str) -> Secret:
        """Read the secret from environment variable ``name``.

        Raises:
            KeyError: the variable is not set; the message names it but never a value.
        """
        value = os.environ.get(name)
        if value is None and not _MISSING_ALLOWED.get():
            raise KeyError(f"environment variable {name} is not set")
        return cls(value, env=name)

    @property
    def env(self) -> str:
        """Name of the environment variable the secret came from."""
        return self._env

    def reveal(self) -> str:
        """Return the secret value.

        Raises:
            ConfigError: the secret's variable was not set when the configuration was loaded, which only
                :func:`missing_secrets_allowed` permits.
        """
        if self._value is None:
            raise ConfigError(f"environment variable {self._env} is not set; export it before running")
        return self._value

    def __repr__(self) -> str:
        return f"Secret(env={self._env!r})" if self._env else "Secret(****)"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._env))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secret values cannot be pickled")


@contextmanager
def missing_secrets_allowed() -> Iterator[None]:
    """Load configurations whose secret variables are unset, for commands that only read the state file.

    ``stixbridge status`` on a host that keeps its TAXII password elsewhere needs no password. A secret
    loaded this way raises :class:`ConfigError` when revealed.
    """
    token = _MISSING_ALLOWED.set(True)
    try:
        yield
    finally:
        _MISSING_ALLOWED.reset(token)


def is_secret_name(name: str) -> bool:
    """Return True when a field with this name holds a secret and must be masked."""
    return bool(SECRET_NAME_PATTERN.search(name))


def mask_mapping(data: object) -> object:
    """Return a copy of nested dicts and lists with every secret-named field masked."""
    if isinstance(data, dict):
        return {
            key: (MASK if is_secret_name(str(key)) and value not in (None, "") else mask_mapping(value))
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [mask_mapping(item) for item in data]
    if isinstance(data, Secret):
        return MASK
    return data
