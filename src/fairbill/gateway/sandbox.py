"""A sandbox gateway: every charge succeeds unless its token is set to decline.

Idempotent like a real processor: the same idempotency key returns the first result.
"""

from __future__ import annotations

from fairbill.gateway.port import ChargeResult, RefundResult
from fairbill.money import Money


class SandboxGateway:
    def __init__(self) -> None:
        self._declining: set[str] = set()
        self._charges: dict[str, ChargeResult] = {}
        self._refunds: dict[str, RefundResult] = {}
        self._refunded: dict[str, int] = {}
        self._amounts: dict[str, int] = {}

    def set_declines(self, token: str, declines: bool) -> None:
        if declines:
            self._declining.add(token)
        else:
            self._declining.discard(token)

    def charge(self, token: str, amount: Money, idempotency_key: str) -> ChargeResult:
        if idempotency_key in self._charges:
            return self._charges[idempotency_key]
        if token in self._declining:
            result = ChargeResult(False, None, "card_declined")
        else:
            reference = f"ch_{len(self._charges) + 1:06d}"
            self._amounts[reference] = amount.minor
            result = ChargeResult(True, reference)
        self._charges[idempotency_key] = result
        return result

    def refund(self, charge_reference: str, amount: Money, idempotency_key: str) -> RefundResult:
        if idempotency_key in self._refunds:
            return self._refunds[idempotency_key]
        already = self._refunded.get(charge_reference, 0)
        if (
            charge_reference not in self._amounts
            or already + amount.minor > self._amounts[charge_reference]
        ):
            result = RefundResult(False, None)
        else:
            self._refunded[charge_reference] = already + amount.minor
            result = RefundResult(True, f"re_{len(self._refunds) + 1:06d}")
        self._refunds[idempotency_key] = result
        return result
