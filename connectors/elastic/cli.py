"""The ``stixbridge elastic`` subcommands: ``setup`` and ``devtools``.

:func:`register` adds them to the ``stixbridge`` argument parser; each parsed command carries ``func``,
which runs it and returns the process exit code.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

from stixbridge.errors import ConfigError, StixbridgeError
from stixbridge.settings import LineFinder, build_settings

from .devtools import console_text
from .settings import ElasticSinkSettings
from .setup import setup

DEFAULT_CONFIG = "stixbridge.toml"


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``elastic`` with its subcommands to the subparsers of the ``stixbridge`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "elastic", help="set up Elasticsearch and Kibana for the elastic sink"
    )
    commands = parser.add_subparsers(dest="elastic_command", required=True)

    setup_parser = commands.add_parser(
        "setup",
        help="install the index template, the index and its alias; report what changed",
        description="Install the index template, the index and its alias that the elastic sink writes to. "
        "Running it again changes nothing.",
    )
    _add_config_arguments(setup_parser)
    setup_parser.add_argument(
        "--rules",
        action="store_true",
        help="also install the domain indicator-match rule (disabled) in Kibana; needs kibana_url",
    )
    setup_parser.set_defaults(func=run_setup)

    devtools_parser = commands.add_parser(
        "devtools",
        help="print the setup as Kibana Dev Tools console requests",
        description="Print the requests 'setup' sends, for an administrator to run in Kibana Dev Tools.",
    )
    _add_config_arguments(devtools_parser)
    devtools_parser.set_defaults(func=run_devtools)
    return parser


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"configuration file (default: {DEFAULT_CONFIG})")
    parser.add_argument("--sink", default=None, help="name of the elastic sink when the file has several")


def run_setup(args: argparse.Namespace) -> int:
    """Run ``stixbridge elastic setup``; print each change, or that nothing changed."""
    try:
        settings, base_dir = load_sink_settings(Path(args.config), args.sink)
        changes = setup(settings, rules=args.rules, base_dir=base_dir)
    except StixbridgeError as exc:
        print(f"stixbridge elastic setup: {exc}", file=sys.stderr)
        return 1
    if not changes:
        print("Nothing to change: the template, index and alias are in place.")
    for change in changes:
        print(f"- {change}")
    return 0


def run_devtools(args: argparse.Namespace) -> int:
    """Print the Dev Tools requests for the configured index and alias, or for the defaults without a file."""
    config = Path(args.config)
    if args.config == DEFAULT_CONFIG and not config.exists():
        print(console_text(), end="")
        return 0
    try:
        settings, _ = load_sink_settings(config, args.sink)
    except StixbridgeError as exc:
        print(f"stixbridge elastic devtools: {exc}", file=sys.stderr)
        return 1
    print(console_text(settings.index, settings.alias), end="")
    return 0


def load_sink_settings(config: Path, sink_name: str | None) -> tuple[ElasticSinkSettings, Path]:
    """Read the settings of one ``[[sinks]]`` table with ``kind = "elastic"`` from a TOML file.

    Returns:
        The settings and the folder that relative paths in them are resolved against.

    Raises:
        ConfigError: the file is missing or invalid, or holds no (or more than one unnamed) elastic sink.
    """
    try:
        text = config.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {str(config)!r}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {str(config)!r}: {exc}") from exc

    tables = data.get("sinks", [])
    found = [
        (number, table)
        for number, table in enumerate(tables if isinstance(tables, list) else [])
        if isinstance(table, dict)
        and table.get("kind") == "elastic"
        and (sink_name is None or table.get("name", "elastic") == sink_name)
    ]
    if not found:
        which = f" named {sink_name!r}" if sink_name else ""
        raise ConfigError(f'{str(config)!r} has no [[sinks]] table with kind = "elastic"{which}')
    if len(found) > 1:
        names = ", ".join(repr(table.get("name", "elastic")) for _, table in found)
        raise ConfigError(f"{str(config)!r} has several elastic sinks ({names}); choose one with --sink")

    number, table = found[0]
    values = {key: value for key, value in table.items() if key not in ("kind", "name")}
    settings = build_settings(ElasticSinkSettings, values, f"sinks[{number}]", LineFinder(text))
    return settings, config.resolve().parent
