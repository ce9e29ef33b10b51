"""Idempotency: the scheduler, the simulator and the payment gateway.

- ``scheduler.run_due`` run a second time at the same instant changes nothing (the result
  JSON, the journal, the gateway calls), at every instant where something is due in a world
  with renewals, usage checks, failed-payment retries, a suspension, credit expiries and a
  data deletion;
- simulating the same scenario twice gives the same result;
- the sandbox gateway returns the first result for a repeated idempotency key, and the
  engine's keys are distinct for distinct charges.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from fairbill.gateway.port import ChargeResult, RefundResult
from fairbill.gateway.sandbox import SandboxGateway
from fairbill.money import Money
from fairbill.services import operations, scheduler
from fairbill.simulator.run import simulate
from fairbill.simulator.scenario import load_scenario, parse_scenario
from fairbill.store.tables import JournalEntryRow, JournalTransactionRow

from .world import World, base_text

# The fifteen worked scenarios the project started with (one per policy feature).
EXAMPLE_NAMES = (
    "conek-cooling-off",
    "conek-message-credits",
    "conek-outage-credit",
    "emailconsul-money-back",
    "emailconsul-no-reason",
    "kalenner-annual-cancel",
    "kalenner-failed-payments",
    "kalenner-guarantee-refund",
    "kalenner-monthly-cancel-after-guarantee",
    "kalenner-upgrade-proration",
    "qomon-annual-no-refund",
    "qomon-duplicate-charge-to-wallet",
    "qomon-usage-tiers",
    "voip-immediate-cancel",
    "voip-service-disruption",
)
EXAMPLES = [
    Path(__file__).parents[2] / "examples" / "scenarios" / f"{name}.yaml" for name in EXAMPLE_NAMES
]


class CountingGateway(SandboxGateway):
    """The sandbox, counting every call the engine makes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    def charge(self, token: str, amount: Money, idempotency_key: str) -> ChargeResult:
        self.calls.append(("charge", idempotency_key))
        return super().charge(token, amount, idempotency_key)

    def refund(self, charge_reference: str, amount: Money, idempotency_key: str) -> RefundResult:
        self.calls.append(("refund", idempotency_key))
        return super().refund(charge_reference, amount, idempotency_key)


def snapshot(world: World, gateway: CountingGateway) -> tuple[Any, ...]:
    s = world.session
    return (
        world.result(),
        s.scalar(select(func.count()).select_from(JournalTransactionRow)),
        s.scalar(select(func.coalesce(func.sum(func.abs(JournalEntryRow.amount_minor)), 0))),
        len(gateway.calls),
    )


# -- the scheduler --------------------------------------------------------------------------


Advance = Callable[[World, timedelta], None]


def busy_world(advance: Advance = World.advance) -> tuple[World, CountingGateway]:
    """Conek: a tiered subscription whose usage falls (a usage check), two credit purchases
    (they expire after 30 days), a card that starts declining before the first renewal
    (retries on days 1, 3 and 7, then a suspension), whose 30-day data retention after the
    suspension ends in a deletion. ``advance`` lets time pass between the actions."""
    gateway = CountingGateway()
    world = World(base_text("conek", customer_type="business"), gateway=gateway)
    assert world.act("subscribe", {"plan": "tiered", "payment_method": "card_1", "usage": 6000})
    advance(world, timedelta(hours=1))
    assert world.act("purchase", {"product": "sms-1000", "payment_method": "card_1"})
    advance(world, timedelta(days=5))
    assert world.act("usage", {"metric": "contacts", "value": 4000})
    advance(world, timedelta(days=3))
    assert world.act("purchase", {"product": "sms-1000", "quantity": 2, "payment_method": "card_1"})
    advance(world, timedelta(days=10))
    assert world.act("payment_method", {"id": "card_1", "declines": True})
    advance(world, timedelta(days=80))
    return world, gateway


class TwiceAtEveryInstant:
    """Lets time pass like ``simulate`` does, but runs ``run_due`` a second time at every
    due instant and checks that the second run changed nothing."""

    def __init__(self) -> None:
        self.instants: list[str] = []

    def __call__(self, world: World, delta: timedelta) -> None:
        gateway = world.gateway
        assert isinstance(gateway, CountingGateway)
        target = world.clock.now() + delta
        while (due := scheduler.next_due(world.ctx)) is not None and due <= target:
            world.clock.advance_to(max(due, world.clock.now()))
            scheduler.run_due(world.ctx)
            operations.commit_and_settle(world.ctx)
            once = snapshot(world, gateway)
            scheduler.run_due(world.ctx)
            operations.commit_and_settle(world.ctx)
            assert snapshot(world, gateway) == once, f"a second run_due at {due} changed state"
            assert scheduler.next_due(world.ctx) != due, f"no progress at {due}"
            world.check_invariants()
            self.instants.append(world.now.isoformat())
        world.clock.advance_to(target)


