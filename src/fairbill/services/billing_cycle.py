"""Renewals in chunks: the daily cycle for one subscription or a million.

Due subscriptions are selected in chunks, each is decided on its own (the new period and
its price from the pure calendar; a failed charge from the pure dunning rule), and each
chunk is persisted with a handful of bulk statements instead of a round trip per row.

A renewal that needs more than "bill the next period to the card" — wallet balance,
unapplied credit notes, a promotion, included credits, a pending plan change, a
cancellation on the boundary, a past-due or trialing subscription — is not selected here;
the scheduler hands it to ``subscriptions.advance``, which applies those rules one by one.
Both paths write the same rows with the same idempotency keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from fairbill.calendar.periods import Interval, period_containing
from fairbill.decisions.disputes import retention_until
from fairbill.decisions.dunning import FailureOutcome, decide_failure, retry_offsets
from fairbill.gateway.port import ChargeResult, PaymentGateway, RefundResult
from fairbill.ledger.accounts import Account
from fairbill.ledger.journal import Transaction, transfer
from fairbill.money import Money
from fairbill.services.context import Ctx
from fairbill.store.bulk import BulkWriter
from fairbill.store.ids import allocate_ids
from fairbill.store.tables import (
    CreditNoteRow,
    CustomerRow,
    DecisionRow,
    FailedPaymentRow,
    InvoiceLineRow,
    InvoiceRow,
    NotificationRow,
    PaymentMethodRow,
    PaymentRow,
    PlanRow,
    SubscriptionRow,
    table,
)

CHUNK = 2000

# ``decide_failure`` for one merchant: (attempt, first failure, amount) -> outcome.
_Decide = Callable[[int, datetime, Money], FailureOutcome]


@dataclass
class CycleStats:
    renewed: int = 0
    failed: int = 0
    chunks: int = 0


@dataclass
class _Plan:
    row: PlanRow
    interval: Interval
    plain: bool  # no included credits: nothing beyond the invoice to grant


@dataclass
class _Chunk:
    """Rows to write for one chunk, built in memory first."""

    invoices: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    subs: list[dict[str, Any]] = field(default_factory=list)
    customers: list[dict[str, Any]] = field(default_factory=list)
    txns: list[Transaction] = field(default_factory=list)
    txn_customer: dict[str, int] = field(default_factory=dict)


def renew_due(ctx: Ctx, chunk_size: int = CHUNK) -> CycleStats:
    """Renew this merchant's plain subscriptions whose period ended at or before now."""
    stats = CycleStats()
    plans = _plans(ctx)
    plain_codes = [code for code, plan in plans.items() if plan.plain]
    if not plain_codes:
        return stats
    decide = _failure_rule(ctx)
    ctx.session.flush()
    while True:
        rows = ctx.session.execute(_due_query(ctx, plain_codes).limit(chunk_size)).all()
        if not rows:
            break
        _renew_chunk(ctx, rows, plans, stats, decide)
        stats.chunks += 1
        if len(rows) < chunk_size:
            break
    ctx.session.expire_all()  # ORM objects loaded earlier must see the bulk updates
    return stats


def _plans(ctx: Ctx) -> dict[str, _Plan]:
    rows = ctx.session.scalars(select(PlanRow).where(PlanRow.merchant_id == ctx.merchant_row.id))
    return {p.code: _Plan(p, Interval(p.interval_months), not p.includes) for p in rows}


def _due_query(ctx: Ctx, plain_codes: list[str]) -> Any:
    s, c = SubscriptionRow, CustomerRow
    unapplied = exists().where(
        CreditNoteRow.customer_id == s.customer_id, CreditNoteRow.applied_to_invoice_id.is_(None)
    )
    return (
        select(
            s.id,
            s.customer_id,
            s.plan_code,
            s.anchor,
            s.current_period_end,
            s.usage_level,
            s.payment_method,
            PaymentMethodRow.token,
            c.language,
        )
        .join(c, c.id == s.customer_id)
        .join(
            PaymentMethodRow,
            and_(
                PaymentMethodRow.customer_id == s.customer_id,
                PaymentMethodRow.code == s.payment_method,
                # A card in another currency goes through the one-by-one path (FX rates).
                PaymentMethodRow.currency == ctx.currency,
            ),
        )
        .where(
            c.merchant_id == ctx.merchant_row.id,
            s.status == "active",
            s.current_period_end <= ctx.now,
            s.plan_code.in_(plain_codes),
            or_(s.cancel_at.is_(None), s.cancel_at > s.current_period_end),
            s.pending_plan.is_(None),
            s.successor_plan.is_(None),
            or_(s.promotion_code.is_(None), s.promotion_periods_left == 0),
            c.wallet_minor == 0,
            ~unapplied,
        )
        .order_by(s.current_period_end, s.id)
    )


