"""Many gateway answers recorded at once: the daily cycle's renewals, in bulk.

``operations.record`` applies one answer through the ORM (``billing.charge_succeeded`` /
``charge_declined`` …). A renewal's charge has one common outcome — the card paid the
whole invoice, or declined a first attempt of a subscription in good standing — and a
million renewals cannot afford a round trip per row for it. ``record_many`` writes those
outcomes with a handful of bulk statements: the same rows, with the same keys and values,
as the one-by-one path (``tests/services/test_billing_cycle.py`` compares the two); every
other answer goes to ``operations.record`` in a savepoint of its own.

Invariant: an answer is applied once. The rows of the operations are read (and on
PostgreSQL locked) in the recording transaction and only those still open are applied.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from fairbill.decisions import codec
from fairbill.decisions.codec import Call
from fairbill.decisions.disputes import retention_until
from fairbill.decisions.dunning import FailureOutcome, decide_failure
from fairbill.gateway.port import ChargeResult
from fairbill.lifecycle import (
    CustomerStatus,
    InvoiceStatus,
    OperationKind,
    OperationStatus,
    SubscriptionStatus,
)
from fairbill.money import Money
from fairbill.plans.billing import (
    Dunned,
    OpenInvoice,
    Taken,
    plan_decline,
    plan_dunning,
    plan_payment,
)
from fairbill.plans.effects import Decided, Plan
from fairbill.plans.operations import Asked, plan_answer
from fairbill.services import applier, metrics
from fairbill.services.billing_cycle import next_numbers
from fairbill.services.context import Ctx
from fairbill.services.operations import REFUND_TRIES, retry_delay
from fairbill.store.sets import one_of
from fairbill.store.tables import (
    CustomerRow,
    FailedPaymentRow,
    GatewayOperationRow,
    InvoiceRow,
    PaymentRow,
    SubscriptionRow,
    table,
)

log = logging.getLogger("fairbill.operations")

# (customer, at, attempt, first failure, amount) -> the dunning outcome and its decision.
_Decide = Callable[[int, datetime, int, datetime, Money], tuple[FailureOutcome, Decided]]


def record_many(ctx: Ctx, answers: Sequence[tuple[int, Any]]) -> None:
    """Record ``answers`` (operation id, ``operations.Answer``) in the current
    transaction: renewals' common outcomes in bulk, the rest one by one."""
    from fairbill.services import operations

    if not answers:
        return
    ops = _open_ops(ctx, [op_id for op_id, _ in answers])
    # A customer with several operations in the batch is recorded one by one, in order:
    # each outcome may depend on the one before (the second missed renewal's decline is
    # the second attempt; the first suspension of the account is its only one).
    seen = Counter(op.customer_id for op in ops.values())
    bulk: _Bulk = _Bulk(ctx)
    for op_id, answer in answers:
        op = ops.get(op_id)
        if op is None:
            continue  # settled meanwhile by another process
        if seen[op.customer_id] > 1 or not bulk.take(op, answer):
            _one(ctx, op_id, answer, operations.record)
    bulk.write()


def _one(ctx: Ctx, op_id: int, answer: Any, record: Callable[[Ctx, int, Any], Any]) -> None:
    """One answer through the one-by-one path, in a savepoint: if it fails, only it is
    left open (for the janitor), never the others of the batch."""
    try:
        with ctx.session.begin_nested():
            record(ctx, op_id, answer)
    except Exception:  # one broken outcome must not lose the batch's
        log.exception("recording the answer to gateway operation %s failed", op_id)


def _open_ops(ctx: Ctx, ids: list[int]) -> dict[int, Any]:
    """The operations of ``ids`` still open, with their customer's language and their
    invoice's number (for the messages); locked on PostgreSQL."""
    from fairbill.services import operations

    op = table(GatewayOperationRow)
    query = (
        select(
            *(op.c[name] for name in _READ),
            CustomerRow.language,
            InvoiceRow.number.label("invoice_number"),
        )
        .join(CustomerRow, CustomerRow.id == op.c.customer_id)
        .outerjoin(InvoiceRow, InvoiceRow.id == op.c.invoice_id)
        .where(one_of(ctx.session, op.c.id, ids), op.c.status.in_(operations.OPEN))
    )
    if ctx.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=op)
    result = ctx.session.execute(query)
    keys = tuple(result.keys())
    language = ctx.policy.language
    return {row[0]: _Op(keys, row, language) for row in result}


# The columns of an operation its outcome is recorded from (a chunk's are read each batch:
# the key, token, instants of the last try and the like are not needed here).
_READ = (
    "id",
    "customer_id",
    "kind",
    "purpose",
    "status",
    "invoice_id",
    "refund_id",
    "subscription_id",
    "method",
    "currency",
    "settled_minor",
    "attempt",
    "tries",
    "created_at",
    "details",
)