def test_running_due_jobs_twice_at_the_same_instant_changes_nothing() -> None:
    twice = TwiceAtEveryInstant()
    world, _ = busy_world(twice)
    try:
        result = world.result()
    finally:
        world.close()

    # The world really ran every kind of job; the values pin what happened.
    assert twice.instants == [
        "2026-03-08T00:00:00+02:00",  # the daily usage check after the fall on Mar 7
        "2026-04-01T10:00:00+02:00",  # the first credit pack expires (30 days)
        "2026-04-02T09:00:00+02:00",  # renewal: the declining card fails
        "2026-04-03T09:00:00+02:00",  # retry 1
        "2026-04-05T09:00:00+02:00",  # retry 2
        "2026-04-09T09:00:00+02:00",  # retry 3 fails: suspension
        "2026-04-09T10:00:00+02:00",  # the second purchase expires
        "2026-05-09T09:00:00+02:00",  # 30 days after the suspension: data deleted
    ]
    assert [(f["invoice"], f["attempt"]) for f in result["failed_payments"]] == [
        (4, 1),
        (4, 2),
        (4, 3),
        (4, 4),
    ]
    assert [(p["status"], p["forfeited"]) for p in result["credit_packs"]] == [
        ("expired", 1000),
        ("expired", 2000),
    ]
    assert result["customer"]["status"] == "suspended"
    assert result["customer"]["data_deleted_at"] == "2026-05-09T09:00:00+02:00"
    assert result["subscriptions"][0]["status"] == "suspended"
    assert [(n["amount"], n["applied_to_invoice"]) for n in result["credit_notes"]] == [
        ("50.32", 3)
    ]
    assert [d["action"] for d in result["decisions"]].count("payment_failed") == 4


def test_the_double_runs_give_the_same_world_as_a_plain_simulation() -> None:
    world, _ = busy_world(TwiceAtEveryInstant())
    try:
        doubled = world.result()
        text = world.scenario_text()
    finally:
        world.close()
    assert simulate(parse_scenario(text, "<replay>")) == doubled


def test_run_due_when_nothing_is_due_changes_nothing() -> None:
    world, gateway = busy_world()
    try:
        before = snapshot(world, gateway)
        for _ in range(3):
            scheduler.run_due(world.ctx)
            operations.commit_and_settle(world.ctx)
        assert snapshot(world, gateway) == before
    finally:
        world.close()


def frozen(world: World, delta: timedelta) -> None:
    """Time passes but no job runs (a scheduler that is down)."""
    world.clock.advance_to(world.clock.now() + delta)


def test_a_late_scheduler_settles_by_repeating_run_due_then_changes_nothing() -> None:
    """A scheduler that was down for two months (the background loop calls ``run_due`` once
    per tick): a job it runs may make another one due at an instant already past (the next
    missed renewal), so it takes a few calls to settle; once settled, a further call
    changes nothing and nothing is left due."""
    world, gateway = busy_world(frozen)
    try:
        now = world.clock.now()
        states = [snapshot(world, gateway)]
        for _ in range(10):
            scheduler.run_due(world.ctx)
            operations.commit_and_settle(world.ctx)
            states.append(snapshot(world, gateway))
            if states[-1] == states[-2]:
                break
        assert states[-1] == states[-2], "run_due did not settle in 10 calls"
        assert len(states) <= 5
        due = scheduler.next_due(world.ctx)
        assert due is not None and due > now
        result = states[-1][0]
        world.check_invariants()
    finally:
        world.close()
    # Every missed period is billed once, back to back, and charged once (the card declines).
    periods = [
        (line["period_start"][:10], line["period_end"][:10])
        for inv in result["invoices"]
        if inv["number"] > 3
        for line in inv["lines"]
    ]
    assert periods == [
        ("2026-04-02", "2026-05-02"),
        ("2026-05-02", "2026-06-02"),
        ("2026-06-02", "2026-07-02"),
    ]
    assert [(f["invoice"], f["at"]) for f in result["failed_payments"]] == [
        (4, result["now"]),
        (5, result["now"]),
        (6, result["now"]),
    ]
    assert [p["status"] for p in result["credit_packs"]] == ["expired", "expired"]


