"""The in-memory sandbox gateway's faults mean what the database sandbox's mean.

A fault spoils the next new call it applies to (a repeated key is answered from the books
and uses none); a call that raised before doing anything kept nothing under its key, so
asking again with the key does it; a lost answer (``timeout_after``) kept the result, so
asking again returns it and never moves money twice.
"""

from __future__ import annotations

import pytest

from fairbill.errors import GatewayTimeout, GatewayUncertain, GatewayUnreachable
from fairbill.gateway.port import ChargeResult, RefundResult
from fairbill.gateway.sandbox import Fault, FaultTarget, SandboxGateway
from fairbill.money import Money


def usd(text: str) -> Money:
    return Money(text, "USD")


def charged(gw: SandboxGateway, token: str = "tok", key: str = "c") -> str:
    reference = gw.charge(token, usd("100.00"), key).reference
    assert reference is not None
    return reference


class TestNoFault:
    def test_references_are_numbered_as_before(self) -> None:
        gw = SandboxGateway()
        assert gw.charge("tok", usd("10.00"), "k1") == ChargeResult(True, "ch_000001")
        gw.set_declines("tok", True)
        assert gw.charge("tok", usd("10.00"), "k2") == ChargeResult(False, None, "card_declined")
        gw.set_declines("tok", False)
        assert gw.charge("tok", usd("10.00"), "k3") == ChargeResult(True, "ch_000003")
        assert gw.refund("ch_000001", usd("4.00"), "r1") == RefundResult(True, "re_000001")
        assert gw.refund("ch_000001", usd("7.00"), "r2") == RefundResult(False, None)
        assert gw.pending_faults() == 0

    def test_its_books_are_read_only(self) -> None:
        gw = SandboxGateway()
        gw.charge("tok", usd("10.00"), "k1")
        assert dict(gw.charges) == {"k1": ChargeResult(True, "ch_000001")}
        with pytest.raises(TypeError):
            gw.charges["k2"] = ChargeResult(True, "ch_999999")  # type: ignore[index]


class TestChargeFaults:
    def test_decline(self) -> None:
        gw = SandboxGateway()
        gw.add_fault(Fault.DECLINE, operation=FaultTarget.CHARGE)
        declined = gw.charge("tok", usd("10.00"), "k")
        assert declined == ChargeResult(False, None, "card_declined")
        assert gw.charge("tok", usd("10.00"), "k") == declined  # remembered under its key
        assert gw.charge("tok", usd("10.00"), "k2").ok  # used up

    def test_timeout_before_does_nothing(self) -> None:
        gw = SandboxGateway()
        gw.add_fault("timeout_before", operation="charge")
        with pytest.raises(GatewayTimeout):
            gw.charge("tok", usd("10.00"), "k")
        assert dict(gw.charges) == {}
        assert gw.charge("tok", usd("10.00"), "k") == ChargeResult(True, "ch_000001")

    def test_timeout_after_takes_the_money_and_loses_the_answer(self) -> None:
        gw = SandboxGateway()
        gw.add_fault(Fault.TIMEOUT_AFTER)
        with pytest.raises(GatewayTimeout):
            gw.charge("tok", usd("10.00"), "k")
        assert dict(gw.charges) == {"k": ChargeResult(True, "ch_000001")}
        assert gw.charge("tok", usd("10.00"), "k") == ChargeResult(True, "ch_000001")
        assert len(gw.charges) == 1  # asked again: not taken twice

    def test_connection_error_does_nothing(self) -> None:
        gw = SandboxGateway()
        gw.add_fault(Fault.CONNECTION_ERROR)
        with pytest.raises(GatewayUnreachable):
            gw.charge("tok", usd("10.00"), "k")
        assert dict(gw.charges) == {}
        assert gw.charge("tok", usd("10.00"), "k").ok

    def test_slow_answers_right(self) -> None:
        gw = SandboxGateway()
        gw.add_fault(Fault.SLOW, delay_ms=1)
        assert gw.charge("tok", usd("10.00"), "k") == ChargeResult(True, "ch_000001")
        assert gw.pending_faults() == 0

    def test_both_uncertain_faults_are_gateway_uncertain(self) -> None:
        gw = SandboxGateway()
        gw.add_fault(Fault.TIMEOUT_BEFORE)
        gw.add_fault(Fault.CONNECTION_ERROR)
        for _ in range(2):
            with pytest.raises(GatewayUncertain):
                gw.charge("tok", usd("10.00"), "k")


