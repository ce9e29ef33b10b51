"""A small billing world on a real database file or server, and the workers that hit it.

Everything here is importable by a child process (spawned, or forked from a fork server):
the workers are top-level functions that take only picklable arguments (a URL, an ``Ids``,
an ISO instant) and open their own engine.

``build_world`` makes one merchant (a bundled policy), one monthly plan, one customer with
one card and one paid subscription through the real services, and commits. The charge's
gateway reference is stored on the payment row; every worker's gateway is the sandbox with
its books in the same database (``DatabaseSandbox``), as the real processor is one for all.
Refunds are reserved on the payment in the worker's own transaction, so a second refund
another worker already made is stopped by the database (the payment row lock, or SQLite's
single writer) before any gateway is asked.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from fairbill.calendar.windows import business_deadline
from fairbill.decisions.facts import Merchant
from fairbill.gateway.sandbox_db import DatabaseSandbox
from fairbill.ids import Ids as PublicIds
from fairbill.ids import Prefix
from fairbill.money import Money
from fairbill.policy.load import resolve_policy
from fairbill.policy.model import RequestKind
from fairbill.services import accounts, merchants, operations, refunds, scheduler, subscriptions
from fairbill.services.clock import TestClock
from fairbill.services.context import Ctx
from fairbill.simulator.result import ledger_balanced
from fairbill.store.db import make_engine, session_factory
from fairbill.store.tables import (
    CustomerRow,
    DecisionRow,
    JournalEntryRow,
    JournalTransactionRow,
    MerchantRow,
    NotificationRow,
    PaymentRow,
    RefundRow,
    RequestRow,
    SubscriptionRow,
    WalletEntryRow,
)


@dataclass(frozen=True)
class Ids:
    merchant_id: int
    customer_id: int
    subscription_id: int
    payment_id: int
    admin_key: str  # the merchant's API key with the admin role
    id_key: str  # the merchant's key for public ids (``fairbill.ids``)

    def public(self, prefix: Prefix, row_id: int) -> str:
        return PublicIds(self.id_key).public(prefix, row_id)


def build_world(
    url: str, policy: str, *, price: str, start: datetime, customer_type: str = "business"
) -> Ids:
    """Merchant, plan ``monthly`` at ``price``, customer ``cus_1`` with ``card_1``, and one
    subscription paid at ``start``; committed."""
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            merchant, keys = merchants.create_merchant(
                session, start, name=f"{policy} test", policy_ref=policy
            )
            merchants.add_plan(
                session, merchant, {"id": "monthly", "interval_months": 1, "price": Decimal(price)}
            )
            customer = merchants.create_customer(
                session, merchant, {"id": "cus_1", "type": customer_type}
            )
            merchants.add_payment_method(session, merchant, customer, {"id": "card_1"})
            ctx = context(session, merchant, start, sandbox(session))
            sub = subscriptions.subscribe(ctx, customer, "monthly", payment_method="card_1")
            operations.commit_and_settle(ctx)
            payment = session.scalars(
                select(PaymentRow).where(PaymentRow.customer_id == customer.id)
            ).one()
            admin_key = next(k.key for k in keys if k.role == "admin")
            return Ids(merchant.id, customer.id, sub.id, payment.id, admin_key, merchant.id_key)
    finally:
        engine.dispose()


def context(session: Session, merchant: MerchantRow, at: datetime, gateway: Any) -> Ctx:
    return merchants.context(session, TestClock(at), gateway, merchant)


def sandbox(session: Session) -> DatabaseSandbox:
    """The sandbox gateway on the session's own database (its books are rows there)."""
    return DatabaseSandbox(session_factory(session.get_bind().engine))


# -- one refund request, as each concurrent worker makes it --------------------------------
@dataclass(frozen=True)
class Attempt:
    """What one worker saw: ``refused`` when its transaction failed with "database is
    locked" (nothing of it was stored), else the request's status, decision and amount."""

    status: str
    decision: str | None = None
    amount_minor: int = 0
    seconds: float = 0.0  # in its transaction, waiting for the lock included
    cpu_before: float = 0.0  # the worker process's CPU time before the start line
    cpu: float = 0.0  # and in all


