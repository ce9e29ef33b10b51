"""Alembic migrations: an empty database upgraded to head has exactly the models' schema.

Each test runs on SQLite (a file under tmp_path) and on PostgreSQL (a fresh database from
the ``postgres_url`` fixture; skipped when no server is reachable, failed under CI).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, UniqueConstraint, create_engine, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from fairbill.store.db import make_engine
from fairbill.store.migrate import (
    MIGRATIONS_DIR,
    alembic_config,
    current_revision,
    head_revision,
    upgrade,
)
from fairbill.store.tables import AuditLogRow, Base, JournalTransactionRow, MerchantRow, PlanRow

MODEL_TABLES = set(Base.metadata.tables)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fairbill.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@contextmanager
def connect(url: str) -> Iterator[Connection]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


@contextmanager
def session(url: str) -> Iterator[Session]:
    """A session as the services open one (SQLite foreign keys on)."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        with Session(engine) as s:
            yield s
    finally:
        engine.dispose()


def merchant(name: str = "Kalenner") -> MerchantRow:
    return MerchantRow(
        name=name,
        policy_ref="kalenner",
        policy_id="kalenner",
        policy_version="1",
        currency="EUR",
        timezone="Europe/Paris",
        country="FR",
    )


def plan(merchant_id: int, code: str = "monthly") -> PlanRow:
    return PlanRow(merchant_id=merchant_id, code=code, interval_months=1, price_minor=1900)


HEAD = "0009"
VERSION_FILES = [
    "0001_initial.py",
    "0002_fx_rates_and_settled_amounts.py",
    "0003_due_work_indexes.py",
    "0004_customer_email_and_delivery_attempts.py",
    "0005_gateway_operations.py",
    "0006_policy_versions.py",
    "0007_portal_token_revocation.py",
    "0008_worker_heartbeats.py",
    "0009_merchant_id_keys.py",
]


def _all_migrations() -> str:
    return "\n".join((MIGRATIONS_DIR / "versions" / name).read_text() for name in VERSION_FILES)


def test_the_revisions_form_one_line_to_the_head() -> None:
    assert head_revision() == HEAD
    assert sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py")) == VERSION_FILES


def test_migration_files_do_not_import_fairbill() -> None:
    text_ = _all_migrations()
    assert not re.search(r"^\s*(from|import)\s+fairbill", text_, re.MULTILINE)
    assert "UtcDateTime(" not in text_
    # Every instant column is a timezone-aware DateTime.
    assert len(re.findall(r'sa\.Column\("\w+", sa\.DateTime\(timezone=True\)', text_)) == sum(
        1
        for table in Base.metadata.tables.values()
        for column in table.columns
        if type(column.type).__name__ == "UtcDateTime"
    )


def test_upgrade_creates_every_table(database_url: str) -> None:
    assert current_revision(database_url) is None
    upgrade(database_url)
    with connect(database_url) as connection:
        tables = set(inspect(connection).get_table_names())
    assert tables == MODEL_TABLES | {"alembic_version"}
    assert len(MODEL_TABLES) >= 25  # 25 at revision 0001
    assert current_revision(database_url) == HEAD


def test_upgraded_schema_matches_the_models(database_url: str) -> None:
    upgrade(database_url)
    with connect(database_url) as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def _foreign_keys(table: Any) -> set[tuple[tuple[str, ...], str, tuple[str, ...], str | None]]:
    return {
        (
            tuple(fk.column_keys),
            fk.referred_table.name,
            tuple(element.column.name for element in fk.elements),
            fk.ondelete.upper() if fk.ondelete else None,
        )
        for fk in table.foreign_key_constraints
    }


def test_every_index_unique_constraint_and_foreign_key_is_created(database_url: str) -> None:
    upgrade(database_url)
    with connect(database_url) as connection:
        inspector = inspect(connection)
        for name, table in Base.metadata.tables.items():
            indexes = {
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                for ix in inspector.get_indexes(name)
                if not ix.get("duplicates_constraint")  # PostgreSQL: a unique's own index
            }
            assert indexes == {
                (ix.name, tuple(c.name for c in ix.columns), bool(ix.unique))
                for ix in table.indexes
            }, name
            uniques = {tuple(uc["column_names"]) for uc in inspector.get_unique_constraints(name)}
            assert uniques == {
                tuple(c.name for c in uc.columns)
                for uc in table.constraints
                if isinstance(uc, UniqueConstraint)
            }, name
            reflected_fks = {
                (
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    (fk["options"].get("ondelete") or "").upper() or None,
                )
                for fk in inspector.get_foreign_keys(name)
            }
            assert reflected_fks == _foreign_keys(table), name
        # Spot checks that do not depend on reading the models back.
        sub_indexes = {ix["name"] for ix in inspector.get_indexes("subscriptions")}
        assert {
            "ix_subscriptions_customer_id",
            "ix_subscriptions_status",
            "ix_subscriptions_current_period_end",
            "ix_subscriptions_next_retry_at",
        } <= sub_indexes
        assert ["merchant_id", "code"] in [
            uc["column_names"] for uc in inspector.get_unique_constraints("plans")
        ]
        assert ["key"] in [
            uc["column_names"] for uc in inspector.get_unique_constraints("journal_transactions")
        ]
        reflected_total = sum(len(inspector.get_foreign_keys(name)) for name in MODEL_TABLES)
    migration = _all_migrations()
    # Tables are created with their constraints; a later column gets its key added.
    assert reflected_total == migration.count("sa.ForeignKeyConstraint(") + migration.count(
        ".create_foreign_key("
    )
    assert reflected_total >= 34  # 33 at revision 0001, fx_rates adds one


