"""Readiness: each check's stable code (pure), the three checks on a real database, and
the backlog the gauges of /metrics show."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from fairbill.services import health, heartbeat
from fairbill.store.db import create_schema, make_engine, session_factory
from fairbill.store.migrate import head_revision
from fairbill.store.tables import CustomerRow, MerchantRow, NotificationRow, RequestRow

NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
LIMIT = timedelta(seconds=120)


def test_the_migration_check_tells_behind_from_ahead() -> None:
    known = frozenset({"0001", "0002"})
    assert health.migrations("0002", "0002", known).code == "ok"
    assert health.migrations(None, "0002", known).code == "migrations_missing"
    behind = health.migrations("0001", "0002", known)
    assert (behind.ok, behind.code) == (False, "migrations_behind")
    assert "fairbill db upgrade" in behind.detail
    assert health.migrations("0003", "0002", known).code == "migrations_ahead"


def test_the_worker_check_passes_when_no_worker_is_expected() -> None:
    assert health.worker(None, NOW, False, LIMIT).ok
    assert health.worker(None, NOW, False, LIMIT).code == "worker_not_expected"
    assert health.worker(None, NOW, True, LIMIT).code == "worker_missing"
    stale = health.worker(NOW - timedelta(seconds=121), NOW, True, LIMIT)
    assert (stale.ok, stale.code, stale.detail) == (
        False,
        "worker_stale",
        "last beat 121 s ago (limit 120 s)",
    )
    assert health.worker(NOW - timedelta(seconds=5), NOW, True, LIMIT).code == "ok"


@pytest.fixture
def engine() -> Iterator[Engine]:
    found = make_engine("sqlite://")
    create_schema(found)
    try:
        yield found
    finally:
        found.dispose()


def _stamp(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
        connection.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": revision})


def test_readiness_on_a_database(engine: Engine) -> None:
    codes = {c.name: c.code for c in health.readiness(engine, True, LIMIT).checks}
    assert codes == {"database": "ok", "migrations": "migrations_missing"}
    _stamp(engine, head_revision())
    assert not health.readiness(engine, True, LIMIT).ok  # no worker beat yet
    assert health.readiness(engine, False, LIMIT).ok
    assert heartbeat.beat_once(session_factory(engine), "worker@test:1")
    assert health.readiness(engine, True, LIMIT).ok


def test_an_unreachable_database_is_the_only_check(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'fairbill.db'}")
    try:
        found = health.readiness(engine, True, LIMIT)
    finally:
        engine.dispose()
    [check] = found.checks
    assert (found.ok, check.code) == (False, "database_unreachable")
    assert "unable to open database file" in check.detail


def test_the_backlog_counts_what_waits(engine: Engine) -> None:
    sessions = session_factory(engine)
    with sessions() as session:
        merchant = MerchantRow(
            name="K",
            policy_ref="kalenner",
            policy_id="kalenner",
            policy_version="1",
            currency="EUR",
            timezone="Europe/Paris",
            country="FR",
        )
        session.add(merchant)
        session.flush()
        customer = CustomerRow(merchant_id=merchant.id, code="c1")
        session.add(customer)
        session.flush()
        for sent, failed in ((None, None), (None, None), (None, NOW), (NOW, None)):
            session.add(
                NotificationRow(
                    customer_id=customer.id,
                    at=NOW,
                    template="t",
                    language="en",
                    sent_at=sent,
                    failed_at=failed,
                )
            )
        for number, (status, due) in enumerate(
            (
                ("in_review", NOW - timedelta(days=1)),
                ("in_review", NOW + timedelta(days=1)),
                ("in_review", None),
                ("decided", NOW - timedelta(days=1)),
            ),
            start=1,
        ):
            session.add(
                RequestRow(
                    customer_id=customer.id,
                    number=number,
                    at=NOW,
                    kind="refund",
                    status=status,
                    decision="review",
                    review_due=due,
                )
            )
        session.commit()
    found = health.backlog(sessions, lambda: NOW)
    assert (found.outbox_pending, found.outbox_parked) == (2, 1)
    assert (found.review_in_review, found.review_overdue) == (3, 1)
    assert found.last_heartbeat is None
