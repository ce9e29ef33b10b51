"""Durable gateway operations: money that moves is recorded before the call and
reconciled after it (Kill Bill's janitor, Lago's after-commit gateway calls).

The life of a charge or refund:

1. a use case *requests* it (``plans.billing.plan_charge``, ``plan_refund``): a
   ``GatewayOperationRow`` is added ``pending``, in the use case's own transaction, with an
   idempotency key derived from stable ids (``charge:<invoice id>:<attempt>``,
   ``refund:<refund id>``), never from the clock;
2. the caller commits, then ``commit_and_settle`` sends each requested operation to the
   gateway, outside any transaction;
3. the answer is recorded in a second transaction (``settle``): ``succeeded`` or
   ``failed``, and with it what depends on the money (the payment and the invoice paid, the
   refund paid and its journal transaction, the dunning step after a decline); no answer
   (a timeout, a lost connection) leaves it ``unknown``, to be asked again;
4. ``reconcile`` (with the scheduler, and at start-up) asks again, under the same key,
   about every operation still ``pending`` or ``unknown`` and finishes it the same way.

Invariants: an operation's outcome is applied once (its row is locked and its status
checked in the transaction that applies it); the gateway sees one key per operation, so
asking again never moves money twice; nothing that depends on the money is written before
the gateway said it moved. A refund's amount is reserved on its payment when requested
(so no second refund can exceed what is left) and released if it finally fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from fairbill.errors import GatewayUncertain
from fairbill.gateway.port import ChargeResult, ChargesInBatches, PaymentGateway, RefundResult
from fairbill.lifecycle import OperationKind, OperationStatus
from fairbill.money import Money
from fairbill.plans.effects import Plan
from fairbill.plans.operations import Asked, plan_answer
from fairbill.services import metrics
from fairbill.services.clock import Clock
from fairbill.services.context import Ctx
from fairbill.store.sets import one_of
from fairbill.store.tables import (
    GatewayOperationRow,
    MerchantRow,
    table,
)

log = logging.getLogger("fairbill.operations")

# Where a session keeps the ids of the operations its transaction requested.
PENDING = "fairbill.pending_operations"
# A refund the gateway refused is tried again this many times before it is ``failed``.
REFUND_TRIES = 5
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=6)
# Operations sent and recorded per transaction by ``commit_and_settle``.
BATCH = 2000
# ``reconcile`` leaves alone an operation younger than this that no one asked about yet:
# the process that requested it is sending it now.
GRACE = timedelta(seconds=30)


class Purpose(StrEnum):
    """Why money moves: what its outcome leads to (``billing.charge_succeeded`` …)."""

    FIRST = "first"  # a subscription's first invoice
    RENEWAL = "renewal"
    ADJUSTMENT = "adjustment"  # a proration or tier move within the period
    RETRY = "retry"  # a dunning retry of an open invoice
    OUTSTANDING = "outstanding"  # the customer pays what is open
    PURCHASE = "purchase"  # a one-off product
    MISTAKE = "mistake"  # a billing mistake: the money really moved
    REFUND = "refund"


def retry_delay(tries: int) -> timedelta:
    """1 minute after the first try, then 4, 16, 64 … up to 6 hours."""
    factor: int = 4 ** max(tries - 1, 0)
    return min(FIRST_RETRY * factor, LONGEST_RETRY)


# -- requesting -------------------------------------------------------------------------------
def charges_of(session: Session, invoice_id: int) -> int:
    """How many charges were ever requested for the invoice ``invoice_id``: the next is
    attempt ``1 +`` that (its key is ``charge:<invoice id>:<attempt>``)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(GatewayOperationRow)
            .where(
                GatewayOperationRow.invoice_id == invoice_id,
                GatewayOperationRow.kind == OperationKind.CHARGE,
            )
        )
        or 0
    )


def in_flight(session: Session, invoice_id: int) -> bool:
    """Whether a charge of the invoice ``invoice_id`` is still waiting for the gateway's
    answer: no second charge is requested for it meanwhile."""
    return (
        session.scalar(
            select(GatewayOperationRow.id)
            .where(
                GatewayOperationRow.invoice_id == invoice_id,
                GatewayOperationRow.kind == OperationKind.CHARGE,
                GatewayOperationRow.status.in_(OPEN),
            )
            .limit(1)
        )
        is not None
    )


