"""Subscriptions: create, cancel, change plan, usage, and preview (decide, don't apply)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from fairbill.api.deps import Caller, Db, Principal, customer_for, merchant_ctx, need, runtime
from fairbill.api.mutation import Body, merchant_work, mutate
from fairbill.api.pagination import page
from fairbill.api.problems import GATEWAY_RESPONSES, Problem, not_found
from fairbill.api.schemas import CancelIn, ChangePlanIn, PreviewIn, SubscriptionIn, UsageIn
from fairbill.api.settings import Runtime
from fairbill.decisions.cancellation import decide_cancel
from fairbill.decisions.plan_change import decide_plan_change
from fairbill.ids import Prefix
from fairbill.services import subscriptions as service
from fairbill.services.context import Ctx
from fairbill.services.views import Fmt, decision_view, subscription_view
from fairbill.store.tables import CustomerRow, DecisionRow, SubscriptionRow

router = APIRouter(prefix="/v1", tags=["subscriptions"], responses=GATEWAY_RESPONSES)
Rt = Annotated[Runtime, Depends(runtime)]


def load(ctx: Ctx, who: Principal, sub_id: str) -> tuple[CustomerRow, SubscriptionRow]:
    """The caller's subscription ``sub_N``; anything else is 404 (nothing leaks)."""
    number = ctx.ids.private(Prefix.SUBSCRIPTION, sub_id)
    if number is None:
        raise not_found(f"no subscription {sub_id!r}")
    # One statement for both rows (a hot path: every read, preview and change of one).
    found = ctx.session.execute(
        select(SubscriptionRow, CustomerRow)
        .join(CustomerRow, CustomerRow.id == SubscriptionRow.customer_id)
        .where(SubscriptionRow.id == number)
    ).one_or_none()
    sub, customer = (found[0], found[1]) if found is not None else (None, None)
    if (
        sub is None
        or customer is None
        or customer.merchant_id != ctx.merchant_row.id
        or (who.kind == "portal" and customer.id != who.customer_id)
    ):
        raise not_found(f"no subscription {sub_id!r}")
    return customer, sub


def view(ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow) -> dict[str, Any]:
    version = sub.policy_version_id
    accepted = ctx.ids.public(Prefix.POLICY_VERSION, version) if version else None
    return subscription_view(Fmt(ctx), sub) | {
        "customer": customer.code,
        "policy_version_id": accepted,  # the terms its customer accepted
    }


def _last_decision(ctx: Ctx, customer: CustomerRow) -> dict[str, Any] | None:
    row = ctx.session.scalar(
        select(DecisionRow)
        .where(DecisionRow.customer_id == customer.id)
        .order_by(DecisionRow.id.desc())
        .limit(1)
    )
    if row is None:
        return None
    return {
        "action": row.action,
        "outcome": row.outcome,
        "amount": ctx.money(row.amount_minor).text(),
        "reasons": row.reasons,
        "clauses": row.clauses,
        "explanation": row.explanation,
        "policy_version": row.policy_version,
        "policy_version_id": (
            ctx.ids.public(Prefix.POLICY_VERSION, row.policy_version_id)
            if row.policy_version_id
            else None
        ),
    }


