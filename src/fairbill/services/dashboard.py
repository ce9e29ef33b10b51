"""The back office's dashboard: the merchant's figures now and two series over time.

Now: subscriptions by status, monthly recurring revenue, refunds this month by clause,
requests due soon and overdue, failed payments this month, past-due and suspended
subscriptions. Over time: refunds per month by clause (the last ``MONTHS`` months), and
the review queue at the end of each of the last ``DAYS`` days.

Invariants:
- money is summed in integer minor units of the merchant's currency, never a float; a
  refund in another currency counts at its payment's settlement rate;
- a refund counts for its first clause (the one that granted it; the others bound it);
  failed refunds count nowhere: no money left;
- the queue's past is read back from its present: the requests in review now, less those
  that entered since, plus those that left since (decisions ``needs_review``: entered;
  reviews: left), so today's figure is exactly the queue;
- the aggregations (``mrr_minor``, ``settled_minor``, ``by_month_and_clause``,
  ``backlog``) are pure functions of plain values.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from fractions import Fraction

from sqlalchemy import Select, func, select

from fairbill.lifecycle import RefundStatus, RequestStatus, SubscriptionStatus
from fairbill.money import Money
from fairbill.services.backoffice import Deadline, deadline
from fairbill.services.context import Ctx
from fairbill.store.tables import (
    CustomerRow,
    DecisionRow,
    FailedPaymentRow,
    PaymentRow,
    PlanRow,
    RefundRow,
    RequestRow,
    SubscriptionRow,
)

MONTHS = 6
DAYS = 30
NO_CLAUSE = ""  # a refund that names no clause (none today: every refund has its reason)
# Paying subscriptions: what monthly recurring revenue counts (a trial does not pay yet; a
# suspended subscription is not billed).
PAYING = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


# -- pure aggregations -------------------------------------------------------------------------
def mrr_minor(subscriptions: Iterable[tuple[int, int]]) -> int:
    """Monthly recurring revenue in minor units from (price of a period, months in the
    period) pairs: each price spread evenly over its months, summed exactly, then rounded
    once, half up."""
    total = sum((Fraction(price, months) for price, months in subscriptions), Fraction(0))
    return math.floor(total + Fraction(1, 2))


def settled_minor(amount_minor: int, paid_minor: int, paid_settled_minor: int) -> int:
    """A refund of ``amount_minor`` (the payment's currency) in the merchant's currency, at
    the rate its payment settled at (``paid_settled_minor`` for ``paid_minor``), rounded
    half up."""
    if paid_minor == 0 or paid_minor == paid_settled_minor:
        return amount_minor
    return math.floor(Fraction(amount_minor * paid_settled_minor, paid_minor) + Fraction(1, 2))


def month_of(day: date) -> date:
    return day.replace(day=1)


def last_months(today: date, count: int) -> list[date]:
    """The first days of the ``count`` months up to and including ``today``'s, oldest first."""
    months = [month_of(today)]
    while len(months) < count:
        months.append(month_of(months[-1] - timedelta(days=1)))
    return months[::-1]


def by_month_and_clause(
    refunds: Iterable[tuple[date, str, int]], months: list[date]
) -> dict[str, list[int]]:
    """(day, clause, amount) refunds summed per clause and month (``months``: their first
    days, in order); refunds outside those months are left out. Clauses by total, the
    largest first, then by name."""
    column = {m: i for i, m in enumerate(months)}
    sums: dict[str, list[int]] = defaultdict(lambda: [0] * len(months))
    for day, clause, amount in refunds:
        index = column.get(month_of(day))
        if index is not None:
            sums[clause][index] += amount
    return dict(sorted(sums.items(), key=lambda item: (-sum(item[1]), item[0])))


def backlog(
    ends: list[datetime], entered: list[datetime], left: list[datetime], now_in_review: int
) -> list[int]:
    """The queue's length at each instant of ``ends``: the requests in review now, less
    those that entered after it, plus those that left after it (never below 0)."""
    ins, outs = sorted(entered), sorted(left)

    def after(times: list[datetime], end: datetime) -> int:
        return len(times) - bisect_right(times, end)

    return [max(0, now_in_review - after(ins, end) + after(outs, end)) for end in ends]


# -- the figures -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClauseTotal:
    clause: str
    count: int
    amount: Money


@dataclass(frozen=True, slots=True)
class Series:
    """Values (minor units or counts) per label: one list per series, in ``labels`` order."""

    labels: list[date]
    values: dict[str, list[int]]


@dataclass(frozen=True, slots=True)
class Dashboard:
    subscriptions: dict[str, int]  # live subscriptions by status
    mrr: Money
    refunds_month: list[ClauseTotal]
    refunds_month_total: Money
    in_review: int
    due_soon: int
    overdue: int
    failed_payments: int  # this month
    failed_amount: Money
    refunds_by_month: Series  # clause → minor units per month
    queue_by_day: Series  # "queue" → requests in review at the end of each day


def dashboard(ctx: Ctx) -> Dashboard:
    today = ctx.now.date()
    months = last_months(today, MONTHS)
    refunds = _refunds_since(ctx, months[0])
    this_month = [(clause, minor) for day, clause, minor in refunds if month_of(day) == months[-1]]
    counts, sums = Counter(c for c, _ in this_month), Counter[str]()
    for clause, minor in this_month:
        sums[clause] += minor
    deadlines = _deadlines(ctx)
    failed, failed_minor = _failed_since(ctx, months[-1])
    return Dashboard(
        subscriptions=_subscriptions_by_status(ctx),
        mrr=ctx.money(mrr_minor(_paying(ctx))),
        refunds_month=[
            ClauseTotal(c, counts[c], ctx.money(sums[c])) for c, _ in sums.most_common()
        ],
        refunds_month_total=ctx.money(sum(sums.values())),
        in_review=len(deadlines),
        due_soon=sum(1 for d in deadlines if d is not None and d.soon),
        overdue=sum(1 for d in deadlines if d is not None and d.overdue),
        failed_payments=failed,
        failed_amount=ctx.money(failed_minor),
        refunds_by_month=Series(months, by_month_and_clause(refunds, months)),
        queue_by_day=_queue_by_day(ctx, today, len(deadlines)),
    )


def _merchant_customers(ctx: Ctx) -> Select[tuple[int]]:
    return select(CustomerRow.id).where(CustomerRow.merchant_id == ctx.merchant_row.id)


def _subscriptions_by_status(ctx: Ctx) -> dict[str, int]:
    rows = ctx.session.execute(
        select(SubscriptionRow.status, func.count())
        .where(SubscriptionRow.customer_id.in_(_merchant_customers(ctx)))
        .group_by(SubscriptionRow.status)
    )
    found = dict(rows.tuples().all())
    live = (
        SubscriptionStatus.ACTIVE,
        SubscriptionStatus.TRIALING,
        SubscriptionStatus.PAST_DUE,
        SubscriptionStatus.SUSPENDED,
    )
    return {str(status): found.get(status, 0) for status in live}


def _paying(ctx: Ctx) -> list[tuple[int, int]]:
    rows = ctx.session.execute(
        select(SubscriptionRow.price_minor, PlanRow.interval_months)
        .join(
            PlanRow,
            (PlanRow.code == SubscriptionRow.plan_code)
            & (PlanRow.merchant_id == ctx.merchant_row.id),
        )
        .where(
            SubscriptionRow.customer_id.in_(_merchant_customers(ctx)),
            SubscriptionRow.status.in_(PAYING),
        )
    )
    return [(price, months) for price, months in rows.tuples()]


def _start_of(ctx: Ctx, day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=ctx.merchant.tz)


def _refunds_since(ctx: Ctx, first_day: date) -> list[tuple[date, str, int]]:
    """(local day, first clause, amount in the merchant's minor units) of every refund not
    failed since ``first_day``."""
    rows = ctx.session.execute(
        select(RefundRow, PaymentRow.amount_minor, PaymentRow.settled_minor)
        .outerjoin(PaymentRow, PaymentRow.id == RefundRow.payment_id)
        .where(
            RefundRow.customer_id.in_(_merchant_customers(ctx)),
            RefundRow.at >= _start_of(ctx, first_day),
            RefundRow.status != RefundStatus.FAILED,
        )
    )
    found = []
    for refund, paid, settled in rows.tuples():
        minor = refund.amount_minor
        if refund.currency != ctx.currency and paid is not None:
            minor = settled_minor(minor, paid, settled)
        clause = refund.clauses[0] if refund.clauses else NO_CLAUSE
        found.append((ctx.local(refund.at).date(), clause, minor))
    return found


def _deadlines(ctx: Ctx) -> list[Deadline | None]:
    dues = ctx.session.scalars(
        select(RequestRow.review_due).where(
            RequestRow.customer_id.in_(_merchant_customers(ctx)),
            RequestRow.status == RequestStatus.IN_REVIEW,
        )
    )
    return [deadline(ctx, due) for due in dues]


def _failed_since(ctx: Ctx, first_day: date) -> tuple[int, int]:
    count, total = ctx.session.execute(
        select(func.count(), func.coalesce(func.sum(FailedPaymentRow.amount_minor), 0)).where(
            FailedPaymentRow.customer_id.in_(_merchant_customers(ctx)),
            FailedPaymentRow.at >= _start_of(ctx, first_day),
        )
    ).one()
    return int(count), int(total)


def _queue_by_day(ctx: Ctx, today: date, now_in_review: int) -> Series:
    days = [today - timedelta(days=n) for n in range(DAYS - 1, -1, -1)]
    ends = [_start_of(ctx, d + timedelta(days=1)) for d in days]
    ends[-1] = ctx.now  # today: so far
    rows = ctx.session.execute(
        select(DecisionRow.at, DecisionRow.action, DecisionRow.outcome, DecisionRow.reasons).where(
            DecisionRow.customer_id.in_(_merchant_customers(ctx)),
            DecisionRow.at > ends[0],
            DecisionRow.action.in_(("refund_request", "appeal", "review")),
        )
    )
    entered, left = [], []
    for at, action, outcome, reasons in rows.tuples():
        if action != "review" and outcome == "needs_review":
            entered.append(at)
        elif action == "review" and reasons:  # a review of a request not in review has none
            left.append(at)
    return Series(days, {"queue": backlog(ends, entered, left, now_in_review)})
