"""``fairbill serve --config FILE`` (or ``FAIRBILL_CONFIG``): the file's settings are used,
the environment and the options override it; a wrong setting is exit 2 with a line that
names it, before anything is migrated."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fairbill.cli.main import app

runner = CliRunner()


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_the_config_file_is_read_and_the_environment_overrides_it(
    busy_port: int, tmp_path: Path
) -> None:
    db = tmp_path / "fb.db"
    config = tmp_path / "fairbill.toml"
    config.write_text(f'database_url = "sqlite:///{db}"\nport = {busy_port}\n')
    for args, env in (
        (["--config", str(config)], {}),
        ([], {"FAIRBILL_CONFIG": str(config)}),
        (["--config", str(config)], {"FAIRBILL_PORT": str(busy_port), "FAIRBILL_HOST": ""}),
    ):
        result = runner.invoke(app, ["serve", *args], env=env)
        assert result.exit_code == 2, result.output
        assert f"port {busy_port} on 127.0.0.1 is already in use" in result.output
    assert not db.exists()


def test_a_wrong_setting_is_exit_2_naming_it(tmp_path: Path) -> None:
    db = tmp_path / "fb.db"
    result = runner.invoke(
        app,
        ["serve", "--database-url", f"sqlite:///{db}"],
        env={"FAIRBILL_PORT": "eighty", "FAIRBILL_LOG_FORMAT": "xml"},
    )
    assert result.exit_code == 2
    assert "settings: port (FAIRBILL_PORT): Input should be a valid integer" in result.output
    assert "settings: log_format (FAIRBILL_LOG_FORMAT): Input should be 'auto'" in result.output
    assert "Traceback" not in result.output
    assert not db.exists()


def test_db_upgrade_takes_the_url_from_the_settings(tmp_path: Path) -> None:
    db = tmp_path / "from-config.db"
    config = tmp_path / "fairbill.yaml"
    config.write_text(f"database_url: sqlite:///{db}\n")
    result = runner.invoke(app, ["db", "upgrade"], env={"FAIRBILL_CONFIG": str(config)})
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"sqlite:///{db}: upgraded from empty to revision")
    assert db.exists()
