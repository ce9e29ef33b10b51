"""A gateway operation's answer, planned: the operation's own row after the gateway
answered (or did not).

Pure: the operation as read and the answer in, the change to its row out, and the
status it moved to, which tells the shell what follows (``billing.charge_succeeded`` …).
The one rule for both paths that record answers: one by one (``operations.record``) and
in bulk (``outcomes.record_many``).

- no answer (a timeout, a lost connection): ``unknown``, asked again after a delay that
  grows with the tries;
- a charge answered: ``succeeded`` with the gateway's reference, or ``failed`` with the
  decline code;
- a refund paid: ``succeeded``; refused: tried again under a key of its own (a refusal is
  definite: no money moved, and the gateway answers a refused key with the same refusal)
  until ``refund_tries``, then ``failed``. An *uncertain* answer never gets a new key:
  that could pay twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from fairbill.gateway.port import ChargeResult, RefundResult
from fairbill.lifecycle import OperationStatus, advance
from fairbill.plans.effects import Plan, Rows


class Asked(NamedTuple):
    """An open operation, as read when its answer is recorded."""

    id: int
    status: OperationStatus
    tries: int
    attempt: int
    refund_id: int | None


def plan_answer(
    plan: Plan,
    op: Asked,
    result: ChargeResult | RefundResult | None,
    error: str | None,
    at: datetime,
    delay: Callable[[int], timedelta],
    refund_tries: int,
) -> OperationStatus:
    """The operation's row after ``result`` (None: no answer, ``error`` says why),
    recorded at ``at``; ``delay(tries)`` is how long to wait before asking again."""
    tries = op.tries + 1
    values: dict[str, Any] = {"tries": tries, "updated_at": at}
    if result is None:
        status = advance(op.status, OperationStatus.UNKNOWN)
        values |= {"error": (error or "")[:500], "next_attempt_at": at + delay(tries)}
    elif result.ok:
        status = advance(op.status, OperationStatus.SUCCEEDED)
        values |= {"reference": result.reference, "next_attempt_at": None}
    elif isinstance(result, ChargeResult):
        status = advance(op.status, OperationStatus.FAILED)
        values |= {"error": result.decline_code or "declined", "next_attempt_at": None}
    elif tries < refund_tries:
        status = advance(op.status, OperationStatus.PENDING)
        values |= {
            "error": "refused by the gateway",
            "attempt": op.attempt + 1,
            "key": f"refund:{op.refund_id}:{op.attempt + 1}",
            "next_attempt_at": at + delay(tries),
        }
    else:
        status = advance(op.status, OperationStatus.FAILED)
        values |= {"error": "refused by the gateway", "next_attempt_at": None}
    values["status"] = str(status)
    plan.change(Rows.GATEWAY_OPERATIONS, op.id, **values)
    return status
