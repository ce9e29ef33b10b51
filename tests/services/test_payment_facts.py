"""The payment facts ``Ctx.payment_facts`` builds from the database, for the rules that read
them: which payment is an automatic renewal, and which earlier refunds gave back unused time.
"""

from __future__ import annotations

from pathlib import Path

from fairbill.money import Money

from .test_ledger import played

SCENARIOS = Path(__file__).parents[2] / "examples" / "scenarios"


def _example(name: str) -> Path:
    return SCENARIOS / f"{name}.yaml"


def test_a_renewal_is_a_later_period_of_the_subscription_not_a_later_payment() -> None:
    """emailconsul "processed automatically": payment 1 buys a setup fee, payment 2 signs
    up (the subscription's first period: no renewal), payment 3 renews it."""
    world = played(_example("emailconsul-sign-up-after-a-purchase-is-not-an-automatic-renewal"))
    try:
        world.check_invariants()  # the journal agrees with the billing tables
        facts = [world.ctx.facts.payment(p) for p in world.payments()]
    finally:
        world.close()
    assert [(f.number, f.is_renewal) for f in facts] == [(1, False), (2, False), (3, True)]


def test_a_disruption_refund_is_not_a_refund_of_unused_time() -> None:
    """voip: 5.00 for the disruption (time the customer had), then 25.00 for the unused
    days: only the 25.00 counts against a later refund of unused days."""
    world = played(
        _example("voip-unused-period-request-after-disruption-refund-pays-every-unused-day")
    )
    try:
        world.check_invariants()  # the journal agrees with the billing tables
        (facts,) = [world.ctx.facts.payment(p) for p in world.payments()]
    finally:
        world.close()
    assert facts.refunded == Money("30.00", "USD")
    assert facts.refunded_unused == Money("25.00", "USD")


def test_a_cancellations_refund_is_a_refund_of_unused_time() -> None:
    world = played(
        _example("voip-unused-period-request-after-immediate-cancel-refunds-nothing-more")
    )
    try:
        world.check_invariants()  # the journal agrees with the billing tables
        (facts,) = [world.ctx.facts.payment(p) for p in world.payments()]
    finally:
        world.close()
    assert facts.refunded_unused == Money("33.33", "USD") == facts.refunded
