"""Renewals in chunks: the daily cycle for one subscription or a million.

Due subscriptions are selected in chunks; each renewal is planned on its own (the new
period and its price from the pure calendar) and each chunk's plan is written with a
handful of bulk statements instead of a round trip per row: the invoices and their lines,
the subscriptions moved to their new period, the invoices' journal transactions, and one
``pending`` gateway operation per charge. The charges are sent after the commit and their
outcomes recorded by the one code path every charge takes (``operations.settle`` →
``billing.charge_succeeded`` / ``charge_declined``): a renewal here and one through
``subscriptions.advance`` end in the same rows, with the same keys.

A renewal that needs more than "bill the next period to the card" — wallet balance,
unapplied credit notes, a promotion, included credits, a pending plan change, a
cancellation on the boundary, a past-due or trialing subscription — is not selected here;
the scheduler hands it to ``subscriptions.advance``, which applies those rules one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, exists, func, insert, or_, select
from sqlalchemy.orm import aliased

from fairbill.calendar.periods import Interval, period_containing
from fairbill.ledger.accounts import Account
from fairbill.ledger.journal import Transaction, transfer
from fairbill.lifecycle import InvoiceStatus, OperationKind, OperationStatus, SubscriptionStatus
from fairbill.money import Money
from fairbill.services import operations, policies
from fairbill.services.context import Ctx
from fairbill.services.operations import Purpose
from fairbill.store.bulk import BulkWriter, update_by_id
from fairbill.store.ids import allocate_ids
from fairbill.store.sets import one_of
from fairbill.store.tables import (
    CreditNoteRow,
    CustomerRow,
    GatewayOperationRow,
    InvoiceLineRow,
    InvoiceRow,
    PaymentMethodRow,
    PlanRow,
    SubscriptionRow,
    table,
)

CHUNK = 2000


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
    ops: list[dict[str, Any]] = field(default_factory=list)
    subs: list[dict[str, Any]] = field(default_factory=list)
    txns: list[Transaction] = field(default_factory=list)
    txn_customer: dict[str, int] = field(default_factory=dict)


def renew_due(ctx: Ctx, chunk_size: int = CHUNK) -> CycleStats:
    """Renew this merchant's plain subscriptions whose period ended at or before now, in
    chunks, in the caller's transaction."""
    stats = CycleStats()
    while renew_chunk(ctx, chunk_size, stats) == chunk_size:
        pass
    return stats


def renew_chunk(ctx: Ctx, chunk_size: int = CHUNK, stats: CycleStats | None = None) -> int:
    """Claim up to ``chunk_size`` due plain renewals and renew them, in the caller's
    transaction; returns how many were claimed (fewer than ``chunk_size``: none is left
    that another transaction does not hold).

    Claimed, on PostgreSQL, with ``FOR NO KEY UPDATE OF subscriptions, customers SKIP
    LOCKED``: workers side by side each take rows no other holds, and a customer's rows
    are one transaction's (numbers are per customer). A row another worker renewed and
    committed meanwhile is re-checked by PostgreSQL and no longer due. SQLite has one
    writer at a time. The customer's numbers and the charges' keys
    (``charge:<invoice id>:<attempt>``) are unique besides: a renewal planned twice could
    not be written twice."""
    stats = stats if stats is not None else CycleStats()
    plans = _plans(ctx)
    plain_codes = [code for code, plan in plans.items() if plan.plain]
    if not plain_codes:
        return 0
    ctx.session.flush()
    query = _due_query(ctx, plain_codes).limit(chunk_size)
    if ctx.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(
            of=[SubscriptionRow, CustomerRow], skip_locked=True, key_share=True
        )
    rows = ctx.session.execute(query).all()
    if rows:
        _renew_chunk(ctx, rows, plans, stats)
        stats.chunks += 1
        ctx.session.expire_all()  # ORM objects loaded earlier must see the bulk updates
    return len(rows)


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


def next_numbers(ctx: Ctx, model: Any, customer_ids: set[int]) -> dict[int, int]:
    found: dict[int, int | None] = dict(
        ctx.session.execute(
            select(model.customer_id, func.max(model.number))
            .where(one_of(ctx.session, model.customer_id, customer_ids))
            .group_by(model.customer_id)
        )
        .tuples()
        .all()
    )
    return {cid: int(found.get(cid) or 0) for cid in customer_ids}