class _Op:
    """An operation's row, with the language its customer's messages are written in.
    Its columns are copied as attributes: read a dozen times per operation, a lookup
    through the row cost more than the copy."""

    def __init__(self, keys: tuple[str, ...], row: Any, default_language: str) -> None:
        self.__dict__.update(zip(keys, row, strict=True))
        self.language: str = row.language or default_language


class _Bulk:
    """The rows of a batch's common outcomes, built in memory, then written at once."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.now = ctx.clock.now()
        self.paid: list[tuple[Any, ChargeResult]] = []
        self.declined: list[tuple[Any, ChargeResult]] = []
        self.unknown: list[tuple[Any, str]] = []

    def take(self, op: Any, answer: Any) -> bool:
        """Keep ``op``'s answer for the bulk write, if it is one of the common outcomes."""
        if answer.result is None:
            self.unknown.append((op, answer.error or ""))
            return True
        if not _plain_renewal(self.ctx, op) or not isinstance(answer.result, ChargeResult):
            return False
        if answer.result.ok and op.purpose != "renewal":
            return False
        (self.paid if answer.result.ok else self.declined).append((op, answer.result))
        return True

    def write(self) -> None:
        plan = Plan()
        if self.paid:
            _paid(self.ctx, self.paid, plan)
        if self.declined:
            self._declined(plan)
        # Each operation's own row, by the rule of the one-by-one path.
        answers: list[tuple[Any, ChargeResult | None, str | None]] = [
            (op, result, None) for op, result in self.paid + self.declined
        ]
        answers += [(op, None, error) for op, error in self.unknown]
        for op, result, error in answers:
            asked = Asked(op.id, OperationStatus(op.status), op.tries, op.attempt, op.refund_id)
            plan_answer(plan, asked, result, error, self.now, retry_delay, REFUND_TRIES)
        applier.apply(self.ctx, plan)
        self.ctx.session.expire_all()  # the ORM must see the bulk writes
        metrics.count_outcomes(self.ctx.session, self._tally())

    def _tally(self) -> Counter[metrics.Key]:
        """The outcomes written, by (kind, purpose, outcome): one count per label set."""
        tally = Counter((op.kind, op.purpose, "succeeded") for op, _ in self.paid)
        tally.update((op.kind, op.purpose, "declined") for op, _ in self.declined)
        tally.update((op.kind, op.purpose, "unknown") for op, _ in self.unknown)
        return tally

    def _declined(self, plan: Plan) -> None:
        """Declines of renewals and retries whose dunning step needs nothing but the
        subscription and its account (past due, the next retry, or the suspension at the
        last one): ``plans.billing.plan_decline`` and ``plan_dunning``, as one by one. Any
        other goes through the one-by-one path."""
        from fairbill.services import operations

        ctx = self.ctx
        subs = _by_id(ctx, SubscriptionRow, {op.subscription_id for op, _ in self.declined})
        customers = _by_id(ctx, CustomerRow, {op.customer_id for op, _ in self.declined})
        failures = _failure_counts(ctx, {op.invoice_id for op, _ in self.declined})
        ctx.prefetch_terms(customers.keys())
        decide = _failure_rule(ctx)
        retention: dict[datetime, datetime | None] = {}
        planned = []
        # One operation per customer reaches here (``record_many``): none depends on another.
        for op, result in self.declined:
            sub = subs.get(op.subscription_id)
            if sub is None or not _dunned(op, sub):
                _one(ctx, op.id, operations.Answer(result), operations.record)
                continue
            at = op.created_at
            amount = ctx.money(op.settled_minor)
            first = sub.first_failed_at or at
            attempt = sub.failed_attempts + 1
            outcome, decided = decide(
                op.customer_id, at, attempt, first.astimezone(ctx.merchant.tz), amount
            )
            failures[op.invoice_id] = failures.get(op.invoice_id, 0) + 1
            plan_decline(
                plan,
                customer_id=op.customer_id,
                invoice_id=op.invoice_id,
                invoice_number=op.invoice_number,
                at=at,
                amount=amount,
                method=op.method or "",
                attempt=failures[op.invoice_id],
                language=op.language,
            )
            plan.decided.append(decided)
            if at not in retention:
                retention[at] = retention_until(ctx.merchant, "suspension", at)[0]
            customer = customers[op.customer_id]
            facts = Dunned(
                subscription_id=sub.id,
                customer_id=op.customer_id,
                status=SubscriptionStatus(sub.status),
                first_failed_at=first,
                attempt=attempt,
                customer_status=CustomerStatus(customer.status),
                language=op.language,
                retained_until=retention[at],
            )
            plan_dunning(plan, facts, outcome, at)
            planned.append((op, result))
        self.declined = planned


