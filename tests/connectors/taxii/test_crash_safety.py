"""A ``stixbridge pull`` from TAXII killed with SIGKILL half way, then run again, ends as an uninterrupted pull.

Pages of a pass carry no cursor until the last, so the second run reads the collection again from the old
checkpoint and the store keeps one copy of each version.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from stixbridge.connectors.taxii.medallion_server import MedallionServer, run_medallion

from .fake_server import indicator

OBJECTS = 1000
PASSWORD_VARIABLE = "STIXBRIDGE_TEST_TAXII_PASSWORD"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX only"),
]


def write_config(folder: Path, server: MedallionServer, state: str) -> Path:
    config = folder / f"{state}.toml"
    config.write_text(
        f"""
[engine]
state = "{state}.db"
# Store every 10-object page in its own transaction, so a kill lands between commits.
transaction_objects = 10

[[sources]]
name = "alliance"
kind = "taxii"
url = "{server.url}"
limit = 10
min_limit = 10
username = "{server.username}"
password = {{ env = "{PASSWORD_VARIABLE}" }}

# The feed uses documentation domains, which the trust guards hold by default.
[[trust.sources]]
name = "alliance"
allow = ["documentation"]
""",
        encoding="utf-8",
    )
    return config


def count_indicators(path: Path) -> int:
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM indicators").fetchone()[0])
    except sqlite3.Error:
        return 0


def snapshot(path: Path) -> dict[str, Any]:
    with sqlite3.connect(path) as db:
        return {
            "indicators": sorted(db.execute("SELECT id, modified, state, pattern FROM indicators").fetchall()),
            "atoms": sorted(db.execute("SELECT type, value, indicator_id FROM indicator_atoms").fetchall()),
            "versions": sorted(db.execute("SELECT id, modified, source FROM versions").fetchall()),
            "cursors": sorted(db.execute("SELECT name, cursor FROM cursors").fetchall()),
            "quarantine": db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0],
        }


def test_killed_pull_resumes_to_same_store(tmp_path: Path) -> None:
    objects = [indicator(number) for number in range(OBJECTS)]
    with run_medallion({"feed": objects}) as server:
        env = {**os.environ, PASSWORD_VARIABLE: server.password}
        killed = write_config(tmp_path, server, "killed")
        reference = write_config(tmp_path, server, "reference")

        command = [sys.executable, "-m", "stixbridge", "--config", str(killed), "-q", "pull"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if count_indicators(tmp_path / "killed.db") >= 100:
                break
            time.sleep(0.005)
        still_running = process.poll() is None
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        stored_at_kill = count_indicators(tmp_path / "killed.db")

        second = subprocess.run(command, env=env, check=False, capture_output=True, text=True)
        subprocess.run([sys.executable, "-m", "stixbridge", "--config", str(reference), "-q", "pull"], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    assert still_running, "the pull finished before it could be killed; the test proves nothing"
    assert 0 < stored_at_kill < OBJECTS
    assert second.returncode == 0, second.stderr
    assert count_indicators(tmp_path / "killed.db") == OBJECTS
    assert snapshot(tmp_path / "killed.db") == snapshot(tmp_path / "reference.db")
