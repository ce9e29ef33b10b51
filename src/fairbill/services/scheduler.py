"""Time-driven work: find what is due at an instant and run it, for one merchant.

Every job is idempotent: it acts only when its own state says it is due and moves that
state past the instant, so running the same instant twice changes nothing.
Order at one instant: payment retries, usage checks, subscription boundaries (cancel,
trial end, renewal), credit expiries, data deletions.

Each due item runs on its own (``jobs.JobRunner``): one that raises is rolled back alone,
recorded in ``job_failures``, retried with backoff and reported to the merchant, while
the others run. The bulk paths (``billing_cycle.retry_due``, ``renew_due``) run first,
each as one item for the whole merchant: if one fails, its savepoint is rolled back and
the one-by-one loops after it select the same rows (they select every due row, bulk or
not), so the work is still done, only slower; the failure is recorded like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, true

from fairbill.lifecycle import BILLED, LIVE, CreditPackStatus
from fairbill.services import accounts, billing_cycle, credits, jobs, operations, subscriptions
from fairbill.services.context import Ctx
from fairbill.services.jobs import Job, JobRunner, RunReport
from fairbill.store.tables import (
    CreditPackRow,
    CustomerRow,
    GatewayOperationRow,
    JobFailureRow,
    SubscriptionRow,
)

# What ``job_failures.target`` names, by the kind of row a job works on.
KINDS: dict[Any, str] = {
    SubscriptionRow: "subscription",
    CreditPackRow: "credit_pack",
    CustomerRow: "customer",
}


# The jobs ``run_due`` offers every due item of: an open failure of one of them whose item
# was not due in a run has nothing left to retry.
ITEM_JOBS = frozenset(
    {
        Job.RETRY_BULK,
        Job.PAYMENT_RETRY,
        Job.USAGE_CHECK,
        Job.RENEWAL_BULK,
        Job.SUBSCRIPTION_BOUNDARY,
        Job.CREDIT_EXPIRY,
        Job.DATA_DELETION,
    }
)


def target(row: SubscriptionRow | CreditPackRow | CustomerRow) -> str:
    """``job_failures.target`` for a row: ``"subscription:42"``."""
    return f"{KINDS[type(row)]}:{row.id}"


def _mine(ctx: Ctx, query: Select[Any], model: Any) -> Select[Any]:
    """Restrict ``query`` to this merchant's rows (via their customer)."""
    if model is CustomerRow:
        return query.where(CustomerRow.merchant_id == ctx.merchant_row.id)
    return query.join(CustomerRow, CustomerRow.id == model.customer_id).where(
        CustomerRow.merchant_id == ctx.merchant_row.id
    )


def next_due(ctx: Ctx) -> datetime | None:
    """The earliest instant at which anything of this merchant is due. An item waiting
    after a failure is due at its next attempt, not at its own (past) instant: otherwise
    a clock driven by this (the test clock, the simulator) would never move past it."""
    s = ctx.session
    sub = SubscriptionRow
    held = jobs.waiting(s, ctx.merchant_row.id, ctx.now)

    def free(model: Any, job: Job) -> ColumnElement[bool]:
        ids = _held_ids(held, job, KINDS[model])
        return model.id.not_in(ids) if ids else true()

    boundary = free(sub, Job.SUBSCRIPTION_BOUNDARY)
    queries: list[tuple[Select[Any], Any]] = [
        (select(func.min(sub.current_period_end)).where(sub.status.in_(BILLED), boundary), sub),
        (select(func.min(sub.cancel_at)).where(sub.status.in_(LIVE), boundary), sub),
        (
            select(func.min(sub.next_retry_at)).where(
                sub.status.in_(LIVE), free(sub, Job.PAYMENT_RETRY)
            ),
            sub,
        ),
        (
            select(func.min(sub.usage_check_at)).where(
                sub.status.in_(LIVE), free(sub, Job.USAGE_CHECK)
            ),
            sub,
        ),
        (
            select(func.min(CreditPackRow.expires_at)).where(
                CreditPackRow.status == CreditPackStatus.ACTIVE,
                free(CreditPackRow, Job.CREDIT_EXPIRY),
            ),
            CreditPackRow,
        ),
        (
            select(func.min(CustomerRow.data_retained_until)).where(
                CustomerRow.data_deleted_at.is_(None), free(CustomerRow, Job.DATA_DELETION)
            ),
            CustomerRow,
        ),
    ]
    # A gateway operation waiting to be asked again: the janitor's next instant.
    retry = select(func.min(GatewayOperationRow.next_attempt_at)).where(
        GatewayOperationRow.merchant_id == ctx.merchant_row.id,
        GatewayOperationRow.status.in_(operations.OPEN),
    )
    # One statement: the simulator and the test clock ask this before every step.
    earliest = [_mine(ctx, q, model).scalar_subquery() for q, model in queries]
    values = s.execute(select(*earliest, retry.scalar_subquery())).one()
    found = [v for v in values if v is not None]
    found += [row.next_attempt_at for row in held if row.next_attempt_at is not None]
    return min(found) if found else None


