"""Durable gateway operations: requested before the call, settled after it, reconciled
after a crash.

A "crash" here is a unit of work that committed and was never settled (its process died
between the commit and the gateway's answer): its operations stay ``pending``. The janitor
(``operations.reconcile_all``, run by ``background.tick`` and at start-up) finishes them
under their own keys; the sandbox's own books show the money moved once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fairbill.errors import IllegalTransition
from fairbill.gateway.sandbox_db import DatabaseSandbox, Fault, FaultTarget
from fairbill.lifecycle import OperationStatus, advance
from fairbill.services import background, merchants, operations, subscriptions
from fairbill.services.clock import TestClock
from fairbill.services.context import Ctx
from fairbill.store.db import make_engine, session_factory
from fairbill.store.migrate import upgrade
from fairbill.store.tables import (
    GatewayOperationRow,
    IdempotencyKeyRow,
    InvoiceRow,
    MerchantRow,
    PaymentRow,
    SandboxOperationRow,
)

START = datetime(2026, 1, 10, 9, tzinfo=UTC)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'fairbill.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def world(sessions: sessionmaker[Session], clock: TestClock) -> tuple[Ctx, int]:
    """A Kalenner merchant and one customer with a card; (context, merchant id)."""
    session = sessions()
    merchant, _ = merchants.create_merchant(session, START, name="k", policy_ref="kalenner")
    merchants.add_plan(
        session, merchant, {"id": "monthly", "interval_months": 1, "price": Decimal("29.00")}
    )
    customer = merchants.create_customer(session, merchant, {"id": "cus_1"})
    merchants.add_payment_method(session, merchant, customer, {"id": "card_1"})
    gateway = DatabaseSandbox(sessions)
    ctx = merchants.context(session, clock, gateway, merchant)
    session.commit()  # holding no transaction: the sandbox writes in sessions of its own
    return ctx, merchant.id


def subscribe_and_die(ctx: Ctx) -> None:
    """The use case commits; its process dies before the gateway is asked."""
    customer = merchants.find_customer(ctx.session, ctx.merchant_row, "cus_1")
    subscriptions.subscribe(ctx, customer, "monthly", payment_method="card_1")
    ctx.session.info.pop(operations.PENDING)
    ctx.session.commit()
    ctx.session.close()


def count(
    sessions: sessionmaker[Session], model: type[PaymentRow] | type[SandboxOperationRow]
) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def statuses(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(GatewayOperationRow.status)))


def test_a_charge_committed_but_never_sent_is_sent_by_the_janitor(
    sessions: sessionmaker[Session],
) -> None:
    clock = TestClock(START)
    ctx, _ = world(sessions, clock)
    subscribe_and_die(ctx)
    assert statuses(sessions) == ["pending"]
    assert count(sessions, PaymentRow) == count(sessions, SandboxOperationRow) == 0
    gateway = DatabaseSandbox(sessions)
    # Within the grace, the requesting process may still be sending it: left alone.
    assert operations.reconcile_all(sessions, clock, gateway) == {}
    clock.advance_to(START + timedelta(minutes=1))
    assert operations.reconcile_all(sessions, clock, gateway) == {"succeeded": 1}
    assert statuses(sessions) == ["succeeded"]
    assert count(sessions, PaymentRow) == count(sessions, SandboxOperationRow) == 1
    with sessions() as session:
        [invoice] = session.scalars(select(InvoiceRow))
        assert (invoice.status, invoice.amount_paid_minor) == ("paid", 2900)
    # Asking again changes nothing.
    assert operations.reconcile_all(sessions, clock, gateway, grace=timedelta(0)) == {}


def test_the_answer_lost_after_the_money_moved_is_recovered_without_a_second_charge(
    sessions: sessionmaker[Session],
) -> None:
    clock = TestClock(START)
    ctx, _ = world(sessions, clock)
    gateway = DatabaseSandbox(sessions)
    gateway.add_fault(Fault.TIMEOUT_AFTER, operation=FaultTarget.CHARGE)
    customer = merchants.find_customer(ctx.session, ctx.merchant_row, "cus_1")
    subscriptions.subscribe(ctx, customer, "monthly", payment_method="card_1")
    operations.commit_and_settle(ctx)
    assert statuses(sessions) == ["unknown"]
    assert (count(sessions, PaymentRow), count(sessions, SandboxOperationRow)) == (0, 1)
    clock.advance_to(START + timedelta(minutes=2))
    background.tick(sessions, clock, gateway)  # the janitor runs with the scheduler
    assert statuses(sessions) == ["succeeded"]
    assert (count(sessions, PaymentRow), count(sessions, SandboxOperationRow)) == (1, 1)


def test_two_janitors_apply_one_answer_once(sessions: sessionmaker[Session]) -> None:
    clock = TestClock(START)
    ctx, merchant_id = world(sessions, clock)
    subscribe_and_die(ctx)
    gateway = DatabaseSandbox(sessions)
    with sessions() as session:
        [op_id] = session.scalars(select(GatewayOperationRow.id))
        op = session.get_one(GatewayOperationRow, op_id)
        session.commit()  # never hold the database while the gateway is asked
        answer = operations.send(gateway, op)
    for _ in range(2):  # both got the same answer under the same key
        with sessions() as session:
            merchant = session.get_one(MerchantRow, merchant_id)
            other = merchants.context(session, clock, gateway, merchant)
            operations.record(other, op_id, answer)
            session.commit()
    assert count(sessions, PaymentRow) == 1
    assert statuses(sessions) == ["succeeded"]


def test_a_finished_idempotency_key_expires_after_a_day(sessions: sessionmaker[Session]) -> None:
    clock = TestClock(START)
    world(sessions, clock)
    now = datetime.now(UTC)
    with sessions() as session:
        for key, age in (("old", timedelta(hours=25)), ("new", timedelta(hours=1))):
            session.add(
                IdempotencyKeyRow(
                    merchant_id=1,
                    key=key,
                    operation="subscription.create",
                    fingerprint="f" * 64,
                    result={},
                    status_code=201,
                    created_at=now - age,
                )
            )
        session.commit()
    background.tick(sessions, clock, DatabaseSandbox(sessions))
    with sessions() as session:
        assert list(session.scalars(select(IdempotencyKeyRow.key))) == ["new"]


def test_an_operation_never_leaves_a_final_state() -> None:
    with pytest.raises(IllegalTransition):
        advance("succeeded", OperationStatus.UNKNOWN)
    with pytest.raises(IllegalTransition):
        advance("failed", OperationStatus.SUCCEEDED)
