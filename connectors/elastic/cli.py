"""The ``stixbridge elastic`` subcommands: ``setup``, ``devtools`` and ``refresh``.

:func:`register` adds them to the subparsers of the ``stixbridge`` parser (``stixbridge.cli.EXTRA_COMMANDS``).
They read the configuration named by the global ``--config`` option, as every other command does, and
set ``handler`` to the function that runs them and returns the exit code. Errors are raised as
stixbridge errors, which the ``stixbridge`` command turns into its exit codes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from stixbridge.config import ConnectorEntry, find_config, load_config
from stixbridge.connector import ConnectorContext
from stixbridge.errors import ConfigError

from .devtools import console_text
from .settings import ElasticSinkSettings
from .setup import setup
from .sink import ElasticSink


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``elastic`` with its subcommands to the subparsers of the ``stixbridge`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "elastic", help="set up Elasticsearch and Kibana for the elastic sink"
    )
    commands = parser.add_subparsers(dest="elastic_command", required=True, metavar="ACTION")

    setup_parser = commands.add_parser(
        "setup",
        help="install the index template, the index and its alias; print what changed",
        description="Install the index template, the index and the write alias that the elastic sink "
        "writes to. Running it again changes nothing.",
    )
    _add_sink_argument(setup_parser)
    setup_parser.add_argument(
        "--rules",
        action="store_true",
        help="also install the domain indicator-match rule (disabled) in Kibana; needs kibana_url",
    )
    setup_parser.set_defaults(handler=run_setup)

    devtools_parser = commands.add_parser(
        "devtools",
        help="print the setup as Kibana Dev Tools console requests",
        description="Print the requests 'setup' sends, for an administrator to run in Kibana Dev Tools. "
        "Without a configuration file the default index and alias names are used.",
    )
    _add_sink_argument(devtools_parser)
    devtools_parser.set_defaults(handler=run_devtools)

    refresh_parser = commands.add_parser(
        "refresh",
        help="stamp still-valid documents older than refresh_days with a fresh @timestamp",
        description="Stamp documents whose @timestamp is older than refresh_days and that are still valid "
        "with the current time, as a push does after it writes. Use it when pushes are rare.",
    )
    _add_sink_argument(refresh_parser)
    refresh_parser.set_defaults(handler=run_refresh)
    return parser


def _add_sink_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sink", default=None, help="name of the elastic sink when the configuration has several")


def run_setup(args: argparse.Namespace) -> int:
    """Run ``stixbridge elastic setup``; print each change, or that nothing changed."""
    entry, base_dir = find_elastic_sink(getattr(args, "config", None), args.sink)
    settings = entry.connector.settings
    assert isinstance(settings, ElasticSinkSettings)

    changes = setup(settings, rules=args.rules, base_dir=base_dir)
    if not changes:
        print("Nothing to change: the index template, index and alias are in place.")
    for change in changes:
        print(f"- {change}")
    return 0


def run_devtools(args: argparse.Namespace) -> int:
    """Print the Dev Tools requests for the configured index and alias, or for the defaults without a file."""
    explicit = getattr(args, "config", None)
    try:
        entry, _ = find_elastic_sink(explicit, args.sink)
    except ConfigError:
        if explicit or args.sink:
            raise
        print(console_text(), end="")
        return 0
    settings = entry.connector.settings
    assert isinstance(settings, ElasticSinkSettings)
    print(console_text(settings.index, settings.alias), end="")
    return 0


def run_refresh(args: argparse.Namespace) -> int:
    """Run ``stixbridge elastic refresh`` and print how many documents were stamped."""
    entry, base_dir = find_elastic_sink(getattr(args, "config", None), args.sink)
    settings = entry.connector.settings
    assert isinstance(settings, ElasticSinkSettings)

    with ElasticSink(entry.name, settings, ConnectorContext(base_dir=base_dir)) as sink:
        sink.begin()
        stamped = sink.refresh_timestamps()
    print(f"Stamped {stamped} documents with a fresh @timestamp.")
    return 0


def find_elastic_sink(config_path: str | None, sink_name: str | None) -> tuple[ConnectorEntry, Path]:
    """Return the ``kind = "elastic"`` sink of the configuration and the folder relative paths start from.

    Raises:
        ConfigError: no configuration file, an invalid one, or not exactly one matching elastic sink.
    """
    config = load_config(find_config(config_path))
    found = [
        entry for entry in config.sinks if entry.kind == "elastic" and (sink_name is None or entry.name == sink_name)
    ]
    if not found:
        which = f" named {sink_name!r}" if sink_name else ""
        raise ConfigError(f'{config.path} has no [[sinks]] entry with kind = "elastic"{which}')
    if len(found) > 1:
        names = ", ".join(repr(entry.name) for entry in found)
        raise ConfigError(f"{config.path} has several elastic sinks ({names}); choose one with --sink")
    return found[0], config.base_dir
