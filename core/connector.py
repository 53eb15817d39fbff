"""The base shared by every connector: its settings, its run context and its lifetime."""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

from .settings import Settings
from .timeutil import utcnow


@dataclass
class ConnectorContext:
    """Run context the engine gives a connector besides its own settings."""

    base_dir: Path
    """Folder that relative paths in the configuration are resolved against."""
    clock: Callable[[], datetime] = utcnow
    identity_id: str = ""
    """Our own STIX Identity id, for objects we publish."""
    identity_name: str = ""
    where: str = ""
    """Location of the connector's settings in the configuration, such as ``sources[0] (partner)``, for
    errors the constructor raises. Empty when the connector was built outside a configuration."""
    extra: dict[str, Any] = field(default_factory=dict)


class Connector:
    """Base of sources, sinks and sightings readers.

    Subclasses set ``kind`` (the lowercase id used in ``kind = "..."`` in the configuration and in the
    entry point name) and ``settings_class``. The constructor must not touch the network: the engine
    builds every connector while validating the configuration, before any run.
    """

    kind: ClassVar[str] = ""
    settings_class: ClassVar[type[Settings]] = Settings
    sdk_modules: ClassVar[tuple[tuple[str, str], ...]] = ()
    """(module, extra) pairs the connector imports when it runs; checked by :meth:`preflight`."""

    def __init__(self, name: str, settings: Settings, context: ConnectorContext) -> None:
        self.name = name
        self.settings = settings
        self.context = context

    def describe(self) -> str:
        """Return one line saying what this connector will do, for ``stixbridge config check``."""
        return f"{self.kind} {self.name!r}"

    def preflight(self) -> list[str]:
        """Return problems found without touching the network: missing packages, missing local files.

        ``stixbridge config check`` reports them, so a configuration that is valid but cannot run is
        caught before the first sync. Subclasses extend the list and call the base method.
        """
        problems = []
        for module, extra in self.sdk_modules:
            if importlib.util.find_spec(module) is None:
                problems.append(
                    f"{self.kind} {self.name!r} needs the {module!r} package, which is not installed; "
                    f"install it with: pip install 'stixbridge[{extra}]'"
                )
        return problems

    def close(self) -> None:
        """Release connections and files; called once when the run ends."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        # Settings may hold Secret values, which mask themselves; other fields are safe to show.
        fields = ", ".join(f"{f.name}={getattr(self.settings, f.name)!r}" for f in dataclasses.fields(self.settings))
        return f"{type(self).__name__}(name={self.name!r}, {fields})"
