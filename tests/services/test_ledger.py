"""The journal as the services write it: balanced, and in agreement with the billing tables.

Every money movement posts a journal transaction. Beyond "each transaction sums to zero",
the customer's balance on each account must be what the invoices, payments, refunds,
credit notes, wallet and chargebacks say (``World.expected_balances``): revenue is what
was invoiced, cash what was collected less what went back to cards and lost chargebacks,
the receivable what is still owed less credit notes waiting for an invoice, and so on.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from fairbill.ledger.accounts import Account
from fairbill.simulator.scenario import load_scenario

from .test_idempotency import EXAMPLES
from .world import World, base_text

CASH, RECEIVABLE, REVENUE = str(Account.CASH), str(Account.RECEIVABLE), str(Account.REVENUE)
WALLET, REFUNDS, COMPENSATION = str(Account.WALLET), str(Account.REFUNDS), str(Account.COMPENSATION)
CREDIT_NOTES, CHARGEBACKS = str(Account.CREDIT_NOTES), str(Account.CHARGEBACKS)


def _example(name: str) -> Path:
    return next(p for p in EXAMPLES if p.stem == name)


def played(path: Path) -> World:
    scenario = load_scenario(path)
    world = World(scenario)
    world.play(scenario)
    return world


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_the_journal_agrees_with_the_billing_tables(path: Path) -> None:
    world = played(path)
    try:
        world.check_invariants()  # includes the account-by-account reconciliation
        balances = world.balances()
        assert balances[str(Account.REVENUE)] < 0  # something was invoiced
        assert sum(balances.values()) == 0
    finally:
        world.close()


def test_a_duplicate_charge_corrected_to_the_wallet_then_spent() -> None:
    """qomon: 100.00 invoiced twice (two periods), charged three times (one duplicate);
    the duplicate goes to the wallet, which pays the second invoice."""
    world = played(_example("qomon-duplicate-charge-to-wallet"))
    try:
        assert world.balances() == {
            REVENUE: -20000,
            CASH: 20000,  # the first charge and the duplicate; nothing went back to the card
            # Receivable: 200 invoiced - 200 charged (100 of it a duplicate) - 100 wallet
            # + 100 duplicate given back = 0.
        }
        world.check_reconciliation()
        assert world.customer.wallet_minor == 0
    finally:
        world.close()


def test_refund_to_card_and_outage_compensation() -> None:
    """voip: an immediate cancellation refunds the unused days to the card; an outage
    compensates the customer. Both leave the customer's cash and contra-revenue accounts
    in step with the refund rows."""
    world = World(base_text("voip"))
    try:
        assert world.act("subscribe", {"plan": "basic-monthly", "payment_method": "card_1"})
        world.advance(timedelta(days=10))
        start, end = world.now - timedelta(hours=30), world.now - timedelta(hours=20)
        assert world.act(
            "outage",
            {
                "start": start.isoformat(),
                "end": end.isoformat(),
                "cause": "internal",
                "reported_at": end.isoformat(),
            },
        )
        assert world.act("cancel", {"immediately": True})
        result = world.result()
        balances = world.balances()
        world.check_invariants()
    finally:
        world.close()
    refunds = [(r["amount"], r["destination"], r["payment"]) for r in result["refunds"]]
    paid_back = sum(int(a.replace(".", "")) for a, _, _ in refunds)
    assert result["payments"][0]["amount"] == "29.00"
    assert balances[REVENUE] == -2900
    assert balances[CASH] == 2900 - paid_back
    assert balances.get(REFUNDS, 0) + balances.get(COMPENSATION, 0) == paid_back
    assert paid_back > 0
    assert result["payments"][0]["refunded"] == f"{paid_back // 100}.{paid_back % 100:02d}"


def test_a_lost_chargeback_moves_cash_to_chargebacks() -> None:
    world = World(base_text("conek", customer_type="business"))
    try:
        assert world.act("subscribe", {"plan": "pro-annual", "payment_method": "card_1"})
        world.advance(timedelta(days=3))
        assert world.act(
            "chargeback",
            {"payment": 1, "reason": "not recognised", "contacted_support_first": True},
        )
        assert world.act("dispute_closed", {"payment": 1, "outcome": "lost"})
        balances = world.balances()
        payment = world.payments()[0]
        world.check_invariants()
    finally:
        world.close()
    assert balances == {REVENUE: -49000, CHARGEBACKS: 49000}  # cash in, then out again
    assert payment.refunded_minor == 49000


def test_credit_notes_reduce_the_receivable_until_applied() -> None:
    """qomon usage tiers: an upgrade is invoiced pro rata, a fall earns a credit note that
    sits against the receivable until the next invoice uses it."""
    world = World(base_text("qomon", customer_type="business"))
    try:
        assert world.act("subscribe", {"plan": "tiered", "payment_method": "card_1", "usage": 4000})
        world.advance(timedelta(days=9, hours=1))
        assert world.act("usage", {"metric": "contacts", "value": 6200})
        world.advance(timedelta(days=10))
        assert world.act("usage", {"metric": "contacts", "value": 4800})
        world.advance(timedelta(days=2))  # the daily check has issued the credit note
        before = world.balances()
        notes = world.result()["credit_notes"]
        world.check_invariants()
        world.advance(timedelta(days=10))  # the renewal applies it
        after = world.balances()
        result = world.result()
        world.check_invariants()
    finally:
        world.close()
    assert len(notes) == 1 and notes[0]["applied_to_invoice"] is None
    note = int(notes[0]["amount"].replace(".", ""))
    assert before[CREDIT_NOTES] == note
    assert before[RECEIVABLE] == -note  # everything invoiced was paid; the note is owed back
    renewal = result["invoices"][-1]
    assert renewal["credit_applied"] == notes[0]["amount"]
    assert after.get(RECEIVABLE, 0) == 0
    assert after[CREDIT_NOTES] == note


def test_a_credit_note_larger_than_the_next_invoice_carries_the_rest_forward() -> None:
    """qomon "the credit is applied to your next invoice": a 145.16 note pays the next
    100.00 invoice in full and the 45.16 left waits, against the receivable, for the invoice
    after. The note is posted once; its two parts add up to it."""
    world = World(base_text("qomon", customer_type="business", start="2026-03-01T00:00"))
    try:
        assert world.act(
            "subscribe", {"plan": "tiered", "payment_method": "card_1", "usage": 20000}
        )
        world.advance(timedelta(days=1, hours=10))  # 2026-03-02 10:00
        assert world.act("usage", {"metric": "contacts", "value": 4000})
        world.advance(timedelta(days=31))  # past the 2026-04-01 renewal
        between = world.balances()
        notes = world.result()["credit_notes"]
        world.check_invariants()
        world.advance(timedelta(days=30))  # past the 2026-05-01 renewal
        after = world.balances()
        result = world.result()
        world.check_invariants()
    finally:
        world.close()
    # (250.00 − 100.00) × 30 / 31 (Mar 2..31) = 145.16, split at the 100.00 invoice 2.
    assert [(n["amount"], n["applied_to_invoice"]) for n in notes] == [
        ("100.00", 2),
        ("45.16", None),
    ]
    assert between[CREDIT_NOTES] == 14516
    assert between[RECEIVABLE] == -4516  # the part carried forward is owed back
    assert [(n["amount"], n["applied_to_invoice"]) for n in result["credit_notes"]] == [
        ("100.00", 2),
        ("45.16", 3),
    ]
    invoices = result["invoices"]
    assert [(i["credit_applied"], i["amount_paid"]) for i in invoices[1:]] == [
        ("100.00", "0.00"),
        ("45.16", "54.84"),
    ]
    assert after[CREDIT_NOTES] == 14516
    assert after.get(RECEIVABLE, 0) == 0
