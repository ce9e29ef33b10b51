"""The billing planners: pure functions of facts, checked on the effects they plan."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from fairbill.calendar.periods import Interval, Period
from fairbill.decisions.decision import Decision, DecisionOutcome
from fairbill.decisions.dunning import FailureOutcome
from fairbill.errors import Conflict, GatewayError, IllegalTransition, NotFound
from fairbill.ledger.accounts import Account
from fairbill.lifecycle import CustomerStatus, InvoiceStatus, SubscriptionStatus
from fairbill.money import Money, Rounding
from fairbill.plans.billing import (
    Card,
    Collected,
    Collection,
    Dunned,
    Line,
    Note,
    OpenInvoice,
    Paid,
    PeriodBill,
    Promotion,
    Reactivation,
    Refunding,
    Renewal,
    Setting,
    Taken,
    plan_collection,
    plan_dunning,
    plan_invoice,
    plan_payment,
    plan_period,
    plan_reactivation,
    plan_refund,
    plan_renewal,
)
from fairbill.plans.effects import Joined, Plan, Ref, Rows
from fairbill.policy.model import Destination

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=PARIS)
S_EUR = Setting(7, "EUR", NOW, Rounding.HALF_EVEN)


def eur(minor: int) -> Money:
    return Money.from_minor(minor, "EUR")


def invoice(total: int, amount_paid: int = 0) -> OpenInvoice:
    return OpenInvoice(41, 3, 5, 12, total, amount_paid=amount_paid)


def new_rows(plan: Plan, rows: Rows) -> list[dict[str, object]]:
    return [n.values for n in plan.new if n.rows == rows]


def changes(plan: Plan, rows: Rows) -> list[tuple[object, dict[str, object]]]:
    return [(c.id, c.values) for c in plan.changes if c.rows == rows]


CARD = Card("card", "tok", "EUR")


def test_an_invoice_of_nothing_is_paid_and_posts_nothing() -> None:
    plan = Plan()
    planned = plan_invoice(plan, S_EUR, 3, 12, [Line("x", "free", eur(0))], purpose="product")
    assert planned.status == InvoiceStatus.PAID
    assert new_rows(plan, Rows.INVOICES)[0]["status"] == "paid"
    assert plan.postings == []


def test_an_invoice_posts_receivable_against_revenue_under_a_key_of_customer_and_number() -> None:
    plan = Plan()
    lines = [Line("a", "one", eur(2900)), Line("credit", "promo", eur(-900))]
    planned = plan_invoice(plan, S_EUR, 3, 12, lines, purpose="subscription", subscription_id=5)
    assert isinstance(planned.id, Ref) and planned.total == 2000
    assert [line["invoice_id"] for line in new_rows(plan, Rows.INVOICE_LINES)] == [planned.id] * 2
    ((txn, customer_id, _, _),) = plan.postings
    assert (txn.key, customer_id) == ("inv:3:12", 3)
    assert sorted(leg.amount.minor for leg in txn.legs) == [-2000, 2000]


def test_credit_notes_pay_oldest_first_and_a_larger_one_carries_the_rest_forward() -> None:
    plan = Plan()
    notes = (
        Note(1, 500, NOW - timedelta(days=9), "outage", None, ("c1",)),
        Note(2, 3000, NOW - timedelta(days=2), "goodwill", 8, ("c2",)),
    )
    inv = invoice(2900)
    got = plan_collection(plan, S_EUR, inv, Collection("card", CARD, notes=notes), "renewal")
    assert got == Collected.PAID and inv.due == 0 and inv.credit_applied == 2900
    (rest,) = new_rows(plan, Rows.CREDIT_NOTES)
    assert rest["amount_minor"] == 600 and rest["invoice_id"] == 8 and rest["clauses"] == ["c2"]
    applied = changes(plan, Rows.CREDIT_NOTES)
    assert applied == [
        (1, {"amount_minor": 500, "applied_to_invoice_id": 41}),
        (2, {"amount_minor": 2400, "applied_to_invoice_id": 41}),
    ]
    assert new_rows(plan, Rows.GATEWAY_OPERATIONS) == []


def test_the_wallet_pays_before_the_card_and_the_card_is_charged_the_rest() -> None:
    plan = Plan()
    inv = invoice(2900)
    collection = Collection("card", CARD, attempt=3, wallet=1000)
    assert plan_collection(plan, S_EUR, inv, collection, "retry") == Collected.PENDING
    assert changes(plan, Rows.CUSTOMERS) == [(3, {"wallet_minor": 0})]
    assert [p.txn.key for p in plan.postings] == ["wallet-apply:3:12:1000"]
    (op,) = new_rows(plan, Rows.GATEWAY_OPERATIONS)
    assert op["key"] == Joined(("charge", 41, 3))
    assert (op["amount_minor"], op["settled_minor"], op["purpose"]) == (1900, 1900, "retry")


def test_a_charge_waiting_for_its_answer_comes_first_nothing_else_is_planned() -> None:
    plan = Plan()
    collection = Collection("card", CARD, wallet=5000, in_flight=True)
    assert plan_collection(plan, S_EUR, invoice(2900), collection, "retry") == Collected.PENDING
    assert not plan


def test_no_method_leaves_it_unpaid_and_an_unknown_method_is_an_error() -> None:
    assert plan_collection(Plan(), S_EUR, invoice(100), Collection(None, None), "x") == (
        Collected.UNPAID
    )
    with pytest.raises(NotFound):
        plan_collection(Plan(), S_EUR, invoice(100), Collection("gone", None), "x")


def test_a_card_in_another_currency_is_charged_at_its_rate_or_refused_without_one() -> None:
    plan = Plan()
    usd = Card("card", "tok", "USD", Decimal("1.1"))
    plan_collection(plan, S_EUR, invoice(2900), Collection("card", usd), "renewal")
    (op,) = new_rows(plan, Rows.GATEWAY_OPERATIONS)
    assert (op["amount_minor"], op["currency"], op["settled_minor"]) == (3190, "USD", 2900)
    without = Card("card", "tok", "USD", None, "no EUR/USD exchange rate")
    with pytest.raises(Conflict, match="no EUR/USD"):
        plan_collection(Plan(), S_EUR, invoice(2900), Collection("card", without), "renewal")


def test_a_renewal_moves_the_period_and_takes_a_pending_plan() -> None:
    plan = Plan()
    anchor = datetime(2026, 1, 31, 9, 0, tzinfo=PARIS)
    end = datetime(2026, 2, 28, 9, 0, tzinfo=PARIS)
    renewal = Renewal(5, "pro", True, Interval(1), anchor, end)
    period = plan_renewal(plan, renewal)
    assert (period.start, period.end) == (end, datetime(2026, 3, 31, 9, 0, tzinfo=PARIS))
    ((sub_id, values),) = changes(plan, Rows.SUBSCRIPTIONS)
    assert sub_id == 5 and values["plan_code"] == "pro" and values["pending_plan"] is None


def test_a_renewal_moves_to_newer_terms_only_when_it_accepts_them() -> None:
    anchor = datetime(2026, 1, 31, 9, 0, tzinfo=PARIS)
    end = datetime(2026, 2, 28, 9, 0, tzinfo=PARIS)
    stays, moves = Plan(), Plan()
    plan_renewal(stays, Renewal(5, "pro", False, Interval(1), anchor, end))
    plan_renewal(moves, Renewal(5, "pro", False, Interval(1), anchor, end, accepts=12))
    ((_, kept),) = changes(stays, Rows.SUBSCRIPTIONS)
    ((_, moved),) = changes(moves, Rows.SUBSCRIPTIONS)
    assert "policy_version_id" not in kept and moved["policy_version_id"] == 12


def test_a_period_bills_the_promotion_counts_it_down_and_grants_included_credits() -> None:
    plan = Plan()
    period = Period(NOW, NOW + timedelta(days=31))
    bill = PeriodBill(
        5,
        3,
        "pro",
        period,
        2900,
        12,
        Promotion("SPRING", 2, Decimal("10"), None),
        (("message", 100),),
        NOW + timedelta(days=90),
    )
    planned = plan_period(plan, S_EUR, bill)
    assert planned.total == 2610
    assert changes(plan, Rows.SUBSCRIPTIONS) == [
        (5, {"price_minor": 2900, "promotion_periods_left": 1})
    ]
    (pack,) = new_rows(plan, Rows.CREDIT_PACKS)
    assert pack["expires_at"] == period.end  # the period ends before the credits would


def test_a_payment_pays_the_invoice_and_points_the_operation_at_it() -> None:
    plan = Plan()
    inv = invoice(2900)
    taken = Taken(99, NOW, inv, 4, eur(2900), eur(2900), "card", "ch_1", False, "fr")
    payment = plan_payment(plan, taken)
    assert inv.status == InvoiceStatus.PAID
    assert changes(plan, Rows.GATEWAY_OPERATIONS) == [(99, {"payment_id": payment})]
    assert [p.txn.key for p in plan.postings] == ["pay:3:4"]
    (note,) = new_rows(plan, Rows.NOTIFICATIONS)
    assert (note["template"], note["language"]) == ("receipt", "fr")


def test_a_duplicate_charge_pays_nothing_of_its_invoice() -> None:
    plan = Plan()
    inv = invoice(2900, amount_paid=2900)
    plan_payment(plan, Taken(99, NOW, inv, 5, eur(500), eur(500), "card", "", True, "fr"))
    assert changes(plan, Rows.INVOICES) == [] and inv.amount_paid == 2900


def _dunned(status: SubscriptionStatus, customer: CustomerStatus) -> Dunned:
    return Dunned(5, 3, status, NOW, 4, customer, "fr", NOW + timedelta(days=30))


def _outcome(suspend: bool) -> FailureOutcome:
    decision = Decision(action="dunning", outcome=DecisionOutcome.DECLINED, amount=eur(0))
    return FailureOutcome(decision, None if suspend else NOW + timedelta(days=3), suspend)


def test_the_last_retry_suspends_the_subscription_and_an_active_account_once() -> None:
    plan = Plan()
    plan_dunning(
        plan, _dunned(SubscriptionStatus.PAST_DUE, CustomerStatus.ACTIVE), _outcome(True), NOW
    )
    subs = [values for _, values in changes(plan, Rows.SUBSCRIPTIONS)]
    assert subs[-1]["status"] == "suspended" and subs[-1]["next_retry_at"] is None
    assert changes(plan, Rows.CUSTOMERS) == [
        (3, {"status": "suspended", "data_retained_until": NOW + timedelta(days=30)})
    ]
    assert [n["template"] for n in new_rows(plan, Rows.NOTIFICATIONS)] == ["suspended"]
    again = Plan()
    plan_dunning(
        again, _dunned(SubscriptionStatus.PAST_DUE, CustomerStatus.SUSPENDED), _outcome(True), NOW
    )
    assert changes(again, Rows.CUSTOMERS) == [] and new_rows(again, Rows.NOTIFICATIONS) == []


def test_dunning_an_ended_subscription_is_an_illegal_transition() -> None:
    with pytest.raises(IllegalTransition):
        plan_dunning(
            Plan(),
            _dunned(SubscriptionStatus.CANCELED, CustomerStatus.ACTIVE),
            _outcome(False),
            NOW,
        )


PAYMENT = Paid(70, 4, 41, 2900, 0, 2900, 1000, "EUR", "card", False, "ch_9")


def _refunding(amount: int, destination: Destination, payment: Paid | None = PAYMENT) -> Refunding:
    return Refunding(3, payment, eur(amount), destination, ("c7",), 500, "fr")


def test_a_refund_to_the_card_reserves_the_payment_and_asks_the_gateway() -> None:
    plan = Plan()
    refund = plan_refund(plan, S_EUR, _refunding(5000, Destination.ORIGINAL_METHOD))
    assert refund is not None
    # Capped at what the payment has left: 2900 settled, 1000 already refunded.
    assert changes(plan, Rows.PAYMENTS) == [
        (70, {"refunded_minor": 1900, "settled_refunded_minor": 2900})
    ]
    (row,) = new_rows(plan, Rows.REFUNDS)
    assert (row["amount_minor"], row["status"], row["method"]) == (1900, "pending", "card")
    (op,) = new_rows(plan, Rows.GATEWAY_OPERATIONS)
    assert op["key"] == Joined(("refund", refund)) and op["refund_id"] is refund
    assert op["details"] == {"reference": "ch_9", "debit": "refunds"}
    assert plan.postings == []  # the journal follows the gateway's answer


def test_a_refund_to_the_wallet_is_paid_at_once_under_a_key_of_the_refund() -> None:
    plan = Plan()
    refund = plan_refund(plan, S_EUR, _refunding(700, Destination.WALLET))
    assert changes(plan, Rows.CUSTOMERS) == [(3, {"wallet_minor": 1200})]
    (posting,) = plan.postings
    assert posting.key == Joined(("refund", 3, refund))
    assert posting.text == Joined(("refund ", refund, " of payment 4"), sep="")
    assert [n["template"] for n in new_rows(plan, Rows.NOTIFICATIONS)] == ["refund_paid"]
    assert new_rows(plan, Rows.GATEWAY_OPERATIONS) == []


def test_nothing_left_to_refund_plans_nothing_and_a_card_refund_needs_a_payment() -> None:
    spent = PAYMENT._replace(settled_refunded=2900)
    plan = Plan()
    assert plan_refund(plan, S_EUR, _refunding(100, Destination.ORIGINAL_METHOD, spent)) is None
    assert not plan
    with pytest.raises(GatewayError):
        plan_refund(Plan(), S_EUR, _refunding(100, Destination.ORIGINAL_METHOD, None))


def test_an_excess_charge_is_given_back_from_receivable() -> None:
    plan = Plan()
    excess = PAYMENT._replace(is_duplicate=True)
    plan_refund(plan, S_EUR, _refunding(100, Destination.ORIGINAL_METHOD, excess))
    (op,) = new_rows(plan, Rows.GATEWAY_OPERATIONS)
    assert op["details"]["debit"] == str(Account.RECEIVABLE)  # type: ignore[index]


def _reactivation(status: SubscriptionStatus, customer: CustomerStatus) -> Reactivation:
    return Reactivation(5, 3, status, customer, "pro", True, "fr", NOW)


def test_a_payment_brings_a_suspended_account_back_and_says_it_is_a_decision() -> None:
    plan = Plan()
    facts = _reactivation(SubscriptionStatus.SUSPENDED, CustomerStatus.SUSPENDED)
    assert plan_reactivation(plan, facts)
    ((_, sub),) = changes(plan, Rows.SUBSCRIPTIONS)
    assert sub["status"] == "active" and sub["failed_attempts"] == 0
    assert changes(plan, Rows.CUSTOMERS) == [(3, {"data_retained_until": None, "status": "active"})]
    assert [n["template"] for n in new_rows(plan, Rows.NOTIFICATIONS)] == ["reactivated"]


def test_a_closed_account_stays_closed_and_a_past_due_one_only_clears_its_dunning() -> None:
    closed = Plan()
    facts = _reactivation(SubscriptionStatus.SUSPENDED, CustomerStatus.CLOSED)
    assert not plan_reactivation(closed, facts)
    assert changes(closed, Rows.CUSTOMERS) == []
    past_due = Plan()
    facts = _reactivation(SubscriptionStatus.PAST_DUE, CustomerStatus.ACTIVE)._replace(
        welcomed=False
    )
    assert not plan_reactivation(past_due, facts)
    assert [n["template"] for n in new_rows(past_due, Rows.NOTIFICATIONS)] == ["welcome"]
