"""``fairbill audit``: stored decisions taken again from their facts, on a SQLite file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import update
from typer.testing import CliRunner

from durability.world import attempt_refund, build_world
from fairbill.cli.main import app
from fairbill.store.db import make_engine, session_factory
from fairbill.store.migrate import upgrade
from fairbill.store.tables import DecisionRow


def test_identical_decisions_pass_and_a_tampered_one_is_reported(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    ids = build_world(
        url, "voip", price="50.00", start=datetime.fromisoformat("2026-04-01T00:00-04:00")
    )
    engine = make_engine(url)
    attempt_refund(session_factory(engine), ids, "2026-04-11T09:00-04:00", "unused_period")
    runner = CliRunner()
    clean = runner.invoke(app, ["audit", "--database-url", url])
    assert clean.exit_code == 0, clean.output
    assert "1 decisions taken again: 1 identical, 0 differ" in clean.output
    with engine.begin() as conn:
        conn.execute(update(DecisionRow).values(amount_minor=DecisionRow.amount_minor + 1))
    engine.dispose()
    tampered = runner.invoke(app, ["audit", "--database-url", url])
    assert tampered.exit_code == 1
    assert "0 identical, 1 differ" in tampered.output and "stored:" in tampered.output
    unknown = runner.invoke(app, ["audit", "--database-url", url, "--merchant", "99"])
    assert unknown.exit_code == 2
