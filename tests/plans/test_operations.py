"""A gateway operation's answer, planned: the one rule of both recording paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fairbill.errors import IllegalTransition
from fairbill.gateway.port import ChargeResult, RefundResult
from fairbill.lifecycle import OperationStatus
from fairbill.plans.effects import Plan, Rows
from fairbill.plans.operations import Asked, plan_answer

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
Op = OperationStatus


def _delay(tries: int) -> timedelta:
    return timedelta(minutes=tries)


def _answer(
    op: Asked, result: ChargeResult | RefundResult | None, error: str | None = None
) -> tuple[OperationStatus, dict[str, object]]:
    plan = Plan()
    status = plan_answer(plan, op, result, error, AT, _delay, 3)
    (change,) = plan.changes
    assert (change.rows, change.id) == (Rows.GATEWAY_OPERATIONS, op.id)
    return status, change.values


CHARGE = Asked(7, Op.PENDING, 0, 1, None)
REFUND = Asked(8, Op.PENDING, 0, 1, 42)


def test_no_answer_is_unknown_and_asked_again_later() -> None:
    status, values = _answer(CHARGE, None, "Timeout: " + "x" * 600)
    assert status == Op.UNKNOWN
    assert values["tries"] == 1 and values["next_attempt_at"] == AT + timedelta(minutes=1)
    assert len(str(values["error"])) == 500


def test_a_paid_charge_keeps_the_gateways_reference() -> None:
    status, values = _answer(Asked(7, Op.UNKNOWN, 2, 1, None), ChargeResult(True, "ch_1"))
    assert status == Op.SUCCEEDED
    assert values == {
        "tries": 3,
        "updated_at": AT,
        "reference": "ch_1",
        "next_attempt_at": None,
        "status": "succeeded",
    }


def test_a_declined_charge_fails_with_its_code() -> None:
    status, values = _answer(CHARGE, ChargeResult(False, None, "insufficient_funds"))
    assert (status, values["error"]) == (Op.FAILED, "insufficient_funds")


def test_a_refused_refund_is_tried_again_under_a_key_of_its_own() -> None:
    status, values = _answer(REFUND, RefundResult(False, None))
    assert status == Op.PENDING
    assert (values["attempt"], values["key"]) == (2, "refund:42:2")
    assert values["next_attempt_at"] == AT + timedelta(minutes=1)


def test_a_refund_refused_at_its_last_try_fails() -> None:
    status, values = _answer(Asked(8, Op.PENDING, 2, 3, 42), RefundResult(False, None))
    assert status == Op.FAILED
    assert "key" not in values and values["next_attempt_at"] is None


def test_an_uncertain_refund_keeps_its_key() -> None:
    status, values = _answer(REFUND, None, "ConnectionError")
    assert status == Op.UNKNOWN and "key" not in values


@pytest.mark.parametrize("settled", [Op.SUCCEEDED, Op.FAILED])
def test_a_settled_operation_takes_no_second_answer(settled: OperationStatus) -> None:
    with pytest.raises(IllegalTransition):
        plan_answer(
            Plan(), Asked(7, settled, 1, 1, None), ChargeResult(True, "ch_2"), None, AT, _delay, 3
        )
