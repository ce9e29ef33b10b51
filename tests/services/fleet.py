"""A database full of due renewals for several workers, and the count of what they did.

``seed(url, n)`` writes one merchant (kalenner, EUR, Europe/Paris) and ``n`` customers,
each with a card and one monthly subscription whose period ended before ``AT``: the
plain renewals of the chunked path, every ``DECLINE_EVERY``-th card declining, and every
``CANCEL_EVERY``-th subscription canceled at its period end (not plain: the merchant's
one-by-one run ends it, under its advisory lock, without an invoice). ``tally(url)``
counts, afterwards, what must be exactly once: an invoice per subscription and period, a
charge at the processor (``sandbox_operations``) per invoice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from fairbill.calendar.periods import Interval, period_at
from fairbill.gateway.sandbox import SandboxGateway
from fairbill.policy.load import bundled_policy
from fairbill.services import merchants
from fairbill.services.clock import TestClock
from fairbill.store.bulk import BulkWriter
from fairbill.store.db import make_engine, session_factory
from fairbill.store.tables import (
    CustomerRow,
    FailedPaymentRow,
    GatewayOperationRow,
    InvoiceRow,
    MerchantRow,
    PaymentMethodRow,
    PaymentRow,
    PlanRow,
    SandboxOperationRow,
    SubscriptionRow,
    table,
)

PARIS = ZoneInfo("Europe/Paris")
AT = "2026-03-01T00:00:00+01:00"  # every period below has ended by then
ANCHOR_FROM = datetime(2026, 1, 1, tzinfo=PARIS)
DECLINE_EVERY = 20
CANCEL_EVERY = 50
PRICE_MINOR = 2900
CHUNK = 10_000


@dataclass(frozen=True)
class Expected:
    renewals: int
    declines: int
    cancels: int


def seed(url: str, n: int) -> Expected:
    """The merchant and ``n`` due subscriptions, on the migrated database at ``url``."""
    engine = make_engine(url)
    try:
        merchant_id = _merchant(engine)
        for lo in range(0, n, CHUNK):
            _customers(engine, merchant_id, range(lo + 1, min(lo + CHUNK, n) + 1))
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:  # the explicit ids above: move the sequences on
                for name in ("customers", "payment_methods", "subscriptions"):
                    conn.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), {n})"
                    )
                conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    cancels = sum(1 for i in range(1, n + 1) if _cancels(i))
    declines = sum(1 for i in range(1, n + 1) if _declines(i) and not _cancels(i))
    return Expected(renewals=n - cancels, declines=declines, cancels=cancels)


def _declines(i: int) -> bool:
    return i % DECLINE_EVERY == 0


def _cancels(i: int) -> bool:
    return i % CANCEL_EVERY == 7


def _merchant(engine: Engine) -> int:
    policy = bundled_policy("kalenner")
    with session_factory(engine)() as session:
        merchant = MerchantRow(
            name="Fleet",
            policy_ref="kalenner",
            policy_id=policy.id,
            policy_version=policy.version,
            currency="EUR",
            timezone="Europe/Paris",
            country="FR",
            language="fr",
        )
        session.add(merchant)
        session.flush()
        session.add(
            PlanRow(
                merchant_id=merchant.id,
                code="solo",
                interval_months=1,
                price_minor=PRICE_MINOR,
                includes={},
            )
        )
        # Its policy file becomes its first stored version now, not in racing workers.
        merchants.context(session, TestClock(ANCHOR_FROM), SandboxGateway(), merchant)
        session.commit()
        return merchant.id


def _customers(engine: Engine, merchant_id: int, ids: range) -> None:
    month = Interval(1)
    span = timedelta(days=28) / max(len(ids), 1)
    customers, cards, subs = [], [], []
    for at, i in enumerate(ids):
        anchor = (ANCHOR_FROM + span * at + timedelta(seconds=i % 60)).replace(microsecond=0)
        period = period_at(anchor, month, 0)
        customers.append(
            {
                "id": i,
                "merchant_id": merchant_id,
                "code": f"cus_{i}",
                "language": "fr",
                "flags": [],
                "status": "active",
                "wallet_minor": 0,
            }
        )
        cards.append(
            {
                "id": i,
                "customer_id": i,
                "code": "card",
                "currency": "EUR",
                "token": f"tok_{i}",
                "declines": _declines(i),
            }
        )
        subs.append(
            {
                "id": i,
                "customer_id": i,
                "plan_code": "solo",
                "status": "active",
                "anchor": anchor,
                "started_at": anchor,
                "current_period_start": period.start,
                "current_period_end": period.end,
                "cancel_at": period.end if _cancels(i) else None,
                "payment_method": "card",
                "price_minor": PRICE_MINOR,
                "is_first": False,
                "failed_attempts": 0,
            }
        )
    with engine.begin() as conn:
        writer = BulkWriter(conn)  # COPY on PostgreSQL; the rows stay alive until the end
        writer.execute(insert(table(CustomerRow)), customers)
        writer.execute(insert(table(PaymentMethodRow)), cards)
        writer.execute(insert(table(SubscriptionRow)), subs)


def tally(url: str) -> dict[str, Any]:
    """What the workers did, counted in the database."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:

            def one(query: Any) -> Any:
                return conn.scalar(query)

            inv, op, box = InvoiceRow, GatewayOperationRow, SandboxOperationRow
            twice = (
                select(inv.subscription_id, inv.period_start)
                .where(inv.purpose == "subscription")
                .group_by(inv.subscription_id, inv.period_start)
                .having(func.count() > 1)
                .subquery()
            )
            charged = (
                select(op.invoice_id)
                .join(box, box.key == op.key)
                .where(op.kind == "charge")
                .group_by(op.invoice_id)
                .having(func.count() > 1)
                .subquery()
            )
            return {
                "invoices": one(select(func.count()).select_from(inv)),
                "invoiced_twice": one(select(func.count()).select_from(twice)),
                "charges": one(select(func.count()).select_from(box).where(box.kind == "charge")),
                "charged_twice": one(select(func.count()).select_from(charged)),
                "invoices_charged": one(
                    select(func.count(func.distinct(op.invoice_id))).join(box, box.key == op.key)
                ),
                "operations_open": one(
                    select(func.count())
                    .select_from(op)
                    .where(op.status.in_(("pending", "unknown")))
                ),
                "payments": one(select(func.count()).select_from(PaymentRow)),
                "failed": one(select(func.count()).select_from(FailedPaymentRow)),
                "canceled": one(
                    select(func.count())
                    .select_from(SubscriptionRow)
                    .where(SubscriptionRow.status == "canceled")
                ),
                "still_due": one(
                    select(func.count())
                    .select_from(SubscriptionRow)
                    .where(
                        SubscriptionRow.status == "active",
                        SubscriptionRow.current_period_end <= datetime.fromisoformat(AT),
                    )
                ),
            }
    finally:
        engine.dispose()
