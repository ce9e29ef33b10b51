"""The payment gateway port. Card data never reaches fairbill: only tokens.

A gateway answers a charge or a refund with a result (taken, or declined: a decline is a
value), or raises ``GatewayUncertain`` when no answer came back (``GatewayTimeout``,
``GatewayUnreachable``): the money may or may not have moved, and the same call with the
same idempotency key is asked again later. Every call is idempotent by its key: the same
key returns the first answer and never moves money twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from fairbill.errors import GatewayUncertain
from fairbill.money import Money


@dataclass(frozen=True, slots=True)
class ChargeResult:
    ok: bool
    reference: str | None  # the gateway's id for the charge, when it went through
    decline_code: str | None = None


@dataclass(frozen=True, slots=True)
class RefundResult:
    ok: bool
    reference: str | None


class PaymentGateway(Protocol):
    def charge(self, token: str, amount: Money, idempotency_key: str) -> ChargeResult: ...

    def refund(
        self, charge_reference: str, amount: Money, idempotency_key: str
    ) -> RefundResult: ...


@runtime_checkable
class ChargesInBatches(Protocol):
    """A gateway that also takes many charges in one call (the database sandbox): the
    same answers, key by key, as ``charge`` one at a time, with an uncertain charge's
    ``GatewayUncertain`` in its place instead of raised."""

    def charge_many(
        self, charges: Sequence[tuple[str, Money, str]]
    ) -> list[ChargeResult | GatewayUncertain]: ...