def _renew_chunk(ctx: Ctx, rows: Sequence[Any], plans: dict[str, _Plan], stats: CycleStats) -> None:
    """Issue the next period's invoice of each row and request its charge: the plan of a
    renewal, written in bulk. The charges' outcomes are recorded once the gateway answered,
    after the commit (``operations.commit_and_settle``), by the same code as one renewal's."""
    from fairbill.services.subscriptions import tier_price_minor

    now = ctx.now
    currency, tz = ctx.currency, ctx.merchant.tz
    customers = {r.customer_id for r in rows}
    invoice_no = next_numbers(ctx, InvoiceRow, customers)
    out = _Chunk()
    # A chunk has a handful of distinct prices: one Money each.
    amounts: dict[int, Money] = {}
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
            amounts[price] = ctx.money(price)
        amount = amounts[price]
        out.invoices.append(
            {
                "customer_id": r.customer_id,
                "subscription_id": r.id,
                "number": number,
                "issued_at": now,
                "currency": currency,
                "total_minor": price,
                "wallet_applied_minor": 0,
                "credit_applied_minor": 0,
                "amount_paid_minor": 0,
                "overcharge_minor": 0,
                # Nothing due is paid at once (as ``billing.issue_invoice`` does).
                "status": str(InvoiceStatus.OPEN if price else InvoiceStatus.PAID),
                "period_start": period.start,
                "period_end": period.end,
                "purpose": "subscription",
            }
        )
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
        out.subs.append(
            {
                "id": r.id,
                "current_period_start": period.start,
                "current_period_end": period.end,
                "price_minor": price,
            }
        )
        stats.renewed += 1
        if not price:
            continue  # nothing due, nothing charged
        key = f"inv:{r.customer_id}:{number}"
        out.txns.append(
            transfer(key, now, f"invoice {number}", Account.RECEIVABLE, Account.REVENUE, amount)
        )
        out.txn_customer[key] = r.customer_id
        out.ops.append(_charge_op(ctx, r.customer_id, at, r, price, 1, Purpose.RENEWAL))
    _write(ctx, out)


