"""The configuration file: engine settings, our identity, sources, sinks, sightings readers, publishers.

Everything is validated before any network call: unknown keys and wrong types are rejected by name, and
every connector is built (without touching the network) so that its own settings are checked too.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from .connector import Connector, ConnectorContext
from .errors import ConfigError
from .identifiers import id_problem
from .plugins import load
from .settings import LineFinder, Settings, build_settings
from .sightings.settings import SharingSettings, build_sharing_settings
from .trust.policy import TrustSettings, build_trust_settings

CONFIG_ENV = "STIXBRIDGE_CONFIG"
DEFAULT_CONFIG_NAME = "stixbridge.toml"
IDENTITY_NAMESPACE = uuid.UUID("6f0a0d7e-5c1b-4f55-9e3c-2b8d7f4a9c10")

# Days an indicator without valid_until stays live, by atom type. IPs change hands quickly, domains and
# URLs less so, file hashes never; the numbers are starting estimates, meant to be tuned per alliance.
DEFAULT_LIFETIME_DAYS: dict[str, float] = {
    "ipv4": 30, "ipv6": 30, "ipv4-cidr": 30, "ipv6-cidr": 30, "domain": 90, "url": 90, "email": 180,
    "md5": 365, "sha1": 365, "sha256": 365, "sha512": 365, "sha3-256": 365, "sha3-512": 365,
    "ssdeep": 365, "tlsh": 365, "file-name": 180, "default": 90,
}  # fmt: skip

COMMON_KEYS = frozenset({"name", "kind", "enabled"})


@dataclass
class EngineSettings(Settings):
    """The ``[engine]`` table."""

    state: str = "stixbridge-state/stixbridge.db"
    """SQLite state file; relative paths are resolved against the configuration file's folder."""
    max_object_bytes: int = 1_048_576
    """Objects larger than this are quarantined as too large."""
    transaction_objects: int = 5000
    """Source pages are joined until they hold this many objects, then stored in one transaction."""
    lifetimes: dict[str, float] = field(default_factory=dict)
    """Days by atom type for indicators without valid_until; 0 means no local expiry for that type."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def validate(self, where: str) -> None:
        from .atoms import ATOM_TYPES

        if self.transaction_objects < 1:
            raise ConfigError(
                f"{where}.transaction_objects must be at least 1, got {self.transaction_objects}",
                key=f"{where}.transaction_objects",
            )

        for name, days in self.lifetimes.items():
            if name != "default" and name not in ATOM_TYPES:
                raise ConfigError(
                    f"unknown atom type {name!r} in {where}.lifetimes; valid names are default, "
                    + ", ".join(sorted(ATOM_TYPES)),
                    key=f"{where}.lifetimes.{name}",
                )
            if days < 0:
                raise ConfigError(f"{where}.lifetimes.{name} must be 0 or more days, got {days}",
                                  key=f"{where}.lifetimes.{name}")


@dataclass
class IdentitySettings(Settings):
    """The ``[identity]`` table: who we are when we publish."""

    name: str = "stixbridge member"
    id: str = ""
    """A STIX identity id; derived from the name when empty, so it stays stable across runs."""
    identity_class: str = "organization"

    def validate(self, where: str) -> None:
        # The id becomes created_by_ref of every object we publish, where stix2 rejects an invalid one.
        problem = id_problem(self.id, "identity") if self.id else None
        if problem is not None:
            raise ConfigError(
                f"{where}.id must be an identity id such as 'identity--<RFC 4122 UUID>', got {self.id!r}: "
                f"{problem}; leave it empty to derive one from the name"
            )


@dataclass
class ConnectorEntry:
    """One configured connector with its role, name and built instance."""

    role: str
    name: str
    kind: str
    enabled: bool
    connector: Connector


@dataclass
class Config:
    """A validated configuration with every connector built."""

    path: Path | None
    base_dir: Path
    engine: EngineSettings
    identity: IdentitySettings
    sources: list[ConnectorEntry]
    sinks: list[ConnectorEntry]
    sightings: list[ConnectorEntry]
    publish: list[ConnectorEntry]
    raw: dict[str, Any]
    trust: TrustSettings = field(default_factory=TrustSettings)
    """The ``[trust]`` table: source policies, guards and blast-radius limits."""
    sharing: SharingSettings = field(default_factory=SharingSettings)
    """The ``[sharing]`` table: how sightings are aggregated and what each publish target may receive."""

    @property
    def state_path(self) -> Path:
        path = Path(self.engine.state).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def lifetimes(self) -> dict[str, timedelta]:
        days = {**DEFAULT_LIFETIME_DAYS, **self.engine.lifetimes}
        return {name: timedelta(days=value) for name, value in days.items()}

    def source(self, name: str) -> ConnectorEntry:
        for entry in self.sources:
            if entry.name == name:
                return entry
        raise ConfigError(f"no source named {name!r} in the configuration; sources: "
                          + ", ".join(e.name for e in self.sources))

    def close(self) -> None:
        for entry in [*self.sources, *self.sinks, *self.sightings, *self.publish]:
            entry.connector.close()


def find_config(explicit: str | None) -> Path:
    """Return the config path from ``--config``, then ``STIXBRIDGE_CONFIG``, then ``./stixbridge.toml``."""
    for candidate in (explicit, os.environ.get(CONFIG_ENV)):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_file():
                raise ConfigError(f"configuration file {path} does not exist")
            return path
    path = Path(DEFAULT_CONFIG_NAME)
    if path.is_file():
        return path
    raise ConfigError(
        f"no configuration file: pass --config FILE, set {CONFIG_ENV}, or create ./{DEFAULT_CONFIG_NAME} "
        "(run 'stixbridge demo' to see a working one)"
    )


def load_config(path: Path) -> Config:
    """Read, validate and build a configuration file.

    Raises:
        ConfigError: naming the key (and line, where known) of the first problem.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return build_config(data, base_dir=path.parent.resolve(), path=path, text=text)