def attempt_refund(sessions: sessionmaker[Session], ids: Ids, at: str, kind: str) -> Attempt:
    started = time.monotonic()
    with sessions() as session:
        try:
            merchant = session.get_one(MerchantRow, ids.merchant_id)
            customer = session.get_one(CustomerRow, ids.customer_id)
            payment = session.get_one(PaymentRow, ids.payment_id)
            ctx = context(session, merchant, datetime.fromisoformat(at), sandbox(session))
            row = refunds.request_refund(
                ctx, customer, RequestKind(kind), payment=payment, reason="x"
            )
            session.commit()  # the request is stored; the money moves after this commit
        except OperationalError as exc:
            session.rollback()
            if "database is locked" in str(exc):
                return Attempt("refused", seconds=time.monotonic() - started)
            raise
        request_id = row.id
        try:
            operations.commit_and_settle(ctx)
        except OperationalError as exc:
            # Recording the gateway's answer met the lock: the operation stays pending
            # and the janitor finishes it (here at once, as a restart would).
            session.rollback()
            if "database is locked" not in str(exc):
                raise
            _janitor_until_done(sessions, at, sandbox(session))
    with sessions() as session:
        row = session.get_one(RequestRow, request_id)
        return Attempt(row.status, row.decision, row.amount_minor, time.monotonic() - started)


def _janitor_until_done(sessions: sessionmaker[Session], at: str, gateway: Any) -> None:
    clock = TestClock(datetime.fromisoformat(at))
    for _ in range(100):
        try:
            operations.reconcile_all(sessions, clock, gateway, grace=timedelta(0))
            return
        except OperationalError as exc:
            if "database is locked" not in str(exc):
                raise
    raise AssertionError("the janitor never got the write lock")


def warm_up(policy_id: str, at: str) -> None:
    """Load the data a first decision loads lazily -- Babel's locale data to write amounts,
    the country's holidays to count business days -- about 0.25 s of CPU that a fresh
    worker would otherwise spend holding SQLite's write lock. No database is touched."""
    policy = resolve_policy(policy_id)
    merchant = Merchant(policy, ZoneInfo(policy.timezone), policy.country, policy.currency)
    merchant.fmt(Money("1.00", policy.currency))
    business_deadline(datetime.fromisoformat(at), 5, merchant.tz, merchant.country)


def refund_process(
    url: str,
    ids: Ids,
    policy_id: str,
    at: str,
    kind: str,
    barrier: Any,
    results: Any,
    busy_timeout: float | None = None,
) -> None:
    """A worker process: its own engine on ``url``, one refund request after the barrier.
    ``busy_timeout`` (seconds) replaces the engine's wait for SQLite's lock."""
    warm_up(policy_id, at)
    options: dict[str, Any] = {}
    if busy_timeout is not None:
        options["connect_args"] = {"timeout": busy_timeout, "check_same_thread": False}
    engine = make_engine(url, **options)
    try:
        with engine.connect():
            pass  # connect (and set WAL) before the start line, not after it
        cpu_before = time.process_time()
        barrier.wait()
        try:
            attempt = attempt_refund(session_factory(engine), ids, at, kind)
        except Exception as exc:  # reported to the parent, which fails the test
            attempt = Attempt(f"error: {type(exc).__name__}: {exc}")
        results.put(replace(attempt, cpu_before=cpu_before, cpu=time.process_time()))
    finally:
        engine.dispose()


def cancel_now(
    sessions: sessionmaker[Session], ids: Ids, at: str, barrier: Any, early: bool
) -> str:
    """Cancel the subscription at once (one transaction) after ``barrier``; with ``early``
    the rows are read before the barrier, inside the same transaction, as an API handler
    reads the subscription before it calls the service. The decision's outcome."""
    with sessions() as session:

        def load() -> tuple[Ctx, CustomerRow, SubscriptionRow]:
            merchant = session.get_one(MerchantRow, ids.merchant_id)
            customer = session.get_one(CustomerRow, ids.customer_id)
            sub = session.get_one(SubscriptionRow, ids.subscription_id)
            return (
                context(session, merchant, datetime.fromisoformat(at), sandbox(session)),
                customer,
                sub,
            )

        loaded = load() if early else None
        barrier.wait()
        ctx, customer, sub = loaded or load()
        result = subscriptions.cancel(ctx, customer, sub, immediately=True, channel="portal")
        operations.commit_and_settle(ctx)
        return str(result.decision.outcome)