class TestRefundFaults:
    def test_decline_refuses_the_refund(self) -> None:
        gw = SandboxGateway()
        reference = charged(gw)
        gw.add_fault(Fault.DECLINE, operation=FaultTarget.REFUND)
        assert gw.refund(reference, usd("10.00"), "r") == RefundResult(False, None)
        assert gw.refund(reference, usd("10.00"), "r") == RefundResult(False, None)
        assert gw.refund(reference, usd("10.00"), "r2").ok
        assert gw.refund(reference, usd("90.00"), "r3").ok  # the refusal kept nothing

    def test_timeout_after_pays_once(self) -> None:
        gw = SandboxGateway()
        reference = charged(gw)
        gw.add_fault(Fault.TIMEOUT_AFTER, operation=FaultTarget.REFUND)
        with pytest.raises(GatewayTimeout):
            gw.refund(reference, usd("60.00"), "r")
        assert gw.refund(reference, usd("60.00"), "r") == RefundResult(True, "re_000001")
        assert not gw.refund(reference, usd("60.00"), "r2").ok  # 60 of 100 already back

    @pytest.mark.parametrize("fault", [Fault.TIMEOUT_BEFORE, Fault.CONNECTION_ERROR])
    def test_no_answer_before_anything_was_done(self, fault: Fault) -> None:
        gw = SandboxGateway()
        reference = charged(gw)
        gw.add_fault(fault, operation=FaultTarget.REFUND)
        with pytest.raises(GatewayUncertain):
            gw.refund(reference, usd("100.00"), "r")
        assert dict(gw.refunds) == {}
        assert gw.refund(reference, usd("100.00"), "r").ok


class TestWhichCallsAFaultSpoils:
    def test_the_operation_named(self) -> None:
        gw = SandboxGateway()
        gw.add_fault(Fault.DECLINE, operation=FaultTarget.REFUND)
        reference = charged(gw)  # a charge: not spoiled
        assert not gw.refund(reference, usd("1.00"), "r").ok

    def test_the_token_named_and_a_refund_of_its_charge(self) -> None:
        gw = SandboxGateway()
        mine, other = charged(gw, "tok_a", "ca"), charged(gw, "tok_b", "cb")
        gw.add_fault(Fault.DECLINE, token="tok_a", times=2)
        assert gw.refund(other, usd("1.00"), "rb").ok
        assert gw.charge("tok_b", usd("1.00"), "cb2").ok
        assert not gw.refund(mine, usd("1.00"), "ra").ok
        assert not gw.charge("tok_a", usd("1.00"), "ca2").ok
        assert gw.charge("tok_a", usd("1.00"), "ca3").ok

    def test_a_repeated_key_uses_no_fault(self) -> None:
        gw = SandboxGateway()
        gw.charge("tok", usd("10.00"), "k")
        gw.add_fault(Fault.TIMEOUT_BEFORE)
        assert gw.charge("tok", usd("10.00"), "k").ok
        assert gw.pending_faults() == 1

    def test_faults_are_used_in_the_order_set(self) -> None:
        gw = SandboxGateway()
        gw.add_fault(Fault.CONNECTION_ERROR)
        gw.add_fault(Fault.TIMEOUT_BEFORE)
        with pytest.raises(GatewayUnreachable):
            gw.charge("tok", usd("10.00"), "k")
        with pytest.raises(GatewayTimeout):
            gw.charge("tok", usd("10.00"), "k")
        assert gw.charge("tok", usd("10.00"), "k").ok

    def test_times_none_lasts_until_cleared(self) -> None:
        gw = SandboxGateway()
        gw.add_fault(Fault.DECLINE, times=None)
        assert not any(gw.charge("tok", usd("1.00"), f"k{i}").ok for i in range(5))
        gw.clear_faults()
        assert gw.charge("tok", usd("1.00"), "k5").ok
