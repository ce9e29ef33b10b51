"""The payment gateway port. Card data never reaches fairbill: only tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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
