"""Subscription use cases: subscribe, cancel, change plan, usage, renew, end."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from fairbill.calendar.periods import Interval, Period, period_at, period_index
from fairbill.decisions.cancellation import CancelOutcome, decide_cancel
from fairbill.decisions.credits import credit_expiry
from fairbill.decisions.disputes import retention_until
from fairbill.decisions.plan_change import decide_plan_change, decide_tier_move
from fairbill.errors import Conflict, NotFound
from fairbill.lifecycle import (
    CUSTOMER_ENDED,
    LIVE,
    CustomerStatus,
    OperationKind,
    SubscriptionStatus,
)
from fairbill.lifecycle import advance as transition
from fairbill.money import Money
from fairbill.plans.billing import (
    Collected,
    Line,
    PeriodBill,
    Promotion,
    Renewal,
    plan_collection,
    plan_credit_note,
    plan_invoice,
    plan_notice,
    plan_period,
    plan_refund,
    plan_renewal,
)
from fairbill.plans.effects import Plan, Ref, Rows
from fairbill.plans.subscriptions import Ending, NewSubscription, plan_end, plan_subscription
from fairbill.policy.model import Destination, Trials
from fairbill.services import applier, billing, operations, policies
from fairbill.services.context import Ctx
from fairbill.services.operations import Purpose
from fairbill.store.tables import (
    CustomerRow,
    GatewayOperationRow,
    InvoiceRow,
    PaymentRow,
    PlanRow,
    PromotionRow,
    SubscriptionRow,
)


def tier_price_minor(plan: PlanRow, level: int | None) -> int:
    if plan.tiers is None:
        assert plan.price_minor is not None
        return plan.price_minor
    value = level or 0
    for tier in plan.tiers:
        if tier["up_to"] is None or value <= tier["up_to"]:
            return int(tier["price_minor"])
    return int(plan.tiers[-1]["price_minor"])


def live_subscriptions(ctx: Ctx, customer: CustomerRow) -> list[SubscriptionRow]:
    return list(
        ctx.session.scalars(
            select(SubscriptionRow)
            .where(SubscriptionRow.customer_id == customer.id, SubscriptionRow.status.in_(LIVE))
            .order_by(SubscriptionRow.id)
        ).all()
    )


def the_subscription(ctx: Ctx, customer: CustomerRow, sub_id: int | None = None) -> SubscriptionRow:
    if sub_id is not None:
        sub = ctx.session.get(SubscriptionRow, sub_id)
        if sub is None or sub.customer_id != customer.id:
            raise NotFound(f"no subscription {sub_id}")
        return sub
    subs = live_subscriptions(ctx, customer)
    if not subs:
        raise NotFound("the customer has no live subscription")
    return subs[-1]


def ensure_open(customer: CustomerRow) -> None:
    """A closed account (its data kept only for the retention period) and one terminated
    for a violation take no new business; a suspended one may still buy and pay."""
    if customer.status in CUSTOMER_ENDED:
        raise Conflict(f"customer {customer.code} is {customer.status}: it takes no new purchases")


# -- subscribe ------------------------------------------------------------------------------
def subscribe(
    ctx: Ctx,
    customer: CustomerRow,
    plan_code: str,
    *,
    payment_method: str | None = None,
    trial_days: int | None = None,
    promotion: str | None = None,
    usage: int | None = None,
    is_first: bool | None = None,
) -> SubscriptionRow:
    """A new subscription, its first period billed and collected unless it starts with a
    trial: one plan (``plans.subscriptions.plan_subscription``, ``plans.billing``'s
    ``plan_period`` and ``plan_collection``), written by the applier; then what follows
    the collection. The customer accepts the merchant's current terms."""
    ensure_open(customer)
    plan_row = ctx.plan(plan_code)
    now = ctx.now
    if is_first is None:
        earlier = ctx.session.scalar(
            select(SubscriptionRow.id).where(SubscriptionRow.customer_id == customer.id)
        )
        is_first = earlier is None
    promo = _promotion(ctx, promotion) if promotion else None
    price = tier_price_minor(plan_row, usage)
    new = NewSubscription(
        customer_id=customer.id,
        plan_code=plan_row.code,
        interval=Interval(plan_row.interval_months),
        price=price,
        usage=usage,
        payment_method=payment_method,
        now=now,
        trial_end=now + timedelta(days=trial_days) if trial_days else None,
        is_first=is_first,
        promotion=promotion,
        promotion_periods=promo.duration_periods if promo else None,
        version_id=ctx.version_id,
    )
    plan = Plan()
    ref, period = plan_subscription(plan, new)
    account: dict[str, object] = {}
    if customer.data_deleted_at is None:
        account["data_retained_until"] = None  # a live subscription stops the retention clock
    if customer.terms_version is None:
        account["terms_version"] = ctx.policy.version  # accepted at payment (terms_acceptance)
    if account:
        plan.change(Rows.CUSTOMERS, customer.id, **account)
    if new.trial_end is not None:
        language = ctx.language(customer)
        plan_notice(plan, customer.id, now, "welcome", language, plan=plan_row.code)
        applied = applier.apply(ctx, plan)
        ctx.forget_terms(customer.id)
        return ctx.session.get_one(SubscriptionRow, applied[ref])
    s = billing.setting(ctx)
    bill = _bill(ctx, customer, ref, plan_row, period, price, promo, new.promotion_periods)
    invoice = plan_period(plan, s, bill)
    collection = billing.collection(ctx, customer, None, payment_method)
    collected = plan_collection(plan, s, invoice, collection, str(Purpose.FIRST))
    assert isinstance(invoice.id, Ref)
    applied = applier.apply(ctx, plan)
    ctx.forget_terms(customer.id)
    sub = ctx.session.get_one(SubscriptionRow, applied[ref])
    # Activation details go out once registration and payment have succeeded
    # (``billing.after_paid``, now or when the gateway answers).
    row = ctx.session.get_one(InvoiceRow, applied[invoice.id])
    _collected(ctx, customer, row, Purpose.FIRST, collected)
    return sub