def _next_numbers(ctx: Ctx, model: Any, customer_ids: set[int]) -> dict[int, int]:
    found: dict[int, int | None] = dict(
        ctx.session.execute(
            select(model.customer_id, func.max(model.number))
            .where(model.customer_id.in_(customer_ids))
            .group_by(model.customer_id)
        )
        .tuples()
        .all()
    )
    return {cid: int(found.get(cid) or 0) for cid in customer_ids}


def _renew_chunk(
    ctx: Ctx, rows: Sequence[Any], plans: dict[str, _Plan], stats: CycleStats, decide: _Decide
) -> None:
    from fairbill.services.subscriptions import tier_price_minor

    now = ctx.now
    stamp = now.isoformat()
    currency, tz = ctx.currency, ctx.merchant.tz
    customers = {r.customer_id for r in rows}
    invoice_no = _next_numbers(ctx, InvoiceRow, customers)
    payment_no = _next_numbers(ctx, PaymentRow, customers)
    out = _Chunk()
    # A chunk has a handful of distinct prices: one Money and one text each.
    amounts: dict[int, tuple[Money, str]] = {}
    for r in rows:
        plan = plans[r.plan_code]
        # ``ctx.local`` inlined: this loop runs once per renewal.
        period = period_containing(
            r.anchor.astimezone(tz), plan.interval, r.current_period_end.astimezone(tz)
        )
        price = tier_price_minor(plan.row, r.usage_level)
        invoice_no[r.customer_id] += 1
        number = invoice_no[r.customer_id]
        if price not in amounts:
            money = ctx.money(price)
            amounts[price] = (money, money.text())
        amount, amount_text = amounts[price]
        # Nothing due, nothing charged (as billing.collect does for the one-by-one path).
        charge = (
            ctx.gateway.charge(r.token, amount, f"charge:{r.customer_id}:{number}:0:0:{stamp}")
            if price
            else ChargeResult(True, None)
        )
        invoice = {
            "customer_id": r.customer_id,
            "subscription_id": r.id,
            "number": number,
            "issued_at": now,
            "currency": currency,
            "total_minor": price,
            "wallet_applied_minor": 0,
            "credit_applied_minor": 0,
            "amount_paid_minor": price if charge.ok else 0,
            "overcharge_minor": 0,
            "status": "paid" if charge.ok or price == 0 else "open",
            "period_start": period.start,
            "period_end": period.end,
            "purpose": "subscription",
        }
        out.invoices.append(invoice)
        at = len(out.invoices) - 1
        out.lines.append(
            {
                "kind": "subscription",
                "amount_minor": price,
                "description": f"{r.plan_code} {period.start.date()} – {period.end.date()}",
                "period_start": period.start,
                "period_end": period.end,
            }
        )
        sub = {
            "id": r.id,
            "current_period_start": period.start,
            "current_period_end": period.end,
            "price_minor": price,
        }
        if price:
            key = f"inv:{r.customer_id}:{number}"
            out.txns.append(
                transfer(key, now, f"invoice {number}", Account.RECEIVABLE, Account.REVENUE, amount)
            )
            out.txn_customer[key] = r.customer_id
        if charge.ok and price:
            payment_no[r.customer_id] += 1
            pnum = payment_no[r.customer_id]
            out.payments.append(
                {
                    "customer_id": r.customer_id,
                    "number": pnum,
                    "at": now,
                    "amount_minor": price,
                    "currency": currency,
                    "method": r.payment_method,
                    "refunded_minor": 0,
                    "settled_minor": price,
                    "settled_refunded_minor": 0,
                    "is_duplicate": False,
                    "gateway_ref": charge.reference or "",
                    "invoice_id": at,
                }
            )
            key = f"pay:{r.customer_id}:{pnum}"
            out.txns.append(
                transfer(
                    key,
                    now,
                    f"payment {pnum} for invoice {number}",
                    Account.CASH,
                    Account.RECEIVABLE,
                    amount,
                )
            )
            out.txn_customer[key] = r.customer_id
            out.notes.append(
                _note(
                    r.customer_id,
                    now,
                    "receipt",
                    r.language or ctx.policy.language,
                    {"invoice": str(number), "amount": amount_text, "currency": currency},
                )
            )
            stats.renewed += 1
        elif price:
            outcome = decide(1, now, amount)
            out.failures.append(
                {
                    "customer_id": r.customer_id,
                    "at": now,
                    "amount_minor": price,
                    "method": r.payment_method,
                    "attempt": 1,
                    "invoice_id": at,
                }
            )
            out.decisions.append(_decision_row(ctx, r.customer_id, outcome.decision, price))
            out.notes.append(
                _note(
                    r.customer_id,
                    now,
                    "payment_failed",
                    r.language or ctx.policy.language,
                    {"invoice": str(number), "amount": amount_text, "currency": currency},
                )
            )
            sub |= {
                "status": "past_due",
                "first_failed_at": now,
                "failed_attempts": 1,
                "next_retry_at": outcome.next_retry_at,
            }
            stats.failed += 1
        out.subs.append(sub)
    _write(ctx, out)


