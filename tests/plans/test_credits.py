"""Prepaid credits, planned: spent in order, given back, expired and forfeited."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from fairbill.errors import IllegalTransition
from fairbill.lifecycle import CreditPackStatus
from fairbill.plans.credits import Pack, plan_forfeit, plan_give_back, plan_pack, plan_spend
from fairbill.plans.effects import Change, Plan, Rows

AT = datetime(2026, 3, 1, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
Status = CreditPackStatus


def _pack(pack_id: int, remaining: int, status: Status = Status.ACTIVE) -> Pack:
    return Pack(pack_id, "message", remaining, 0, status)


def _merged(plan: Plan) -> dict[int, dict[str, object]]:
    """The changes per pack, in order, as the applier merges them (the last value wins)."""
    merged: dict[int, dict[str, object]] = {}
    for change in plan.changes:
        assert change.rows == Rows.CREDIT_PACKS and isinstance(change.id, int)
        merged.setdefault(change.id, {}).update(change.values)
    return merged


def test_a_granted_pack_is_active_with_all_its_credits() -> None:
    plan = Plan()
    plan_pack(plan, 3, "sms", 500, AT, None)
    (row,) = plan.new
    assert row.rows == Rows.CREDIT_PACKS
    assert row.values["remaining"] == row.values["quantity"] == 500
    assert row.values["status"] == "active" and row.values["expires_at"] is None


def test_spending_empties_packs_in_their_order_and_stops_at_the_quantity() -> None:
    plan = Plan()
    spent = plan_spend(plan, [_pack(1, 30), _pack(2, 50), _pack(3, 10)], 60)
    assert [(pack.id, take) for pack, take in spent] == [(1, 30), (2, 30)]
    assert _merged(plan) == {1: {"remaining": 0, "status": "used"}, 2: {"remaining": 20}}


def test_spending_more_than_there_is_takes_what_there_is() -> None:
    plan = Plan()
    spent = plan_spend(plan, [_pack(1, 5)], 8)
    assert sum(take for _, take in spent) == 5
    assert _merged(plan) == {1: {"remaining": 0, "status": "used"}}


def test_credits_given_back_return_to_the_packs_they_came_from() -> None:
    plan = Plan()
    spent = plan_spend(plan, [_pack(1, 30), _pack(2, 50)], 60)
    plan_give_back(plan, spent, 40)
    # 30 back to pack 1 (emptied, spendable again), 10 back to pack 2 (20 + 10).
    assert _merged(plan) == {
        1: {"remaining": 30, "status": "active"},
        2: {"remaining": 30},
    }


def test_nothing_given_back_changes_nothing_more() -> None:
    plan = Plan()
    spent = plan_spend(plan, [_pack(1, 30)], 10)
    before = list(plan.changes)
    plan_give_back(plan, spent, 0)
    assert plan.changes == before


def test_expiry_and_forfeit_keep_what_was_left_as_forfeited() -> None:
    plan = Plan()
    total = plan_forfeit(
        plan, [Pack(1, "message", 7, 3, Status.ACTIVE), _pack(2, 5)], Status.FORFEITED
    )
    assert total == 12
    assert plan.changes == [
        Change(Rows.CREDIT_PACKS, 1, {"remaining": 0, "forfeited": 10, "status": "forfeited"}),
        Change(Rows.CREDIT_PACKS, 2, {"remaining": 0, "forfeited": 5, "status": "forfeited"}),
    ]


@pytest.mark.parametrize("status", [Status.USED, Status.EXPIRED, Status.FORFEITED])
def test_a_pack_no_longer_active_cannot_expire(status: Status) -> None:
    with pytest.raises(IllegalTransition):
        plan_forfeit(Plan(), [_pack(1, 0, status)], Status.EXPIRED)