def _promotion(ctx: Ctx, code: str) -> PromotionRow:
    promo = ctx.session.scalar(
        select(PromotionRow).where(
            PromotionRow.merchant_id == ctx.merchant_row.id, PromotionRow.code == code
        )
    )
    if promo is None:
        raise NotFound(f"no promotion {code!r}")
    return promo


def _bill_period(
    ctx: Ctx,
    customer: CustomerRow,
    sub: SubscriptionRow,
    purpose: Purpose = Purpose.RENEWAL,
    *,
    plan: Plan | None = None,
    plan_code: str | None = None,
    period: Period | None = None,
) -> InvoiceRow:
    """Bill the subscription's period (its current one unless ``period``, on its plan
    unless ``plan_code``) and collect it: ``plans.billing.plan_period`` and
    ``plan_collection`` into ``plan`` (which may hold the renewal itself), written by
    the applier; then what follows the collection by its purpose."""
    plan = plan if plan is not None else Plan()
    s = billing.setting(ctx)
    bill = period_bill(ctx, customer, sub, plan_code or sub.plan_code, period)
    invoice = plan_period(plan, s, bill)
    collection = billing.collection(ctx, customer, None, sub.payment_method)
    collected = plan_collection(plan, s, invoice, collection, str(purpose))
    assert isinstance(invoice.id, Ref)
    applied = applier.apply(ctx, plan)
    ctx.forget_terms(customer.id)  # a renewal may have moved the accepted version
    row = ctx.session.get_one(InvoiceRow, applied[invoice.id])
    _collected(ctx, customer, row, purpose, collected)
    return row


def period_bill(
    ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow, plan_code: str, period: Period | None
) -> PeriodBill:
    """The facts of a period of ``sub`` to bill, read now."""
    if period is None:
        period = Period(ctx.local(sub.current_period_start), ctx.local(sub.current_period_end))
    plan = ctx.plan(plan_code)
    promo = None
    if sub.promotion_code and sub.promotion_periods_left != 0:
        promo = _promotion(ctx, sub.promotion_code)
    price = tier_price_minor(plan, sub.usage_level)
    return _bill(ctx, customer, sub.id, plan, period, price, promo, sub.promotion_periods_left)