SUSPENDED_THEN_PAID = """\
format: fairbill.scenario/1
name: suspended for non-payment, paid two months later
merchant: {policy: kalenner}
catalog:
  plans:
    - {id: basic-monthly, interval: month, price: "29.00"}
customer:
  id: cus_1
  payment_methods: [{id: card_1, type: card}]
start: 2026-03-02T09:00
until: 2026-06-09T09:00
events:
  - at: 2026-03-02T09:00
    subscribe: {plan: basic-monthly, payment_method: card_1}
  - at: 2026-03-20T09:00
    payment_method: {id: card_1, declines: true}
  - at: 2026-06-08T10:00
    payment_method: {id: card_1, declines: false}
  - at: 2026-06-08T10:00
    pay_outstanding: {}
"""


def test_suspension_then_payment_reactivates_with_the_outstanding_invoice_paid() -> None:
    result = simulate(parse_scenario(SUSPENDED_THEN_PAID, "<suspended>"))
    assert [f["attempt"] for f in result["failed_payments"]] == [1, 2, 3, 4]
    assert result["invoices"][1]["status"] == "paid"  # Apr 2 - May 2, paid late
    assert result["subscriptions"][0]["status"] == "active"
    assert result["customer"]["status"] == "active"


def test_no_invoice_for_a_period_spent_entirely_in_suspension() -> None:
    result = simulate(parse_scenario(SUSPENDED_THEN_PAID, "<suspended>"))
    periods = [
        (line["period_start"][:10], line["period_end"][:10])
        for inv in result["invoices"]
        for line in inv["lines"]
    ]
    # Suspended Apr 9 (last retry) to Jun 8 (payment): Apr 2-May 2 was outstanding, Jun 2 -
    # Jul 2 is the period the customer comes back in; May 2 - Jun 2 was never served.
    assert ("2026-05-02", "2026-06-02") not in periods
    assert periods == [
        ("2026-03-02", "2026-04-02"),
        ("2026-04-02", "2026-05-02"),
        ("2026-06-02", "2026-07-02"),
    ]


# -- the simulator --------------------------------------------------------------------------


# One per policy, each with scheduled work (expiries, retries, usage checks, requests).
TWICE = [
    p
    for p in EXAMPLES
    if p.stem
    in (
        "conek-message-credits",
        "emailconsul-money-back",
        "kalenner-failed-payments",
        "qomon-usage-tiers",
        "voip-service-disruption",
    )
]


@pytest.mark.parametrize("path", TWICE, ids=[p.stem for p in TWICE])
def test_simulating_a_scenario_twice_gives_the_same_result(path: Path) -> None:
    first = simulate(load_scenario(path))
    second = simulate(load_scenario(path))
    assert first == second
    assert first["ledger"] == {"balanced": True}


def test_a_recorded_world_replays_to_the_same_result() -> None:
    world, _ = busy_world()
    try:
        world.advance(timedelta(days=60))
        text = world.scenario_text()
        expected = world.result()
    finally:
        world.close()
    assert simulate(parse_scenario(text, "<replay>")) == expected
    assert simulate(parse_scenario(text, "<replay>")) == expected


def test_the_examples_are_not_trivially_equal() -> None:
    """Guards the test above: distinct scenarios give distinct results."""
    results = [simulate(load_scenario(p)) for p in EXAMPLES[:3]]
    assert len({str(r) for r in results}) == 3


# -- the gateway ----------------------------------------------------------------------------


def usd(text: str) -> Money:
    return Money(text, "USD")


