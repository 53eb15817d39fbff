"""TLS to splunkd: verification on by default, a private CA, the certificate name, and verification off."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stixbridge.connector import ConnectorContext
from stixbridge.connectors.splunk.settings import SplunkSinkSettings
from stixbridge.connectors.splunk.sink import SplunkSink
from stixbridge.errors import RemoteRejectedError
from stixbridge.model import Changes
from stixbridge.secrets import Secret

from .conftest import PASSWORD, make_row
from .fake_splunk import FakeSplunk

CERT_NAME = "SplunkServerDefaultCert"

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the openssl command is needed to make test certificates"
)


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A test CA and a server certificate it signed for the name Splunk's default certificate uses."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key, ca_cert = folder / "ca.key", folder / "ca.pem"
    key, request, cert = folder / "server.key", folder / "server.csr", folder / "server.pem"
    extensions = folder / "ext.cnf"
    extensions.write_text(f"subjectAltName = DNS:{CERT_NAME}\n", encoding="utf-8")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=stixbridge test CA",
            "-keyout", str(ca_key), "-out", str(ca_cert))  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={CERT_NAME}", "-keyout", str(key), "-out", str(request)
    )
    openssl("x509", "-req", "-in", str(request), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "2", "-extfile", str(extensions), "-out", str(cert))  # fmt: skip
    return {"ca": str(ca_cert), "cert": str(cert), "key": str(key)}


@pytest.fixture
def tls_fake(certificates: dict[str, str]) -> Iterator[FakeSplunk]:
    with FakeSplunk(password=PASSWORD, certificate=(certificates["cert"], certificates["key"])) as server:
        yield server


def sink_for(fake: FakeSplunk, **overrides: Any) -> SplunkSink:
    values: dict[str, Any] = {"url": fake.url, "username": "admin", "password": Secret(PASSWORD), "retries": 0}
    values.update(overrides)
    settings = SplunkSinkSettings(**values)
    settings.validate("sinks[0]")
    return SplunkSink("tls", settings, ConnectorContext(base_dir=Path(".")))


def test_unknown_ca_rejected(tls_fake: FakeSplunk) -> None:
    with pytest.raises(RemoteRejectedError, match="could not be verified.*set ca_bundle"):
        sink_for(tls_fake).push(Changes(upserts=[make_row()]))

    assert tls_fake.log == []


def test_wrong_name_rejected(tls_fake: FakeSplunk, certificates: dict[str, str]) -> None:
    with pytest.raises(RemoteRejectedError, match="could not be verified"):
        sink_for(tls_fake, ca_bundle=certificates["ca"]).push(Changes(upserts=[make_row()]))


def test_private_ca_and_name_accepted(tls_fake: FakeSplunk, certificates: dict[str, str]) -> None:
    sink = sink_for(tls_fake, ca_bundle=certificates["ca"], tls_hostname=CERT_NAME)

    result = sink.push(Changes(upserts=[make_row()]))

    assert len(result.written) == 1


def test_verification_off_warns_each_run(tls_fake: FakeSplunk, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    sink = sink_for(tls_fake, verify_tls=False)

    sink.push(Changes(upserts=[make_row("198.51.100.1")]))
    sink.close()
    sink.push(Changes(upserts=[make_row("198.51.100.2")]))

    assert caplog.text.count("TLS certificate verification is off") == 2