def _bill(
    ctx: Ctx,
    customer: CustomerRow,
    sub_id: int | Ref,
    plan: PlanRow,
    period: Period,
    price: int,
    promo: PromotionRow | None,
    periods_left: int | None,
) -> PeriodBill:
    """A period's bill: the promotion running on it (for ``periods_left`` more periods,
    this one included; ``None``: for ever) and the credits its plan includes."""
    promotion = None
    if promo is not None:
        percent = Decimal(promo.percent_off) if promo.percent_off is not None else None
        promotion = Promotion(promo.code, periods_left, percent, promo.amount_off_minor)
    credits = tuple(
        ("message" if kind == "message_credits" else kind.removesuffix("_credits"), quantity)
        for kind, quantity in (plan.includes or {}).items()
    )
    return PeriodBill(
        subscription_id=sub_id,
        customer_id=customer.id,
        plan_code=plan.code,
        period=period,
        price=price,
        invoice_number=ctx.next_number(InvoiceRow, customer),
        promotion=promotion,
        credits=credits,
        credits_expire=credit_expiry(ctx.merchant, ctx.now) if credits else None,
    )


def _collected(
    ctx: Ctx, customer: CustomerRow, invoice: InvoiceRow, purpose: Purpose, collected: Collected
) -> None:
    """What follows a collection known at once; a charge's follows its answer (both are
    ``billing``'s, the same whenever the answer comes)."""
    if collected == Collected.PAID:
        paid = ctx.money(invoice.total_minor)
        billing.after_paid(ctx, customer, invoice, purpose, paid, {})
    elif collected == Collected.UNPAID:
        billing.after_declined(ctx, customer, invoice, purpose)


def cancel(
    ctx: Ctx,
    customer: CustomerRow,
    sub: SubscriptionRow,
    *,
    immediately: bool = False,
    channel: str | None = None,
    reason: str | None = None,
    for_downgrade: bool = False,
) -> CancelOutcome:
    ctx.lock_customer(customer)
    if _charge_in_flight(ctx, sub):
        # Its refund would be decided without the payment the gateway may have taken.
        raise Conflict(
            f"a charge of subscription {sub.id} is awaiting the payment gateway's answer: "
            "cancel once it is known (GET /v1/gateway_operations)"
        )
    plan, s = Plan(), billing.setting(ctx)
    if channel == "written":
        plan.change(Rows.CUSTOMERS, customer.id, written_cancel_at=ctx.now)
    outcome = ctx.decide(
        customer.id,
        decide_cancel,
        ctx.facts.subscription(sub),
        ctx.now,
        immediately=immediately,
        for_downgrade=for_downgrade,
    )
    plan.record(ctx.decided_of(customer.id, outcome.decision))
    if outcome.decision.outcome == "declined":
        applier.apply(ctx, plan)
        return outcome
    # One plan: the refunds the decision grants (each reserved on its payment and sent to
    # the gateway after the commit), the end or its date, and the confirmation.
    clauses = outcome.decision.clauses
    for refund in outcome.refunds:
        payment = _payment(ctx, customer, refund.payment)
        facts = billing.refunding(
            ctx, customer, payment, refund.amount, Destination.ORIGINAL_METHOD, clauses
        )
        plan_refund(plan, s, facts)
    if outcome.ends_now:
        plan_end(plan, ending(ctx, customer, sub, SubscriptionStatus.CANCELED, ctx.now))
    else:
        plan.change(Rows.SUBSCRIPTIONS, sub.id, cancel_at=outcome.ends_at)
    language = ctx.language(customer)
    ends_at = ctx.local(outcome.ends_at).isoformat()
    plan_notice(plan, customer.id, ctx.now, "cancellation_confirmed", language, ends_at=ends_at)
    applier.apply(ctx, plan)
    if outcome.ends_now:
        _succeed(ctx, customer, sub)
    return outcome


