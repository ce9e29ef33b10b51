"""``billing_mistake`` takes real money (scenario contract): an overcharge or a wrong tier is
a charge of its own on the invoice, to the method that paid it, as the customer's next
payment; it is not revenue, and a billing-error refund about it gives back exactly the
excess, once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from fairbill.errors import ScenarioError
from fairbill.gateway.sandbox import SandboxGateway
from fairbill.ledger.accounts import Account
from fairbill.services.clock import TestClock
from fairbill.services.context import Ctx
from fairbill.simulator import run
from fairbill.simulator.result import build_result, ledger_balanced
from fairbill.simulator.scenario import Scenario, parse_scenario
from fairbill.store.db import create_schema, make_engine, session_factory
from fairbill.store.tables import (
    CustomerRow,
    InvoiceRow,
    JournalEntryRow,
    PaymentRow,
    RefundRow,
)

HEADER = """\
format: fairbill.scenario/1
name: billing mistakes take real money
merchant: {policy: conek}
catalog:
  plans:
    - {id: business-monthly, interval: month, price: "499.00"}
customer:
  id: cus_1
  type: business
  payment_methods: [{id: card_1, type: card}, {id: card_2, type: card}]
start: 2026-04-01T10:00
until: 2026-04-20
"""


def event(at: str, action: str) -> str:
    return f"  - {{at: {at}, {action}}}\n"


SUBSCRIBE = event("2026-04-01T10:00", "subscribe: {plan: business-monthly, payment_method: card_1}")
OVERCHARGE = event(
    "2026-04-01T10:05", 'billing_mistake: {kind: overcharge, invoice: 1, amount: "100.00"}'
)
CARD_1_DECLINES = event("2026-04-01T10:00", "payment_method: {id: card_1, declines: true}")


@dataclass
class Played:
    """A scenario replayed as ``simulate`` does, with its database still open."""

    ctx: Ctx
    customer: CustomerRow
    scenario: Scenario

    def payments(self) -> list[PaymentRow]:
        query = select(PaymentRow).where(PaymentRow.customer_id == self.customer.id)
        return list(self.ctx.session.scalars(query.order_by(PaymentRow.number)))

    def invoice(self, number: int) -> InvoiceRow:
        query = select(InvoiceRow).where(
            InvoiceRow.customer_id == self.customer.id, InvoiceRow.number == number
        )
        return self.ctx.session.scalars(query).one()

    def refunds(self) -> list[RefundRow]:
        query = select(RefundRow).where(RefundRow.customer_id == self.customer.id)
        return list(self.ctx.session.scalars(query.order_by(RefundRow.id)))

    def balances(self) -> dict[str, int]:
        """The customer's journal balance per account, in minor units (debit > 0)."""
        rows = self.ctx.session.execute(
            select(JournalEntryRow.account, func.sum(JournalEntryRow.amount_minor))
            .where(JournalEntryRow.customer_id == self.customer.id)
            .group_by(JournalEntryRow.account)
        ).all()
        return {account: int(total) for account, total in rows if total}


@pytest.fixture
def play() -> Iterator[Callable[[str], Played]]:
    """Replay events after ``HEADER`` the way ``run.simulate`` does, keeping the database."""
    opened: list[tuple[Session, Engine]] = []

    def _play(events: str) -> Played:
        scenario = parse_scenario(HEADER + "events:\n" + events, "<test>")
        engine = make_engine("sqlite://")
        create_schema(engine)
        session = session_factory(engine)()
        opened.append((session, engine))
        clock = TestClock(scenario.start)
        merchant = run._merchant(session, scenario)
        ctx = Ctx(session, clock, SandboxGateway(), merchant, scenario.policy)
        customer = run._customer(ctx, scenario)
        session.commit()
        for step in scenario.events:
            run._run_until(ctx, clock, step.at)
            clock.advance_to(step.at)
            run._apply(ctx, customer, step)
        run._run_until(ctx, clock, scenario.until)
        clock.advance_to(max(scenario.until, clock.now()))
        return Played(ctx, customer, scenario)

    yield _play
    for session, engine in opened:
        session.close()
        engine.dispose()