def test_constraints_are_enforced_and_instants_come_back_in_utc(database_url: str) -> None:
    upgrade(database_url)
    with session(database_url) as s:
        row = merchant()
        s.add(row)
        s.flush()
        merchant_id = row.id
        s.add(plan(merchant_id))
        s.commit()

        s.add(plan(merchant_id))  # the same (merchant_id, code) again
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()

        s.add(plan(merchant_id + 1000, code="orphan"))  # no such merchant
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()

        # ON DELETE RESTRICT: a merchant with plans cannot be deleted.
        with pytest.raises(IntegrityError):
            s.execute(text("DELETE FROM merchants WHERE id = :id"), {"id": merchant_id})
        s.rollback()

        paris = timezone(timedelta(hours=2))
        s.add(
            JournalTransactionRow(
                merchant_id=merchant_id,
                key="t1",
                at=datetime(2026, 3, 31, 23, 30, tzinfo=paris),
                description="d",
            )
        )
        s.commit()
    with session(database_url) as s:
        at = s.scalars(select(JournalTransactionRow.at)).one()
        assert at == datetime(2026, 3, 31, 21, 30, tzinfo=UTC)
        assert at.utcoffset() == timedelta(0)
        assert s.scalars(select(PlanRow.code)).all() == ["monthly"]


def test_upgrade_is_idempotent_and_keeps_data(database_url: str) -> None:
    upgrade(database_url)
    with session(database_url) as s:
        s.add(merchant("Kept"))
        s.commit()
    upgrade(database_url)  # already at head: nothing to do
    upgrade(database_url)
    assert current_revision(database_url) == HEAD
    with connect(database_url) as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert [tuple(v) for v in versions] == [(HEAD,)]
    with session(database_url) as s:
        assert s.scalars(select(MerchantRow.name)).all() == ["Kept"]


def test_downgrade_to_base_removes_every_table(database_url: str) -> None:
    upgrade(database_url)
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, "base")
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()
    assert current_revision(database_url) is None
    upgrade(database_url)  # and back up again
    assert current_revision(database_url) == HEAD


def test_0007_takes_gateway_tokens_out_of_the_audit_log(database_url: str) -> None:
    """Payloads stored before 0007 kept payment methods' gateway tokens in clear."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "0006")
    finally:
        engine.dispose()
    payload = {"id": "c_1", "payment_methods": [{"id": "card_1", "token": "tok_in_clear"}]}
    with session(database_url) as s:
        merchant_id = _old_merchant(s)
        for action, details in (
            ("customer.create", {"payload": payload}),
            ("payment_method.create", {"payload": {"id": "card_2", "token": "tok_two"}}),
            ("plan.create", {"payload": {"id": "monthly", "token": None}}),
        ):
            s.add(
                AuditLogRow(
                    merchant_id=merchant_id,
                    at=datetime(2026, 1, 1, tzinfo=UTC),
                    actor="key:fb_x",
                    action=action,
                    target="t",
                    request_id="r",
                    details=details,
                )
            )
        s.commit()
    upgrade(database_url)
    with session(database_url) as s:
        kept = [r.details for r in s.scalars(select(AuditLogRow).order_by(AuditLogRow.id))]
    assert kept == [
        {"payload": {"id": "c_1", "payment_methods": [{"id": "card_1", "token": "redacted"}]}},
        {"payload": {"id": "card_2", "token": "redacted"}},
        {"payload": {"id": "monthly", "token": None}},
    ]


def _old_merchant(s: Session) -> int:
    """A merchant stored at a revision before 0009 (no ``id_key`` column yet): inserted
    by its columns of then, read back without the new one."""
    columns = ("name", "policy_ref", "policy_id", "policy_version", "currency", "timezone")
    values = {c: getattr(merchant(), c) for c in columns} | {"country": "FR", "language": "fr"}
    old = sa.table("merchants", sa.column("id"), *(sa.column(c) for c in values))
    return int(s.execute(sa.insert(old).values(values).returning(old.c.id)).scalar_one())


def test_0009_gives_every_stored_merchant_a_key_of_its_own(database_url: str) -> None:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "0008")
    finally:
        engine.dispose()
    with session(database_url) as s:
        for _ in range(3):
            _old_merchant(s)
        s.commit()
    upgrade(database_url)
    with session(database_url) as s:
        keys = list(s.scalars(select(MerchantRow.id_key)))
    assert len(keys) == 3 and len(set(keys)) == 3
    assert all(len(key) == 32 and int(key, 16) >= 0 for key in keys)
