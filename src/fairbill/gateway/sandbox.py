"""A sandbox gateway in memory: every charge succeeds unless its token is set to decline,
or a fault set with ``add_fault`` spoils it.

Idempotent like a real processor: the same idempotency key returns the first result. Only
a call that did something is kept under its key (a result, or ``timeout_after``'s lost
answer), so a key whose call raised before anything was done is done by the next call.

Faults mean what they mean for ``DatabaseSandbox`` (``fairbill.gateway.sandbox_db``), for
charges, refunds or both, for one token (a refund's token is its charge's) or all, a
number of times (``None``: until ``clear_faults``); the first that applies is used up by
one new call (a repeated key is answered from the books and uses none):

- ``decline``: the charge is declined (``card_declined``), or the refund refused;
- ``timeout_before``: ``GatewayTimeout``, and nothing was done;
- ``timeout_after``: the money moved, but the answer was lost (``GatewayTimeout``);
- ``connection_error``: ``GatewayUnreachable``, and nothing was done;
- ``slow``: the answer comes after ``delay_ms``, and is right.

With no fault set it behaves as it always did, references included (``ch_000001`` …):
the simulator's results are made with it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from fairbill.errors import GatewayTimeout, GatewayUnreachable
from fairbill.gateway.port import ChargeResult, RefundResult
from fairbill.gateway.sandbox_db import Fault, FaultTarget
from fairbill.money import Money

__all__ = ["Fault", "FaultTarget", "SandboxGateway"]


@dataclass(slots=True)
class _Fault:
    """One ``add_fault``: ``remaining`` goes down by one for each call it spoils."""

    fault: Fault
    operation: FaultTarget
    token: str | None
    remaining: int | None
    delay_ms: int

    def applies(self, target: FaultTarget, token: str | None) -> bool:
        return (
            self.operation in (target, FaultTarget.ANY)
            and (self.token is None or self.token == token)
            and (self.remaining is None or self.remaining > 0)
        )


class SandboxGateway:
    def __init__(self) -> None:
        self._declining: set[str] = set()
        self._charges: dict[str, ChargeResult] = {}
        self._refunds: dict[str, RefundResult] = {}
        self._refunded: dict[str, int] = {}
        self._amounts: dict[str, int] = {}
        self._tokens: dict[str, str] = {}  # charge reference → the token it was taken from
        self._faults: list[_Fault] = []

    def set_declines(self, token: str, declines: bool) -> None:
        if declines:
            self._declining.add(token)
        else:
            self._declining.discard(token)

    # -- telling it how to fail --------------------------------------------------------------
    def add_fault(
        self,
        fault: Fault | str,
        *,
        operation: FaultTarget | str = FaultTarget.ANY,
        token: str | None = None,
        times: int | None = 1,
        delay_ms: int = 0,
    ) -> None:
        """Spoil the next ``times`` new calls of ``operation`` (for ``token``, or any)."""
        self._faults.append(_Fault(Fault(fault), FaultTarget(operation), token, times, delay_ms))

    def clear_faults(self) -> None:
        self._faults.clear()

    def pending_faults(self) -> int:
        """How many faults are set and not used up."""
        return sum(1 for f in self._faults if f.remaining is None or f.remaining > 0)

    # -- its books, read-only: what a processor's dashboard shows ------------------------------
    @property
    def charges(self) -> Mapping[str, ChargeResult]:
        """Every charge answered, taken or declined, by idempotency key."""
        return MappingProxyType(self._charges)

    @property
    def refunds(self) -> Mapping[str, RefundResult]:
        """Every refund answered, paid or refused, by idempotency key."""
        return MappingProxyType(self._refunds)

    # -- the port ------------------------------------------------------------------------------
    def charge(self, token: str, amount: Money, idempotency_key: str) -> ChargeResult:
        if idempotency_key in self._charges:
            return self._charges[idempotency_key]
        fault = self._take_fault(FaultTarget.CHARGE, token)
        _before(fault)
        if token in self._declining or _is(fault, Fault.DECLINE):
            result = ChargeResult(False, None, "card_declined")
        else:
            reference = f"ch_{len(self._charges) + 1:06d}"
            self._amounts[reference] = amount.minor
            self._tokens[reference] = token
            result = ChargeResult(True, reference)
        self._charges[idempotency_key] = result
        _after(fault)
        return result

    def refund(self, charge_reference: str, amount: Money, idempotency_key: str) -> RefundResult:
        if idempotency_key in self._refunds:
            return self._refunds[idempotency_key]
        fault = self._take_fault(FaultTarget.REFUND, self._tokens.get(charge_reference))
        _before(fault)
        already = self._refunded.get(charge_reference, 0)
        if (
            _is(fault, Fault.DECLINE)
            or charge_reference not in self._amounts
            or already + amount.minor > self._amounts[charge_reference]
        ):
            result = RefundResult(False, None)
        else:
            self._refunded[charge_reference] = already + amount.minor
            result = RefundResult(True, f"re_{len(self._refunds) + 1:06d}")
        self._refunds[idempotency_key] = result
        _after(fault)
        return result

    def _take_fault(self, target: FaultTarget, token: str | None) -> _Fault | None:
        """The first fault set that applies, used up by one."""
        for fault in self._faults:
            if fault.applies(target, token):
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None


def _is(fault: _Fault | None, kind: Fault) -> bool:
    return fault is not None and fault.fault == kind


def _before(fault: _Fault | None) -> None:
    """Faults that strike before anything is done: nothing is kept under the key."""
    if fault is None:
        return
    if fault.fault == Fault.SLOW:
        time.sleep(fault.delay_ms / 1000)
    elif fault.fault == Fault.TIMEOUT_BEFORE:
        raise GatewayTimeout("the sandbox did not answer (nothing was done)")
    elif fault.fault == Fault.CONNECTION_ERROR:
        raise GatewayUnreachable("the sandbox refused the connection")


def _after(fault: _Fault | None) -> None:
    """Faults that strike once the money moved: the answer is lost, the books keep it."""
    if _is(fault, Fault.TIMEOUT_AFTER):
        raise GatewayTimeout("the sandbox's answer was lost (the operation was done)")
