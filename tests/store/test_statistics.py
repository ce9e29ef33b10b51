"""The planner's statistics of growing tables are refreshed on PostgreSQL, once each time
a table outgrows them, and a foreign-key check planned on an empty table stops being a
scan of the whole table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from fairbill.store import statistics
from fairbill.store.bulk import BulkWriter
from fairbill.store.db import create_schema, make_engine
from fairbill.store.tables import MerchantRow, NotificationRow, table

AT = datetime(2026, 3, 1, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))


@pytest.fixture
def postgres(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    create_schema(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def _notifications(engine: Engine, count: int) -> None:
    with engine.begin() as conn:
        merchant_id = conn.execute(
            insert(MerchantRow).returning(MerchantRow.id),
            {
                "name": "m",
                "policy_ref": "kalenner",
                "policy_id": "kalenner",
                "policy_version": "1",
                "currency": "EUR",
                "timezone": "Europe/Paris",
                "country": "FR",
                "language": "fr",
            },
        ).scalar_one()
        rows = [
            {
                "merchant_id": merchant_id,
                "at": AT + timedelta(seconds=i),
                "template": "t",
                "language": "fr",
            }
            for i in range(count)
        ]
        BulkWriter(conn).execute(insert(table(NotificationRow)), rows)


def _reltuples(engine: Engine, name: str) -> float:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT reltuples FROM pg_class WHERE relname = :n"), {"n": name}
        ).scalar_one()
        return float(found)


def test_a_table_that_outgrew_its_statistics_is_analysed_once(postgres: Engine) -> None:
    with Session(postgres) as session:
        session.execute(text("ANALYZE"))  # every table analysed while empty
        session.commit()
        assert statistics.refresh(session) == []  # nothing grew
        session.commit()
    _notifications(postgres, 20_000)
    with Session(postgres) as session:
        assert statistics.refresh(session) == ["notifications"]
        session.commit()
        assert statistics.refresh(session) == []  # current again
    assert _reltuples(postgres, "notifications") == 20_000


def test_sqlite_needs_no_statistics() -> None:
    engine = make_engine("sqlite://")
    create_schema(engine)
    with Session(engine) as session:
        assert statistics.refresh(session) == []
