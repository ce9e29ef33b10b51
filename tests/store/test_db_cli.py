"""``fairbill db upgrade``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from fairbill.cli.main import app
from fairbill.store.migrate import head_revision
from fairbill.store.tables import Base

HEAD = head_revision()  # tests/store/test_migrations.py pins it

runner = CliRunner(env={"COLUMNS": "250", "NO_COLOR": "1"})


def run(*args: str) -> Result:
    return runner.invoke(app, ["db", "upgrade", *args])


def sqlite_tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    connection.close()
    return {name for (name,) in rows}


def test_default_url_is_fairbill_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run()
    assert result.exit_code == 0, result.output
    upgraded = f"sqlite:///fairbill.db: upgraded from empty to revision {HEAD} (newest)\n"
    assert result.stdout == upgraded
    assert sqlite_tables(tmp_path / "fairbill.db") == set(Base.metadata.tables) | {
        "alembic_version"
    }
    again = run()
    assert again.exit_code == 0, again.output
    assert again.stdout == f"sqlite:///fairbill.db: already at revision {HEAD} (newest)\n"


def test_explicit_url(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    result = run("--database-url", f"sqlite:///{path}")
    assert result.exit_code == 0, result.output
    assert f"upgraded from empty to revision {HEAD}" in result.stdout
    assert "subscriptions" in sqlite_tables(path)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not-a-url", "not-a-url: not a database URL"),
        (
            "mysql://u@h/d",
            "mysql://u@h/d: unsupported database kind 'mysql' (sqlite or postgresql)",
        ),
        ("postgresql+nosuch://u@h/d", "unknown database kind 'postgresql+nosuch'"),
    ],
)
def test_bad_urls_exit_2(url: str, message: str) -> None:
    result = run("--database-url", url)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in result.stderr


def test_unopenable_sqlite_file_exits_2(tmp_path: Path) -> None:
    result = run("--database-url", f"sqlite:///{tmp_path}/missing-dir/x.db")
    assert result.exit_code == 2
    assert "cannot open the database: unable to open database file" in result.stderr
    assert not (tmp_path / "missing-dir").exists()


def test_unreachable_server_exits_2_without_showing_the_password() -> None:
    # Port 1 on the loopback: nothing listens there, the connection is refused at once.
    result = run("--database-url", "postgresql+psycopg://fb:s3cret@127.0.0.1:1/fairbill")
    assert result.exit_code == 2
    assert "postgresql+psycopg://fb:***@127.0.0.1:1/fairbill: cannot open the database" in (
        result.stderr
    )
    assert "s3cret" not in result.output
