"""Replay a scenario through the real services on an in-memory database and test clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fairbill.errors import FairbillError, Location, ScenarioError
from fairbill.gateway.sandbox import SandboxGateway
from fairbill.money import Money
from fairbill.services import accounts, credits, refunds, scheduler, subscriptions
from fairbill.services.clock import TestClock
from fairbill.services.context import Ctx
from fairbill.simulator.result import build_result
from fairbill.simulator.scenario import Event, Scenario
from fairbill.store.db import create_schema, make_engine, session_factory
from fairbill.store.tables import (
    CustomerRow,
    MerchantRow,
    PaymentMethodRow,
    PlanRow,
    ProductRow,
    PromotionRow,
)

# Far more than any scenario needs; a scheduler that stops making progress is a bug.
MAX_STEPS = 100_000


def simulate(scenario: Scenario) -> dict[str, Any]:
    engine = make_engine("sqlite://")
    create_schema(engine)
    try:
        with session_factory(engine)() as session:
            clock = TestClock(scenario.start)
            ctx = Ctx(session, clock, SandboxGateway(), _merchant(session, scenario),
                      scenario.policy)
            customer = _customer(ctx, scenario)
            session.commit()
            for event in scenario.events:
                _run_until(ctx, clock, event.at)
                clock.advance_to(event.at)
                _apply(ctx, customer, event)
            _run_until(ctx, clock, scenario.until)
            clock.advance_to(max(scenario.until, clock.now()))
            return build_result(ctx, customer, scenario)
    finally:
        engine.dispose()


def _run_until(ctx: Ctx, clock: TestClock, target: datetime) -> None:
    for _ in range(MAX_STEPS):
        due = scheduler.next_due(ctx)
        if due is None or due > target:
            return
        clock.advance_to(max(due, clock.now()))
        scheduler.run_due(ctx)
        ctx.session.commit()
        if scheduler.next_due(ctx) == due:
            raise FairbillError(f"the scheduler made no progress at {due.isoformat()}")
    raise FairbillError("the scheduler did not settle")


def _merchant(session: Session, sc: Scenario) -> MerchantRow:
    row = MerchantRow(name=sc.policy.name, policy_ref=sc.policy.id, policy_id=sc.policy.id,
                      policy_version=sc.policy.version, currency=sc.currency,
                      timezone=str(sc.timezone), country=sc.country, language=sc.policy.language)
    session.add(row)
    session.flush()
    money = lambda value: Money(value, sc.currency).minor  # noqa: E731
    for plan in sc.catalog.plans:
        session.add(PlanRow(
            merchant_id=row.id, code=plan.id, interval_months=plan.interval_months,
            price_minor=money(plan.price) if plan.price is not None else None,
            commitment_months=plan.commitment_months, includes=dict(plan.includes),
            tiers=[{"up_to": lvl.up_to, "price_minor": money(lvl.price)}
                   for lvl in plan.tiers.levels] if plan.tiers else None,
            tier_metric=plan.tiers.metric if plan.tiers else None))
    for product in sc.catalog.products:
        session.add(ProductRow(merchant_id=row.id, code=product.id, kind=product.kind,
                               quantity=product.quantity, credit_kind=product.credit_kind,
                               price_minor=money(product.price)))
    for promo in sc.catalog.promotions:
        session.add(PromotionRow(
            merchant_id=row.id, code=promo.id,
            percent_off=str(promo.percent_off) if promo.percent_off is not None else None,
            amount_off_minor=money(promo.amount_off) if promo.amount_off is not None else None,
            duration_periods=promo.duration_periods))
    return row


def _customer(ctx: Ctx, sc: Scenario) -> CustomerRow:
    spec = sc.customer
    row = CustomerRow(merchant_id=ctx.merchant_row.id, code=spec.id, type=spec.type,
                      acquisition=spec.acquisition, flags=list(spec.flags),
                      language=spec.language or sc.policy.language, status="active")
    ctx.session.add(row)
    ctx.session.flush()
    for pm in spec.payment_methods:
        ctx.session.add(PaymentMethodRow(customer_id=row.id, code=pm.id, type=pm.type,
                                         currency=pm.currency or sc.currency,
                                         token=f"tok_{row.id}_{pm.id}"))
    return row


def _apply(ctx: Ctx, customer: CustomerRow, event: Event) -> None:
    """One event, one transaction: it commits whole or, on an error, not at all."""
    handler = _HANDLERS[event.action]
    try:
        handler(ctx, customer, event)
        ctx.session.commit()
    except FairbillError as exc:
        ctx.session.rollback()
        if isinstance(exc, ScenarioError):
            raise
        raise ScenarioError([(_field(event, exc), str(exc))]) from exc


def _field(event: Event, exc: Exception) -> Location:
    text = str(exc)
    for name in ("payment", "invoice", "request", "plan", "product", "promotion"):
        if text.startswith(f"no {name}"):
            return event.loc(name)
    return event.location


def _sub(ctx: Ctx, customer: CustomerRow) -> Any:
    return subscriptions.the_subscription(ctx, customer)


def _subscribe(ctx: Ctx, c: CustomerRow, e: Event) -> None:
    p: Any = e.params
    subscriptions.subscribe(ctx, c, p.plan, payment_method=p.payment_method,
                            trial_days=p.trial_days, promotion=p.promotion, usage=p.usage)


def _cancel(ctx: Ctx, c: CustomerRow, e: Event) -> None:
    p: Any = e.params
    subscriptions.cancel(ctx, c, _sub(ctx, c), immediately=p.immediately,
                         channel=str(p.channel) if p.channel else None, reason=p.reason)


def _refund_request(ctx: Ctx, c: CustomerRow, e: Event) -> None:
    p: Any = e.params
    payment = refunds.payment_by_number(ctx, c, p.payment) if p.payment is not None else None
    invoice = refunds.invoice_by_number(ctx, c, p.invoice) if p.invoice is not None else None
    refunds.request_refund(ctx, c, p.kind, payment=payment, invoice=invoice, reason=p.reason,
                           refund_to=p.refund_to, documents=tuple(p.documents),
                           order_numbers=tuple(p.order_numbers))


def _review(ctx: Ctx, c: CustomerRow, e: Event) -> None:
    p: Any = e.params
    row = refunds.request_by_number(ctx, c, p.request)
    refunds.review(ctx, c, row, p.decision, amount=p.amount,
                   destination=str(p.destination) if p.destination else None,
                   fee_percent=p.fee_percent)


def _billing_mistake(ctx: Ctx, c: CustomerRow, e: Event) -> None:
    p: Any = e.params
    payment = refunds.payment_by_number(ctx, c, p.payment) if p.payment is not None else None
    invoice = refunds.invoice_by_number(ctx, c, p.invoice) if p.invoice is not None else None
    accounts.billing_mistake(ctx, c, p.kind, p.amount, payment, invoice)


def _outage(ctx: Ctx, c: CustomerRow, e: Event) -> None:
    p: Any = e.params
    accounts.outage(ctx, c, p.start, p.end, str(p.cause), p.reported_at)


Handler = Callable[[Ctx, CustomerRow, Event], None]
_HANDLERS: dict[str, Handler] = {
    "subscribe": _subscribe,
    "cancel": _cancel,
    "change_plan": lambda ctx, c, e: subscriptions.change_plan(ctx, c, _sub(ctx, c),
                                                               e.params.plan),  # type: ignore[union-attr]
    "usage": lambda ctx, c, e: subscriptions.record_usage(ctx, c, _sub(ctx, c),
                                                          e.params.value),  # type: ignore[union-attr]
    "activity": lambda ctx, c, e: accounts.activity(ctx, c),
    "purchase": lambda ctx, c, e: credits.purchase(
        ctx, c, e.params.product, e.params.quantity, e.params.payment_method),  # type: ignore[union-attr]
    "consume_credits": lambda ctx, c, e: credits.consume(
        ctx, c, str(e.params.kind), e.params.quantity,  # type: ignore[union-attr]
        str(e.params.failed) if e.params.failed else None),  # type: ignore[union-attr]
    "payment_method": lambda ctx, c, e: accounts.set_method_behaviour(
        ctx, c, e.params.id, e.params.declines),  # type: ignore[union-attr]
    "pay_outstanding": lambda ctx, c, e: accounts.pay_outstanding(
        ctx, c, e.params.payment_method),  # type: ignore[union-attr]
    "billing_mistake": _billing_mistake,
    "refund_request": _refund_request,
    "review": _review,
    "appeal": lambda ctx, c, e: refunds.appeal(
        ctx, c, refunds.request_by_number(ctx, c, e.params.request)),  # type: ignore[union-attr]
    "chargeback": lambda ctx, c, e: accounts.chargeback(
        ctx, c, refunds.payment_by_number(ctx, c, e.params.payment),  # type: ignore[union-attr]
        e.params.contacted_support_first),  # type: ignore[union-attr]
    "dispute_closed": lambda ctx, c, e: accounts.dispute_closed(
        ctx, c, refunds.payment_by_number(ctx, c, e.params.payment),  # type: ignore[union-attr]
        e.params.outcome),  # type: ignore[union-attr]
    "outage": _outage,
    "terms_change": lambda ctx, c, e: accounts.terms_change(
        ctx, c, e.params.material),  # type: ignore[union-attr]
    "decline_terms": lambda ctx, c, e: accounts.decline_terms(ctx, c),
    "violation": lambda ctx, c, e: accounts.violation(ctx, c, e.params.kind),  # type: ignore[union-attr]
    "close_account": lambda ctx, c, e: accounts.close_account(ctx, c),
    "export_data": lambda ctx, c, e: accounts.export_data(ctx, c) and None,
}
