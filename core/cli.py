"""The ``stixbridge`` command line.

Exit codes: 0 done; 1 done, but some objects were quarantined; 2 configuration error; 3 a source, sink,
sightings reader or publish target failed (the others still ran); 4 a pull was held for review.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config, find_config, load_config
from .engine import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, Engine, RunSummary
from .errors import ConfigError, MissingExtraError, StixbridgeError
from .store.sqlite import SqliteStore
from .timeutil import utcnow

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


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="stixbridge",
        description="Pull STIX threat intelligence from an alliance and keep Splunk, Elasticsearch and MISP current.",
    )
    parser.add_argument("--version", action="version", version=f"stixbridge {__version__}")
    parser.add_argument("-c", "--config", help="configuration file (default: $STIXBRIDGE_CONFIG or ./stixbridge.toml)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("sync", help="pull every source, expire, push changes to every sink, read sightings and publish")
    pull = sub.add_parser("pull", help="pull sources into the store")
    pull.add_argument("--source", help="pull only this source")
    push = sub.add_parser("push", help="push changes to sinks")
    push.add_argument("--sink", help="push only to this sink")
    sub.add_parser("expire", help="move expired indicators out of the live set")
    sub.add_parser("status", help="show counts per source, atom type and sink, composites, quarantine, expiries")

    quarantine = sub.add_parser("quarantine", help="list, show or release quarantined objects")
    qsub = quarantine.add_subparsers(dest="action", required=True, metavar="ACTION")
    qlist = qsub.add_parser("list", help="list quarantined objects")
    qlist.add_argument("--all", action="store_true", help="include released objects")
    qlist.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
    qshow = qsub.add_parser("show", help="print the raw text of one quarantined object")
    qshow.add_argument("qid", type=int)
    qrelease = qsub.add_parser("release", help="release a quarantined object; one the trust guard held is stored now")
    qrelease.add_argument("qid", type=int)

    review = sub.add_parser("review", help="list, approve or reject pulls held by the blast-radius guard")
    rsub = review.add_subparsers(dest="action", required=True, metavar="ACTION")
    rlist = rsub.add_parser("list", help="list held pulls (and decided ones with --all)")
    rlist.add_argument("--all", action="store_true", help="include approved, rejected and applied pulls")
    rapprove = rsub.add_parser("approve", help="store a held pull")
    rapprove.add_argument("review_id", type=int)
    rreject = rsub.add_parser("reject", help="drop a held pull and move its source's cursor past it")
    rreject.add_argument("review_id", type=int)

    sightings = sub.add_parser("sightings", help="read, list and publish sightings")
    ssub = sightings.add_subparsers(dest="action", required=True, metavar="ACTION")
    slist = ssub.add_parser("list", help="list published, pending, refused and failed objects, with the reason")
    slist.add_argument("--status", choices=("pending", "sending", "published", "refused", "failed"))
    slist.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
    ssub.add_parser("read", help="read every sightings reader and aggregate the new hits")
    spublish = ssub.add_parser("publish", help="send the outbox to every publish target")
    spublish.add_argument("--target", help="publish only to this [[publish]] entry")

    config = sub.add_parser("config", help="check a configuration file")
    csub = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    csub.add_parser("check", help="validate the configuration and print what would run")

    refetch = sub.add_parser("refetch", help="fetch one indicator again by id from the source that sent it")
    refetch.add_argument("id", help="STIX id, for example indicator--...")

    demo = sub.add_parser("demo", help="run the main job on a generated sample feed; needs no Splunk, Elastic or MISP")
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
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except MissingExtraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StixbridgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(Path(args.dir), count=args.count, use_taxii=not args.no_taxii, as_json=args.json)

    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args))

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
        from .refetch import refetch

        result = refetch(engine, args.id)
        _print(result, args.json)
        return EXIT_OK if result.get("found") else EXIT_FAILED
    _print_summary(summary, args.json)
    return summary.exit_code()


def _status(engine: Engine) -> dict[str, Any]:
    from .sightings.loop import outbox_of

    status = engine.store.status(utcnow())
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
    rows = outbox.rows(args.status, args.limit)
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
            for row in rows:
                print(f"{row['qid']:>6}  {row['status']:<9} {row['source']:<16} {row['reason_code']:<10} "
                      f"{row['object_id'] or '-'}  {row['reason']}")  # fmt: skip
            print(f"{len(rows)} quarantined objects shown")
        return EXIT_OK
    if args.action == "show":
        raw = store.quarantine_raw(args.qid)
        if raw is None:
            print(f"no quarantined object with id {args.qid}; see 'stixbridge quarantine list'", file=sys.stderr)
            return EXIT_FAILED
        print(raw)
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
    if as_json:
        print(json.dumps(plan, indent=2))
    else:
        print(f"configuration {config.path} is valid")
        print(f"state file: {config.state_path}")
        print(f"identity: {config.identity.name} ({config.identity.id})")
        for role in ("sources", "sinks", "sightings", "publish"):
            for line in plan[role]:
                print(f"  {role[:-1] if role != 'publish' else 'publish'}: {line}")
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
                print(f"{pad}{key}: {value if value not in ({}, []) else '-'}")
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict):
                print(f"{pad}- " + ", ".join(f"{k}={v}" for k, v in item.items()))
            else:
                print(f"{pad}- {item}")
    else:
        print(f"{pad}{data}")


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
