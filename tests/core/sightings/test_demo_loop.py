import importlib.util
import json
import sqlite3

import pytest

from stixbridge.cli import main

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("medallion") is None, reason="the demo's TAXII server needs medallion (stixbridge[demo])"
)


def test_demo_publishes_sightings_and_reads_them_back(tmp_path, capsys):
    assert main(["--json", "demo", "--dir", str(tmp_path / "demo"), "--count", "200"]) == 0
    report = json.loads(capsys.readouterr().out)

    assert report["failures"] == []
    assert report["quarantined"] == {}
    published = report["published"]["alliance-taxii"]
    sightings = published["by_type"]["sighting"]
    assert sightings >= 1
    assert published["failed"] == 0
    assert report["read_back"]["sighting"] == sightings
    assert report["read_back"]["identity"] == 1
    # sightings.jsonl names internal hosts; none of them is in what was published.
    assert "corp.example" in (tmp_path / "demo" / "sightings.jsonl").read_text(encoding="utf-8")
    with sqlite3.connect(tmp_path / "demo" / "state" / "stixbridge.db") as db:
        payloads = [row[0] for row in db.execute("SELECT payload FROM outbox WHERE status = 'published'")]
    assert len(payloads) == published["published"]
    assert not any("corp.example" in payload for payload in payloads)


def test_demo_without_taxii_reads_sightings_but_publishes_nothing(tmp_path, capsys):
    assert main(["--json", "demo", "--dir", str(tmp_path / "demo"), "--count", "100", "--no-taxii"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["published"] == {}
    assert report["sightings"]["read"]["local"]["records"] >= 1
