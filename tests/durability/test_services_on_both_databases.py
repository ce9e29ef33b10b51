"""Three worked scenarios replayed through the services on a SQLite file and on PostgreSQL.

The stories of examples/scenarios/kalenner-annual-cancel.yaml, qomon-usage-tiers.yaml and
kalenner-failed-payments.yaml, told directly to the services (no simulator) on a migrated
database, with a test clock and the scheduler run as the simulator runs it. Every event
commits and expires the session, so each step reads the previous ones back from the
database; the figures are then read in a fresh session and must be the YAML's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from fairbill.gateway.sandbox_db import DatabaseSandbox
from fairbill.services import accounts, merchants, operations, subscriptions
from fairbill.services.clock import TestClock
from fairbill.services.context import Ctx
from fairbill.simulator.result import ledger_balanced
from fairbill.store.db import session_factory
from fairbill.store.tables import (
    CreditNoteRow,
    CustomerRow,
    DecisionRow,
    FailedPaymentRow,
    InvoiceRow,
    JournalTransactionRow,
    MerchantRow,
    PaymentRow,
    RefundRow,
    SubscriptionRow,
)

from .world import run_until

Action = Callable[[Ctx, CustomerRow], Any]


def local(text: str) -> datetime:
    return datetime.fromisoformat(text)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


class Story:
    """One merchant and one customer (with ``card_1``), told event by event."""

    def __init__(self, engine: Engine, policy: str, start: str, plan: dict[str, Any]) -> None:
        self.engine = engine
        self.session = session_factory(engine)()
        self.clock = TestClock(local(start))
        merchant, _ = merchants.create_merchant(
            self.session, self.clock.now(), name=policy, policy_ref=policy
        )
        merchants.add_plan(self.session, merchant, plan)
        self.customer = merchants.create_customer(
            self.session, merchant, {"id": "cus_1", "type": "business"}
        )
        merchants.add_payment_method(self.session, merchant, self.customer, {"id": "card_1"})
        self.ctx = merchants.context(
            self.session, self.clock, DatabaseSandbox(session_factory(engine)), merchant
        )
        self.session.commit()

    def at(self, when: str, action: Action) -> None:
        run_until(self.ctx, self.clock, local(when))
        action(self.ctx, self.customer)
        operations.commit_and_settle(self.ctx)
        self.session.expire_all()

    def until(self, when: str) -> Session:
        """Run to ``when``, close the story's session; a fresh one to read the results."""
        run_until(self.ctx, self.clock, local(when))
        self.session.close()
        return session_factory(self.engine)()


def sub_of(ctx: Ctx, customer: CustomerRow) -> SubscriptionRow:
    return subscriptions.the_subscription(ctx, customer)


def invoices(session: Session) -> list[tuple[int, int, int, int]]:
    """(number, total, credit applied, amount paid) in minor units."""
    rows = session.execute(
        select(
            InvoiceRow.number,
            InvoiceRow.total_minor,
            InvoiceRow.credit_applied_minor,
            InvoiceRow.amount_paid_minor,
        ).order_by(InvoiceRow.number)
    ).all()
    return [(int(n), int(t), int(c), int(p)) for n, t, c, p in rows]


def balanced(session: Session) -> bool:
    merchant = session.scalars(select(MerchantRow)).one()
    ctx = merchants.context(
        session,
        TestClock(datetime.now(UTC)),
        DatabaseSandbox(session_factory(session.get_bind().engine)),
        merchant,
    )
    return ledger_balanced(ctx)


def test_kalenner_annual_cancel_refunds_the_full_months_left(engine: Engine) -> None:
    story = Story(
        engine,
        "kalenner",
        "2026-01-10T09:00+01:00",
        {"id": "pro-annual", "interval_months": 12, "price": Decimal("240.00")},
    )
    story.at(
        "2026-01-10T09:00+01:00",
        lambda ctx, c: subscriptions.subscribe(ctx, c, "pro-annual", payment_method="card_1"),
    )
    story.at(
        "2026-04-20T10:00+02:00",
        lambda ctx, c: subscriptions.cancel(ctx, c, sub_of(ctx, c), channel="portal"),
    )
    with story.until("2027-02-01T00:00+01:00") as session:
        assert invoices(session) == [(1, 24000, 0, 24000)]
        refunds = session.execute(
            select(RefundRow.amount_minor, RefundRow.destination, PaymentRow.number).join(
                PaymentRow, PaymentRow.id == RefundRow.payment_id
            )
        ).all()
        assert [tuple(r) for r in refunds] == [(16000, "original_method", 1)]
        sub = session.scalars(select(SubscriptionRow)).one()
        assert sub.status == "canceled"
        assert sub.ended_at == utc("2026-05-10T09:00+02:00")
        assert balanced(session)


def test_qomon_usage_tiers_upgrade_pro_rata_and_credit_the_drop(engine: Engine) -> None:
    tiers = {
        "metric": "contacts",
        "levels": [
            {"up_to": 5000, "price": Decimal("100.00")},
            {"up_to": 10000, "price": Decimal("160.00")},
            {"up_to": None, "price": Decimal("250.00")},
        ],
    }
    story = Story(
        engine,
        "qomon",
        "2026-03-01T00:00+01:00",
        {"id": "essential", "interval_months": 1, "tiers": tiers},
    )
    story.at(
        "2026-03-01T00:00+01:00",
        lambda ctx, c: subscriptions.subscribe(
            ctx, c, "essential", payment_method="card_1", usage=4000
        ),
    )
    story.at(
        "2026-03-11T10:00+01:00",
        lambda ctx, c: subscriptions.record_usage(ctx, c, sub_of(ctx, c), 6200),
    )
    story.at(
        "2026-03-21T10:00+01:00",
        lambda ctx, c: subscriptions.record_usage(ctx, c, sub_of(ctx, c), 4800),
    )
    with story.until("2026-04-02T00:00+02:00") as session:
        assert invoices(session) == [
            (1, 10000, 0, 10000),
            (2, 4065, 0, 4065),
            (3, 10000, 2129, 7871),
        ]
        notes = session.execute(
            select(CreditNoteRow.amount_minor, InvoiceRow.number).join(
                InvoiceRow, InvoiceRow.id == CreditNoteRow.applied_to_invoice_id
            )
        ).all()
        assert [tuple(n) for n in notes] == [(2129, 3)]
        assert balanced(session)