def charge_twice_more(url: str, ids: Ids, amount: str, at: str, request_at: str) -> None:
    """Two duplicate charges of ``amount`` for payment 1's invoice (payments 2 and 3), and a
    ``duplicate_charge`` request for each (qomon: left to a reviewer, to the wallet)."""
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            merchant = session.get_one(MerchantRow, ids.merchant_id)
            customer = session.get_one(CustomerRow, ids.customer_id)
            payment = session.get_one(PaymentRow, ids.payment_id)
            ctx = context(session, merchant, datetime.fromisoformat(at), sandbox(session))
            for _ in range(2):
                accounts.billing_mistake(
                    ctx, customer, "duplicate_charge", Decimal(amount), payment, None
                )
            operations.commit_and_settle(ctx)  # the money really moved: payments 2 and 3
            ctx = context(session, merchant, datetime.fromisoformat(request_at), sandbox(session))
            for number in (2, 3):
                refunds.request_refund(
                    ctx,
                    customer,
                    RequestKind.DUPLICATE_CHARGE,
                    payment=refunds.payment_by_number(ctx, customer, number),
                    reason="charged twice",
                )
            operations.commit_and_settle(ctx)
    finally:
        engine.dispose()


def accept_review(
    sessions: sessionmaker[Session], ids: Ids, at: str, number: int, barrier: Any, early: bool
) -> str:
    """A reviewer accepts request ``number`` (one transaction) after ``barrier``; with
    ``early`` the customer is read before the barrier, as an API handler reads it first."""
    with sessions() as session:

        def load() -> tuple[Ctx, CustomerRow]:
            merchant = session.get_one(MerchantRow, ids.merchant_id)
            customer = session.get_one(CustomerRow, ids.customer_id)
            ctx = context(session, merchant, datetime.fromisoformat(at), sandbox(session))
            return ctx, customer

        loaded = load() if early else None
        barrier.wait()
        ctx, customer = loaded or load()
        row = refunds.request_by_number(ctx, customer, number)
        decision = refunds.review(ctx, customer, row, "accept")
        operations.commit_and_settle(ctx)
        return str(decision.outcome)


def wallet(engine: Engine, ids: Ids) -> tuple[int, list[int], list[tuple[int, str]]]:
    """The customer's wallet balance, its entries, and the refunds (amount, destination)."""
    with session_factory(engine)() as session:
        balance = session.get_one(CustomerRow, ids.customer_id).wallet_minor
        entries = session.scalars(
            select(WalletEntryRow.amount_minor)
            .where(WalletEntryRow.customer_id == ids.customer_id)
            .order_by(WalletEntryRow.id)
        ).all()
        paid = session.execute(
            select(RefundRow.amount_minor, RefundRow.destination)
            .where(RefundRow.customer_id == ids.customer_id)
            .order_by(RefundRow.id)
        ).all()
        return balance, [int(e) for e in entries], [(int(a), d) for a, d in paid]


# -- what must hold afterwards -------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    paid_minor: int
    refunded_minor: int
    refund_rows: list[tuple[int, int | None]]  # (amount_minor, request_id)
    requests: list[tuple[str, str, int]]  # (status, decision, amount_minor)
    request_decisions: int
    refund_transactions: int
    ledger_balanced: bool
    subscription_status: str


def outcome(engine: Engine, ids: Ids) -> Outcome:
    with session_factory(engine)() as session:
        payment = session.get_one(PaymentRow, ids.payment_id)
        refund_rows = session.execute(
            select(RefundRow.amount_minor, RefundRow.request_id)
            .where(RefundRow.payment_id == ids.payment_id)
            .order_by(RefundRow.id)
        ).all()
        requests = session.execute(
            select(RequestRow.status, RequestRow.decision, RequestRow.amount_minor)
            .where(RequestRow.customer_id == ids.customer_id)
            .order_by(RequestRow.number)
        ).all()
        decisions = session.scalar(
            select(func.count())
            .select_from(DecisionRow)
            .where(
                DecisionRow.customer_id == ids.customer_id,
                DecisionRow.action == "refund_request",
            )
        )
        refund_txns = session.scalar(
            select(func.count())
            .select_from(JournalTransactionRow)
            .where(JournalTransactionRow.key.like(f"refund:{ids.customer_id}:%"))
        )
        merchant = session.get_one(MerchantRow, ids.merchant_id)
        balanced = ledger_balanced(context(session, merchant, payment.at, sandbox(session)))
        sub = session.get_one(SubscriptionRow, ids.subscription_id)
        return Outcome(
            paid_minor=payment.amount_minor,
            refunded_minor=payment.refunded_minor,
            refund_rows=[(int(a), r) for a, r in refund_rows],
            requests=[(s, d, int(a)) for s, d, a in requests],
            request_decisions=int(decisions or 0),
            refund_transactions=int(refund_txns or 0),
            ledger_balanced=balanced,
            subscription_status=sub.status,
        )


