"""The ``stixbridge elastic`` subcommands, run through argparse as the CLI runs them."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stixbridge.connectors.elastic.cli import load_sink_settings, register
from stixbridge.connectors.elastic.devtools import console_text
from stixbridge.errors import ConfigError

from .fake_elasticsearch import FakeElasticsearch
from .fake_kibana import FakeKibana


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="stixbridge")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stixbridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_setup_prints_changes_then_nothing(
    fake_es: FakeElasticsearch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, f'[[sinks]]\nkind = "elastic"\nname = "siem"\nhosts = ["{fake_es.url}"]\n')

    first = run("elastic", "setup", "--config", str(config))
    first_out = capsys.readouterr().out
    second = run("elastic", "setup", "--config", str(config))
    second_out = capsys.readouterr().out

    assert first == second == 0
    assert "- installed index template stixbridge-indicators" in first_out
    assert "Nothing to change" in second_out


def test_setup_with_rules(fake_es: FakeElasticsearch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeKibana() as kibana:
        config = write_config(
            tmp_path,
            f'[[sinks]]\nkind = "elastic"\nhosts = ["{fake_es.url}"]\nkibana_url = "{kibana.url}"\n',
        )
        code = run("elastic", "setup", "--rules", "--config", str(config))

    assert code == 0
    assert "installed detection rule stixbridge-domain-indicator-match" in capsys.readouterr().out


def test_setup_error_exits_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, '[[sinks]]\nkind = "elastic"\nhosts = ["http://127.0.0.1:9"]\ntimeout = 1.0\n')

    code = run("elastic", "setup", "--config", str(config))

    assert code == 1
    assert "cannot reach Elasticsearch" in capsys.readouterr().err


def test_devtools_without_config_prints_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)

    assert run("elastic", "devtools") == 0
    assert capsys.readouterr().out == console_text()


def test_devtools_uses_configured_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(
        tmp_path,
        '[[sinks]]\nkind = "elastic"\nhosts = ["http://127.0.0.1:9200"]\nindex = "acme-ti-000003"\n'
        'alias = "logs-ti_acme.indicator"\n',
    )

    assert run("elastic", "devtools", "--config", str(config)) == 0
    out = capsys.readouterr().out
    assert "PUT _index_template/acme-ti\n" in out
    assert "PUT acme-ti-000003\n" in out
    assert '"logs-ti_acme.indicator"' in out


def test_devtools_missing_config_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("elastic", "devtools", "--config", str(tmp_path / "absent.toml")) == 1
    assert "absent.toml" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "sink", "words"),
    [
        ('[[sinks]]\nkind = "splunk"\n', None, 'no [[sinks]] table with kind = "elastic"'),
        (
            '[[sinks]]\nkind = "elastic"\nname = "a"\n[[sinks]]\nkind = "elastic"\nname = "b"\n',
            None,
            "choose one with --sink",
        ),
        ('[[sinks]]\nkind = "elastic"\nname = "a"\n', "b", "named 'b'"),
        ("[[sinks]\n", None, "invalid TOML"),
        ('[[sinks]]\nkind = "elastic"\nhosts = ["http://127.0.0.1:9200"]\nalias = "x"\n', None, "logs-ti_*"),
    ],
)
def test_config_errors(tmp_path: Path, text: str, sink: str | None, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("[", "\\[").replace("*", "\\*")):
        load_sink_settings(write_config(tmp_path, text), sink)


def test_config_picks_named_sink(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        '[[sinks]]\nkind = "elastic"\nname = "a"\nhosts = ["http://127.0.0.1:1"]\n'
        '[[sinks]]\nkind = "elastic"\nname = "b"\nhosts = ["https://127.0.0.1:2"]\nca_bundle = "ca.pem"\n',
    )

    settings, base_dir = load_sink_settings(config, "b")

    assert settings.hosts == ["https://127.0.0.1:2"]
    assert base_dir == tmp_path.resolve()