OPEN = (str(OperationStatus.PENDING), str(OperationStatus.UNKNOWN))


# -- sending and settling ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Answer:
    """What the gateway said: a result, or nothing (``error`` says why)."""

    result: ChargeResult | RefundResult | None
    error: str | None = None


def commit_and_settle(ctx: Ctx) -> None:
    """Commit the unit of work, then send the operations it requested and record their
    outcomes, a batch per transaction. Outcomes may request more (a retry that pays goes on
    to the next open invoice): those are sent too, until none is left."""
    while True:
        pending: list[int] = ctx.session.info.pop(PENDING, [])
        ctx.session.commit()
        if not pending:
            return
        for start in range(0, len(pending), BATCH):
            settle_batch(ctx, pending[start : start + BATCH])


def settle_batch(ctx: Ctx, op_ids: list[int]) -> None:
    """Send the open operations of ``op_ids`` (outside any transaction), then record the
    answers in one transaction (``outcomes.record_many``: each operation once)."""
    from fairbill.services import outcomes

    op = table(GatewayOperationRow)
    # What ``send`` reads, no more: a chunk of rows is read here every batch.
    sent = (op.c.id, op.c.kind, op.c.token, op.c.amount_minor, op.c.currency, op.c.key)
    rows = ctx.session.execute(
        select(*sent, op.c.details)
        .where(one_of(ctx.session, op.c.id, op_ids), op.c.status.in_(OPEN))
        .order_by(op.c.id)
    ).all()
    ctx.session.commit()  # no transaction stays open while the gateway is asked
    outcomes.record_many(ctx, send_all(ctx.gateway, rows))
    ctx.session.commit()


def send_all(gateway: PaymentGateway, ops: Sequence[Any]) -> list[tuple[int, Answer]]:
    """``send`` for each operation: (its id, the answer), in order. A gateway that takes
    charges in batches (``ChargesInBatches``: the database sandbox) gets them in one call."""
    if not isinstance(gateway, ChargesInBatches):
        return [(op.id, send(gateway, op)) for op in ops]
    charges = [op for op in ops if op.kind == OperationKind.CHARGE]
    results = gateway.charge_many(
        [(op.token or "", Money.from_minor(op.amount_minor, op.currency), op.key) for op in charges]
    )
    answered = {op.id: _answer(result) for op, result in zip(charges, results, strict=True)}
    return [(op.id, answered.get(op.id) or send(gateway, op)) for op in ops]


def _answer(result: ChargeResult | GatewayUncertain) -> Answer:
    if isinstance(result, GatewayUncertain):
        return Answer(None, f"{type(result).__name__}: {result}"[:500])
    return Answer(result)


def send(gateway: PaymentGateway, op: Any) -> Answer:
    """Ask the gateway, outside any transaction; no answer is an ``Answer`` too."""
    amount = Money.from_minor(op.amount_minor, op.currency)
    try:
        if op.kind == OperationKind.CHARGE:
            return Answer(gateway.charge(op.token or "", amount, op.key))
        return Answer(gateway.refund(str(op.details.get("reference", "")), amount, op.key))
    except GatewayUncertain as exc:
        return Answer(None, f"{type(exc).__name__}: {exc}"[:500])


def settle(ctx: Ctx, op_id: int) -> OperationStatus:
    """Send one open operation and record its outcome in its own transaction, then what
    that outcome requested in turn."""
    settle_batch(ctx, [op_id])
    commit_and_settle(ctx)
    status = ctx.session.scalars(
        select(GatewayOperationRow.status).where(GatewayOperationRow.id == op_id)
    ).one()
    return OperationStatus(status)


def record(ctx: Ctx, op_id: int, answer: Answer) -> OperationStatus:
    """Apply ``answer`` to the operation, once: its row is locked and its status checked
    again here, so two processes settling it apply it once. Its row's change is planned
    by ``plans.operations.plan_answer`` (as in bulk); the rows that depend on the money
    are written at the operation's own instant, as if answered at once."""
    from fairbill.services import applier

    op = ctx.session.get_one(
        GatewayOperationRow, op_id, with_for_update=True, populate_existing=True
    )
    if op.status not in OPEN:
        return OperationStatus(op.status)
    plan = Plan()
    asked = Asked(op.id, OperationStatus(op.status), op.tries, op.attempt, op.refund_id)
    at = ctx.clock.now()
    status = plan_answer(plan, asked, answer.result, answer.error, at, retry_delay, REFUND_TRIES)
    applier.apply(ctx, plan)
    if answer.result is not None:
        with stopped_at(ctx, op.created_at):
            _follow(ctx, op, status)
    metrics.count_outcome(ctx.session, op.kind, op.purpose, status)  # once committed
    return status