def _note(
    customer_id: int, at: datetime, template: str, language: str, payload: dict[str, str]
) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "at": at,
        "template": template,
        "language": language,
        "payload": payload,
        "attempts": 0,  # given, so the bulk insert has no column default to fill in
    }


def _write(ctx: Ctx, out: _Chunk) -> None:
    # Core statements on the session's connection: the same transaction, no ORM bookkeeping.
    conn = ctx.session.connection()
    writer = BulkWriter(conn)  # ``out`` keeps every bound value alive until the end
    invoices = table(InvoiceRow)
    ids = allocate_ids(conn, invoices, len(out.invoices))
    for invoice, invoice_id in zip(out.invoices, ids, strict=True):
        invoice["id"] = invoice_id
    writer.execute(insert(invoices), out.invoices)
    for line, invoice_id in zip(out.lines, ids, strict=True):
        line["invoice_id"] = invoice_id
    writer.execute(insert(table(InvoiceLineRow)), out.lines)
    # Payments and failures point at their invoice by its position in the chunk until now.
    for row in (*out.payments, *out.failures):
        row["invoice_id"] = ids[row["invoice_id"]]
    if out.payments:
        writer.execute(insert(table(PaymentRow)), out.payments)
    if out.failures:
        writer.execute(insert(table(FailedPaymentRow)), out.failures)
        writer.execute(insert(table(DecisionRow)), out.decisions)
    if out.notes:
        writer.execute(insert(table(NotificationRow)), out.notes)
    ctx.post_many(out.txns, out.txn_customer)
    # Renewed and failed rows carry different columns: one executemany per shape.
    _update_by_shape(writer, table(SubscriptionRow), out.subs)


# -- retries ---------------------------------------------------------------------------------
# Built once: an alias proxies every column of its table, which costs more than the rest of
# the retry query (and that query is built twice a day per merchant).
_OTHER_INVOICE = aliased(InvoiceRow)
_SIBLING = aliased(SubscriptionRow)


def retry_due(ctx: Ctx, chunk_size: int = CHUNK) -> CycleStats:
    """Retry, in chunks, this merchant's failed renewals whose retry is due now.

    Selected here: a past-due subscription with one open renewal invoice, charged to a card
    in the merchant's currency, no wallet balance or unapplied credit note. Earlier retries
    first; then last retries (a failure suspends the account), in the scheduler's order
    (period end, id), and only when no other subscription of the customer is still due for
    a retry: the account's state then depends on no order between them. Only failures are
    written here: a retry that is paid goes to ``accounts.retry_due`` (its charge is
    idempotent: it gets the same result), as does every case not selected here (from the
    scheduler), an invoice with nothing left to pay included.
    """
    stats = CycleStats()
    offsets, _ = retry_offsets(ctx.merchant)
    decide = _failure_rule(ctx)
    ctx.session.flush()
    for last in (False, True):
        while True:
            query = _retry_query(ctx, len(offsets), last).limit(chunk_size)
            rows = ctx.session.execute(query).all()
            if not rows:
                break
            _retry_chunk(ctx, rows, stats, decide)
            stats.chunks += 1
            if len(rows) < chunk_size:
                break
    ctx.session.expire_all()
    return stats


