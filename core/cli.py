"""The ``stixbridge`` command line.

Exit codes: 0 done; 1 done, but some objects were quarantined; 2 configuration or usage error; 3 a source, sink,
sightings reader or publish target failed (the others still ran); 4 a pull was held for review.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config, find_config, load_config
from .engine import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, Engine, RunSummary
from .errors import ConfigError, MissingExtraError, NotFoundError, StixbridgeError
from .secrets import missing_secrets_allowed
from .store.sqlite import SqliteStore
from .timeutil import format_timestamp, from_epoch, utcnow

logger = logging.getLogger("stixbridge")

# Subcommands that connector packages add: a function that registers a subparser on the given object.
# Tests append to this list; installed packages declare entries in the stixbridge.commands group.
EXTRA_COMMANDS: list[Callable[[Any], None]] = []
COMMANDS_GROUP = "stixbridge.commands"


def _command_registrars() -> list[Callable[[Any], None]]:
    from importlib.metadata import entry_points

    found = list(EXTRA_COMMANDS)
    for entry in entry_points(group=COMMANDS_GROUP):
        found.append(entry.load())
    return found


def _setup_logging(level: str, quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


EXIT_INTERRUPTED = 130
"""The shell's code for a command ended by SIGINT."""

EXIT_CODES_HELP = """exit codes:
  0  done
  1  done, but some objects were quarantined
  2  configuration or usage error (invalid file, unknown id, missing package)
  3  a source, sink, sightings reader or publish target failed; the others still ran
  4  a pull was held for review ('stixbridge review list')
  130  interrupted (Ctrl-C); the next run continues from the last stored page"""


def _common_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "-c", "--config", default=default, help="configuration file (default: $STIXBRIDGE_CONFIG or ./stixbridge.toml)"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="log warnings and errors only"
    )
    parser.add_argument("--json", action="store_true", default=default, help="print results as JSON")


# The same options after a subcommand (stixbridge sync -c FILE); SUPPRESS keeps the value given before it.
_AFTER_COMMAND = argparse.ArgumentParser(add_help=False)
_common_options(_AFTER_COMMAND, argparse.SUPPRESS)