# -- a service call that dies before its commit ----------------------------------------------
def cancel_process(url: str, ids: Ids, at: str, crash: str) -> None:
    """Cancel the subscription immediately (VoIP: refund of the unused days) in one
    transaction, then: ``crash="kill"`` flushes every row to the database and SIGKILLs
    itself; ``crash="exit-in-commit"`` dies with ``os._exit(1)`` as ``commit`` is called;
    ``crash="none"`` commits."""
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            merchant = session.get_one(MerchantRow, ids.merchant_id)
            customer = session.get_one(CustomerRow, ids.customer_id)
            sub = session.get_one(SubscriptionRow, ids.subscription_id)
            ctx = context(session, merchant, datetime.fromisoformat(at), sandbox(session))
            subscriptions.cancel(ctx, customer, sub, immediately=True, channel="portal")
            if crash == "kill":
                session.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            elif crash == "exit-in-commit":
                session.commit = _die  # type: ignore[method-assign]
            operations.commit_and_settle(ctx)
    finally:
        engine.dispose()


def _die() -> None:
    os._exit(1)


@dataclass(frozen=True)
class Trace:
    """Every row a cancellation of the subscription leaves, counted."""

    subscription_status: str
    refunded_minor: int
    refunds: list[int]
    refund_references: list[str | None]  # the gateway's, one per refund row
    cancel_decisions: list[tuple[str, int]]
    journal_transactions: int
    journal_entries: int
    confirmations: int
    ledger_balanced: bool


def trace(engine: Engine, ids: Ids) -> Trace:
    with session_factory(engine)() as session:
        sub = session.get_one(SubscriptionRow, ids.subscription_id)
        payment = session.get_one(PaymentRow, ids.payment_id)
        refund_rows = session.execute(
            select(RefundRow.amount_minor, RefundRow.gateway_ref)
            .where(RefundRow.payment_id == ids.payment_id)
            .order_by(RefundRow.id)
        ).all()
        decisions = session.execute(
            select(DecisionRow.action, DecisionRow.amount_minor).where(
                DecisionRow.customer_id == ids.customer_id
            )
        ).all()
        txn_ids = select(JournalTransactionRow.id).where(
            JournalTransactionRow.key.like(f"refund:{ids.customer_id}:%")
        )
        journal_transactions = session.scalar(select(func.count()).select_from(txn_ids.subquery()))
        journal_entries = session.scalar(
            select(func.count())
            .select_from(JournalEntryRow)
            .where(JournalEntryRow.transaction_id.in_(txn_ids))
        )
        confirmations = session.scalar(
            select(func.count())
            .select_from(NotificationRow)
            .where(
                NotificationRow.customer_id == ids.customer_id,
                NotificationRow.template.in_(("cancellation_confirmed", "refund_paid")),
            )
        )
        merchant = session.get_one(MerchantRow, ids.merchant_id)
        balanced = ledger_balanced(context(session, merchant, payment.at, sandbox(session)))
        return Trace(
            subscription_status=sub.status,
            refunded_minor=payment.refunded_minor,
            refunds=[int(a) for a, _ in refund_rows],
            refund_references=[r for _, r in refund_rows],
            cancel_decisions=[(a, int(m)) for a, m in decisions],
            journal_transactions=int(journal_transactions or 0),
            journal_entries=int(journal_entries or 0),
            confirmations=int(confirmations or 0),
            ledger_balanced=balanced,
        )


# -- replaying a story through the services --------------------------------------------------
def run_until(ctx: Ctx, clock: TestClock, target: datetime) -> None:
    """Run what falls due up to ``target``, one commit per instant (as the simulator does),
    then move the clock to ``target``. Each commit expires the session, so the next step
    reads its state back from the database."""
    for _ in range(10_000):
        due = scheduler.next_due(ctx)
        if due is None or due > target:
            break
        clock.advance_to(max(due, clock.now()))
        scheduler.run_due(ctx)
        operations.commit_and_settle(ctx)
        ctx.session.expire_all()
        if scheduler.next_due(ctx) == due:
            raise AssertionError(f"the scheduler made no progress at {due.isoformat()}")
    else:  # pragma: no cover
        raise AssertionError("the scheduler did not settle")
    clock.advance_to(max(target, clock.now()))