def test_an_overcharge_is_a_payment_of_its_own_and_not_revenue(
    play: Callable[[str], Played],
) -> None:
    world = play(SUBSCRIBE + OVERCHARGE)
    first, excess = world.payments()
    assert (first.number, first.amount_minor, first.is_duplicate) == (1, 49900, False)
    assert (excess.number, excess.amount_minor, excess.method) == (2, 10000, "card_1")
    assert excess.invoice_id == first.invoice_id and excess.is_duplicate
    assert excess.gateway_ref and excess.gateway_ref != first.gateway_ref
    invoice = world.invoice(1)
    # The invoice asked for 499.00 and got it; the 100.00 on top is owed back.
    assert (invoice.amount_paid_minor, invoice.status) == (49900, "paid")
    assert invoice.overcharge_minor == 0
    assert world.balances() == {
        str(Account.CASH): 59900,
        str(Account.REVENUE): -49900,
        str(Account.RECEIVABLE): -10000,
    }
    assert ledger_balanced(world.ctx)


def test_a_billing_error_refund_gives_back_exactly_the_excess_once(
    play: Callable[[str], Played],
) -> None:
    world = play(
        SUBSCRIBE
        + OVERCHARGE
        + event("2026-04-09T11:00", "refund_request: {kind: billing_error, payment: 2, reason: x}")
        + event("2026-04-10T11:00", "refund_request: {kind: overpayment, payment: 2, reason: x}")
    )
    [refund] = world.refunds()
    excess = world.payments()[1]
    assert (refund.payment_id, refund.amount_minor, refund.destination) == (
        excess.id,
        10000,
        "original_method",
    )
    assert (excess.refunded_minor, world.payments()[0].refunded_minor) == (10000, 0)
    # Back where a correct charge would have left the books: no refund of revenue.
    assert world.balances() == {str(Account.CASH): 49900, str(Account.REVENUE): -49900}
    result = build_result(world.ctx, world.customer, world.scenario)
    assert [(r["decision"], r["amount"]) for r in result["requests"]] == [
        ("approved", "100.00"),
        ("declined", "0.00"),
    ]
    assert result["ledger"] == {"balanced": True}


def test_a_wrong_tier_is_charged_to_the_method_that_paid_the_invoice(
    play: Callable[[str], Played],
) -> None:
    """card_1 declined the invoice and card_2 paid it: the mistake takes card_2's money."""
    world = play(
        CARD_1_DECLINES
        + SUBSCRIBE
        + event("2026-04-01T11:00", "pay_outstanding: {payment_method: card_2}")
        + event(
            "2026-04-02T10:00", "billing_mistake: {kind: wrong_tier, invoice: 1, amount: '60.00'}"
        )
        + event(
            "2026-04-03T10:00", "billing_mistake: {kind: overcharge, payment: 1, amount: '5.00'}"
        )
    )
    assert [(p.number, p.amount_minor, p.method, p.is_duplicate) for p in world.payments()] == [
        (1, 49900, "card_2", False),
        (2, 6000, "card_2", True),
        (3, 500, "card_2", True),
    ]
    assert world.invoice(1).amount_paid_minor == 49900


def test_an_overcharge_on_an_invoice_nobody_paid_is_refused() -> None:
    """There is no method that paid it: the file is wrong, not the engine."""
    text = (
        HEADER
        + "events:\n"
        + CARD_1_DECLINES
        + SUBSCRIBE
        + event(
            "2026-04-02T10:00", "billing_mistake: {kind: overcharge, invoice: 1, amount: '5.00'}"
        )
    )
    with pytest.raises(ScenarioError, match="invoice 1 was paid by no payment method"):
        run.simulate(parse_scenario(text, "<test>"))
