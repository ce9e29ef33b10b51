"""Merchants (platform admin), API keys, catalog, and the test clock."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from fairbill.api.deps import Caller, Db, merchant_ctx, need, runtime
from fairbill.api.mutation import Done, merchant_work, mutate
from fairbill.api.problems import RESPONSES, Problem, forbidden
from fairbill.api.schemas import MerchantIn, MerchantUpdateIn, PlanIn, ProductIn, PromotionIn, dec
from fairbill.api.settings import Runtime
from fairbill.services import merchants as service
from fairbill.services import operations, scheduler
from fairbill.services.clock import TestClock
from fairbill.services.context import Ctx
from fairbill.store.tables import MerchantRow, PlanRow, ProductRow, PromotionRow

router = APIRouter(prefix="/v1", tags=["merchants and catalog"], responses=RESPONSES)
Rt = Annotated[Runtime, Depends(runtime)]


def merchant_view(m: MerchantRow) -> dict[str, Any]:
    return {
        "id": m.id,
        "name": m.name,
        "policy": {"id": m.policy_id, "version": m.policy_version},
        "currency": m.currency,
        "timezone": m.timezone,
        "country": m.country,
        "language": m.language,
        "finance_email": m.finance_email,
    }


@router.post("/merchants", status_code=201)
def create_merchant(body: MerchantIn, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    """Platform admin only: a merchant with one API key per role (shown once)."""
    if who.kind != "admin":
        raise forbidden("only the platform operator creates merchants")
    # ``MerchantIn`` has checked the currency, timezone and country given (an unknown zone
    # or country made every later call of the merchant a 500); the policy's own are
    # checked where it is validated.

    def work(session: Session) -> Done:
        row, keys = service.create_merchant(
            session,
            rt.clock.now(),
            name=body.name,
            policy_ref=body.policy,
            policy_text=body.policy_text,
            currency=body.currency,
            timezone=body.timezone,
            country=body.country,
            finance_email=body.finance_email,
        )
        view = merchant_view(row) | {"api_keys": {k.role: k.key for k in keys}}
        return Done(f"merchant:{row.id}", view, row.id)

    return mutate(request, rt, who, "merchant.create", body.model_dump(), work, 201)


@router.get("/merchant")
def current_merchant(session: Db, rt: Rt, who: Caller) -> dict[str, Any]:
    need(who, "read")
    view = merchant_view(merchant_ctx(session, rt, who).merchant_row)
    if who.kind == "portal":
        del view["finance_email"]  # the merchant's staff contact, not the customer's business
    return view


@router.post("/merchant")
def update_merchant(body: MerchantUpdateIn, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    """Change the merchant's settings (the fields given; null clears one): today the
    finance address that alerts such as failing scheduled jobs go to."""
    # The merchant's own settings are its admins' business, as its credentials are.
    need(who, "keys")
    given = body.model_dump(include=body.model_fields_set)

    def work(ctx: Ctx) -> tuple[str, dict[str, Any]]:
        if "finance_email" in given:
            service.set_finance_email(ctx.merchant_row, body.finance_email)
        return f"merchant:{ctx.merchant_row.id}", merchant_view(ctx.merchant_row)

    return mutate(request, rt, who, "merchant.update", given, merchant_work(rt, who, work))


def plan_view(ctx: Ctx, p: PlanRow) -> dict[str, Any]:
    return {
        "id": p.code,
        "interval_months": p.interval_months,
        "price": ctx.money(p.price_minor).text() if p.price_minor is not None else None,
        "commitment_months": p.commitment_months,
        "includes": p.includes,
        "tiers": {
            "metric": p.tier_metric,
            "levels": [
                {"up_to": t["up_to"], "price": ctx.money(t["price_minor"]).text()} for t in p.tiers
            ],
        }
        if p.tiers
        else None,
    }


def _catalog_body(body: PlanIn | ProductIn | PromotionIn) -> dict[str, Any]:
    data = body.model_dump()
    for field in ("price", "amount_off"):
        if field in data:
            data[field] = dec(data[field])
    if data.get("tiers"):
        data["tiers"]["levels"] = [
            {"up_to": lvl["up_to"], "price": dec(lvl["price"])} for lvl in data["tiers"]["levels"]
        ]
    return data


@router.post("/plans", status_code=201)
def create_plan(body: PlanIn, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    need(who, "catalog")
    if (body.price is None) == (body.tiers is None):
        raise Problem(
            422,
            "validation_error",
            "Validation error",
            "a plan has either a price or tiers",
            errors=[{"field": "price", "message": "give price or tiers, not both"}],
        )

    def work(ctx: Ctx) -> tuple[str, dict[str, Any]]:
        row = service.add_plan(ctx.session, ctx.merchant_row, _catalog_body(body))
        return f"plan:{row.code}", plan_view(ctx, row)

    return mutate(
        request, rt, who, "plan.create", body.model_dump(), merchant_work(rt, who, work), 201
    )


@router.get("/plans")
def list_plans(session: Db, rt: Rt, who: Caller) -> dict[str, Any]:
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    rows = session.scalars(
        select(PlanRow).where(PlanRow.merchant_id == ctx.merchant_row.id).order_by(PlanRow.id)
    )
    return {"data": [plan_view(ctx, p) for p in rows], "has_more": False, "next_cursor": None}


@router.post("/products", status_code=201)
def create_product(body: ProductIn, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    need(who, "catalog")

    def work(ctx: Ctx) -> tuple[str, dict[str, Any]]:
        row = service.add_product(ctx.session, ctx.merchant_row, _catalog_body(body))
        return f"product:{row.code}", _product_view(ctx, row)

    return mutate(
        request, rt, who, "product.create", body.model_dump(), merchant_work(rt, who, work), 201
    )


def _product_view(ctx: Ctx, p: ProductRow) -> dict[str, Any]:
    return {
        "id": p.code,
        "kind": p.kind,
        "quantity": p.quantity,
        "credit_kind": p.credit_kind,
        "price": ctx.money(p.price_minor).text(),
    }


@router.get("/products")
def list_products(session: Db, rt: Rt, who: Caller) -> dict[str, Any]:
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    rows = session.scalars(
        select(ProductRow)
        .where(ProductRow.merchant_id == ctx.merchant_row.id)
        .order_by(ProductRow.id)
    )
    return {"data": [_product_view(ctx, p) for p in rows], "has_more": False, "next_cursor": None}


@router.post("/promotions", status_code=201)
def create_promotion(body: PromotionIn, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    need(who, "catalog")

    def work(ctx: Ctx) -> tuple[str, dict[str, Any]]:
        row = service.add_promotion(ctx.session, ctx.merchant_row, _catalog_body(body))
        return f"promotion:{row.code}", _promotion_view(ctx, row)

    return mutate(
        request, rt, who, "promotion.create", body.model_dump(), merchant_work(rt, who, work), 201
    )


def _promotion_view(ctx: Ctx, p: PromotionRow) -> dict[str, Any]:
    return {
        "id": p.code,
        "percent_off": p.percent_off,
        "amount_off": ctx.money(p.amount_off_minor).text()
        if p.amount_off_minor is not None
        else None,
        "duration_periods": p.duration_periods,
    }


@router.get("/promotions")
def list_promotions(session: Db, rt: Rt, who: Caller) -> dict[str, Any]:
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    rows = session.scalars(
        select(PromotionRow)
        .where(PromotionRow.merchant_id == ctx.merchant_row.id)
        .order_by(PromotionRow.id)
    )
    return {"data": [_promotion_view(ctx, p) for p in rows], "has_more": False, "next_cursor": None}


@router.post("/test_clock/advance")
def advance_test_clock(to: datetime, rt: Rt, who: Caller) -> dict[str, Any]:
    """Platform admin, test mode only: move the clock forward and run what became due."""
    if who.kind != "admin":
        raise forbidden("only the platform operator moves the test clock")
    if not isinstance(rt.clock, TestClock):
        raise Problem(
            409, "not_test_mode", "Not in test mode", "the server runs on the system clock"
        )
    if to.tzinfo is None:
        raise Problem(
            422,
            "validation_error",
            "Validation error",
            "give an offset",
            errors=[{"field": "to", "message": "a time with an offset"}],
        )
    if to < rt.clock.now():
        raise Problem(
            409,
            "clock_backwards",
            "Clock cannot go back",
            f"the clock is at {rt.clock.now().isoformat()}",
        )
    ran = run_due_until(rt, to)
    return {"now": rt.clock.now().isoformat(), "steps": ran}


def run_due_until(rt: Runtime, target: datetime) -> int:
    """Advance a test clock to ``target``, running every due job at its own instant."""
    assert isinstance(rt.clock, TestClock)
    steps = 0
    with rt.sessions() as session:
        merchant_ids = list(session.scalars(select(MerchantRow.id)))
    while True:
        due_times = []
        for mid in merchant_ids:
            with rt.sessions() as session:
                ctx = _ctx(session, rt, mid)
                due = scheduler.next_due(ctx)
                if due is not None and due <= target:
                    due_times.append(due)
        if not due_times or steps > 10_000:
            break
        rt.clock.advance_to(max(min(due_times), rt.clock.now()))
        operations.reconcile_all(rt.sessions, rt.clock, rt.gateway)
        for mid in merchant_ids:
            with rt.sessions() as session:
                ctx = _ctx(session, rt, mid)
                scheduler.run_due(ctx)
                operations.commit_and_settle(ctx)
        steps += 1
    rt.clock.advance_to(target)
    operations.reconcile_all(rt.sessions, rt.clock, rt.gateway)
    return steps


def _ctx(session: Session, rt: Runtime, merchant_id: int) -> Ctx:
    merchant = session.get_one(MerchantRow, merchant_id)
    return service.context(session, rt.clock, rt.gateway, merchant)