@router.post("/subscriptions", status_code=201)
def create(body: SubscriptionIn, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    need(who, "subscribe")

    def work(ctx: Ctx) -> tuple[str, Body]:
        customer = customer_for(ctx, who, body.customer)
        sub = service.subscribe(
            ctx,
            customer,
            body.plan,
            payment_method=body.payment_method,
            trial_days=body.trial_days,
            promotion=body.promotion,
            usage=body.usage,
        )
        return f"subscription:{ctx.ids.public(Prefix.SUBSCRIPTION, sub.id)}", lambda: view(
            ctx, customer, sub
        )

    return mutate(
        request,
        rt,
        who,
        "subscription.create",
        body.model_dump(),
        merchant_work(rt, who, work),
        201,
    )


@router.get("/subscriptions")
def list_subscriptions(
    session: Db,
    rt: Rt,
    who: Caller,
    status: str | None = None,
    customer: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    query = (
        select(SubscriptionRow)
        .join(CustomerRow, CustomerRow.id == SubscriptionRow.customer_id)
        .where(CustomerRow.merchant_id == ctx.merchant_row.id)
    )
    if who.kind == "portal":
        query = query.where(CustomerRow.id == who.customer_id)
    if customer:
        query = query.where(CustomerRow.code == customer)
    if status:
        query = query.where(SubscriptionRow.status == status)

    def render(sub: SubscriptionRow) -> dict[str, Any]:
        return view(ctx, session.get_one(CustomerRow, sub.customer_id), sub)

    return page(ctx, query, SubscriptionRow, limit, cursor, render)


@router.get("/subscriptions/{sub_id}")
def get_subscription(sub_id: str, session: Db, rt: Rt, who: Caller) -> dict[str, Any]:
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    customer, sub = load(ctx, who, sub_id)
    return view(ctx, customer, sub)


@router.post("/subscriptions/{sub_id}/cancel")
def cancel(sub_id: str, body: CancelIn, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    need(who, "cancel")

    def work(ctx: Ctx) -> tuple[str, Body]:
        customer, sub = load(ctx, who, sub_id)
        outcome = service.cancel(
            ctx,
            customer,
            sub,
            immediately=body.immediately,
            channel=body.channel or ("portal" if who.kind == "portal" else "support"),
            reason=body.reason,
        )
        ctx.session.flush()
        decision = decision_view(Fmt(ctx), outcome.decision)
        return (
            f"subscription:{ctx.ids.public(Prefix.SUBSCRIPTION, sub.id)}",
            lambda: view(ctx, customer, sub) | {"decision": decision},
        )

    return mutate(
        request, rt, who, "subscription.cancel", body.model_dump(), merchant_work(rt, who, work)
    )


@router.post("/subscriptions/{sub_id}/change_plan")
def change_plan(
    sub_id: str, body: ChangePlanIn, request: Request, rt: Rt, who: Caller
) -> JSONResponse:
    need(who, "change_plan")

    def work(ctx: Ctx) -> tuple[str, Body]:
        customer, sub = load(ctx, who, sub_id)
        service.change_plan(ctx, customer, sub, body.plan)
        ctx.session.flush()
        decision = _last_decision(ctx, customer)
        return (
            f"subscription:{ctx.ids.public(Prefix.SUBSCRIPTION, sub.id)}",
            lambda: view(ctx, customer, sub) | {"decision": decision},
        )

    return mutate(
        request,
        rt,
        who,
        "subscription.change_plan",
        body.model_dump(),
        merchant_work(rt, who, work),
    )


@router.post("/subscriptions/{sub_id}/usage")
def usage(sub_id: str, body: UsageIn, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    need(who, "usage")

    def work(ctx: Ctx) -> tuple[str, Body]:
        customer, sub = load(ctx, who, sub_id)
        service.record_usage(ctx, customer, sub, body.value)
        ctx.session.flush()
        return (
            f"subscription:{ctx.ids.public(Prefix.SUBSCRIPTION, sub.id)}",
            lambda: view(ctx, customer, sub) | {"usage_level": sub.usage_level},
        )

    return mutate(
        request, rt, who, "subscription.usage", body.model_dump(), merchant_work(rt, who, work)
    )


@router.post("/subscriptions/{sub_id}/preview")
def preview(sub_id: str, body: PreviewIn, session: Db, rt: Rt, who: Caller) -> dict[str, Any]:
    """What a cancel or plan change would do now, decided by the policy, without doing it."""
    need(who, "preview")
    ctx = merchant_ctx(session, rt, who)
    _, sub = load(ctx, who, sub_id)
    facts = ctx.facts.subscription(sub)
    if body.action == "cancel":
        outcome = decide_cancel(ctx.merchant, facts, ctx.now, immediately=body.immediately)
        return {
            "action": "cancel",
            "ends_at": ctx.local(outcome.ends_at).isoformat(),
            "decision": decision_view(Fmt(ctx), outcome.decision),
        }
    if body.plan is None:
        raise Problem(
            422,
            "validation_error",
            "Validation error",
            "a plan change needs a plan",
            errors=[{"field": "plan", "message": "required for change_plan"}],
        )
    plan = ctx.plan(body.plan)
    new_price = ctx.money(service.tier_price_minor(plan, sub.usage_level))
    change = decide_plan_change(ctx.merchant, facts, new_price, plan.code, ctx.now)
    return {
        "action": "change_plan",
        "mode": change.mode,
        "charge_now": change.charge.text(),
        "decision": decision_view(Fmt(ctx), change.decision),
    }