def _charge_in_flight(ctx: Ctx, sub: SubscriptionRow) -> bool:
    op = GatewayOperationRow
    return (
        ctx.session.scalar(
            select(op.id)
            .where(
                op.subscription_id == sub.id,
                op.kind == OperationKind.CHARGE,
                op.status.in_(operations.OPEN),
            )
            .limit(1)
        )
        is not None
    )


def _payment(ctx: Ctx, customer: CustomerRow, number: int) -> PaymentRow:
    row = ctx.session.scalar(
        select(PaymentRow).where(PaymentRow.customer_id == customer.id, PaymentRow.number == number)
    )
    if row is None:
        raise NotFound(f"no payment {number}")
    return row


def end_subscription(
    ctx: Ctx,
    customer: CustomerRow,
    sub: SubscriptionRow,
    status: SubscriptionStatus,
    at: datetime | None = None,
) -> None:
    """End service now (or at ``at``): no more renewals, the retention clock starts once
    no other subscription is live (``plans.subscriptions.plan_end``); a successor plan
    (a downgrade by cancel and resubscribe) starts when a cancellation ends it."""
    plan = Plan()
    plan_end(plan, ending(ctx, customer, sub, status, at or ctx.now))
    applier.apply(ctx, plan)
    if status == SubscriptionStatus.CANCELED:
        _succeed(ctx, customer, sub)


def _succeed(ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow) -> None:
    """A downgrade by cancel and resubscribe: the successor plan starts as its
    predecessor's cancellation ends it."""
    if sub.successor_plan:
        successor = sub.successor_plan
        plan = Plan()
        plan.change(Rows.SUBSCRIPTIONS, sub.id, successor_plan=None)
        applier.apply(ctx, plan)
        subscribe(ctx, customer, successor, payment_method=sub.payment_method, is_first=False)


def ending(
    ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow, to: SubscriptionStatus, at: datetime
) -> Ending:
    """The facts of a subscription's end, read now."""
    how = (
        "termination"
        if to == SubscriptionStatus.TERMINATED
        else ("closure" if customer.status == CustomerStatus.CLOSED else "cancellation")
    )
    until, _ = retention_until(ctx.merchant, how, at)
    if any(other.id != sub.id for other in live_subscriptions(ctx, customer)):
        until = None
    return Ending(
        subscription_id=sub.id,
        customer_id=customer.id,
        status=SubscriptionStatus(sub.status),
        to=to,
        at=at,
        cancel_at=sub.cancel_at,
        retained_until=until,
    )


# -- plan changes and usage -----------------------------------------------------------------
def change_plan(ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow, plan_code: str) -> None:
    """Move to ``plan_code`` as the policy says: now (with a proration invoice for the
    rest of the period), at the period end, or by cancelling and subscribing again at the
    period end. The decision and the subscription's change are one plan (with the
    proration's invoice and collection); a cancel-and-resubscribe is then a cancellation."""
    ctx.lock_customer(customer)
    # A closed or terminated account takes no new plan, now or at the period end: a
    # downgrade scheduled on one would start a subscription that it must then refuse.
    ensure_open(customer)
    if sub.status not in LIVE:
        raise Conflict(f"subscription {sub.id} is {sub.status}")
    new = ctx.plan(plan_code)
    new_price = ctx.money(tier_price_minor(new, sub.usage_level))
    facts = ctx.facts.subscription(sub)
    outcome = ctx.decide(customer.id, decide_plan_change, facts, new_price, new.code, ctx.now)
    plan = Plan()
    plan.record(ctx.decided_of(customer.id, outcome.decision))
    if outcome.mode == "immediate":
        plan.change(Rows.SUBSCRIPTIONS, sub.id, plan_code=new.code, price_minor=new_price.minor)
        if outcome.charge:
            text = f"upgrade {sub.plan_code} → {new.code}, rest of the period"
            _bill_adjustment(ctx, customer, sub, plan, outcome.charge, text)
            return
    elif outcome.mode == "end_of_period":
        plan.change(Rows.SUBSCRIPTIONS, sub.id, pending_plan=new.code)
    elif outcome.mode == "cancel_and_resubscribe":
        plan.change(Rows.SUBSCRIPTIONS, sub.id, successor_plan=new.code)
    applier.apply(ctx, plan)
    if outcome.mode == "cancel_and_resubscribe":
        cancel(ctx, customer, sub, for_downgrade=True)


