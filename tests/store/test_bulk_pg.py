"""Bulk writes on PostgreSQL (``COPY``, updates by arrays) store what the ORM stores, and
``one_of`` selects what ``IN`` selects, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from fairbill.store.bulk import BulkWriter, update_by_id
from fairbill.store.db import create_schema, make_engine
from fairbill.store.sets import one_of
from fairbill.store.tables import CustomerRow, MerchantRow, NotificationRow, table

PARIS = ZoneInfo("Europe/Paris")
AT = datetime(2026, 3, 29, 2, 30, tzinfo=PARIS)


@pytest.fixture
def postgres(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    create_schema(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def _merchant(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
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
        )


def test_copy_fills_defaults_converts_instants_and_serialises_json(postgres: Engine) -> None:
    merchant_id = _merchant(postgres)
    rows = [
        {
            "merchant_id": merchant_id,
            "at": AT + timedelta(hours=i),
            "template": "t",
            "language": "fr",
        }
        for i in range(3)
    ]
    rows[1] |= {"payload": {"amount": "29.00 €", "nested": [1, None]}}
    with postgres.begin() as conn:
        writer = BulkWriter(conn)
        writer.execute(insert(table(NotificationRow)), rows[:1] + rows[2:])  # no payload
        writer.execute(insert(table(NotificationRow)), rows[1:2])
    with postgres.connect() as conn:
        stored = conn.execute(select(table(NotificationRow)).order_by("at")).all()
    instants = sorted(row["at"].astimezone(UTC) for row in rows)
    assert [(n.at, n.payload, n.attempts) for n in stored] == [
        (instants[0], {}, 0),
        (instants[1], {"amount": "29.00 €", "nested": [1, None]}, 0),
        (instants[2], {}, 0),
    ]


def test_copy_refuses_a_naive_instant_and_a_duplicate_as_sqlalchemy_would(
    postgres: Engine,
) -> None:
    merchant_id = _merchant(postgres)
    naive = {"merchant_id": merchant_id, "at": datetime(2026, 3, 1), "template": "t"}
    with pytest.raises(ValueError, match="naive"), postgres.begin() as conn:
        BulkWriter(conn).execute(insert(table(NotificationRow)), [naive | {"language": "fr"}])
    customer = {"merchant_id": merchant_id, "code": "c", "flags": []}
    with pytest.raises(IntegrityError), postgres.begin() as conn:
        BulkWriter(conn).execute(insert(table(CustomerRow)), [customer, dict(customer)])


def test_updates_by_arrays_set_each_row_its_own_values(postgres: Engine) -> None:
    merchant_id = _merchant(postgres)
    customers = [{"merchant_id": merchant_id, "code": f"c{i}", "flags": []} for i in range(4)]
    with postgres.begin() as conn:
        BulkWriter(conn).execute(insert(table(CustomerRow)), customers)
        ids = conn.scalars(select(CustomerRow.id).order_by(CustomerRow.id)).all()
        writer = BulkWriter(conn)
        until = AT + timedelta(days=30)
        update_by_id(
            writer,
            table(CustomerRow),
            [
                {"id": ids[0], "status": "suspended", "data_retained_until": until},
                {"id": ids[1], "status": "suspended", "data_retained_until": None},
                {"id": ids[2], "flags": ["vip", "ü"], "wallet_minor": 500},
            ],
        )
        update_by_id(writer, table(CustomerRow), [{"row_id": ids[3], "language": "de"}])
    with postgres.connect() as conn:
        got = conn.execute(
            select(
                CustomerRow.status,
                CustomerRow.data_retained_until,
                CustomerRow.flags,
                CustomerRow.wallet_minor,
                CustomerRow.language,
            ).order_by(CustomerRow.id)
        ).all()
    assert [tuple(row) for row in got] == [
        ("suspended", until.astimezone(UTC), [], 0, "en"),
        ("suspended", None, [], 0, "en"),
        ("active", None, ["vip", "ü"], 500, "en"),
        ("active", None, [], 0, "de"),
    ]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_one_of_selects_what_in_selects(request: pytest.FixtureRequest, database: str) -> None:
    url = "sqlite://" if database == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    create_schema(engine)
    merchant_id = _merchant(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(CustomerRow),
            [{"merchant_id": merchant_id, "code": f"c{i}", "flags": []} for i in range(5)],
        )
        codes = ["c1", "c3", "nobody"]
        found = conn.scalars(select(CustomerRow.code).where(one_of(conn, CustomerRow.code, codes)))
        assert sorted(found) == ["c1", "c3"]
        assert (
            conn.scalars(select(CustomerRow.id).where(one_of(conn, CustomerRow.id, []))).all() == []
        )
    engine.dispose()
