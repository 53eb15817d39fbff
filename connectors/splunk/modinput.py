"""The Splunk app's modular input: runs ``stixbridge sync`` on an interval and indexes what it reports.

Splunk starts ``bin/stixbridge_sync.py`` (which imports this module from ``bin/lib``) once per interval
for each ``[stixbridge_sync://<name>]`` stanza. The input:

1. reads every credential the app keeps in ``storage/passwords`` under the realm ``TA-stixbridge``, which
   the app's setup page writes. Each one becomes an environment variable named by its user name, so a
   ``{ env = "STIXBRIDGE_TAXII_PASSWORD" }`` in the stixbridge configuration finds it. Credentials are
   never written to a ``.conf`` file;
2. passes the input's own session key and splunkd URI as ``STIXBRIDGE_SPLUNK_SESSION_KEY`` and
   ``STIXBRIDGE_SPLUNK_URI``, for a ``[[sinks]] kind = "splunk"`` table that writes to this search head;
3. runs ``python -m stixbridge.cli --json -c <config> sync`` in a child process with a time limit;
4. writes each log line of the run as an event of sourcetype ``stixbridge:log`` and one event of
   sourcetype ``stixbridge:status`` with the exit code, duration and the run summary, which the app's
   dashboard reads.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stixbridge.plugins import require

APP_NAME = "TA-stixbridge"
CREDENTIAL_REALM = APP_NAME
SESSION_KEY_ENV = "STIXBRIDGE_SPLUNK_SESSION_KEY"
SERVER_URI_ENV = "STIXBRIDGE_SPLUNK_URI"
DEFAULT_TIMEOUT = 3300
"""Seconds a sync may run before it is stopped; below the default hourly interval."""

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_ERROR_PREFIXES = ("error:", "configuration error:")
_RESERVED_ENV = frozenset({"PATH", "PYTHONPATH", "PYTHONHOME", "HOME", "SPLUNK_HOME", "LD_LIBRARY_PATH"})


@dataclass
class SyncOutcome:
    """Report of one run of ``stixbridge sync``: exit code, duration, log lines and summary."""

    exit_code: int
    seconds: float
    log_lines: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def status(self) -> str:
        """``ok``, ``quarantined`` (exit 1), ``config-error`` (2), ``failed`` (3) or ``error``."""
        return {0: "ok", 1: "quarantined", 2: "config-error", 3: "failed"}.get(self.exit_code, "error")


def app_folder() -> Path:
    """Return the app's folder: ``bin/lib/stixbridge/connectors/splunk`` is four levels below ``bin``."""
    module_path = Path(__file__).resolve()
    for parent in module_path.parents:
        if parent.name == "bin" and (parent.parent / "default" / "app.conf").exists():
            return parent.parent
    return Path(os.environ.get("SPLUNK_HOME", "/opt/splunk")) / "etc" / "apps" / APP_NAME


def vendored_lib() -> Path | None:
    """Return the app's ``bin/lib`` when this module runs from there, else None (an installed package)."""
    lib = Path(__file__).resolve().parents[3]
    return lib if lib.name == "lib" and lib.parent.name == "bin" else None


def resolve_config(path_text: str, app: Path | None = None) -> Path:
    """Return the configuration path; a relative path starts at the app's ``local`` folder."""
    path = Path(os.path.expandvars(path_text)).expanduser()
    if not path.is_absolute():
        path = (app or app_folder()) / "local" / path
    return path


def check_config(path: Path) -> None:
    """Check that the configuration file exists and is TOML; its secrets are checked at run time.

    Raises:
        ValueError: the file is missing, unreadable or not TOML; the message names the problem.
    """
    if path.suffix != ".toml":
        raise ValueError(f"config_file {str(path)!r} must be a stixbridge TOML file ending in .toml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read config_file {str(path)!r}: {exc.strerror}") from exc
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config_file {str(path)!r} is not valid TOML: {exc}") from exc


def credentials_env(service: Any, realm: str = CREDENTIAL_REALM) -> dict[str, str]:
    """Return the stored credentials of ``realm`` as environment variables, name to secret.

    A credential whose user name is not an environment variable name (upper case, digits, ``_``) or
    would replace one that the child process needs (``PATH``, ``PYTHONPATH``...) is left out.
    """
    found: dict[str, str] = {}
    for credential in service.storage_passwords.list(count=-1):
        if credential.content.get("realm") != realm:
            continue
        name = str(credential.content.get("username", ""))
        if not _ENV_NAME.match(name) or name in _RESERVED_ENV:
            continue
        found[name] = str(credential.content.get("clear_password", ""))
    return found


