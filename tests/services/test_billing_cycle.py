"""The chunked renewal path writes exactly what the one-by-one path writes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from fairbill.gateway.sandbox import SandboxGateway
from fairbill.policy.load import bundled_policy
from fairbill.services import billing_cycle, operations, scheduler, subscriptions
from fairbill.services.clock import TestClock
from fairbill.services.context import Ctx
from fairbill.simulator.result import ledger_balanced
from fairbill.store.db import create_schema, make_engine, session_factory
from fairbill.store.tables import (
    CustomerRow,
    DecisionRow,
    FailedPaymentRow,
    InvoiceRow,
    JournalEntryRow,
    JournalTransactionRow,
    MerchantRow,
    NotificationRow,
    PaymentMethodRow,
    PaymentRow,
    PlanRow,
    SubscriptionRow,
)

PARIS = ZoneInfo("Europe/Paris")
START = datetime(2026, 1, 31, 9, 0, tzinfo=PARIS)


def _world(declining: set[int], url: str = "sqlite://") -> tuple[Ctx, TestClock]:
    engine = make_engine(url)
    create_schema(engine)
    session = session_factory(engine)()
    clock = TestClock(START)
    gateway = SandboxGateway()
    merchant = MerchantRow(
        name="k",
        policy_ref="kalenner",
        policy_id="kalenner",
        policy_version="2025-05-26",
        currency="EUR",
        timezone="Europe/Paris",
        country="FR",
        language="fr",
    )
    session.add(merchant)
    session.flush()
    session.add_all(
        [
            PlanRow(
                merchant_id=merchant.id,
                code="solo",
                interval_months=1,
                price_minor=2900,
                includes={},
            ),
            PlanRow(
                merchant_id=merchant.id,
                code="annual",
                interval_months=12,
                price_minor=24000,
                includes={},
            ),
        ]
    )
    ctx = Ctx(session, clock, gateway, merchant, bundled_policy("kalenner"))
    for i in range(6):
        customer = CustomerRow(
            merchant_id=merchant.id,
            code=f"c{i}",
            flags=[],
            language="fr",
            status="active",
            wallet_minor=0,
        )
        session.add(customer)
        session.flush()
        session.add(
            PaymentMethodRow(customer_id=customer.id, code="card", currency="EUR", token=f"tok{i}")
        )
        session.flush()
        clock.advance_to(START + timedelta(hours=i))
        subscriptions.subscribe(
            ctx, customer, "annual" if i == 5 else "solo", payment_method="card"
        )
        if i in declining:
            gateway.set_declines(f"tok{i}", True)
    operations.commit_and_settle(ctx)
    return ctx, clock


def _snapshot(ctx: Ctx) -> dict[str, Any]:
    s = ctx.session
    return {
        "invoices": [
            (
                i.customer_id,
                i.number,
                i.total_minor,
                i.amount_paid_minor,
                i.status,
                i.period_start,
                i.period_end,
            )
            for i in s.scalars(
                select(InvoiceRow).order_by(InvoiceRow.customer_id, InvoiceRow.number)
            )
        ],
        "payments": [
            (p.customer_id, p.number, p.amount_minor)
            for p in s.scalars(
                select(PaymentRow).order_by(PaymentRow.customer_id, PaymentRow.number)
            )
        ],
        "failed": [
            (f.customer_id, f.attempt, f.at)
            for f in s.scalars(
                select(FailedPaymentRow).order_by(FailedPaymentRow.customer_id, FailedPaymentRow.at)
            )
        ],
        "subs": [
            (x.id, x.status, x.current_period_start, x.current_period_end, x.next_retry_at)
            for x in s.scalars(select(SubscriptionRow).order_by(SubscriptionRow.id))
        ],
        "journal": sorted(
            (t.key, e.account, e.amount_minor)
            for t, e in s.execute(
                select(JournalTransactionRow, JournalEntryRow).join(
                    JournalEntryRow, JournalEntryRow.transaction_id == JournalTransactionRow.id
                )
            )
        ),
    }


def _run(ctx: Ctx, clock: TestClock, *, bulk: bool, until: datetime) -> None:
    while (due := scheduler.next_due(ctx)) is not None and due <= until:
        clock.advance_to(max(due, clock.now()))
        if bulk:
            scheduler.run_due(ctx)
        else:
            for sub in ctx.session.scalars(select(SubscriptionRow)).all():
                customer = ctx.session.get_one(CustomerRow, sub.customer_id)
                from fairbill.services import accounts

                accounts.retry_due(ctx, customer, sub)
                subscriptions.advance(ctx, customer, sub)
        operations.commit_and_settle(ctx)


@pytest.mark.parametrize("declining", [set(), {1, 3}])
def test_bulk_and_one_by_one_renewals_write_the_same_rows(declining: set[int]) -> None:
    until = START + timedelta(days=75)
    bulk_ctx, bulk_clock = _world(declining)
    _run(bulk_ctx, bulk_clock, bulk=True, until=until)
    orm_ctx, orm_clock = _world(declining)
    _run(orm_ctx, orm_clock, bulk=False, until=until)
    bulk, orm = _snapshot(bulk_ctx), _snapshot(orm_ctx)
    assert bulk == orm
    # Jan 31 anchors clamp to Feb 28 and come back to Mar 31: three invoices per monthly sub.
    monthly = [i for i in bulk["invoices"] if i[0] == 1]
    assert [i[6].astimezone(PARIS).date().isoformat() for i in monthly] == [
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
    ]
    assert ledger_balanced(bulk_ctx)


def test_on_postgresql_the_bulk_path_writes_what_the_one_by_one_path_writes(
    postgres_url: str,
) -> None:
    """PostgreSQL's bulk writes (``COPY``, updates by arrays, ``= ANY``) and claims (``SKIP
    LOCKED``) store the same rows as the ORM path on SQLite."""
    until = START + timedelta(days=75)
    bulk_ctx, bulk_clock = _world({1, 3, 4}, postgres_url)
    _run(bulk_ctx, bulk_clock, bulk=True, until=until)
    orm_ctx, orm_clock = _world({1, 3, 4})
    _run(orm_ctx, orm_clock, bulk=False, until=until)
    assert _snapshot(bulk_ctx) == _snapshot(orm_ctx)
    assert _accounts(bulk_ctx) == _accounts(orm_ctx)
    bulk_ctx.session.close()
    bulk_ctx.session.get_bind().dispose()


def test_the_chunked_path_renews_in_several_chunks() -> None:
    ctx, clock = _world(set())
    clock.advance_to(START + timedelta(days=29))
    stats = billing_cycle.renew_due(ctx, chunk_size=2)
    operations.commit_and_settle(ctx)
    assert (stats.renewed, stats.failed, stats.chunks) == (5, 0, 3)
    # Running the same instant again renews nothing: each job is idempotent.
    again = billing_cycle.renew_due(ctx, chunk_size=2)
    assert (again.renewed, again.failed) == (0, 0)


def _accounts(ctx: Ctx) -> dict[str, Any]:
    """What dunning decides for an account: its status, its retention date, its decisions
    and the failure and suspension notices (receipts' payloads differ between the paths)."""
    s = ctx.session
    return {
        "customers": [
            (c.id, c.status, c.data_retained_until)
            for c in s.scalars(select(CustomerRow).order_by(CustomerRow.id))
        ],
        "decisions": sorted(
            (d.customer_id, d.at, d.action, d.outcome, d.amount_minor, d.explanation)
            for d in s.scalars(select(DecisionRow))
        ),
        "notices": sorted(
            (n.customer_id, n.at, n.template, n.language, tuple(sorted(n.payload.items())))
            for n in s.scalars(
                select(NotificationRow).where(
                    NotificationRow.template.in_(("payment_failed", "suspended"))
                )
            )
        ),
        "suspended_at": [
            (x.id, x.suspended_at, x.failed_attempts, x.first_failed_at)
            for x in s.scalars(select(SubscriptionRow).order_by(SubscriptionRow.id))
        ],
    }


def test_suspensions_at_the_last_retry_match_the_one_by_one_path() -> None:
    until = START + timedelta(days=75)
    bulk_ctx, bulk_clock = _world({1, 3, 4})
    _run(bulk_ctx, bulk_clock, bulk=True, until=until)
    orm_ctx, orm_clock = _world({1, 3, 4})
    _run(orm_ctx, orm_clock, bulk=False, until=until)
    bulk = _accounts(bulk_ctx)
    assert bulk == _accounts(orm_ctx)
    assert _snapshot(bulk_ctx) == _snapshot(orm_ctx)
    assert [c[1] for c in bulk["customers"]].count("suspended") == 3
    assert ledger_balanced(bulk_ctx)


def test_an_account_with_two_failing_subscriptions_is_suspended_once() -> None:
    """Every retry's outcome goes through the one path, in the order the charges were
    requested: two last retries of one account at one run suspend it once."""
    ctx, clock = _world({1, 3})
    clock.advance_to(clock.now() + timedelta(hours=1))
    # Customer 2 gets a second subscription on the same declining card.
    subscriptions.subscribe(ctx, ctx.session.get_one(CustomerRow, 2), "solo", payment_method="card")
    operations.commit_and_settle(ctx)
    day = START.replace(hour=0) + timedelta(days=1)
    while day <= START + timedelta(days=45):  # once a day at midnight, as in production
        clock.advance_to(day)
        scheduler.run_due(ctx)
        operations.commit_and_settle(ctx)
        day += timedelta(days=1)
    statuses = {c.id: c.status for c in ctx.session.scalars(select(CustomerRow))}
    assert (statuses[2], statuses[4]) == ("suspended", "suspended")
    notices = ctx.session.scalars(
        select(NotificationRow.customer_id).where(NotificationRow.template == "suspended")
    ).all()
    assert sorted(notices) == [2, 4]