def _charge_op(
    ctx: Ctx, customer_id: int, invoice: int, r: Any, price: int, attempt: int, purpose: Purpose
) -> dict[str, Any]:
    """The row ``operations.request_charge`` writes, for a bulk insert; ``invoice`` is the
    invoice's id, or its place in the chunk until the chunk's ids are known."""
    return {
        "merchant_id": ctx.merchant_row.id,
        "customer_id": customer_id,
        "kind": str(OperationKind.CHARGE),
        "purpose": str(purpose),
        "status": str(OperationStatus.PENDING),
        "invoice_id": invoice,
        "subscription_id": r.id,
        "token": r.token,
        "method": r.payment_method,
        "amount_minor": price,
        "currency": ctx.currency,
        "settled_minor": price,
        "attempt": attempt,
        "tries": 0,
        "created_at": ctx.now,
        "updated_at": ctx.now,
        "details": {},
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
    # Operations point at their invoice by its position in the chunk until now.
    for op in out.ops:
        op["invoice_id"] = ids[op["invoice_id"]]
    _write_ops(ctx, writer, out.ops)
    ctx.post_many(out.txns, out.txn_customer)
    # Renewed and failed rows carry different columns: one executemany per shape.
    update_by_id(writer, table(SubscriptionRow), out.subs)
    # The same acceptance of newer terms as a single renewal (``subscriptions._renew``).
    policies.move_on_renewal(ctx.session, ctx.version_id, [s["id"] for s in out.subs])


# -- retries ---------------------------------------------------------------------------------
# Built once: an alias proxies every column of its table, which costs more than the rest of
# the retry query (and that query is built twice a day per merchant).
_OTHER_INVOICE = aliased(InvoiceRow)


def retry_due(ctx: Ctx, chunk_size: int = CHUNK) -> CycleStats:
    """Request, in chunks, the charges of this merchant's failed renewals whose retry is
    due now; their outcomes are recorded by the one code path after the commit
    (``billing.charge_succeeded`` / ``charge_declined`` with ``Purpose.RETRY``).

    Selected here: a past-due subscription with one open renewal invoice and no charge of
    it in flight, charged to a card in the merchant's currency, no wallet balance or
    unapplied credit note. Every other case goes through ``accounts.retry_due`` one by one
    (from the scheduler).
    """
    stats = CycleStats()
    ctx.session.flush()
    while True:
        rows = ctx.session.execute(_retry_query(ctx).limit(chunk_size)).all()
        if not rows:
            break
        _retry_chunk(ctx, rows, stats)
        stats.chunks += 1
        if len(rows) < chunk_size:
            break
    ctx.session.expire_all()
    return stats


def _retry_query(ctx: Ctx) -> Any:
    s, c, inv = SubscriptionRow, CustomerRow, InvoiceRow
    unapplied = exists().where(
        CreditNoteRow.customer_id == s.customer_id, CreditNoteRow.applied_to_invoice_id.is_(None)
    )
    others = _OTHER_INVOICE
    open_invoices = (
        select(func.count())
        .select_from(others)
        .where(others.subscription_id == s.id, others.status == InvoiceStatus.OPEN)
        .correlate(s)
        .scalar_subquery()
    )
    op = GatewayOperationRow
    in_flight = exists().where(
        op.invoice_id == inv.id,
        op.kind == OperationKind.CHARGE,
        # ``status || ''``: found through the invoice's index, never the status index. Every
        # operation settled since the table's last vacuum left a dead ``pending`` entry
        # there; PostgreSQL's bitmap scans of it read them all, once per candidate (90 ms
        # a day at 50,000 subscriptions, growing with them).
        op.status.concat("").in_(operations.OPEN),
    )
    due = (
        inv.total_minor
        - inv.credit_applied_minor
        - inv.wallet_applied_minor
        - inv.amount_paid_minor
    )
    return (
        select(
            s.id,
            s.customer_id,
            s.payment_method,
            PaymentMethodRow.token,
            inv.id.label("invoice_id"),
            due.label("due"),
        )
        .join(c, c.id == s.customer_id)
        .join(inv, and_(inv.subscription_id == s.id, inv.status == InvoiceStatus.OPEN))
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
            s.status == SubscriptionStatus.PAST_DUE,
            s.next_retry_at <= ctx.now,
            s.first_failed_at.is_not(None),
            inv.period_start > s.started_at,
            due > 0,
            open_invoices == 1,
            ~in_flight,
        )
        .order_by(s.next_retry_at, s.id)
    )


def _retry_chunk(ctx: Ctx, rows: Sequence[Any], stats: CycleStats) -> None:
    tried = dict(
        ctx.session.execute(
            select(GatewayOperationRow.invoice_id, func.count())
            .where(
                one_of(ctx.session, GatewayOperationRow.invoice_id, [r.invoice_id for r in rows]),
                GatewayOperationRow.kind == OperationKind.CHARGE,
            )
            .group_by(GatewayOperationRow.invoice_id)
        )
        .tuples()
        .all()
    )
    ops = [
        _charge_op(
            ctx,
            r.customer_id,
            r.invoice_id,
            r,
            r.due,
            int(tried.get(r.invoice_id, 0)) + 1,
            Purpose.RETRY,
        )
        for r in rows
    ]
    writer = BulkWriter(ctx.session.connection())  # ``ops`` keeps bound values alive
    _write_ops(ctx, writer, ops)
    update_by_id(
        writer, table(SubscriptionRow), [{"id": r.id, "next_retry_at": None} for r in rows]
    )
    stats.renewed += len(rows)


def _write_ops(ctx: Ctx, writer: BulkWriter, ops: list[dict[str, Any]]) -> None:
    """Insert requested charges and register them to be sent after the commit."""
    if not ops:
        return
    for op in ops:
        op["key"] = f"charge:{op['invoice_id']}:{op['attempt']}"
    ids = allocate_ids(ctx.session.connection(), table(GatewayOperationRow), len(ops))
    for op, op_id in zip(ops, ids, strict=True):
        op["id"] = op_id
    writer.execute(insert(table(GatewayOperationRow)), ops)
    ctx.session.info.setdefault(operations.PENDING, []).extend(ids)