def test_kalenner_failed_payments_retry_suspend_and_reactivate(engine: Engine) -> None:
    story = Story(
        engine,
        "kalenner",
        "2026-01-05T10:00+01:00",
        {"id": "solo-monthly", "interval_months": 1, "price": Decimal("29.00")},
    )
    story.at(
        "2026-01-05T10:00+01:00",
        lambda ctx, c: subscriptions.subscribe(ctx, c, "solo-monthly", payment_method="card_1"),
    )
    story.at(
        "2026-02-01T00:00+01:00",
        lambda ctx, c: accounts.set_method_behaviour(ctx, c, "card_1", True),
    )
    story.at(
        "2026-02-20T10:00+01:00",
        lambda ctx, c: accounts.set_method_behaviour(ctx, c, "card_1", False),
    )
    story.at(
        "2026-02-20T11:00+01:00",
        lambda ctx, c: accounts.pay_outstanding(ctx, c, "card_1"),
    )
    with story.until("2026-03-01T00:00+01:00") as session:
        payments = session.execute(
            select(PaymentRow.number, PaymentRow.amount_minor, PaymentRow.at, InvoiceRow.number)
            .join(InvoiceRow, InvoiceRow.id == PaymentRow.invoice_id)
            .order_by(PaymentRow.number)
        ).all()
        assert [tuple(p) for p in payments] == [
            (1, 2900, utc("2026-01-05T10:00+01:00"), 1),
            (2, 2900, utc("2026-02-20T11:00+01:00"), 2),
        ]
        failed = session.execute(
            select(FailedPaymentRow.at, FailedPaymentRow.attempt).order_by(FailedPaymentRow.id)
        ).all()
        assert [tuple(f) for f in failed] == [
            (utc("2026-02-05T10:00+01:00"), 1),
            (utc("2026-02-06T10:00+01:00"), 2),
            (utc("2026-02-08T10:00+01:00"), 3),
            (utc("2026-02-12T10:00+01:00"), 4),
        ]
        decisions = session.execute(
            select(DecisionRow.action, DecisionRow.reasons).order_by(DecisionRow.id)
        ).all()
        assert [(a, r) for a, r in decisions] == [
            ("payment_failed", ["payment_failed_retry_scheduled"]),
            ("payment_failed", ["payment_failed_retry_scheduled"]),
            ("payment_failed", ["payment_failed_retry_scheduled"]),
            ("payment_failed", ["payment_failed_suspended"]),
            ("reactivation", ["reactivated_on_payment"]),
        ]
        sub = session.scalars(select(SubscriptionRow)).one()
        assert sub.status == "active"
        assert sub.current_period_end == utc("2026-03-05T10:00+01:00")
        assert session.scalars(select(CustomerRow.status)).one() == "active"
        assert invoices(session) == [(1, 2900, 0, 2900), (2, 2900, 0, 2900)]
        assert balanced(session)


def test_instants_come_back_as_the_same_utc_moment(engine: Engine) -> None:
    """+02:00, -04:00 and UTC instants whose wall clocks sort the other way round: stored
    and read back they are the same moments, aware, in UTC, and compared as moments."""
    paris = timezone(timedelta(hours=2))
    new_york = timezone(timedelta(hours=-4))
    stored = {
        "paris": datetime(2026, 3, 29, 10, 0, tzinfo=paris),  # 08:00Z
        "utc": datetime(2026, 3, 29, 8, 30, tzinfo=UTC),  # 08:30Z
        "new-york": datetime(2026, 3, 29, 5, 0, tzinfo=new_york),  # 09:00Z
    }
    sessions = session_factory(engine)
    with sessions() as session:
        merchant, _ = merchants.create_merchant(
            session, stored["paris"], name="tz", policy_ref="kalenner"
        )
        for key, at in stored.items():
            session.add(
                JournalTransactionRow(merchant_id=merchant.id, key=key, at=at, description=key)
            )
        session.commit()
    with sessions() as session:
        rows = session.execute(
            select(JournalTransactionRow.key, JournalTransactionRow.at).order_by(
                JournalTransactionRow.at
            )
        ).all()
        assert [key for key, _ in rows] == ["paris", "utc", "new-york"]
        back = dict(rows)
        assert back["paris"] == datetime(2026, 3, 29, 8, 0, tzinfo=UTC)
        for key, at in back.items():
            assert at == stored[key]
            assert at.utcoffset() == timedelta(0)
        # Filters compare moments too: before 10:45 in Paris is before 08:45Z.
        earlier = session.scalars(
            select(JournalTransactionRow.key)
            .where(JournalTransactionRow.at < datetime(2026, 3, 29, 10, 45, tzinfo=paris))
            .order_by(JournalTransactionRow.at)
        ).all()
        assert earlier == ["paris", "utc"]
        exact = session.scalars(
            select(JournalTransactionRow.key).where(
                JournalTransactionRow.at == datetime(2026, 3, 29, 4, 30, tzinfo=new_york)
            )
        ).all()
        assert exact == ["utc"]
