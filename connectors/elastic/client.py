"""The elasticsearch-py client as the connector uses it: built from settings, metered, errors translated."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stixbridge.errors import ConfigError, RemoteRejectedError, StixbridgeError, TransientError
from stixbridge.plugins import require

from .settings import ElasticConnectionSettings

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

logger = logging.getLogger(__name__)

# Statuses the transport retries at once (up to TRANSPORT_RETRIES times) before an error reaches us.
RETRY_STATUSES = (429, 502, 503, 504)
TRANSPORT_RETRIES = 3


@dataclass
class TrafficMeter:
    """Counts the HTTP requests a client sends and their body bytes, retries included."""

    requests: int = 0
    bytes_sent: int = 0
    write_requests: int = 0
    """Requests other than GET and HEAD, and other than searches, counts and multi-gets sent with POST."""

    def record(self, method: str, target: str, body: bytes | None) -> None:
        self.requests += 1
        self.bytes_sent += len(body or b"")
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD") and not path.endswith(("/_search", "/_count", "/_mget")):
            self.write_requests += 1


def _metered_node_class(meter: TrafficMeter) -> type:
    """Return a urllib3 node class that reports every request to ``meter`` before sending it."""
    transport = require("elastic_transport", "elastic", "elastic")
    base: Any = transport.Urllib3HttpNode

    class MeteredNode(base):
        def perform_request(self, method: str, target: str, body: bytes | None = None, **kwargs: Any) -> Any:
            meter.record(method, target, body)
            return super().perform_request(method, target, body, **kwargs)

    return MeteredNode


def build_client(
    settings: ElasticConnectionSettings, base_dir: Path, meter: TrafficMeter, *, name: str = "elastic"
) -> Elasticsearch:
    """Build a client from the settings; no request is sent until the client is used.

    Raises:
        MissingExtraError: the ``elasticsearch`` package is not installed.
        ConfigError: ``ca_bundle`` names a file that does not exist, or the client refuses the settings
            (a malformed ``cloud_id``, for example).
    """
    module: Any = require("elasticsearch", "elastic", "elastic")

    options: dict[str, Any] = {
        "request_timeout": settings.timeout,
        "max_retries": TRANSPORT_RETRIES,
        "retry_on_status": RETRY_STATUSES,
        "retry_on_timeout": True,
        "node_class": _metered_node_class(meter),
    }
    if settings.cloud_id:
        options["cloud_id"] = settings.cloud_id
    else:
        options["hosts"] = list(settings.hosts)

    if settings.api_key is not None:
        options["api_key"] = settings.api_key.reveal()
    elif settings.password is not None:
        options["basic_auth"] = (settings.username, settings.password.reveal())
    elif settings.bearer_token is not None:
        options["bearer_auth"] = settings.bearer_token.reveal()

    if settings.ca_bundle:
        bundle = (base_dir / settings.ca_bundle).resolve()
        if not bundle.is_file():
            raise ConfigError(f"ca_bundle file {str(bundle)!r} does not exist", key="ca_bundle")
        options["ca_certs"] = str(bundle)
    if not settings.verify_tls:
        logger.warning(
            "TLS certificate verification is off for Elasticsearch connector %r (verify_tls = false); anyone on "
            "the network path can read and change what is sent. Set ca_bundle instead.",
            name,
        )
        options["verify_certs"] = False
        options["ssl_show_warn"] = False

    try:
        return module.Elasticsearch(**options)
    except ValueError as exc:
        key = "cloud_id" if settings.cloud_id else "hosts"
        raise ConfigError(f"cannot use these Elasticsearch connection settings: {exc}", key=key) from exc


def translate_error(exc: Exception, action: str) -> StixbridgeError:
    """Return the stixbridge error for an elasticsearch-py or elastic-transport exception.

    Args:
        exc: the exception the client raised.
        action: what was being done, in words (``"bulk write to logs-ti_x"``), for the message.
    """
    transport: Any = require("elastic_transport", "elastic", "elastic")
    module: Any = require("elasticsearch", "elastic", "elastic")

    if isinstance(exc, transport.ConnectionTimeout):
        return TransientError(f"{action} timed out: {exc}")
    if isinstance(exc, transport.TransportError) and not isinstance(exc, module.ApiError):
        return TransientError(f"{action} failed: cannot reach Elasticsearch: {exc}")
    if isinstance(exc, module.UnsupportedProductError):
        return RemoteRejectedError(
            f"{action} failed: the server does not identify itself as Elasticsearch ({exc}); check 'hosts'"
        )
    if isinstance(exc, module.ApiError):
        status = exc.meta.status if exc.meta is not None else None
        reason = describe_api_error(exc)
        if status is not None and (status == 429 or status >= 500):
            return TransientError(f"{action} failed with HTTP {status}: {reason}", status=status)
        if status in (401, 403):
            return RemoteRejectedError(
                f"{action} was rejected with HTTP {status}: {reason}; check the credentials and their privileges",
                status=status,
            )
        return RemoteRejectedError(f"{action} failed with HTTP {status}: {reason}", status=status)
    return TransientError(f"{action} failed: {exc}")


def describe_api_error(exc: Any) -> str:
    """Return ``type: reason`` from an Elasticsearch error body, or the exception text."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return f"{error.get('type', 'error')}: {error.get('reason', '')}"
        if isinstance(error, str):
            return error
    return str(exc)


def is_not_found(exc: Exception) -> bool:
    """Return True when the client raised NotFoundError (HTTP 404)."""
    module: Any = require("elasticsearch", "elastic", "elastic")
    return isinstance(exc, module.NotFoundError)