def run_sync(
    config: Path, env: dict[str, str], *, timeout: float = DEFAULT_TIMEOUT, lib: Path | None = None
) -> SyncOutcome:
    """Run ``stixbridge sync`` in a child process and collect its log lines and JSON summary."""
    child_env = dict(os.environ)
    child_env.update(env)
    if lib is not None:
        child_env["PYTHONPATH"] = str(lib)
    command = [sys.executable, "-m", "stixbridge.cli", "--json", "-c", str(config), "sync"]

    started = time.monotonic()
    try:
        completed = subprocess.run(command, env=child_env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        lines = _lines(exc.stderr)
        return SyncOutcome(
            -1,
            time.monotonic() - started,
            lines,
            error=f"stixbridge sync ran longer than {timeout:.0f} s and was stopped",
        )
    seconds = time.monotonic() - started

    outcome = SyncOutcome(completed.returncode, seconds, _lines(completed.stderr))
    try:
        summary = json.loads(completed.stdout) if completed.stdout.strip() else {}
        outcome.summary = summary if isinstance(summary, dict) else {"output": summary}
    except ValueError:
        outcome.summary = {"output": completed.stdout[-2000:]}
    if completed.returncode not in (0, 1):
        errors = [
            line
            for line in outcome.log_lines
            if " ERROR " in line or line.startswith(("error:", "configuration error:"))
        ]
        outcome.error = errors[-1] if errors else f"stixbridge sync exited with status {completed.returncode}"
    return outcome


def _lines(text: str | bytes | None) -> list[str]:
    if text is None:
        return []
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return [line for line in text.splitlines() if line.strip()]


def status_event(stanza: str, config: Path, outcome: SyncOutcome) -> dict[str, Any]:
    """Return the ``stixbridge:status`` event of one run."""
    summary = outcome.summary
    pushed = summary.get("pushed", {}) if isinstance(summary.get("pushed"), dict) else {}
    return {
        "input": stanza,
        "config": str(config),
        "status": outcome.status,
        "exit_code": outcome.exit_code,
        "duration_s": round(outcome.seconds, 3),
        "error": outcome.error,
        "written": sum(int(c.get("written", 0)) for c in pushed.values() if isinstance(c, dict)),
        "deleted": sum(int(c.get("deleted", 0)) for c in pushed.values() if isinstance(c, dict)),
        "failed": sum(int(c.get("failed", 0)) for c in pushed.values() if isinstance(c, dict)),
        "expired": summary.get("expired", 0),
        "sightings_read": _sum_field(summary.get("sightings", {}).get("read"), "new"),
        "sightings_published": _sum_field(summary.get("published"), "published"),
        "quarantined": summary.get("quarantined", 0),
        "failures": summary.get("failures", []),
        "summary": summary,
    }


def _sum_field(counts: Any, field_name: str) -> int:
    """Return the sum of ``field_name`` over a mapping of name to counts, as the run summary nests them."""
    if not isinstance(counts, dict):
        return 0
    return sum(int(c.get(field_name, 0) or 0) for c in counts.values() if isinstance(c, dict))


@functools.cache
def input_class() -> Any:
    """Return the ``stixbridge_sync`` modular input class, built on splunk-sdk's ``Script``.

    The class is built on first use, so this module imports without splunk-sdk.

    Raises:
        MissingExtraError: splunk-sdk is not installed.
    """
    sdk = require("splunklib.modularinput", "splunk", "splunk")

    class StixbridgeSyncInput(sdk.Script):  # type: ignore[name-defined]
        """The ``stixbridge_sync`` modular input kind."""

        def get_scheme(self) -> Any:
            """Describe the input and its arguments to Splunk (``--scheme``)."""
            scheme = sdk.Scheme("stixbridge sync")
            scheme.description = (
                "Pulls STIX threat intelligence from the sources of a stixbridge configuration, expires what "
                "ran out, and pushes the changes to the KV store and Enterprise Security."
            )
            scheme.use_external_validation = True
            scheme.use_single_instance = False

            config = sdk.Argument("config_file")
            config.title = "stixbridge configuration"
            config.description = (
                "Path of the stixbridge TOML configuration; a relative path starts at $SPLUNK_HOME/etc/apps/"
                "TA-stixbridge/local."
            )
            config.data_type = sdk.Argument.data_type_string
            config.required_on_create = True
            scheme.add_argument(config)

            timeout = sdk.Argument("timeout")
            timeout.title = "Time limit in seconds"
            timeout.description = f"Seconds a sync may run before it is stopped (default {DEFAULT_TIMEOUT})."
            timeout.data_type = sdk.Argument.data_type_number
            timeout.required_on_create = False
            scheme.add_argument(timeout)
            return scheme

        def validate_input(self, definition: Any) -> None:
            """Reject a configuration path that does not name a readable TOML file, or a bad time limit."""
            parameters = definition.parameters
            check_config(resolve_config(str(parameters.get("config_file", ""))))
            timeout = parameters.get("timeout")
            if timeout not in (None, "") and not (str(timeout).isdigit() and int(timeout) > 0):
                raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")

        def stream_events(self, inputs: Any, ew: Any) -> None:
            """Run one sync per input stanza and write its log lines and status as events."""
            session_key = inputs.metadata.get("session_key", "")
            server_uri = inputs.metadata.get("server_uri", "")
            for stanza, parameters in inputs.inputs.items():
                config = resolve_config(str(parameters.get("config_file", "")))
                timeout = float(parameters.get("timeout") or DEFAULT_TIMEOUT)
                env = credentials_env(self.service)
                env[SESSION_KEY_ENV] = session_key
                env[SERVER_URI_ENV] = server_uri
                ew.log(sdk.EventWriter.INFO, f"stixbridge sync started for {stanza} with {config}")

                outcome = run_sync(config, env, timeout=timeout, lib=vendored_lib())
                for line in outcome.log_lines:
                    ew.write_event(sdk.Event(data=line, stanza=stanza, sourcetype="stixbridge:log"))
                status = json.dumps(status_event(stanza, config, outcome), default=str)
                ew.write_event(sdk.Event(data=status, stanza=stanza, sourcetype="stixbridge:status"))
                level = sdk.EventWriter.INFO if outcome.exit_code in (0, 1) else sdk.EventWriter.ERROR
                ew.log(level, f"stixbridge sync for {stanza} ended: {outcome.status} in {outcome.seconds:.1f} s")

    return StixbridgeSyncInput


def main() -> int:
    """Run the modular input as Splunk calls it (``--scheme``, ``--validate-arguments`` or a run)."""
    return int(input_class()().run(sys.argv))