class TestSandboxGateway:
    def test_the_same_charge_key_returns_the_first_result(self) -> None:
        gw = SandboxGateway()
        first = gw.charge("tok", usd("10.00"), "k1")
        again = gw.charge("tok", usd("99.00"), "k1")
        assert first == again == ChargeResult(True, "ch_000001")
        assert gw.charge("tok", usd("10.00"), "k2") == ChargeResult(True, "ch_000002")

    def test_a_decline_is_remembered_under_its_key(self) -> None:
        gw = SandboxGateway()
        gw.set_declines("tok", True)
        declined = gw.charge("tok", usd("5.00"), "k")
        assert declined == ChargeResult(False, None, "card_declined")
        gw.set_declines("tok", False)
        assert gw.charge("tok", usd("5.00"), "k") == declined
        assert gw.charge("tok", usd("5.00"), "k-retry") == ChargeResult(True, "ch_000002")

    def test_a_success_is_remembered_even_if_the_card_declines_later(self) -> None:
        gw = SandboxGateway()
        ok = gw.charge("tok", usd("5.00"), "k")
        gw.set_declines("tok", True)
        assert gw.charge("tok", usd("5.00"), "k") == ok
        assert not gw.charge("tok", usd("5.00"), "k2").ok

    def test_a_repeated_refund_key_refunds_once(self) -> None:
        gw = SandboxGateway()
        ref = gw.charge("tok", usd("100.00"), "c").reference
        assert ref is not None
        first = gw.refund(ref, usd("60.00"), "r1")
        assert first == RefundResult(True, "re_000001")
        assert gw.refund(ref, usd("60.00"), "r1") == first  # not a second 60.00
        assert gw.refund(ref, usd("40.00"), "r2") == RefundResult(True, "re_000002")
        assert gw.refund(ref, usd("0.01"), "r3") == RefundResult(False, None)

    def test_refunds_never_exceed_the_charge(self) -> None:
        gw = SandboxGateway()
        ref = gw.charge("tok", usd("10.00"), "c").reference
        assert ref is not None
        assert not gw.refund(ref, usd("10.01"), "r1").ok
        assert gw.refund(ref, usd("10.00"), "r2").ok
        assert not gw.refund("ch_unknown", usd("1.00"), "r3").ok


class TestEngineKeys:
    def test_every_charge_and_refund_has_its_own_key(self) -> None:
        """Conek: a renewal that fails, a retry that fails, a retry that succeeds, and an
        overcharge refunded to the card: every gateway call carries a distinct key."""
        gateway = CountingGateway()
        world = World(base_text("conek", customer_type="business"), gateway=gateway)
        try:
            assert world.act("subscribe", {"plan": "basic-monthly", "payment_method": "card_1"})
            assert world.act("purchase", {"product": "setup", "payment_method": "card_1"})
            world.advance(timedelta(days=20))
            assert world.act("payment_method", {"id": "card_1", "declines": True})
            world.advance(timedelta(days=12))  # Apr 3: renewal and retry 1 failed
            assert world.act("payment_method", {"id": "card_1", "declines": False})
            world.advance(timedelta(days=3))  # Apr 5: retry 2 goes through
            assert world.act(
                "billing_mistake", {"kind": "overcharge", "invoice": 3, "amount": "10.00"}
            )
            assert world.act(
                "refund_request",
                {"kind": "billing_error", "payment": 4, "reason": "charged 10.00 too much"},
            )
            result = world.result()
            world.check_invariants()
        finally:
            world.close()
        keys = [key for _, key in gateway.calls]
        assert len(keys) == len(set(keys)), keys
        # The overcharge really took 10.00 (payment 4), and the refund gives it back.
        assert [kind for kind, _ in gateway.calls] == ["charge"] * 6 + ["refund"]
        assert [f["attempt"] for f in result["failed_payments"]] == [1, 2]
        assert [(p["invoice"], p["amount"], p["refunded"]) for p in result["payments"]] == [
            (1, "29.00", "0.00"),
            (2, "15.00", "0.00"),
            (3, "29.00", "0.00"),
            (3, "10.00", "10.00"),
        ]
        assert [(r["amount"], r["destination"], r["payment"]) for r in result["refunds"]] == [
            ("10.00", "original_method", 4)
        ]

    def test_two_duplicate_charges_at_one_instant_are_two_gateway_charges(self) -> None:
        gateway = CountingGateway()
        world = World(base_text("voip"), gateway=gateway)
        try:
            world.act("subscribe", {"plan": "basic-monthly", "payment_method": "card_1"})
            world.advance(timedelta(hours=1))
            mistake = {"kind": "duplicate_charge", "payment": 1, "amount": "29.00"}
            assert world.act("billing_mistake", mistake)
            assert world.act("billing_mistake", mistake)
            refs = [p.gateway_ref for p in world.payments()]
            assert len(set(refs)) == 3, refs
            # Refunding both duplicates to the card must work.
            for number in (1, 2):
                assert world.act(
                    "refund_request", {"kind": "duplicate_charge", "payment": number + 1}
                )
                assert world.act(
                    "review",
                    {"request": number, "decision": "approve", "destination": "original_method"},
                )
            assert [r["amount"] for r in world.result()["refunds"]] == ["29.00", "29.00"]
        finally:
            world.close()
