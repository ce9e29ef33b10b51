"""Stateful property tests: random customer histories through the real services.

One ``RuleBasedStateMachine`` per bundled policy. Each run builds a merchant, a catalog and
a customer on an in-memory SQLite database (``World``), then applies random actions --
subscribe, cancel, change plan, usage, purchases, credits, card declines, payments,
refund requests and reviews, outages, billing mistakes, chargebacks, account closure --
while the test clock moves forward running every scheduled job at its own instant.

About half the runs (drawn at the start, so a failure shrinks to a run without them when
they play no part) may also break things: a gateway fault for the next charge or refund
(declined, no answer before or after the money moved, no connection), a process that dies
after committing a money-moving action and before the gateway call, and a restart (a new
session, the janitor run with no grace). The janitor also runs whenever time passes.

After every step the invariants of ``World.check_invariants`` must hold (balanced ledger,
refunds within payments and equal to the refund rows not failed, wallet never negative and
equal to its entries, no invoice after a subscription ended, every charge and refund the
gateway made recorded exactly once unless its operation is still open, no operation left
pending after a restart, ...). At the end of a run without faults, crashes or restarts the
recorded history is written out as a scenario file and replayed with ``simulate`` on a
fresh database: the result JSON must be identical (determinism). A run with them is not
replayed: the scenario format has no faults, so ``simulate`` cannot play it.

Business refusals are values, not exceptions; ``NotFound``/``Conflict`` for impossible
references roll the step back. Any other exception fails the test.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from fairbill.gateway.sandbox import Fault, FaultTarget
from fairbill.policy.model import DeliveryFailure, Destination, OutageCause, RequestKind
from fairbill.services import audit
from fairbill.simulator.run import simulate
from fairbill.simulator.scenario import parse_scenario

from .world import METHODS, PLANS, POLICY_IDS, World, base_text

# A deeper local hunt:
#   FAIRBILL_STATEFUL_EXAMPLES=300 FAIRBILL_STATEFUL_STEPS=50 pytest tests/services/test_stateful.py
# and ``make soak`` for the long one (≥ 100,000 steps per policy).
SETTINGS = settings(
    max_examples=int(os.environ.get("FAIRBILL_STATEFUL_EXAMPLES", "10")),
    stateful_step_count=int(os.environ.get("FAIRBILL_STATEFUL_STEPS", "20")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

methods = st.sampled_from(METHODS)
maybe_method = st.one_of(st.none(), methods)
index = st.integers(min_value=0, max_value=50)  # picks among what exists, modulo its count
cents = st.integers(min_value=1, max_value=60_000)
# Request kinds some policy grants in the states this machine reaches: drawn twice as often.
LIKELY_TO_PAY = [
    "money_back",
    "unused_period",
    "duplicate_charge",
    "billing_error",
    "cooling_off",
    "service_disruption",
]


# How the gateway fails (``slow`` answers right: nothing to see at the books).
FAULTS = [Fault.DECLINE, Fault.TIMEOUT_BEFORE, Fault.TIMEOUT_AFTER, Fault.CONNECTION_ERROR]
# Five refusals in a row make a refund ``failed`` (``operations.REFUND_TRIES``).
FAULT_TIMES = [1, 1, 1, 2, 5]
# The actions that request a charge or a refund, for a process to die after.
MONEY_MOVING = ["subscribe", "cancel", "refund_request", "pay_outstanding", "purchase"]


def money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


class BillingMachine(RuleBasedStateMachine):
    policy_id: ClassVar[str] = "kalenner"

    def __init__(self) -> None:
        super().__init__()
        self.world: World | None = None
        self.clean = True  # False while a step is running: teardown replays only clean runs
        self.faults = False  # whether this run may break the gateway and the process
        self.disturbed = False  # it did: no replay (``simulate`` knows no faults)

    @property
    def w(self) -> World:
        assert self.world is not None
        return self.world

    def do(self, action: str, params: dict[str, Any]) -> bool:
        self.clean = False
        return self.w.act(action, params)

    def disturb(self) -> None:
        self.clean = False
        self.disturbed = True

    def has(self, what: str) -> bool:
        return self.world is not None and bool(getattr(self.world, what)())

    def pick(self, rows: list[Any], i: int) -> Any:
        return rows[i % len(rows)]

    # -- setup -------------------------------------------------------------------------------
    @initialize(
        customer_type=st.sampled_from(["consumer", "business"]),
        acquisition=st.sampled_from(["self_serve", "direct_marketing"]),
        plan=st.sampled_from(PLANS),
        method=methods,
        usage=st.integers(min_value=0, max_value=12_000),
        faults=st.booleans(),
    )
    def start(
        self,
        customer_type: str,
        acquisition: str,
        plan: str,
        method: str,
        usage: int,
        faults: bool,
    ) -> None:
        header = base_text(self.policy_id, customer_type=customer_type, acquisition=acquisition)
        self.world = World(header)
        self.faults = faults
        params: dict[str, Any] = {"plan": plan, "payment_method": method}
        if plan == "tiered":
            params["usage"] = usage
        assert self.do("subscribe", params)
        self.clean = True

    # -- time ---------------------------------------------------------------------------------
    @rule(hours=st.integers(min_value=1, max_value=72))
    def advance_hours(self, hours: int) -> None:
        self.clean = False
        self.w.advance(timedelta(hours=hours))

    @rule(days=st.integers(min_value=1, max_value=45))
    def advance_days(self, days: int) -> None:
        self.clean = False
        self.w.advance(timedelta(days=days))

    # -- subscriptions ------------------------------------------------------------------------
    @precondition(lambda self: not self.has("live_subscriptions"))
    @rule(
        plan=st.sampled_from(PLANS),
        method=maybe_method,
        trial=st.sampled_from([None, None, 7]),
        usage=st.integers(min_value=0, max_value=12_000),
        promotion=st.booleans(),
    )
    def subscribe(
        self, plan: str, method: str | None, trial: int | None, usage: int, promotion: bool
    ) -> None:
        params: dict[str, Any] = {"plan": plan}
        if promotion:
            params["promotion"] = "WELCOME20"
        if method is not None:
            params["payment_method"] = method
        if trial is not None or method is None:
            params["trial_days"] = trial or 7
        if plan == "tiered":
            params["usage"] = usage
        self.do("subscribe", params)

    @precondition(lambda self: self.has("live_subscriptions"))
    @rule(
        immediately=st.booleans(),
        channel=st.sampled_from([None, "portal", "support", "written"]),
    )
    def cancel(self, immediately: bool, channel: str | None) -> None:
        params: dict[str, Any] = {"immediately": immediately}
        if channel:
            params["channel"] = channel
        self.do("cancel", params)

    @precondition(lambda self: self.has("live_subscriptions"))
    @rule(plan=st.sampled_from(PLANS))
    def change_plan(self, plan: str) -> None:
        self.do("change_plan", {"plan": plan})

    @precondition(lambda self: self.has("live_subscriptions"))
    @rule(value=st.integers(min_value=0, max_value=15_000))
    def usage(self, value: int) -> None:
        self.do("usage", {"metric": "contacts", "value": value})

    # -- one-time purchases and credits -------------------------------------------------------
    @rule(
        product=st.sampled_from(["sms-1000", "setup"]),
        quantity=st.integers(min_value=1, max_value=3),
        method=maybe_method,
    )
    def purchase(self, product: str, quantity: int, method: str | None) -> None:
        params: dict[str, Any] = {"product": product, "quantity": quantity}
        if method is not None:
            params["payment_method"] = method
        self.do("purchase", params)

    @rule(
        kind=st.sampled_from(["sms", "message"]),
        quantity=st.integers(min_value=1, max_value=1500),
        failed=st.one_of(st.none(), st.sampled_from([str(f) for f in DeliveryFailure])),
    )
    def consume_credits(self, kind: str, quantity: int, failed: str | None) -> None:
        params: dict[str, Any] = {"kind": kind, "quantity": quantity}
        if failed is not None:
            params["failed"] = failed
        self.do("consume_credits", params)

    # -- payments -----------------------------------------------------------------------------
    @rule(method=methods, declines=st.booleans())
    def card_declines(self, method: str, declines: bool) -> None:
        self.do("payment_method", {"id": method, "declines": declines})

    @rule(method=maybe_method)
    def pay_outstanding(self, method: str | None) -> None:
        self.do("pay_outstanding", {} if method is None else {"payment_method": method})

    # -- requests and reviews -----------------------------------------------------------------
    @rule(
        kind=st.sampled_from([*LIKELY_TO_PAY, *(str(k) for k in RequestKind)]),
        about=st.sampled_from(["payment", "payment", "invoice", None]),
        i=index,
        reason=st.sampled_from([None, "not what I expected", "charged twice"]),
        refund_to=st.one_of(st.none(), methods),
    )
    def refund_request(
        self, kind: str, about: str | None, i: int, reason: str | None, refund_to: str | None
    ) -> None:
        params: dict[str, Any] = {"kind": kind}
        if about == "payment" and self.w.count_payments():
            params["payment"] = i % self.w.count_payments() + 1
        elif about == "invoice" and self.w.count_invoices():
            params["invoice"] = i % self.w.count_invoices() + 1
        if reason is not None:
            params["reason"] = reason
        if refund_to is not None:
            params["refund_to"] = refund_to
        self.do("refund_request", params)

    @precondition(lambda self: self.has("requests"))
    @rule(
        i=index,
        only_pending=st.booleans(),
        decision=st.sampled_from(["accept", "approve", "decline"]),
        amount=st.one_of(st.none(), cents),
        destination=st.one_of(st.none(), st.sampled_from([str(d) for d in Destination])),
        fee_percent=st.sampled_from([None, "5", "18", "30"]),
    )
    def review(
        self,
        i: int,
        only_pending: bool,
        decision: str,
        amount: int | None,
        destination: str | None,
        fee_percent: str | None,
    ) -> None:
        pending = self.w.requests("in_review")
        rows = pending if only_pending and pending else self.w.requests()
        params: dict[str, Any] = {"request": self.pick(rows, i).number, "decision": decision}
        if decision == "approve":
            if amount is not None:
                params["amount"] = money(amount)
            if destination is not None:
                params["destination"] = destination
            if fee_percent is not None:
                params["fee_percent"] = fee_percent
        self.do("review", params)

    @rule(
        ended_hours_ago=st.integers(min_value=0, max_value=96),
        hours=st.integers(min_value=1, max_value=120),
        cause=st.sampled_from([str(c) for c in OutageCause]),
        reported_after=st.one_of(st.none(), st.integers(min_value=0, max_value=96)),
    )
    def outage(
        self, ended_hours_ago: int, hours: int, cause: str, reported_after: int | None
    ) -> None:
        end = self.w.now - timedelta(hours=ended_hours_ago)
        start = end - timedelta(hours=hours)
        params: dict[str, Any] = {"start": start.isoformat(), "end": end.isoformat()}
        params["cause"] = cause
        if reported_after is not None:
            reported = min(start + timedelta(hours=reported_after), self.w.now)
            params["reported_at"] = reported.isoformat()
        self.do("outage", params)

    # -- the merchant's mistakes and the bank ---------------------------------------------------
    @precondition(lambda self: self.has("payments"))
    @rule(
        kind=st.sampled_from(["duplicate_charge", "overcharge"]),
        i=index,
        same_amount=st.booleans(),
        amount=st.integers(min_value=1, max_value=5_000),
    )
    def billing_mistake(self, kind: str, i: int, same_amount: bool, amount: int) -> None:
        payment = self.pick(self.w.payments(), i)
        minor = payment.amount_minor if same_amount and kind == "duplicate_charge" else amount
        params = {"kind": kind, "payment": payment.number, "amount": money(minor)}
        self.do("billing_mistake", params)

    @precondition(lambda self: self.has("payments"))
    @rule(i=index, stage=st.sampled_from(["opened", "opened_after_contact", "won", "lost"]))
    def dispute(self, i: int, stage: str) -> None:
        payment = self.pick(self.w.payments(), i)
        if stage.startswith("opened"):
            params: dict[str, Any] = {
                "payment": payment.number,
                "reason": "not recognised",
                "contacted_support_first": stage == "opened_after_contact",
            }
            self.do("chargeback", params)
        else:
            self.do("dispute_closed", {"payment": payment.number, "outcome": stage})

    # -- the account ----------------------------------------------------------------------------
    @rule(
        kind=st.sampled_from(
            [
                "activity",
                "activity",
                "terms_change",
                "material_terms_change",
                "appeal",
                "export_data",
                "decline_terms",
                "close_account",
                "violation",
            ]
        ),
        i=index,
    )
    def account_event(self, kind: str, i: int) -> None:
        if kind == "appeal":
            requests = self.w.requests()
            if requests:
                self.do("appeal", {"request": self.pick(requests, i).number})
        elif kind.endswith("terms_change"):
            self.do("terms_change", {"material": kind.startswith("material")})
        elif kind == "violation":
            self.do("violation", {"kind": "spam"})
        else:
            self.do(kind, {})

    # -- the gateway fails, the process dies ------------------------------------------------------
    @precondition(lambda self: self.faults)
    @rule(
        fault=st.sampled_from(FAULTS),
        operation=st.sampled_from(list(FaultTarget)),
        times=st.sampled_from(FAULT_TIMES),
    )
    def gateway_fault(self, fault: Fault, operation: FaultTarget, times: int) -> None:
        """The next ``times`` charges or refunds (any card) fail this way."""
        self.disturb()
        self.w.gateway.add_fault(fault, operation=operation, times=times)

    @precondition(lambda self: self.faults)
    @rule(
        action=st.sampled_from(MONEY_MOVING),
        plan=st.sampled_from(PLANS),
        method=methods,
        kind=st.sampled_from(LIKELY_TO_PAY),
        i=index,
        product=st.sampled_from(["sms-1000", "setup"]),
    )
    def crash_before_settle(
        self, action: str, plan: str, method: str, kind: str, i: int, product: str
    ) -> None:
        """A money-moving action commits, and the process dies before the gateway call."""
        self.disturb()
        choices: dict[str, dict[str, Any]] = {
            "subscribe": {"plan": plan, "payment_method": method},
            "cancel": {"immediately": True},
            "refund_request": {"kind": kind},
            "pay_outstanding": {"payment_method": method},
            "purchase": {"product": product, "quantity": 1, "payment_method": method},
        }
        params = choices[action]
        if action == "subscribe" and plan == "tiered":
            params["usage"] = 4_000 + 100 * i
        if action == "refund_request" and self.w.count_payments():
            params["payment"] = i % self.w.count_payments() + 1
        self.w.act_then_crash(action, params)

    @precondition(lambda self: self.faults)
    @rule()
    def restart(self) -> None:
        """A new process: new session, and the janitor with no grace before anything else."""
        self.disturb()
        self.w.restart()

    # -- invariants and the replay ----------------------------------------------------------------
    @invariant()
    def engine_invariants(self) -> None:
        STEPS[self.policy_id] += 1  # after every step: the soak's figure
        if self.world is not None:
            self.world.check_invariants()
        self.clean = True

    def teardown(self) -> None:
        if self.world is None:
            return
        try:
            if self.clean:
                self.world.settle()
                self.world.check_invariants()
                # Every stored decision comes back identical from the facts it recorded.
                w = self.world
                again = list(audit.redecide(w.session, w.ctx.merchant_row))
                assert [r for r in again if not r.same] == []
            if self.clean and not self.disturbed:
                replay = simulate(parse_scenario(self.world.scenario_text(), "<replay>"))
                assert replay == self.world.result(), "replaying the history changed the result"
        finally:
            self.world.close()


def _machine(policy_id: str) -> type[BillingMachine]:
    return type(f"BillingMachine_{policy_id}", (BillingMachine,), {"policy_id": policy_id})


# Steps run per policy in this process (``make soak`` reports them: FAIRBILL_STATEFUL_REPORT).
STEPS: Counter[str] = Counter()


@pytest.mark.parametrize("policy_id", POLICY_IDS)
def test_engine_invariants_hold_for_random_histories(policy_id: str) -> None:
    before = STEPS[policy_id]
    run_state_machine_as_test(_machine(policy_id), settings=SETTINGS)
    report = os.environ.get("FAIRBILL_STATEFUL_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as out:
            out.write(f"{policy_id}: {STEPS[policy_id] - before} steps\n")


# -- what the machine found, kept ---------------------------------------------------------------
def test_a_charge_in_flight_is_not_paid_again_from_the_wallet() -> None:
    """qomon: a plan change's proration charge gets no answer (the money moved), the
    customer then has wallet money and pays what is outstanding. The wallet must not pay
    the invoice the card already paid: it was paid twice (18.06 by card and by wallet)."""
    world = World(base_text("qomon"))
    try:
        assert world.act("subscribe", {"plan": "basic-monthly", "payment_method": "card_1"})
        world.advance(timedelta(days=3))
        assert world.act("refund_request", {"kind": "billing_error", "payment": 1})
        world.gateway.add_fault(Fault.TIMEOUT_AFTER, operation=FaultTarget.CHARGE)
        assert world.act("change_plan", {"plan": "pro-monthly"})
        [charge] = world.open_operations()  # invoice 2's proration, taken, answer lost
        [request] = world.requests()
        approve = {"decision": "approve", "amount": "20.00", "destination": "wallet"}
        assert world.act("review", {"request": request.number, **approve})
        assert world.customer.wallet_minor == 2000
        assert world.act("pay_outstanding", {"payment_method": "card_2"})
        world.advance(timedelta(hours=2))  # the janitor asks again: the charge went through
        world.session.refresh(charge)
        assert charge.status == "succeeded"
        world.check_invariants()  # was: invoice 2 settled 36.12 of 18.06
        assert world.customer.wallet_minor == 2000
    finally:
        world.close()


def test_a_cancellation_waits_for_the_answer_to_the_first_charge() -> None:
    """kalenner: cancelled at once, the first payment comes back (money-back guarantee).
    With the first charge's answer lost (the card was charged), the cancellation is
    refused until the janitor knows the answer (it would be decided without the payment),
    then ends the same: the 29.00 paid back and the subscription cancelled."""

    def refunded(fault: bool) -> list[tuple[int, int]]:
        world = World(base_text("kalenner"))
        try:
            if fault:
                world.gateway.add_fault(Fault.TIMEOUT_AFTER, operation=FaultTarget.CHARGE)
            assert world.act("subscribe", {"plan": "basic-monthly", "payment_method": "card_1"})
            assert world.act("cancel", {"immediately": True}) is not fault
            world.advance(timedelta(hours=1))  # the janitor asks again: it went through
            if fault:
                assert world.act("cancel", {"immediately": True})
            world.check_invariants()
            assert world.open_operations() == []
            return [(p.amount_minor, p.refunded_minor) for p in world.payments()]
        finally:
            world.close()

    assert refunded(fault=False) == [(2900, 2900)]
    assert refunded(fault=True) == [(2900, 2900)]


def test_time_passes_in_real_hours_across_a_dst_change() -> None:
    """The machine's clock across New York's spring-forward (2026-03-08 02:00 EST ->
    03:00 EDT): 47 hours after Friday 03:00 EST is Sunday 03:00 EDT, a local time that
    exists, rendered as ``simulate`` renders the same instant (the replay compared
    ``02:00-05:00`` with ``03:00-04:00`` before)."""
    world = World(base_text("voip", start="2026-03-06T03:00"))
    try:
        world.advance(timedelta(hours=47))
        assert world.now.isoformat() == "2026-03-08T03:00:00-04:00"
        world.settle()
        replay = simulate(parse_scenario(world.scenario_text(), "<replay>"))
        assert replay == world.result()
    finally:
        world.close()
