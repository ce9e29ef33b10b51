"""``fairbill worker``: refuses a database that is not migrated and an unreadable --at
(exit 2, nothing run; ``--once`` itself: ``tests/services/test_worker.py``). ``fairbill
serve`` leaves due work to the worker when one is expected."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fairbill.cli.main import app
from fairbill.cli.serve import runs_due_work

runner = CliRunner()


def test_a_database_not_migrated_is_exit_2(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = runner.invoke(app, ["worker", "--once", "--database-url", url], env={})
    assert result.exit_code == 2, result.output
    assert "run `fairbill db upgrade`" in result.output


def test_an_unreadable_instant_is_exit_2(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = runner.invoke(app, ["worker", "--at", "tomorrow", "--database-url", url], env={})
    assert result.exit_code == 2, result.output
    assert "--at:" in result.output


@pytest.mark.parametrize(
    ("given", "expect_worker", "runs"),
    [(None, False, True), (None, True, False), (True, True, True), (False, False, False)],
)
def test_serve_runs_due_work_unless_a_worker_is_expected(
    given: bool | None, expect_worker: bool, runs: bool
) -> None:
    assert runs_due_work(given, expect_worker) is runs
