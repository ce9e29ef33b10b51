"""The decision value every rule returns: outcome, amount, destination and its reasons.

A decision is a value, never an exception: a declined refund is a normal result.
Invariants: ``amount`` is rounded to the currency's minor unit and never negative;
``clauses`` are the ids of the clauses that fired, in the order they were applied;
``explanation`` is one or more sentences a support agent can paste into a reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from fairbill.decisions.reasons import Reason
from fairbill.money import Money
from fairbill.policy.model import Destination


class DecisionOutcome(StrEnum):
    APPROVED = "approved"
    PARTIALLY_APPROVED = "partially_approved"
    DECLINED = "declined"
    NEEDS_REVIEW = "needs_review"


@dataclass(frozen=True, slots=True)
class PaymentRefund:
    """``amount`` refunded against the customer's payment number ``payment``."""

    payment: int
    amount: Money


@dataclass(frozen=True, slots=True)
class Recommendation:
    """What the engine would decide for a ``needs_review`` decision."""

    outcome: DecisionOutcome
    amount: Money
    destination: Destination | None


@dataclass(frozen=True, slots=True)
class Decision:
    action: str
    outcome: DecisionOutcome
    amount: Money
    destination: Destination | None = None
    reasons: tuple[Reason, ...] = ()
    clauses: tuple[str, ...] = ()
    explanation: str = ""
    recommendation: Recommendation | None = None
    # When service ends because of this decision (cancel, refund of unused time), if it does.
    service_ends_at: datetime | None = None
    fee: Money | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # ``amount`` split over the payments it is paid against, when that is more than the one
    # payment a request names (Kalenner's guarantee refunds everything paid for the
    # subscription); empty: all of it against the named payment.
    refunds: tuple[PaymentRefund, ...] = ()

    def __post_init__(self) -> None:
        if self.amount.is_negative:
            raise ValueError("a decision amount is never negative")

    @property
    def pays_now(self) -> bool:
        return self.outcome in (DecisionOutcome.APPROVED, DecisionOutcome.PARTIALLY_APPROVED) and (
            not self.amount.is_zero
        )

    def with_amount(self, amount: Money) -> Decision:
        return replace(self, amount=amount)

    def but(self, **changes: Any) -> Decision:
        """``dataclasses.replace`` for a decision, without its per-call introspection (the
        refund rules replace a decision or two on every request); the amount is checked
        again when it changes."""
        if not changes.keys() <= _FIELD_SET:
            raise TypeError(f"a decision has no field {sorted(changes.keys() - _FIELD_SET)}")
        new = object.__new__(Decision)
        for name in _FIELDS:
            object.__setattr__(new, name, changes[name] if name in changes else getattr(self, name))
        if "amount" in changes:
            new.__post_init__()
        return new


_FIELDS = tuple(f.name for f in fields(Decision))
_FIELD_SET = frozenset(_FIELDS)


def payout_outcome(amount: Money, full: Money) -> DecisionOutcome:
    """Approved when the whole amount asked about is refunded, partial when part of it."""
    if amount.is_zero:
        return DecisionOutcome.DECLINED
    return DecisionOutcome.APPROVED if amount >= full else DecisionOutcome.PARTIALLY_APPROVED