def _dunned(op: Any, sub: Any) -> bool:
    """The declines ``billing.handle_failure`` turns into a plain dunning step: a first
    renewal attempt of a subscription in good standing, or a retry of a past-due one."""
    if op.purpose == "renewal":
        return bool(sub.status == SubscriptionStatus.ACTIVE and sub.failed_attempts == 0)
    return bool(op.purpose == "retry" and sub.status == SubscriptionStatus.PAST_DUE)


def _plain_renewal(ctx: Ctx, op: Any) -> bool:
    """A charge of the daily cycle: a renewal's first attempt (its decline or payment is
    plain) or a retry (only its decline is: a paid retry reactivates, one by one)."""
    return bool(
        op.kind == OperationKind.CHARGE
        and ((op.purpose == "renewal" and op.attempt == 1) or op.purpose == "retry")
        and op.currency == ctx.currency
        and not (op.details or {}).get("duplicate")
    )


def _paid(ctx: Ctx, paid: list[tuple[Any, ChargeResult]], plan: Plan) -> None:
    """``billing.charge_succeeded`` for renewals: ``plans.billing.plan_payment`` for each
    (``after_paid`` does nothing more for a renewal)."""
    inv = table(InvoiceRow)
    # The columns used below only: a chunk's invoices, each read once.
    amounts = select(
        inv.c.id,
        inv.c.subscription_id,
        inv.c.number,
        inv.c.total_minor,
        inv.c.credit_applied_minor,
        inv.c.wallet_applied_minor,
        inv.c.amount_paid_minor,
        inv.c.status,
    ).where(one_of(ctx.session, inv.c.id, {op.invoice_id for op, _ in paid}))
    invoices = {r.id: r for r in ctx.session.execute(amounts)}
    numbers = next_numbers(ctx, PaymentRow, {op.customer_id for op, _ in paid})
    for op, result in paid:
        i = invoices[op.invoice_id]
        numbers[op.customer_id] += 1
        amount = ctx.money(op.settled_minor)
        invoice = OpenInvoice(
            i.id,
            op.customer_id,
            i.subscription_id,
            i.number,
            i.total_minor,
            i.credit_applied_minor,
            i.wallet_applied_minor,
            i.amount_paid_minor,
            InvoiceStatus(i.status),
        )
        taken = Taken(
            op_id=op.id,
            at=op.created_at,
            invoice=invoice,
            payment_number=numbers[op.customer_id],
            charged=amount,  # ``_plain_renewal``: in the merchant's currency
            settled=amount,
            method=op.method or "",
            reference=result.reference or "",
            duplicate=False,
            language=op.language,
        )
        plan_payment(plan, taken)


def _by_id(ctx: Ctx, model: Any, ids: set[Any]) -> dict[int, Any]:
    t = table(model)
    return {r.id: r for r in ctx.session.execute(select(t).where(one_of(ctx.session, t.c.id, ids)))}


def _failure_counts(ctx: Ctx, invoice_ids: set[int]) -> dict[int, int]:
    return dict(
        ctx.session.execute(
            select(FailedPaymentRow.invoice_id, func.count())
            .where(one_of(ctx.session, FailedPaymentRow.invoice_id, invoice_ids))
            .group_by(FailedPaymentRow.invoice_id)
        )
        .tuples()
        .all()
    )


def _failure_rule(ctx: Ctx) -> _Decide:
    """``decide_failure`` under the customer's accepted version, memoised: declines at one
    instant share attempt, first failure and amount, and writing the decision's text is
    most of its cost. Keyed on the UTC instant (local times one DST fold apart compare
    equal but are not) and the version. Each decision still carries its own call (its
    facts)."""
    cache: dict[tuple[int | None, int, datetime, Money], FailureOutcome] = {}

    def decide(
        customer_id: int, at: datetime, attempt: int, first_failure: datetime, amount: Money
    ) -> tuple[FailureOutcome, Decided]:
        version_id, merchant = ctx.terms(customer_id)
        key = (version_id, attempt, first_failure.astimezone(UTC), amount)
        found = cache.get(key)
        if found is None:
            found = cache[key] = decide_failure(merchant, attempt, first_failure, amount)
        call = Call(codec.name_of(decide_failure), (attempt, first_failure, amount))
        version = merchant.policy.version
        return found, Decided(customer_id, at, found.decision, call, version_id, version)

    return decide
