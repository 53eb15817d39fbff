"""``stixbridge elastic setup``: install the index template, the index and its alias, and optionally the rule.

Every step first reads what exists and changes only what differs, so running setup again changes nothing
and returns an empty list.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from pathlib import Path
from typing import Any

import requests

from stixbridge.errors import ConfigError, RemoteRejectedError, TransientError
from stixbridge.plugins import require

from .client import TrafficMeter, build_client, is_not_found, translate_error
from .rules import domain_rule
from .settings import ElasticSinkSettings
from .templates import TEMPLATE_PRIORITY, TEMPLATE_VERSION, index_body, index_template, template_name

logger = logging.getLogger(__name__)


def setup(settings: ElasticSinkSettings, rules: bool = False, *, base_dir: Path | None = None) -> list[str]:
    """Install what the sink needs in Elasticsearch (and Kibana with ``rules``); return the changes made.

    Raises:
        ConfigError: something in the cluster is in the way (an index or data stream named like the alias,
            an index mapped without the template, a template that outranks ours). The message names the fix.
        TransientError: Elasticsearch or Kibana could not be reached.
        RemoteRejectedError: a request was refused, for example for lack of privileges.
    """
    base_dir = base_dir or Path.cwd()
    client = build_client(settings, base_dir, TrafficMeter(), name="setup")
    changes: list[str] = []
    module: Any = require("elasticsearch", "elastic", "elastic")
    try:
        _check_alias(client, settings)
        _ensure_template(client, settings, changes)
        _ensure_index(client, settings, changes)
        _ensure_alias(client, settings, changes)
    except (module.ApiError, module.ConnectionError, module.ConnectionTimeout) as exc:
        raise translate_error(exc, "elastic setup") from exc
    finally:
        client.close()

    if rules:
        changes.extend(install_rules(settings, base_dir=base_dir))
    for change in changes:
        logger.info("Elastic setup: %s.", change)
    return changes


def _check_alias(client: Any, settings: ElasticSinkSettings) -> None:
    """Raise ConfigError when the alias name is taken by an index or data stream, or aliases other indices."""
    try:
        members = client.indices.get_alias(name=settings.alias)
    except Exception as exc:
        if not is_not_found(exc):
            raise
    else:
        if settings.index not in members:
            raise ConfigError(
                f"alias {settings.alias!r} points to {sorted(members)}, not to {settings.index!r}; set 'index' to "
                "the index the alias writes to, or move the alias",
                key="index",
            )
        return

    if client.indices.exists(index=settings.alias):
        raise ConfigError(
            f"an index or data stream named {settings.alias!r} already exists, probably created by a write before "
            "setup ran; data streams accept only create operations, so stixbridge cannot update or delete "
            "documents there. Check what it holds, delete it, and run 'stixbridge elastic setup' again",
            key="alias",
        )


def _ensure_template(client: Any, settings: ElasticSinkSettings, changes: list[str]) -> None:
    name = template_name(settings.index)
    body = index_template(settings.index)
    existing = _get_template(client, name)
    _check_no_template_outranks(client, settings.index, name)

    if existing is not None and existing.get("version") == TEMPLATE_VERSION:
        return
    client.indices.put_index_template(name=name, **body)
    if existing is None:
        changes.append(f"installed index template {name} (version {TEMPLATE_VERSION})")
    else:
        changes.append(f"updated index template {name} from version {existing.get('version')} to {TEMPLATE_VERSION}")


def _get_template(client: Any, name: str) -> dict[str, Any] | None:
    try:
        response = client.indices.get_index_template(name=name)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
    for item in response.get("index_templates", []):
        if item.get("name") == name:
            return dict(item.get("index_template", {}))
    return None


def _check_no_template_outranks(client: Any, index: str, ours: str) -> None:
    response = client.indices.get_index_template()
    for item in response.get("index_templates", []):
        name = item.get("name")
        template = item.get("index_template", {})
        priority = template.get("priority") or 0
        patterns = template.get("index_patterns", [])
        if name == ours or priority < TEMPLATE_PRIORITY:
            continue
        if any(fnmatch.fnmatchcase(index, pattern) for pattern in patterns):
            raise ConfigError(
                f"index template {name!r} (priority {priority}) also matches index {index!r} and outranks the "
                f"stixbridge template (priority {TEMPLATE_PRIORITY}); change its patterns or choose another index",
                key="index",
            )


def _ensure_index(client: Any, settings: ElasticSinkSettings, changes: list[str]) -> None:
    try:
        response = client.indices.get(index=settings.index)
    except Exception as exc:
        if not is_not_found(exc):
            raise
        client.indices.create(index=settings.index, **index_body(settings.alias))
        changes.append(f"created index {settings.index} with write alias {settings.alias}")
        return

    if settings.index not in response:
        raise ConfigError(
            f"{settings.index!r} is an alias or data stream of {sorted(response)}, not an index; set 'index' to "
            "the name of a concrete index",
            key="index",
        )
    mapped = _mapped_type(response[settings.index].get("mappings", {}), "threat.indicator.ip")
    if mapped != "ip":
        raise ConfigError(
            f"index {settings.index!r} exists but maps threat.indicator.ip as {mapped or 'nothing'}, not ip, so it "
            "was created without the stixbridge template; reindex it into a new index (for example with the "
            "next generation number) and set 'index' to that name",
            key="index",
        )


def _mapped_type(mappings: dict[str, Any], dotted: str) -> str | None:
    node: Any = mappings
    for part in dotted.split("."):
        node = node.get("properties", {}).get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    return node.get("type") if isinstance(node, dict) else None


def _ensure_alias(client: Any, settings: ElasticSinkSettings, changes: list[str]) -> None:
    if client.indices.exists_alias(name=settings.alias):
        return
    client.indices.put_alias(index=settings.index, name=settings.alias, is_write_index=True)
    changes.append(f"added write alias {settings.alias} to index {settings.index}")


def install_rules(settings: ElasticSinkSettings, *, base_dir: Path | None = None) -> list[str]:
    """Install the domain indicator-match rule in Kibana unless the same or a newer version is there.

    Raises:
        ConfigError: ``kibana_url`` is not set.
        TransientError: Kibana could not be reached or returned a server error.
        RemoteRejectedError: Kibana refused the request.
    """
    if not settings.kibana_url:
        raise ConfigError("'setup --rules' needs kibana_url in the elastic sink settings", key="kibana_url")
    rule = domain_rule(settings.alias)
    space = "" if settings.space == "default" else f"/s/{settings.space}"
    url = f"{settings.kibana_url.rstrip('/')}{space}/api/detection_engine/rules"
    session = _kibana_session(settings, base_dir or Path.cwd())
    try:
        found = session.get(url, params={"rule_id": rule["rule_id"]}, timeout=settings.timeout)
        if found.status_code == 404:
            _check_kibana(session.post(url, data=json.dumps(rule), timeout=settings.timeout), url)
            return [f"installed detection rule {rule['rule_id']} (disabled) in Kibana space {settings.space}"]
        _check_kibana(found, url)

        installed = found.json().get("version", 0)
        if installed >= rule["version"]:
            return []
        _check_kibana(session.put(url, data=json.dumps(rule), timeout=settings.timeout), url)
        return [f"updated detection rule {rule['rule_id']} from version {installed} to {rule['version']}"]
    except requests.RequestException as exc:
        raise TransientError(f"cannot reach Kibana at {settings.kibana_url}: {exc}", url=url) from exc
    finally:
        session.close()


def _kibana_session(settings: ElasticSinkSettings, base_dir: Path) -> requests.Session:
    session = requests.Session()
    session.headers.update({"kbn-xsrf": "stixbridge", "Content-Type": "application/json"})
    if settings.api_key is not None:
        session.headers["Authorization"] = f"ApiKey {settings.api_key.reveal()}"
    elif settings.password is not None:
        session.auth = (settings.username, settings.password.reveal())
    elif settings.bearer_token is not None:
        session.headers["Authorization"] = f"Bearer {settings.bearer_token.reveal()}"
    if settings.ca_bundle:
        session.verify = str((base_dir / settings.ca_bundle).resolve())
    elif not settings.verify_tls:
        logger.warning(
            "TLS certificate verification is off for Kibana at %s (verify_tls = false).", settings.kibana_url
        )
        session.verify = False
    return session


def _check_kibana(response: requests.Response, url: str) -> None:
    if response.status_code < 300:
        return
    try:
        message = response.json().get("message", response.text)
    except ValueError:
        message = response.text[:300]
    text = f"Kibana answered HTTP {response.status_code} to {response.request.method} {url}: {message}"
    if response.status_code >= 500:
        raise TransientError(text, url=url, status=response.status_code)
    if response.status_code in (401, 403):
        text += "; check the credentials and their Kibana privileges (Security: Rules, All)"
    raise RemoteRejectedError(text, url=url, status=response.status_code)
