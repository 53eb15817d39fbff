import json

import pytest

from stixbridge.cli import main
from tests.core.helpers import indicator, write_bundle

SENTINEL = "sentinel-secret-4b1d-never-print"


def _config(tmp_path, body):
    path = tmp_path / "stixbridge.toml"
    path.write_text(body, encoding="utf-8")
    return str(path)


def test_cli_config_check_prints_plan(tmp_path, capsys):
    feed = write_bundle(tmp_path / "feed.json", [indicator(1, "[ipv4-addr:value = '198.51.100.1']")])
    config = _config(tmp_path, f'[[sources]]\nname = "alliance"\nkind = "file"\npath = "{feed}"\n')
    assert main(["--config", config, "config", "check"]) == 0
    out = capsys.readouterr().out
    assert "is valid" in out
    assert "file source 'alliance'" in out


def test_cli_bad_config_exit_code_two(tmp_path, capsys):
    config = _config(tmp_path, '[[sources]]\nkind = "file"\npath = "x"\nlimt = 3\n')
    assert main(["--config", config, "config", "check"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'limt'" in err
    assert "line 4" in err


def test_cli_invalid_toml_names_line(tmp_path, capsys):
    config = _config(tmp_path, "[engine\nstate = 1\n")
    assert main(["--config", config, "config", "check"]) == 2
    assert "line 1" in capsys.readouterr().err


def test_cli_missing_config_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STIXBRIDGE_CONFIG", raising=False)
    assert main(["status"]) == 2
    assert "stixbridge demo" in capsys.readouterr().err


def test_cli_secret_never_printed_or_logged(tmp_path, monkeypatch, capsys, caplog):
    pytest.importorskip("stixbridge.connectors.taxii.source", reason="the TAXII source carries the secret here")
    monkeypatch.setenv("SENTINEL_PASSWORD", SENTINEL)
    body = (
        '[[sources]]\nname = "alliance"\nkind = "taxii"\nurl = "http://127.0.0.1:9/taxii2/"\n'
        'username = "member"\npassword = { env = "SENTINEL_PASSWORD" }\n'
    )
    config = _config(tmp_path, body)
    main(["--config", config, "config", "check"])
    main(["--config", config, "--json", "config", "check"])
    main(["--config", config, "pull"])
    captured = capsys.readouterr()
    assert SENTINEL not in captured.out
    assert SENTINEL not in captured.err
    assert SENTINEL not in caplog.text


def test_cli_sync_status_and_quarantine(tmp_path, capsys):
    feed = write_bundle(
        tmp_path / "feed.json",
        [indicator(1, "[ipv4-addr:value = '198.51.100.1']"), indicator(2, "[ipv4-addr:value = ")],
    )
    config = _config(
        tmp_path,
        f'[engine]\nstate = "s.db"\nlifetimes = {{ ipv4 = 0 }}\n[[sources]]\nname = "a"\nkind = "file"\npath = "{feed}"\n'
        '[[trust.sources]]\nname = "a"\nallow = ["documentation"]\n',
    )
    assert main(["--config", config, "-q", "sync"]) == 1
    capsys.readouterr()
    assert main(["--config", config, "--json", "status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["indicators"]["by_source"] == {"a": 1}
    assert status["quarantine"] == {"pattern": 1}
    assert main(["--config", config, "--json", "quarantine", "list"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["object_id"] == "indicator--00000000-0000-4000-8000-000000000002"


def test_cli_config_check_reports_missing_path(tmp_path, capsys):
    config = _config(tmp_path, f'[[sources]]\nname = "a"\nkind = "file"\npath = "{tmp_path / "nowhere"}"\n')
    assert main(["--config", config, "config", "check"]) == 2
    out = capsys.readouterr().out
    assert "cannot run yet" in out
    assert "nowhere does not exist" in out


def test_cli_unknown_lifetime_type_rejected(tmp_path, capsys):
    config = _config(tmp_path, "[engine.lifetimes]\nip4 = 10\n")
    assert main(["--config", config, "config", "check"]) == 2
    err = capsys.readouterr().err
    assert "unknown atom type 'ip4'" in err
    assert "ipv4" in err


def test_cli_options_after_command(tmp_path, capsys):
    feed = write_bundle(tmp_path / "feed.json", [indicator(1, "[ipv4-addr:value = '198.51.100.1']")])
    config = _config(tmp_path, f'[[sources]]\nname = "a"\nkind = "file"\npath = "{feed}"\n')
    assert main(["config", "check", "-c", config, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["problems"] == []


def test_cli_unknown_quarantine_row_is_usage_error(tmp_path, capsys):
    config = _config(tmp_path, '[engine]\nstate = "s.db"\n')
    assert main(["--config", config, "quarantine", "show", "99"]) == 2
    assert "no quarantined object with id 99" in capsys.readouterr().err


def _quarantined_one(tmp_path):
    feed = tmp_path / "feed.json"
    bad = indicator(1, "[ipv4-addr:value = ")
    write_bundle(feed, [bad])
    config = _config(tmp_path, f'[engine]\nstate = "s.db"\n[[sources]]\nname = "a"\nkind = "file"\npath = "{feed}"\n')
    assert main(["--config", config, "-q", "pull"]) == 1
    return config, bad


def test_quarantine_list_has_header(tmp_path, capsys):
    config, _ = _quarantined_one(tmp_path)
    capsys.readouterr()

    assert main(["--config", config, "quarantine", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["QID", "STATUS", "SOURCE", "CODE", "OBJECT", "REASON"]
    assert lines[1].split()[:4] == ["1", "held", "a", "pattern"]


def test_quarantine_show_metadata_and_raw(tmp_path, capsys):
    config, bad = _quarantined_one(tmp_path)
    capsys.readouterr()

    assert main(["--config", config, "quarantine", "show", "1"]) == 0
    out = capsys.readouterr().out
    assert f"object_id: {bad['id']}" in out
    assert "reason_code: pattern" in out
    assert "reason: " in out

    assert main(["--config", config, "quarantine", "show", "1", "--raw"]) == 0
    assert json.loads(capsys.readouterr().out) == bad

    assert main(["--config", config, "quarantine", "show", "1", "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert entry["status"] == "held"
    assert json.loads(entry["raw"]) == bad


def test_quarantine_list_aligns_object_column(tmp_path, capsys):
    feed = tmp_path / "feed.json"
    # One row with a STIX id and one without: the reasons must still start in the same column.
    feed.write_text(json.dumps({"type": "bundle", "objects": [indicator(1, "[ipv4-addr:value = "), 42]}))
    config = _config(tmp_path, f'[engine]\nstate = "s.db"\n[[sources]]\nname = "a"\nkind = "file"\npath = "{feed}"\n')
    assert main(["--config", config, "-q", "pull"]) == 1
    capsys.readouterr()

    assert main(["--config", config, "quarantine", "list"]) == 0
    header, *rows, footer = capsys.readouterr().out.splitlines()
    column = header.index("REASON")
    assert len(rows) == 2
    assert footer == "2 quarantined objects shown"
    assert any(" - " in row for row in rows)
    for row in rows:
        assert row[column - 2 : column] == "  "
        assert row[column] != " "


def test_read_only_commands_need_no_secrets(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("STIXBRIDGE_TEST_UNSET_PASSWORD", raising=False)
    config = _config(tmp_path, (
        '[engine]\nstate = "s.db"\n[[sources]]\nname = "partner"\nkind = "taxii"\n'
        'url = "https://127.0.0.1:9/taxii2/"\nusername = "soc"\npassword = { env = "STIXBRIDGE_TEST_UNSET_PASSWORD" }\n'
    ))  # fmt: skip

    assert main(["--config", config, "status"]) == 0
    assert main(["--config", config, "quarantine", "list"]) == 0
    assert main(["--config", config, "review", "list"]) == 0
    assert main(["--config", config, "sightings", "list"]) == 0
    capsys.readouterr()

    assert main(["--config", config, "pull"]) == 2
    assert "STIXBRIDGE_TEST_UNSET_PASSWORD which is not set" in capsys.readouterr().err


def test_config_check_notes_empty_config(tmp_path, capsys):
    config = _config(tmp_path, "")

    assert main(["--config", config, "config", "check"]) == 0
    out = capsys.readouterr().out
    assert "note: no enabled [[sources]] entry: a sync pulls nothing" in out
    assert "note: no enabled [[sinks]] entry" in out


@pytest.mark.parametrize(
    ("identity_id", "fault"),
    [
        ("identity--acme", "is not a UUID in the form 8-4-4-4-12"),
        ("identity--00000000-0000-0000-0000-00000000000e", "is not an RFC 4122 UUID"),
        ("organization--6ba7b810-9dad-11d1-80b4-00c04fd430c8", "its type prefix 'organization'"),
    ],
)
def test_cli_invalid_identity_id_exit_two(tmp_path, capsys, identity_id, fault):
    config = _config(tmp_path, f'[identity]\nname = "Test SOC"\nid = "{identity_id}"\n')
    assert main(["--config", config, "config", "check"]) == 2
    err = capsys.readouterr().err
    assert f"identity.id must be an identity id such as 'identity--<RFC 4122 UUID>', got '{identity_id}'" in err
    assert fault in err
    assert "leave it empty to derive one from the name" in err


def test_cli_valid_identity_id_accepted(tmp_path, capsys):
    config = _config(tmp_path, '[identity]\nid = "identity--6ba7b810-9dad-11d1-80b4-00c04fd430c8"\n')
    assert main(["--config", config, "config", "check"]) == 0


def test_missing_certificate_named_by_full_key(tmp_path, capsys):
    config = _config(tmp_path, (
        '[[sources]]\nname = "partner"\nkind = "taxii"\nurl = "https://127.0.0.1:9/taxii2/"\n'
        'client_cert = "missing.pem"\n'
    ))  # fmt: skip

    assert main(["--config", config, "config", "check"]) == 2
    assert "sources[0] (partner).client_cert names 'missing.pem'" in capsys.readouterr().err


def test_release_of_unknown_row_is_usage_error(tmp_path, capsys):
    config = _config(tmp_path, '[engine]\nstate = "s.db"\n')

    assert main(["--config", config, "quarantine", "release", "999"]) == 2
    assert "no quarantined object with id 999" in capsys.readouterr().err


def test_publish_to_unknown_target_is_usage_error(tmp_path, capsys):
    config = _config(tmp_path, '[engine]\nstate = "s.db"\n')

    assert main(["--config", config, "sightings", "publish", "--target", "nope"]) == 2
    assert "no publish target named 'nope'" in capsys.readouterr().err


def test_interrupt_exits_130(tmp_path, capsys, monkeypatch):
    config = _config(tmp_path, '[engine]\nstate = "s.db"\n')

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("stixbridge.engine.Engine.sync", interrupted)
    assert main(["--config", config, "sync"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_status_shows_each_source_run(tmp_path, capsys):
    feed = write_bundle(tmp_path / "feed.json", [indicator(1, "[ipv4-addr:value = '198.51.100.1']")])
    config = _config(tmp_path, (
        f'[engine]\nstate = "s.db"\n[[sources]]\nname = "a"\nkind = "file"\npath = "{feed}"\n'
        '[[sources]]\nname = "gone"\nkind = "file"\npath = "nowhere.json"\n'
        '[[trust.sources]]\nname = "a"\nallow = ["documentation"]\n'
    ))  # fmt: skip
    main(["--config", config, "-q", "pull"])
    capsys.readouterr()

    assert main(["--config", config, "--json", "status"]) == 0
    sources = json.loads(capsys.readouterr().out)["sources"]
    assert sources["a"]["last_pull_objects"] == 1
    assert sources["a"]["last_error"] is None
    assert sources["a"]["checkpoint"] is not None
    assert "does not exist" in sources["gone"]["last_error"]
    assert sources["gone"]["checkpoint"] is None

    assert main(["--config", config, "status"]) == 0
    text = capsys.readouterr().out
    assert "last_error: -" in text
    assert "None" not in text