def _follow(ctx: Ctx, op: GatewayOperationRow, status: OperationStatus) -> None:
    """What depends on the money, once the gateway said whether it moved."""
    from fairbill.services import billing

    if op.kind == OperationKind.CHARGE:
        if status == OperationStatus.SUCCEEDED:
            billing.charge_succeeded(ctx, op)
        else:
            billing.charge_declined(ctx, op)
    elif status == OperationStatus.SUCCEEDED:
        billing.refund_succeeded(ctx, op)
    elif status == OperationStatus.FAILED:
        billing.refund_failed(ctx, op)
    # A refused refund back to ``pending`` is tried again: nothing follows yet.


@contextmanager
def stopped_at(ctx: Ctx, instant: datetime) -> Iterator[Ctx]:
    """``ctx`` with its clock stopped at ``instant`` for a while: an outcome is written at
    its operation's instant, by the same context (which may be recording decisions)."""
    clock = ctx.clock
    ctx.clock = _Stopped(instant)
    try:
        yield ctx
    finally:
        ctx.clock = clock


@dataclass(frozen=True, slots=True)
class _Stopped:
    instant: datetime

    def now(self) -> datetime:
        return self.instant


# -- reconciling -------------------------------------------------------------------------------
def due_for_reconciliation(session: Session, now: datetime, grace: timedelta = GRACE) -> list[int]:
    """Open operations to ask about again: ``unknown`` ones whose next attempt is due,
    ``pending`` ones no one settled within ``grace`` (their process died)."""
    op = GatewayOperationRow
    return list(
        session.scalars(
            select(op.id)
            .where(
                op.status.in_(OPEN),
                or_(
                    op.next_attempt_at <= now,
                    (op.next_attempt_at.is_(None)) & (op.updated_at <= now - grace),
                ),
            )
            .order_by(op.id)
        )
    )


def reconcile(
    session: Session,
    make_ctx: Callable[[Session, int], Ctx],
    now: datetime,
    grace: timedelta = GRACE,
) -> dict[str, int]:
    """Finish every open operation due for it: ask the gateway under the operation's own
    key, record the answer. ``make_ctx(session, merchant_id)`` gives a merchant's context.
    Returns how many ended in each status. One operation that fails to settle is logged
    and left for the next run; it never stops the others."""
    counts: dict[str, int] = {}
    ids = due_for_reconciliation(session, now, grace)
    session.commit()
    contexts: dict[int, Ctx] = {}
    for op_id in ids:
        merchant_id = session.get_one(GatewayOperationRow, op_id).merchant_id
        ctx = contexts.get(merchant_id) or contexts.setdefault(
            merchant_id, make_ctx(session, merchant_id)
        )
        try:
            status = settle(ctx, op_id)
        except Exception:  # one broken operation must not stop the janitor
            session.rollback()
            log.exception("gateway operation %s could not be settled", op_id)
            continue
        counts[str(status)] = counts.get(str(status), 0) + 1
    return counts


def reconcile_all(
    sessions: sessionmaker[Session],
    clock: Clock,
    gateway: PaymentGateway,
    grace: timedelta = GRACE,
) -> dict[str, int]:
    """``reconcile`` for every merchant, in a session of its own (the janitor's run: at
    start-up with no grace, then with the scheduler)."""
    from fairbill.services import merchants

    def make_ctx(session: Session, merchant_id: int) -> Ctx:
        merchant = session.get_one(MerchantRow, merchant_id)
        return merchants.context(session, clock, gateway, merchant)

    with sessions() as session:
        return reconcile(session, make_ctx, clock.now(), grace)


def of_customer(session: Session, customer_id: int) -> Iterable[GatewayOperationRow]:
    return session.scalars(
        select(GatewayOperationRow)
        .where(GatewayOperationRow.customer_id == customer_id)
        .order_by(GatewayOperationRow.id)
    )