def _add_command(subparsers: Any, name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
    """Add a subcommand whose description repeats its help line and which accepts -c, -q and --json."""
    description = help[0].upper() + help[1:] + "."
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=description, parents=[_AFTER_COMMAND], **kwargs
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="stixbridge",
        description="Pull STIX threat intelligence from an alliance and keep Splunk, Elasticsearch and MISP current.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"stixbridge {__version__}")
    _common_options(parser, None)
    parser.set_defaults(quiet=False, json=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_command(sub, "sync", help="pull every source, expire, push changes to every sink, read sightings and publish")
    pull = _add_command(sub, "pull", help="pull sources into the store")
    pull.add_argument("--source", help="pull only this source")
    push = _add_command(sub, "push", help="push changes to sinks")
    push.add_argument("--sink", help="push only to this sink")
    _add_command(sub, "expire", help="move expired indicators out of the live set")
    _add_command(sub, "status", help="show counts per source, atom type and sink, composites, quarantine, expiries")

    quarantine = _add_command(sub, "quarantine", help="list, show or release quarantined objects")
    qsub = quarantine.add_subparsers(dest="action", required=True, metavar="ACTION")
    qlist = _add_command(qsub, "list", help="list quarantined objects")
    qlist.add_argument("--all", action="store_true", help="include released objects")
    qlist.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
    qshow = _add_command(qsub, "show", help="print one quarantined object: why, when, from where, and its raw text")
    qshow.add_argument("qid", type=int, help="quarantine row number from 'stixbridge quarantine list'")
    qshow.add_argument("--raw", action="store_true", help="print only the raw text, for example to pipe it to jq")
    qrelease = _add_command(
        qsub, "release", help="release a quarantined object; one the trust guard held is stored now"
    )
    qrelease.add_argument("qid", type=int, help="quarantine row number from 'stixbridge quarantine list'")

    review = _add_command(sub, "review", help="list, approve or reject pulls held by the blast-radius guard")
    rsub = review.add_subparsers(dest="action", required=True, metavar="ACTION")
    rlist = _add_command(rsub, "list", help="list held pulls (and decided ones with --all)")
    rlist.add_argument("--all", action="store_true", help="include approved, rejected and applied pulls")
    rapprove = _add_command(rsub, "approve", help="store a held pull")
    rapprove.add_argument("review_id", type=int, help="review number from 'stixbridge review list'")
    rreject = _add_command(rsub, "reject", help="drop a held pull and move its source's cursor past it")
    rreject.add_argument("review_id", type=int, help="review number from 'stixbridge review list'")

    sightings = _add_command(sub, "sightings", help="read, list and publish sightings")
    ssub = sightings.add_subparsers(dest="action", required=True, metavar="ACTION")
    slist = _add_command(ssub, "list", help="list published, pending, refused and failed objects, with the reason")
    slist.add_argument(
        "--status", choices=("pending", "sending", "published", "refused", "failed", "unmatched"),
        help="show only outbox rows of this status, or only the records that matched no indicator",
    )
    slist.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
    _add_command(ssub, "read", help="read every sightings reader and aggregate the new hits")
    spublish = _add_command(ssub, "publish", help="send the outbox to every publish target")
    spublish.add_argument("--target", help="publish only to this [[publish]] entry")

    config = _add_command(sub, "config", help="check a configuration file")
    csub = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_command(csub, "check", help="validate the configuration and print what would run")

    refetch = _add_command(
        sub,
        "refetch",
        help="fetch one indicator again by id from the source that sent it; exits 2 for an invalid or unknown "
        "id and for a source that cannot fetch by id (kind 'file')",
    )
    refetch.add_argument("id", help="indicator id, for example indicator--<UUID>")

    demo = _add_command(
        sub, "demo", help="run the main job on a generated sample feed; needs no Splunk, Elastic or MISP"
    )
    demo.add_argument(
        "--dir", default="stixbridge-demo", help="folder for the demo's files (default ./stixbridge-demo)"
    )
    demo.add_argument("--count", type=int, default=500, help="indicators in the sample feed (default 500)")
    demo.add_argument(
        "--no-taxii", action="store_true", help="read the sample feed from a file, not a local TAXII server"
    )

    for register in _command_registrars():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    _setup_logging("INFO", args.quiet)
    try:
        return _dispatch(args)
    except BrokenPipeError:
        # The reader (head, less) closed the pipe; point stdout at nothing so the exit flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (MissingExtraError, NotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StixbridgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        # Each page and its cursor are stored in one transaction, so the next run continues cleanly.
        print("interrupted; nothing stored is lost, and the next run continues from the last stored page",
              file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(Path(args.dir), count=args.count, use_taxii=not args.no_taxii, as_json=args.json)

    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args))

    if _reads_state_only(args):
        with missing_secrets_allowed():
            config = load_config(find_config(args.config))
    else:
        config = load_config(find_config(args.config))
    logging.getLogger().setLevel(logging.WARNING if args.quiet else config.engine.log_level)
    if args.command == "config":
        return _config_check(config, args.json)

    with SqliteStore(config.state_path) as store:
        engine = Engine(config, store)
        try:
            return _run(engine, args)
        finally:
            config.close()


def _reads_state_only(args: argparse.Namespace) -> bool:
    """Tell whether a command only reads the state file, so it runs without the connectors' secrets."""
    action = getattr(args, "action", None)
    return args.command == "status" or (args.command, action) in {
        ("quarantine", "list"), ("quarantine", "show"), ("review", "list"), ("sightings", "list"),
    }


def _run(engine: Engine, args: argparse.Namespace) -> int:
    command = args.command
    summary = RunSummary()
    if command == "sync":
        summary = engine.sync()
    elif command == "pull":
        engine.pull(summary, only=args.source)
    elif command == "push":
        engine.push(summary, only=args.sink)
    elif command == "expire":
        engine.expire(summary)
    elif command == "status":
        _print(_status(engine), args.json)
        return EXIT_OK
    elif command == "quarantine":
        return _quarantine(engine, args)
    elif command == "review":
        return _review(engine, args)
    elif command == "sightings":
        if args.action == "list":
            return _sightings_list(engine, args)
        if args.action == "read":
            engine.read_sightings(summary)
        else:
            engine.publish(summary, only=args.target)
    elif command == "refetch":
        return _refetch(engine, args)
    _print_summary(summary, args.json)
    return summary.exit_code()


def _refetch(engine: Engine, args: argparse.Namespace) -> int:
    """Run ``refetch``: exit 2 when no retry can help (bad or unknown id, source cannot fetch by id)."""
    from .refetch import USAGE_STATUSES, refetch

    result = refetch(engine, args.id)
    if result["status"] in USAGE_STATUSES:
        print(f"error: {result['reason']}", file=sys.stderr)
        if args.json:
            _print(result, True)
        return EXIT_CONFIG
    _print(result, args.json)
    return EXIT_OK if result["found"] else EXIT_FAILED


def _status(engine: Engine) -> dict[str, Any]:
    from .sightings.loop import outbox_of

    status = engine.store.status(utcnow())
    status["sources"] = engine.store.source_runs([entry.name for entry in engine.config.sources])
    status["sightings"] = outbox_of(engine).summary()
    status["trust"] = engine.trust.status()
    return status


def _review(engine: Engine, args: argparse.Namespace) -> int:
    from .trust.review import OPEN_STATUSES, review_rows

    if args.action == "list":
        rows = review_rows(engine.store, None if args.all else OPEN_STATUSES)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for row in rows:
                change = row["change"]
                print(f"{row['review']:>6}  {row['status']:<9} {row['source']:<16} +{change.get('added', 0)} "
                      f"-{change.get('removed', 0)} of {change.get('live', 0)} live, {change.get('retired_atoms', 0)} "
                      f"atoms retired  {row['reason'] or ''}")  # fmt: skip
            print(f"{len(rows)} reviews shown")
        return EXIT_OK
    if args.action == "approve":
        counts = engine.approve_review(args.review_id)
        _print({"approved": args.review_id, "stored": counts}, args.json)
        return EXIT_OK
    cursor = engine.reject_review(args.review_id)
    print(f"rejected review {args.review_id}; the source resumes after it" if cursor else
          f"rejected review {args.review_id}; it carried no cursor, so the source pulls the same objects again")
    return EXIT_OK


def _sightings_list(engine: Engine, args: argparse.Namespace) -> int:
    from .sightings.loop import outbox_of

    outbox = outbox_of(engine)
    rows = [] if args.status == "unmatched" else outbox.rows(args.status, args.limit)
    unmatched = []
    if args.status in (None, "unmatched"):
        unmatched = [
            {"value": value, "source": source, "reason": reason}
            for value, source, reason in engine.store.db.execute(
                "SELECT value, source, reason FROM sightings WHERE status = 'unmatched' ORDER BY sid DESC LIMIT ?",
                (args.limit,),
            )
        ]
    if args.json:
        print(json.dumps({"outbox": rows, "unmatched": unmatched, **outbox.summary()}, indent=2))
        return EXIT_OK
    for row in rows:
        print(f"{row['status']:<9} {row['target']:<16} {row['object_id']}  TLP:{row['tlp'] or '-'}  "
              f"{row['reason'] or ''}")  # fmt: skip
    for row in unmatched:
        print(f"unmatched {row['source']:<16} {row['value']}  {row['reason']}")
    print(f"{len(rows)} outbox rows and {len(unmatched)} unmatched records shown")
    return EXIT_OK


def _quarantine(engine: Engine, args: argparse.Namespace) -> int:
    store = engine.store
    if args.action == "list":
        rows = store.quarantine_rows(None if args.all else "held", args.limit)
        if args.json:
            print(json.dumps(rows, indent=2, default=str))
        else:
            # The OBJECT column is as wide as its longest entry, so the reasons start in one column.
            width = max([len("OBJECT"), *(len(row["object_id"] or "-") for row in rows)])
            if rows:
                print(f"{'QID':>6}  {'STATUS':<9} {'SOURCE':<16} {'CODE':<10} {'OBJECT':<{width}}  REASON")
            for row in rows:
                print(f"{row['qid']:>6}  {row['status']:<9} {row['source']:<16} {row['reason_code']:<10} "
                      f"{row['object_id'] or '-':<{width}}  {row['reason']}")  # fmt: skip
            print(f"{len(rows)} quarantined objects shown")
        return EXIT_OK
    if args.action == "show":
        entry = store.quarantine_entry(args.qid)
        if entry is None:
            print(f"no quarantined object with id {args.qid}; see 'stixbridge quarantine list'", file=sys.stderr)
            return EXIT_CONFIG
        entry["at"] = format_timestamp(from_epoch(entry["at"]))
        if args.json:
            print(json.dumps(entry, indent=2, default=str))
        elif args.raw:
            print(entry["raw"])
        else:
            for name in ("qid", "status", "source", "collection", "object_id", "reason_code", "at", "reason"):
                print(f"{name}: {entry[name] if entry[name] is not None else '-'}")
            print(f"raw:\n{entry['raw']}")
        return EXIT_OK
    from .quarantine import release

    message = release(engine, args.qid)
    print(message)
    return EXIT_OK


def _config_check(config: Config, as_json: bool) -> int:
    plan = {
        "config": str(config.path),
        "state": str(config.state_path),
        "identity": {"name": config.identity.name, "id": config.identity.id},
        "sources": [_describe(e) for e in config.sources],
        "sinks": [_describe(e) for e in config.sinks],
        "sightings": [_describe(e) for e in config.sightings],
        "publish": [_describe(e) for e in config.publish],
        "lifetimes_days": {k: v.days for k, v in sorted(config.lifetimes().items())},
    }
    problems = [
        problem
        for entry in [*config.sources, *config.sinks, *config.sightings, *config.publish]
        if entry.enabled
        for problem in entry.connector.preflight()
    ]
    plan["problems"] = problems
    notes = []
    if not any(e.enabled for e in config.sources):
        notes.append("no enabled [[sources]] entry: a sync pulls nothing")
    if not any(e.enabled for e in config.sinks):
        notes.append("no enabled [[sinks]] entry: indicators stay in the state file")
    plan["notes"] = notes
    if as_json:
        print(json.dumps(plan, indent=2))
        return EXIT_CONFIG if problems else EXIT_OK
    if problems:
        print(f"configuration {config.path} is valid, but it cannot run yet:")
        for problem in problems:
            print(f"  - {problem}")
        return EXIT_CONFIG
    else:
        print(f"configuration {config.path} is valid")
        print(f"state file: {config.state_path}")
        print(f"identity: {config.identity.name} ({config.identity.id})")
        for role in ("sources", "sinks", "sightings", "publish"):
            for line in plan[role]:
                print(f"  {role[:-1] if role != 'publish' else 'publish'}: {line}")
        for note in notes:
            print(f"note: {note}")
    return EXIT_OK


def _describe(entry: Any) -> str:
    text = entry.connector.describe()
    return text if entry.enabled else f"{text} (disabled)"


def _print(data: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    _print_tree(data, 0)


def _print_tree(data: Any, depth: int) -> None:
    pad = "  " * depth
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, (dict, list)) and value:
                print(f"{pad}{key}:")
                _print_tree(value, depth + 1)
            else:
                print(f"{pad}{key}: {_plain(value)}")
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict):
                print(f"{pad}- " + ", ".join(f"{k}={_plain(v)}" for k, v in item.items()))
            else:
                print(f"{pad}- {item}")
    else:
        print(f"{pad}{data}")


def _plain(value: Any) -> str:
    """Write a leaf value for people: "-" for nothing, JSON for a table or list, else the value."""
    if value is None or value in ({}, []):
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def _print_summary(summary: RunSummary, as_json: bool) -> None:
    data = {
        "pulled": summary.pulled,
        "expired": summary.expired,
        "activated": summary.activated,
        "rows_changed": summary.rows_changed,
        "pushed": summary.pushed,
        "quarantined": summary.quarantined,
        "held_for_review": summary.held,
        "failures": summary.failures,
        **summary.extra,
    }
    _print(data, as_json)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