def _retry_query(ctx: Ctx, retries: int, last: bool) -> Any:
    s, c, inv = SubscriptionRow, CustomerRow, InvoiceRow
    unapplied = exists().where(
        CreditNoteRow.customer_id == s.customer_id, CreditNoteRow.applied_to_invoice_id.is_(None)
    )
    others, sibling = _OTHER_INVOICE, _SIBLING
    sibling_retry_due = exists().where(
        sibling.customer_id == s.customer_id,
        sibling.id != s.id,
        sibling.next_retry_at <= ctx.now,
    )
    open_invoices = (
        select(func.count())
        .select_from(others)
        .where(others.subscription_id == s.id, others.status == "open")
        .correlate(s)
        .scalar_subquery()
    )
    query = (
        select(
            s.id,
            s.customer_id,
            s.payment_method,
            s.failed_attempts,
            s.first_failed_at,
            PaymentMethodRow.token,
            c.language,
            inv.id.label("invoice_id"),
            inv.number.label("invoice_number"),
            (
                inv.total_minor
                - inv.credit_applied_minor
                - inv.wallet_applied_minor
                - inv.amount_paid_minor
            ).label("due"),
        )
        .join(c, c.id == s.customer_id)
        .join(inv, and_(inv.subscription_id == s.id, inv.status == "open"))
        .join(
            PaymentMethodRow,
            and_(
                PaymentMethodRow.customer_id == s.customer_id,
                PaymentMethodRow.code == s.payment_method,
                PaymentMethodRow.currency == ctx.currency,
            ),
        )
        .where(
            c.merchant_id == ctx.merchant_row.id,
            c.status == "active",
            c.wallet_minor == 0,
            ~unapplied,
            s.status == "past_due",
            s.next_retry_at <= ctx.now,
            s.first_failed_at.is_not(None),
            inv.period_start > s.started_at,
            inv.total_minor
            - inv.credit_applied_minor
            - inv.wallet_applied_minor
            - inv.amount_paid_minor
            > 0,
            open_invoices == 1,
        )
    )
    if last:
        query = query.where(s.failed_attempts == retries, ~sibling_retry_due)
        return query.order_by(s.current_period_end, s.id)
    return query.where(s.failed_attempts < retries).order_by(s.next_retry_at, s.id)


def _retry_chunk(ctx: Ctx, rows: Sequence[Any], stats: CycleStats, decide: _Decide) -> None:
    now = ctx.now
    attempts = dict(
        ctx.session.execute(
            select(FailedPaymentRow.invoice_id, func.count())
            .where(FailedPaymentRow.invoice_id.in_([r.invoice_id for r in rows]))
            .group_by(FailedPaymentRow.invoice_id)
        )
        .tuples()
        .all()
    )
    out = _Chunk()
    paid: list[Any] = []
    for r in rows:
        tried = int(attempts.get(r.invoice_id, 0))
        amount = ctx.money(r.due)
        language = r.language or ctx.policy.language
        key = f"charge:{r.customer_id}:{r.invoice_number}:{tried}:0:{now.isoformat()}"
        charge = ctx.gateway.charge(r.token, amount, key)
        if charge.ok:
            # Recoveries are rare and have rules of their own (receipt, welcome,
            # reactivation): the one-by-one path writes them, from this same charge.
            paid.append((r, key, charge))
            continue
        attempt = r.failed_attempts + 1
        outcome = decide(attempt, ctx.local(r.first_failed_at), amount)
        out.failures.append(
            {
                "customer_id": r.customer_id,
                "invoice_id": r.invoice_id,
                "at": now,
                "amount_minor": r.due,
                "method": r.payment_method,
                "attempt": tried + 1,
            }
        )
        out.decisions.append(_decision_row(ctx, r.customer_id, outcome.decision, r.due))
        out.notes.append(
            _note(
                r.customer_id,
                now,
                "payment_failed",
                language,
                {
                    "invoice": str(r.invoice_number),
                    "amount": amount.text(),
                    "currency": ctx.currency,
                },
            )
        )
        sub = {
            "id": r.id,
            "status": "past_due",
            "first_failed_at": r.first_failed_at,
            "failed_attempts": attempt,
            "next_retry_at": outcome.next_retry_at,
        }
        if outcome.suspend:
            sub |= {"status": "suspended", "suspended_at": now}
            _suspend_customer(ctx, out, r.customer_id, language)
        out.subs.append(sub)
        stats.failed += 1
    _write_retries(ctx, out)
    _retry_one_by_one(ctx, paid, stats)


