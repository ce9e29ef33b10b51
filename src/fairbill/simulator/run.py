"""Replay a scenario through the real services on an in-memory database and test clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fairbill.errors import FairbillError, Location, ScenarioError
from fairbill.gateway.sandbox import SandboxGateway
from fairbill.services import (
    accounts,
    credits,
    fx,
    merchants,
    operations,
    policies,
    refunds,
    scheduler,
    subscriptions,
)
from fairbill.services.clock import TestClock
from fairbill.services.context import Ctx
from fairbill.simulator.result import build_result
from fairbill.simulator.scenario import Event, Scenario
from fairbill.store.db import create_schema, make_engine, session_factory
from fairbill.store.tables import (
    CustomerRow,
    InvoiceRow,
    MerchantRow,
    PaymentRow,
    SubscriptionRow,
)

# Far more than any scenario needs; a scheduler that stops making progress is a bug.
MAX_STEPS = 100_000


def simulate(scenario: Scenario) -> dict[str, Any]:
    with replayed(scenario) as (ctx, customer):
        return build_result(ctx, customer, scenario)


@contextmanager
def replayed(scenario: Scenario) -> Iterator[tuple[Ctx, CustomerRow]]:
    """The scenario's history replayed on its own in-memory database: the unit of work
    (its session, merchant and stored decisions) and the customer, at ``until``. What
    ``simulate`` reports on, and what ``fairbill whatif`` decides again; the database is
    gone when the block ends."""
    engine = make_engine("sqlite://")
    create_schema(engine)
    try:
        with session_factory(engine)() as session:
            clock = TestClock(scenario.start)
            merchant = _merchant(session, scenario)
            version_id = policies.store_published(
                session, merchant, scenario.policy, at=scenario.start, by="scenario"
            )
            ctx = Ctx(session, clock, SandboxGateway(), merchant, scenario.policy, version_id)
            customer = _customer(ctx, scenario)
            for rate in scenario.fx:
                fx.record_rate(ctx, rate.base, rate.quote, rate.at, rate.rate)
            session.commit()
            for event in scenario.events:
                _run_until(ctx, clock, event.at)
                clock.advance_to(event.at)
                _apply(ctx, customer, event)
            _run_until(ctx, clock, scenario.until)
            clock.advance_to(max(scenario.until, clock.now()))
            yield ctx, customer
    finally:
        engine.dispose()


def _run_until(ctx: Ctx, clock: TestClock, target: datetime) -> None:
    for _ in range(MAX_STEPS):
        due = scheduler.next_due(ctx)
        if due is None or due > target:
            return
        clock.advance_to(max(due, clock.now()))
        report = scheduler.run_due(ctx)
        if report.failed:
            # A server records a failing item and goes on; a replay must not hide it.
            raise FairbillError(f"a scheduled job failed at {due.isoformat()}: {report.failed}")
        operations.commit_and_settle(ctx)
        if scheduler.next_due(ctx) == due:
            raise FairbillError(f"the scheduler made no progress at {due.isoformat()}")
    raise FairbillError("the scheduler did not settle")


SIMULATION_ID_KEY = "0" * 32


def _merchant(session: Session, sc: Scenario) -> MerchantRow:
    row = merchants.add_merchant(
        session,
        sc.policy,
        name=sc.policy.name,
        policy_ref=sc.policy.id,
        currency=sc.currency,
        timezone=str(sc.timezone),
        country=sc.country,
        # A replay gives the same result, ids included: a simulation's ids name rows of a
        # database that lives as long as the run, so they need no secret key.
        id_key=SIMULATION_ID_KEY,
    )
    for plan in sc.catalog.plans:
        merchants.add_plan(session, row, plan.model_dump())
    for product in sc.catalog.products:
        merchants.add_product(session, row, product.model_dump())
    for promo in sc.catalog.promotions:
        merchants.add_promotion(session, row, promo.model_dump())
    return row


def _customer(ctx: Ctx, sc: Scenario) -> CustomerRow:
    spec = sc.customer
    row = merchants.create_customer(ctx.session, ctx.merchant_row, spec.model_dump())
    for pm in spec.payment_methods:
        # Given as written, not defaulted: a scenario's method type is any text.
        merchants.add_given_payment_method(
            ctx.session,
            row,
            code=pm.id,
            type=pm.type,
            currency=pm.currency or sc.currency,
            token=f"tok_{row.id}_{pm.id}",
        )
    return row


def _apply(ctx: Ctx, customer: CustomerRow, event: Event) -> None:
    """One event, one transaction: it commits whole or, on an error, not at all."""
    handler = _HANDLERS[event.action]
    try:
        handler(ctx, customer, event.params)
        operations.commit_and_settle(ctx)
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


def _sub(ctx: Ctx, customer: CustomerRow) -> SubscriptionRow:
    return subscriptions.the_subscription(ctx, customer)


# Each handler turns one parsed action (``p``) into one service call.
def _subscribe(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    subscriptions.subscribe(
        ctx,
        c,
        p.plan,
        payment_method=p.payment_method,
        trial_days=p.trial_days,
        promotion=p.promotion,
        usage=p.usage,
    )


def _cancel(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    subscriptions.cancel(
        ctx,
        c,
        _sub(ctx, c),
        immediately=p.immediately,
        channel=str(p.channel) if p.channel else None,
        reason=p.reason,
    )


def _change_plan(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    subscriptions.change_plan(ctx, c, _sub(ctx, c), p.plan)


def _usage(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    subscriptions.record_usage(ctx, c, _sub(ctx, c), p.value)


def _activity(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    accounts.activity(ctx, c)


def _purchase(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    credits.purchase(ctx, c, p.product, p.quantity, p.payment_method)


def _consume(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    credits.consume(ctx, c, str(p.kind), p.quantity, str(p.failed) if p.failed else None)


def _payment_method(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    accounts.set_method_behaviour(ctx, c, p.id, p.declines)


def _pay_outstanding(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    accounts.pay_outstanding(ctx, c, p.payment_method)


def _refs(ctx: Ctx, c: CustomerRow, p: Any) -> tuple[PaymentRow | None, InvoiceRow | None]:
    payment = refunds.payment_by_number(ctx, c, p.payment) if p.payment is not None else None
    invoice = refunds.invoice_by_number(ctx, c, p.invoice) if p.invoice is not None else None
    return payment, invoice


def _billing_mistake(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    payment, invoice = _refs(ctx, c, p)
    accounts.billing_mistake(ctx, c, p.kind, p.amount, payment, invoice)


def _refund_request(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    payment, invoice = _refs(ctx, c, p)
    refunds.request_refund(
        ctx,
        c,
        p.kind,
        payment=payment,
        invoice=invoice,
        reason=p.reason,
        refund_to=p.refund_to,
        documents=tuple(p.documents),
        order_numbers=tuple(p.order_numbers),
    )


def _review(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    row = refunds.request_by_number(ctx, c, p.request)
    refunds.review(
        ctx,
        c,
        row,
        p.decision,
        amount=p.amount,
        destination=str(p.destination) if p.destination else None,
        fee_percent=p.fee_percent,
    )


def _appeal(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    refunds.appeal(ctx, c, refunds.request_by_number(ctx, c, p.request))


def _chargeback(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    payment = refunds.payment_by_number(ctx, c, p.payment)
    accounts.chargeback(ctx, c, payment, p.contacted_support_first)


def _dispute_closed(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    accounts.dispute_closed(ctx, c, refunds.payment_by_number(ctx, c, p.payment), p.outcome)


def _outage(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    accounts.outage(ctx, c, p.start, p.end, str(p.cause), p.reported_at)


def _terms_change(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    accounts.terms_change(ctx, c, p.material)


def _decline_terms(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    accounts.decline_terms(ctx, c)


def _violation(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    accounts.violation(ctx, c, p.kind)


def _close_account(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    accounts.close_account(ctx, c)


def _export_data(ctx: Ctx, c: CustomerRow, p: Any) -> None:
    accounts.export_data(ctx, c)


Handler = Callable[[Ctx, CustomerRow, Any], None]
_HANDLERS: dict[str, Handler] = {
    "subscribe": _subscribe,
    "cancel": _cancel,
    "change_plan": _change_plan,
    "usage": _usage,
    "activity": _activity,
    "purchase": _purchase,
    "consume_credits": _consume,
    "payment_method": _payment_method,
    "pay_outstanding": _pay_outstanding,
    "billing_mistake": _billing_mistake,
    "refund_request": _refund_request,
    "review": _review,
    "appeal": _appeal,
    "chargeback": _chargeback,
    "dispute_closed": _dispute_closed,
    "outage": _outage,
    "terms_change": _terms_change,
    "decline_terms": _decline_terms,
    "violation": _violation,
    "close_account": _close_account,
    "export_data": _export_data,
}
