"""Renewals in chunks: the daily cycle for one subscription or a million.

Due subscriptions are selected in chunks. Each renewal is planned by the planners a single
renewal uses (``plans.billing``: the new period, its invoice, its collection) into one
plan per chunk, which ``services.applier`` writes with a handful of bulk statements
instead of a round trip per row. The charges are sent after the commit and their outcomes
recorded by the one code path every charge takes (``operations.settle`` →
``billing.charge_succeeded`` / ``charge_declined``, or ``outcomes.record_many``, which
plans with the same functions): a renewal here and one through ``subscriptions.advance``
end in the same rows, with the same keys.

Selected here: what a renewal needs nothing beyond "bill the next period to the card"
for. One with a wallet balance, unapplied credit notes, a promotion, included credits, a
pending plan change, a cancellation on the boundary, a past-due or trialing subscription
is handed by the scheduler to ``subscriptions.advance``, which reads those facts one by
one before planning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import aliased

from fairbill.calendar.periods import Interval
from fairbill.lifecycle import (
    CustomerStatus,
    InvoiceStatus,
    OperationKind,
    SubscriptionStatus,
)
from fairbill.plans.billing import (
    Card,
    Collection,
    OpenInvoice,
    PeriodBill,
    Renewal,
    plan_collection,
    plan_period,
    plan_renewal,
)
from fairbill.plans.effects import Plan, Rows
from fairbill.services import applier, billing, operations, policies
from fairbill.services.context import Ctx
from fairbill.services.operations import Purpose
from fairbill.store import statistics
from fairbill.store.sets import one_of
from fairbill.store.tables import (
    CreditNoteRow,
    CustomerRow,
    GatewayOperationRow,
    InvoiceRow,
    PaymentMethodRow,
    PlanRow,
    SubscriptionRow,
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
    statistics.refresh(ctx.session)  # before the chunk's inserts (PostgreSQL)
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
            s.status == SubscriptionStatus.ACTIVE,
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
    """Plan each row's renewal with the planners a single renewal uses
    (``plans.billing.plan_renewal``, ``plan_period``, ``plan_collection``) into one plan
    for the chunk, and have the applier write it. The charges' outcomes are recorded once
    the gateway answered, after the commit (``operations.commit_and_settle``), by the same
    code as one renewal's."""
    from fairbill.services.subscriptions import tier_price_minor

    s = billing.setting(ctx)
    tz = ctx.merchant.tz
    invoice_no = next_numbers(ctx, InvoiceRow, {r.customer_id for r in rows})
    # The same acceptance of newer terms as a single renewal (``subscriptions._renew``).
    moving = policies.moving_on_renewal(ctx.session, ctx.version_id, [r.id for r in rows])
    plan = Plan()
    for r in rows:
        known = plans[r.plan_code]
        renewal = Renewal(
            r.id,
            r.plan_code,
            False,
            known.interval,
            r.anchor.astimezone(tz),
            r.current_period_end.astimezone(tz),
            ctx.version_id if r.id in moving else None,
        )
        period = plan_renewal(plan, renewal)
        invoice_no[r.customer_id] += 1
        price = tier_price_minor(known.row, r.usage_level)
        bill = PeriodBill(
            r.id, r.customer_id, r.plan_code, period, price, invoice_no[r.customer_id]
        )
        invoice = plan_period(plan, s, bill)
        # What the query selected has no wallet, credit note, promotion or included credits.
        card = Card(r.payment_method, r.token, s.currency)
        plan_collection(plan, s, invoice, Collection(r.payment_method, card), Purpose.RENEWAL)
        stats.renewed += 1
    applier.apply(ctx, plan)


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
        query = _retry_query(ctx).limit(chunk_size)
        if ctx.session.get_bind().dialect.name == "postgresql":
            # As a renewal's chunk: a customer another transaction holds (paying what is
            # open, say) is left for the next pass, and one held here makes it wait.
            query = query.with_for_update(
                of=[SubscriptionRow, CustomerRow], skip_locked=True, key_share=True
            )
        rows = ctx.session.execute(query).all()
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
            inv.number.label("invoice_number"),
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
            c.status == CustomerStatus.ACTIVE,
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
    """The retries of a chunk, planned by ``plans.billing.plan_collection`` (as a single
    retry's collection is) into one plan, written by the applier."""
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
    s = billing.setting(ctx)
    plan = Plan()
    for r in rows:
        plan.change(Rows.SUBSCRIPTIONS, r.id, next_retry_at=None)
        invoice = OpenInvoice(r.invoice_id, r.customer_id, r.id, r.invoice_number, r.due)
        collection = Collection(
            r.payment_method,
            Card(r.payment_method, r.token, s.currency),
            attempt=int(tried.get(r.invoice_id, 0)) + 1,
        )
        plan_collection(plan, s, invoice, collection, Purpose.RETRY)
    applier.apply(ctx, plan)
    stats.renewed += len(rows)