def build_config(data: dict[str, Any], *, base_dir: Path, path: Path | None = None, text: str = "") -> Config:
    """Validate a parsed configuration and build its connectors."""
    lines = LineFinder(text)
    known = {"engine", "identity", "sources", "sinks", "sightings", "publish", "trust", "sharing"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown top-level key {unknown[0]!r}; valid keys are: {', '.join(sorted(known))}",
            key=unknown[0],
            line=lines.line_of(unknown[0]),
        )

    engine = build_settings(EngineSettings, data.get("engine", {}), "engine", lines)
    identity = build_settings(IdentitySettings, data.get("identity", {}), "identity", lines)
    if not identity.id:
        identity.id = f"identity--{uuid.uuid5(IDENTITY_NAMESPACE, identity.name)}"
    context = ConnectorContext(base_dir=base_dir, identity_id=identity.id, identity_name=identity.name)

    roles = {"sources": "source", "sinks": "sink", "sightings": "sightings", "publish": "publish"}
    built: dict[str, list[ConnectorEntry]] = {}
    names: set[tuple[str, str]] = set()
    for table, role in roles.items():
        entries = data.get(table, [])
        if not isinstance(entries, list):
            raise ConfigError(f"{table} must be an array of tables, written [[{table}]]", key=table)
        built[table] = []
        for index, entry in enumerate(entries):
            item = _build_entry(role, f"{table}[{index}]", entry, context, lines)
            if (role, item.name) in names:
                raise ConfigError(f"two {table} are named {item.name!r}; names must be unique", key=f"{table}.name")
            names.add((role, item.name))
            built[table].append(item)

    trust = build_trust_settings(data.get("trust", {}), [e.name for e in built["sources"]], lines)
    sharing = build_sharing_settings(data.get("sharing", {}), [e.name for e in built["publish"]], lines)

    return Config(
        path=path,
        base_dir=base_dir,
        engine=engine,
        identity=identity,
        sources=built["sources"],
        sinks=built["sinks"],
        sightings=built["sightings"],
        publish=built["publish"],
        raw=data,
        trust=trust,
        sharing=sharing,
    )


def _build_entry(
    role: str, where: str, entry: Any, context: ConnectorContext, lines: LineFinder
) -> ConnectorEntry:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table", key=where)
    kind = entry.get("kind")
    if not isinstance(kind, str):
        raise ConfigError(f"{where}.kind is required, for example kind = \"file\"", key=f"{where}.kind")
    name = entry.get("name", kind)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name must be a non-empty string", key=f"{where}.name")
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.enabled must be true or false", key=f"{where}.enabled")

    try:
        cls = load(role, kind)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}", key=f"{where}.kind", line=lines.line_of("kind")) from None
    options = {k: v for k, v in entry.items() if k not in COMMON_KEYS}
    # A connector whose settings declare ``enabled`` (the TAXII publisher, off by default) gets it too.
    if "enabled" in entry and "enabled" in {f.name for f in dataclasses.fields(cls.settings_class)}:
        options["enabled"] = enabled
    settings = build_settings(cls.settings_class, options, f"{where} ({name})", lines)
    context = dataclasses.replace(context, where=f"{where} ({name})")
    return ConnectorEntry(role=role, name=name, kind=kind, enabled=enabled, connector=cls(name, settings, context))