def _bill_adjustment(
    ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow, plan: Plan, amount: Money, text: str
) -> None:
    """An invoice for the rest of the period (a proration, a tier move) and its
    collection, into ``plan`` (which holds the decision behind it), written now."""
    now, end = ctx.now, ctx.local(sub.current_period_end)
    s = billing.setting(ctx)
    invoice = plan_invoice(
        plan,
        s,
        customer.id,
        ctx.next_number(InvoiceRow, customer),
        [Line("proration", text, amount, now, end)],
        purpose="proration",
        subscription_id=sub.id,
    )
    collection = billing.collection(ctx, customer, None, sub.payment_method)
    collected = plan_collection(plan, s, invoice, collection, str(Purpose.ADJUSTMENT))
    assert isinstance(invoice.id, Ref)
    applied = applier.apply(ctx, plan)
    row = ctx.session.get_one(InvoiceRow, applied[invoice.id])
    _collected(ctx, customer, row, Purpose.ADJUSTMENT, collected)


def record_usage(ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow, value: int) -> None:
    """A usage report: a tiered subscription whose usage crossed into a dearer tier
    moves up now (a decision, with a proration for the rest of the period); one that fell
    below its tier is checked at the next local midnight (``usage_check``). One plan."""
    ctx.lock_customer(customer)
    tiers = ctx.plan(sub.plan_code)
    plan = Plan()
    plan.change(Rows.SUBSCRIPTIONS, sub.id, usage_level=value)
    if tiers.tiers is None or sub.status not in LIVE:
        applier.apply(ctx, plan)
        return
    new_price = tier_price_minor(tiers, value)
    if new_price == sub.price_minor:
        plan.change(Rows.SUBSCRIPTIONS, sub.id, usage_fell_at=None, usage_check_at=None)
        applier.apply(ctx, plan)
        return
    if new_price < sub.price_minor:
        if sub.usage_fell_at is None:
            midnight = ctx.now.replace(hour=0, minute=0, second=0, microsecond=0)
            check_at = ctx.local(midnight + timedelta(days=1))
            plan.change(Rows.SUBSCRIPTIONS, sub.id, usage_fell_at=ctx.now, usage_check_at=check_at)
        applier.apply(ctx, plan)
        return
    outcome = ctx.decide(
        customer.id,
        decide_tier_move,
        ctx.facts.subscription(sub),
        ctx.money(new_price),
        ctx.now,
        ctx.now,
    )
    plan.record(ctx.decided_of(customer.id, outcome.decision))
    plan.change(
        Rows.SUBSCRIPTIONS, sub.id, price_minor=new_price, usage_fell_at=None, usage_check_at=None
    )
    if not outcome.charge:
        applier.apply(ctx, plan)
        return
    text = f"{tiers.tier_metric or 'usage'} over the tier limit, rest of the period"
    _bill_adjustment(ctx, customer, sub, plan, outcome.charge, text)


def usage_check(ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow) -> None:
    """The daily check: a fall below a tier threshold earns a prorated credit note (the
    decision, the new price and the note: one plan)."""
    tiers = ctx.plan(sub.plan_code)
    fell_at = sub.usage_fell_at
    plan = Plan()
    plan.change(Rows.SUBSCRIPTIONS, sub.id, usage_check_at=None, usage_fell_at=None)
    new_price = tier_price_minor(tiers, sub.usage_level)
    if fell_at is None or new_price >= sub.price_minor:
        applier.apply(ctx, plan)
        return
    outcome = ctx.decide(
        customer.id,
        decide_tier_move,
        ctx.facts.subscription(sub),
        ctx.money(new_price),
        ctx.local(fell_at),
        ctx.now,
    )
    plan.record(ctx.decided_of(customer.id, outcome.decision))
    plan.change(Rows.SUBSCRIPTIONS, sub.id, price_minor=new_price)
    if outcome.charge:
        credited = ctx.session.scalar(
            select(InvoiceRow.id)
            .where(InvoiceRow.subscription_id == sub.id)
            .order_by(InvoiceRow.number.desc())
            .limit(1)
        )
        reason = (
            f"{tiers.tier_metric or 'usage'} fell below the tier on {ctx.merchant.day(fell_at)}"
        )
        clauses = outcome.decision.clauses
        s = billing.setting(ctx)
        plan_credit_note(plan, s, customer.id, outcome.charge, reason, credited, clauses)
    applier.apply(ctx, plan)