def _held_ids(held: list[JobFailureRow], job: Job, kind: str) -> list[int]:
    prefix = f"{kind}:"
    ids = [row.target.removeprefix(prefix) for row in held if row.job == job]
    return [int(text) for text in ids if text.isdigit()]


def run_due(ctx: Ctx) -> RunReport:
    """Run everything of this merchant due at or before ``ctx.now``, item by item: a
    failing item is rolled back and recorded, never raised (see the module docstring).
    Returns what ran, what waits for its next attempt and what failed."""
    now = ctx.now
    sub = SubscriptionRow
    runner = JobRunner.load(ctx.session, ctx.merchant_row, now)
    merchant = f"merchant:{ctx.merchant_row.id}"

    def each(job: Job, rows: Sequence[Any], action: Callable[[Any], object]) -> None:
        for row in rows:
            runner.run(job, target(row), partial(action, row))

    runner.run(Job.RETRY_BULK, merchant, lambda: billing_cycle.retry_due(ctx))
    each(
        Job.PAYMENT_RETRY,
        _subs(ctx, sub.next_retry_at <= now),
        lambda row: accounts.retry_due(ctx, _customer(ctx, row), row),
    )
    each(
        Job.USAGE_CHECK,
        _subs(ctx, sub.usage_check_at <= now),
        lambda row: subscriptions.usage_check(ctx, _customer(ctx, row), row),
    )
    runner.run(Job.RENEWAL_BULK, merchant, lambda: billing_cycle.renew_due(ctx))
    period_ended = (sub.current_period_end <= now) & sub.status.in_(BILLED)
    each(
        Job.SUBSCRIPTION_BOUNDARY,
        _subs(ctx, period_ended, sub.cancel_at <= now),
        lambda row: subscriptions.advance(ctx, _customer(ctx, row), row),
    )
    each(
        Job.CREDIT_EXPIRY,
        _expired_packs(ctx),
        lambda pack: credits.expire(ctx, ctx.session.get_one(CustomerRow, pack.customer_id), pack),
    )
    each(
        Job.DATA_DELETION,
        _retention_over(ctx),
        lambda customer: accounts.delete_data_if_due(ctx, customer),
    )
    runner.resolve_absent(ITEM_JOBS)
    ctx.session.flush()
    return runner.report


def _subs(ctx: Ctx, *alternatives: Any) -> list[SubscriptionRow]:
    """Live subscriptions matching any of ``alternatives``, by (period end, id). One
    select per alternative: each can use its (status, instant) index, an OR cannot.
    On PostgreSQL they are locked, and a row another worker holds (a chunk of renewals
    it is writing) is skipped: it is that worker's, and due again if it rolls back."""
    sub = SubscriptionRow
    found: dict[int, SubscriptionRow] = {}
    for condition in alternatives:
        query = _mine(ctx, select(sub).where(sub.status.in_(LIVE), condition), sub)
        if ctx.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(of=sub, skip_locked=True, key_share=True)
            query = query.execution_options(populate_existing=True)  # as locked, not as seen
        found.update((row.id, row) for row in ctx.session.scalars(query))
    return sorted(found.values(), key=lambda row: (row.current_period_end, row.id))


# Lists, not open cursors: the items write (and roll back savepoints) while we go.
def _expired_packs(ctx: Ctx) -> list[CreditPackRow]:
    packs = select(CreditPackRow).where(
        CreditPackRow.status == CreditPackStatus.ACTIVE, CreditPackRow.expires_at <= ctx.now
    )
    return list(ctx.session.scalars(_mine(ctx, packs.order_by(CreditPackRow.id), CreditPackRow)))


def _retention_over(ctx: Ctx) -> list[CustomerRow]:
    due = select(CustomerRow).where(
        CustomerRow.data_deleted_at.is_(None), CustomerRow.data_retained_until <= ctx.now
    )
    return list(ctx.session.scalars(_mine(ctx, due.order_by(CustomerRow.id), CustomerRow)))


def _customer(ctx: Ctx, sub: SubscriptionRow) -> CustomerRow:
    return ctx.session.get_one(CustomerRow, sub.customer_id)
