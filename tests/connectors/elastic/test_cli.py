"""The ``stixbridge elastic`` subcommands, run through the ``stixbridge`` command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from stixbridge import cli
from stixbridge.connectors.elastic.devtools import console_text

from .fake_elasticsearch import FakeElasticsearch
from .fake_kibana import FakeKibana


def test_elastic_commands_registered_by_entry_point() -> None:
    assert "elastic" in cli.build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]


def write_config(tmp_path: Path, sinks: str) -> Path:
    path = tmp_path / "stixbridge.toml"
    path.write_text(f'[engine]\nstate = "state.db"\n\n{sinks}', encoding="utf-8")
    return path


def elastic_sink(url: str, extra: str = "", name: str = "siem") -> str:
    return f'[[sinks]]\nkind = "elastic"\nname = "{name}"\nhosts = ["{url}"]\n{extra}\n'


def test_setup_prints_changes_then_nothing(
    fake_es: FakeElasticsearch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, elastic_sink(fake_es.url))

    first = cli.main(["--config", str(config), "elastic", "setup"])
    first_out = capsys.readouterr().out
    second = cli.main(["--config", str(config), "elastic", "setup"])
    second_out = capsys.readouterr().out

    assert first == second == 0
    assert "- installed index template stixbridge-indicators" in first_out
    assert "Nothing to change" in second_out


def test_setup_with_rules(fake_es: FakeElasticsearch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeKibana() as kibana:
        config = write_config(tmp_path, elastic_sink(fake_es.url, f'kibana_url = "{kibana.url}"'))
        code = cli.main(["--config", str(config), "elastic", "setup", "--rules"])

    assert code == 0
    assert "installed detection rule stixbridge-domain-indicator-match" in capsys.readouterr().out


def test_setup_unreachable_exits_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, elastic_sink("http://127.0.0.1:9", "timeout = 1.0"))

    code = cli.main(["--config", str(config), "elastic", "setup"])

    assert code == 3
    assert "cannot reach Elasticsearch" in capsys.readouterr().err


def test_setup_picks_named_sink(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    config = write_config(
        tmp_path, elastic_sink("http://127.0.0.1:9", name="old") + elastic_sink(fake_es.url, name="new")
    )

    assert cli.main(["--config", str(config), "elastic", "setup", "--sink", "new"]) == 0
    assert "stixbridge-indicators" in fake_es.templates


@pytest.mark.parametrize(
    ("sinks", "words"),
    [
        ('[[sinks]]\nkind = "ecs-ndjson"\npath = "out"\n', 'no [[sinks]] entry with kind = "elastic"'),
        (
            elastic_sink("http://127.0.0.1:1", name="a") + elastic_sink("http://127.0.0.1:2", name="b"),
            "choose one with --sink",
        ),
        (elastic_sink("http://127.0.0.1:1", 'alias = "x"'), "logs-ti_*"),
    ],
)
def test_configuration_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sinks: str, words: str
) -> None:
    config = write_config(tmp_path, sinks)

    assert cli.main(["--config", str(config), "elastic", "setup"]) == 2
    assert words in capsys.readouterr().err


def test_devtools_without_config_prints_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STIXBRIDGE_CONFIG", raising=False)

    assert cli.main(["elastic", "devtools"]) == 0
    assert capsys.readouterr().out == console_text()


def test_devtools_uses_configured_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(
        tmp_path, elastic_sink("http://127.0.0.1:9200", 'index = "acme-ti-000003"\nalias = "logs-ti_acme.indicator"')
    )

    assert cli.main(["--config", str(config), "elastic", "devtools"]) == 0
    out = capsys.readouterr().out
    assert "PUT _index_template/acme-ti\n" in out
    assert "PUT acme-ti-000003\n" in out
    assert '"logs-ti_acme.indicator"' in out


def test_devtools_missing_named_config_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--config", str(tmp_path / "absent.toml"), "elastic", "devtools"]) == 2
    assert "absent.toml" in capsys.readouterr().err


def test_refresh_command(fake_es: FakeElasticsearch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, elastic_sink(fake_es.url))
    cli.main(["--config", str(config), "elastic", "setup"])

    assert cli.main(["--config", str(config), "elastic", "refresh"]) == 0
    assert "Stamped 0 documents" in capsys.readouterr().out