# -- time-driven ----------------------------------------------------------------------------
def advance(ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow) -> None:
    """What is due at the subscription's next boundary: trial end, cancellation taking
    effect, or renewal. Idempotent: does nothing before the boundary."""
    now = ctx.now
    if sub.status not in LIVE:
        return
    if sub.cancel_at is not None and sub.cancel_at <= now:
        end_subscription(ctx, customer, sub, SubscriptionStatus.CANCELED, at=sub.cancel_at)
        return
    if sub.current_period_end > now:
        return
    if sub.status == SubscriptionStatus.TRIALING:
        _end_trial(ctx, customer, sub)
        return
    if sub.status == SubscriptionStatus.SUSPENDED:
        return  # a suspended subscription is not billed; payment reactivates it
    _renew(ctx, customer, sub)


def _end_trial(ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow) -> None:
    rule = ctx.policy.first(Trials)
    if sub.payment_method is None or (rule is not None and not rule.converts_automatically):
        # "After trial expiration, you must purchase a paid plan to continue."
        end_subscription(ctx, customer, sub, SubscriptionStatus.EXPIRED)
        return
    interval = Interval(ctx.plan(sub.plan_code).interval_months)
    period = period_at(ctx.local(sub.anchor), interval, 0)
    plan = Plan()
    plan.change(
        Rows.SUBSCRIPTIONS,
        sub.id,
        status=transition(sub.status, SubscriptionStatus.ACTIVE),
        current_period_start=period.start,
        current_period_end=period.end,
    )
    _bill_period(ctx, customer, sub, plan=plan, period=period)


def _renew(ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow) -> None:
    """The next period, on the pending plan if one waits: ``plans.billing.plan_renewal``,
    the planner the daily cycle's chunks use too. Newer terms are accepted with it (the
    dunning step of a failed collection decides under them: ``_bill_period`` forgets the
    terms it knew once the renewal is written)."""
    moving = policies.moving_on_renewal(ctx.session, ctx.version_id, [sub.id])
    code = sub.pending_plan or sub.plan_code
    plan = Plan()
    renewal = Renewal(
        subscription_id=sub.id,
        plan_code=code,
        switch=sub.pending_plan is not None,
        interval=Interval(ctx.plan(code).interval_months),
        anchor=ctx.local(sub.anchor),
        period_end=ctx.local(sub.current_period_end),
        accepts=ctx.version_id if moving else None,
    )
    period = plan_renewal(plan, renewal)
    _bill_period(ctx, customer, sub, plan=plan, plan_code=code, period=period)


def skip_suspended_periods(ctx: Ctx, sub: SubscriptionRow) -> None:
    """On reactivation: periods that began and ended while suspended are not billed; the
    next renewal bills the period containing now."""
    if sub.current_period_end > ctx.now:
        return
    anchor, interval = ctx.local(sub.anchor), Interval(ctx.plan(sub.plan_code).interval_months)
    index = period_index(anchor, interval, ctx.now)
    previous = period_at(anchor, interval, index - 1)
    plan = Plan()
    plan.change(
        Rows.SUBSCRIPTIONS,
        sub.id,
        current_period_start=previous.start,
        current_period_end=previous.end,
    )
    applier.apply(ctx, plan)


def next_due(sub: SubscriptionRow) -> datetime | None:
    if sub.status not in LIVE:
        return None
    candidates = [t for t in (sub.cancel_at, sub.next_retry_at, sub.usage_check_at) if t]
    if sub.status != SubscriptionStatus.SUSPENDED:
        candidates.append(sub.current_period_end)
    return min(candidates) if candidates else None