def _retry_one_by_one(
    ctx: Ctx, paid: list[tuple[Any, str, ChargeResult]], stats: CycleStats
) -> None:
    """Paid retries, written by ``accounts.retry_due`` (receipt, welcome and reactivation
    rules of their own). It charges under the same idempotency key as the chunk did; the
    chunk's answer is handed back for that key rather than asking the gateway again."""
    from fairbill.services import accounts

    if not paid:
        return
    ctx.session.expire_all()  # the ORM must see the chunk's Core writes
    gateway = ctx.gateway
    ctx.gateway = _Charged(gateway, {key: charge for _, key, charge in paid})
    try:
        for r, _, _ in paid:
            customer = ctx.session.get_one(CustomerRow, r.customer_id)
            accounts.retry_due(ctx, customer, ctx.session.get_one(SubscriptionRow, r.id))
            stats.renewed += 1
        ctx.session.flush()
    finally:
        ctx.gateway = gateway


@dataclass
class _Charged:
    """A gateway that answers the charges already made from their results, once each."""

    inner: PaymentGateway
    made: dict[str, ChargeResult]

    def charge(self, token: str, amount: Money, idempotency_key: str) -> ChargeResult:
        made = self.made.pop(idempotency_key, None)
        return made if made is not None else self.inner.charge(token, amount, idempotency_key)

    def refund(self, charge_reference: str, amount: Money, idempotency_key: str) -> RefundResult:
        return self.inner.refund(charge_reference, amount, idempotency_key)


def _suspend_customer(ctx: Ctx, out: _Chunk, customer_id: int, language: str) -> None:
    """``billing.suspend`` for the account of a last failed retry: the query selected it
    active, with no other retry due, so this is its only suspension in the chunk."""
    until, _ = retention_until(ctx.merchant, "suspension", ctx.now)
    customer = {"id": customer_id, "status": "suspended"}
    if until is not None:
        customer["data_retained_until"] = until
    out.customers.append(customer)
    out.notes.append(_note(customer_id, ctx.now, "suspended", language, {}))


def _failure_rule(ctx: Ctx) -> _Decide:
    """``decide_failure``, memoised: rows failing at one instant share attempt, first
    failure and amount, and formatting the decision's text is most of its cost. Keyed on
    the UTC instant: local times one DST fold apart compare equal but are not."""
    cache: dict[tuple[int, datetime, Money], FailureOutcome] = {}

    def decide(attempt: int, first_failure: datetime, amount: Money) -> FailureOutcome:
        key = (attempt, first_failure.astimezone(UTC), amount)
        found = cache.get(key)
        if found is None:
            found = cache[key] = decide_failure(ctx.merchant, attempt, first_failure, amount)
        return found

    return decide


def _decision_row(ctx: Ctx, customer_id: int, decision: Any, amount_minor: int) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "at": ctx.now,
        "action": decision.action,
        "outcome": str(decision.outcome),
        "amount_minor": amount_minor,
        "reasons": [str(x) for x in decision.reasons],
        "clauses": list(decision.clauses),
        "explanation": decision.explanation,
        "policy_version": ctx.policy.version,
    }


def _write_retries(ctx: Ctx, out: _Chunk) -> None:
    """The failed retries of a chunk: no money moved, so no payment and no journal."""
    writer = BulkWriter(ctx.session.connection())  # ``out`` keeps bound values alive
    if out.failures:
        writer.execute(insert(table(FailedPaymentRow)), out.failures)
        writer.execute(insert(table(DecisionRow)), out.decisions)
    if out.notes:
        writer.execute(insert(table(NotificationRow)), out.notes)
    _update_by_shape(writer, table(SubscriptionRow), out.subs)
    _update_by_shape(writer, table(CustomerRow), out.customers)


def _update_by_shape(writer: BulkWriter, target: Any, rows: list[dict[str, Any]]) -> None:
    """UPDATE ``target`` by id, one executemany per set of columns: an executemany sets
    the same columns on every row, and each row must change only its own."""
    shapes: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        params = {"row_id" if key == "id" else key: value for key, value in row.items()}
        shapes.setdefault(frozenset(params), []).append(params)
    statement = update(target).where(target.c.id == bindparam("row_id"))
    for batch in shapes.values():
        writer.execute(statement, batch)  # the columns to set are the parameters' keys
