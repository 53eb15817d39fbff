"""Typed settings objects built from TOML tables, with unknown keys and wrong types rejected by name.

Each connector declares a dataclass subclass of :class:`Settings`; :func:`build_settings` fills it from
one TOML table. Supported field types: ``str``, ``int``, ``float``, ``bool``, ``Secret`` (written in TOML
as ``{ env = "VAR" }``), ``list[str]``, ``list[int]``, ``dict[str, str]``, ``dict[str, int]``, ``Literal``
choices, nested ``Settings`` dataclasses, and ``X | None``.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Iterable
from typing import Any, Literal, TypeVar, get_args, get_origin

from .errors import ConfigError
from .secrets import Secret
from .tlp import Tlp

T = TypeVar("T", bound="Settings")


@dataclasses.dataclass
class Settings:
    """Base class of every settings dataclass; subclasses add fields with defaults."""

    def validate(self, where: str) -> None:
        """Check cross-field rules after types are checked; raise ConfigError naming the key."""


class LineFinder:
    """Finds the line where a key is written in the TOML text, for error messages.

    ``tomllib`` gives positions only for syntax errors, so this searches the text for ``key =``; it may
    point at an earlier table that uses the same key name, which is still a useful hint.
    """

    def __init__(self, text: str = "") -> None:
        self._lines = text.splitlines()

    def line_of(self, key: str) -> int | None:
        """Return the 1-based line of the first ``key =`` in the text, or None."""
        leaf = key.rsplit(".", 1)[-1]
        for number, line in enumerate(self._lines, start=1):
            stripped = line.strip()
            if stripped.startswith((f"{leaf} =", f"{leaf}=", f'"{leaf}" =')):
                return number
        return None


def build_settings(cls: type[T], data: Any, where: str, lines: LineFinder | None = None) -> T:
    """Build ``cls`` from a TOML table, rejecting unknown keys and wrong types.

    Args:
        cls: the settings dataclass.
        data: the parsed TOML table.
        where: dotted config path of the table, used in messages (``sinks[1]``).
        lines: locates keys in the file text for messages.

    Raises:
        ConfigError: naming the key, the expected type and, where found, the line.
    """
    lines = lines or LineFinder()
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table, got {type(data).__name__}", key=where)

    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{where}.{unknown[0]}"
        raise ConfigError(
            f"unknown key {unknown[0]!r} in {where}; valid keys are: {', '.join(sorted(fields))}",
            key=key,
            line=lines.line_of(unknown[0]),
        )

    values: dict[str, Any] = {}
    for name, value in data.items():
        values[name] = _coerce(value, hints[name], f"{where}.{name}", lines)

    missing = [
        name
        for name, f in fields.items()
        if name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing required key {missing[0]!r} in {where}", key=f"{where}.{missing[0]}")

    settings = cls(**values)
    settings.validate(where)
    return settings


def _coerce(value: Any, hint: Any, key: str, lines: LineFinder) -> Any:
    origin = get_origin(hint)
    args = get_args(hint)
    line = lines.line_of(key)

    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return None
        if Secret in options:
            # Never quote the value: it may be a secret written in the file by mistake.
            return _secret(value, key, line)
        errors = []
        for option in options:
            try:
                return _coerce(value, option, key, lines)
            except ConfigError as exc:
                errors.append(exc.message)
        raise ConfigError(f"invalid value {value!r} for {key}: {'; '.join(errors)}", key=key, line=line)

    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"invalid value {value!r} for {key}: expected one of {choices}", key=key, line=line)
        return value

    if hint is Secret:
        return _secret(value, key, line)

    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {value!r}", key=key, line=line)
        return [_coerce(item, args[0], f"{key}[{i}]", lines) for i, item in enumerate(value)]

    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a table, got {value!r}", key=key, line=line)
        return {str(k): _coerce(v, args[1], f"{key}.{k}", lines) for k, v in value.items()}

    if isinstance(hint, type) and dataclasses.is_dataclass(hint) and issubclass(hint, Settings):
        return build_settings(hint, value, key, lines)

    return _scalar(value, hint, key, line)


def _scalar(value: Any, hint: Any, key: str, line: int | None) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is Any:
        return value
    else:
        raise ConfigError(f"{key} has an unsupported type {hint!r} in its settings class", key=key)
    raise ConfigError(f"{key} must be {_TOML_KINDS[hint]}, got {value!r}", key=key, line=line)


# The TOML spelling of each scalar type, for error messages read by people editing the file.
_TOML_KINDS = {
    bool: "true or false (without quotes)",
    int: "a whole number (for example 500, without quotes)",
    float: "a number (for example 0.5, without quotes)",
    str: 'a string in quotes (for example "value")',
}


def _secret(value: Any, key: str, line: int | None) -> Secret:
    if not (isinstance(value, dict) and set(value) == {"env"} and isinstance(value["env"], str)):
        raise ConfigError(
            f"{key} is a secret and must name an environment variable, written as {{ env = \"VARIABLE\" }}; "
            "secrets are never written in the file itself",
            key=key,
            line=line,
        )
    name = value["env"]
    if not name.strip():
        raise ConfigError(
            f"{key} names no environment variable; write the variable's name, as in {{ env = \"VARIABLE\" }}",
            key=key,
            line=line,
        )
    if os.environ.get(name) == "":
        raise ConfigError(
            f"{key} names environment variable {name}, which is set but empty; export the secret in it",
            key=key,
            line=line,
        )
    try:
        return Secret.from_env(name)
    except KeyError:
        raise ConfigError(
            f"{key} names environment variable {value['env']} which is not set; export it before running",
            key=key,
            line=line,
        ) from None


def tlp_setting(text: str, key: str) -> Tlp:
    """Parse a TLP level written in the configuration.

    Raises:
        ConfigError: the text names no TLP level; the message names the key.
    """
    try:
        return Tlp.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}", key=key) from None


def check_names_configured(names: Iterable[str], known: Iterable[str], where: str, noun: str) -> None:
    """Check that each entry of a table (``[[trust.sources]]``, ``[[sharing.targets]]``) names a configured
    connector.

    Args:
        names: the ``name`` of each entry, in file order.
        known: names of the configured connectors it may refer to.
        where: dotted path of the list of entries, such as ``trust.sources``.
        noun: what the names refer to, such as ``source`` or ``publish entry``.

    Raises:
        ConfigError: naming the first entry that refers to nothing.
    """
    configured = set(known)
    for index, name in enumerate(names):
        if name not in configured:
            raise ConfigError(
                f"{where}[{index}] is for {noun} {name!r}, which is not configured; "
                f"configured: {', '.join(sorted(configured)) or 'none'}",
                key=f"{where}[{index}].name",
            )
