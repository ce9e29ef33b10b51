"""``decide_failure`` / ``decide_reactivation``: « nous réessaierons la charge jusqu'à 3
fois sur une période de 7 jours » at 1, 3 and 7 days, then suspension."""

from __future__ import annotations

import pytest

from fairbill.decisions.decision import DecisionOutcome
from fairbill.decisions.dunning import decide_failure, decide_reactivation, retry_offsets
from fairbill.decisions.reasons import Reason

from .helpers import POLICY_IDS, cash, local, merchant

DUNNING_CLAUSE = {
    "kalenner": "kalenner/failed-payments",
    "voip": "voip/non-payment",
    "conek": "conek/non-payment",
    "qomon": None,
    "emailconsul": None,
}


def test_kalenner_retries_on_02_06_02_08_02_12_then_suspends() -> None:
    m = merchant("kalenner")
    first = local(m, 2026, 2, 5, 10)
    amount = cash(m, "29.00")
    expected = [
        "2026-02-06T10:00:00+01:00",
        "2026-02-08T10:00:00+01:00",
        "2026-02-12T10:00:00+01:00",
    ]
    for attempt, when in enumerate(expected, start=1):
        out = decide_failure(m, attempt, first, amount)
        assert out.next_retry_at is not None
        assert out.next_retry_at.isoformat() == when
        assert out.suspend is False
        assert out.decision.reasons == (Reason.PAYMENT_FAILED_RETRY_SCHEDULED,)
        assert out.decision.clauses == ("kalenner/failed-payments",)
        assert when[:10] in out.decision.explanation
    last = decide_failure(m, 4, first, amount)
    assert last.next_retry_at is None
    assert last.suspend is True
    assert last.decision.reasons == (Reason.PAYMENT_FAILED_SUSPENDED,)
    assert "suspended" in last.decision.explanation


def test_retry_keeps_the_local_time_across_dst() -> None:
    """Paris moves to summer time on 2026-03-29: a 10:00 failure is retried at 10:00."""
    m = merchant("kalenner")
    first = local(m, 2026, 3, 27, 10)
    got = [decide_failure(m, a, first, cash(m, "29.00")).next_retry_at for a in (1, 2, 3)]
    assert [g.isoformat() for g in got if g is not None] == [
        "2026-03-28T10:00:00+01:00",
        "2026-03-30T10:00:00+02:00",
        "2026-04-03T10:00:00+02:00",
    ]


@pytest.mark.parametrize("policy_id", POLICY_IDS)
def test_every_policy_retries_at_1_3_7_days(policy_id: str) -> None:
    m = merchant(policy_id)
    offsets, clause = retry_offsets(m)
    assert offsets == (1, 3, 7)
    assert clause == DUNNING_CLAUSE[policy_id]
    first = local(m, 2026, 6, 1, 8)
    got = [decide_failure(m, a, first, cash(m, "10.00")).next_retry_at for a in (1, 2, 3)]
    assert got == [local(m, 2026, 6, 2, 8), local(m, 2026, 6, 4, 8), local(m, 2026, 6, 8, 8)]
    assert decide_failure(m, 4, first, cash(m, "10.00")).suspend is True


def test_reactivation_on_payment() -> None:
    """« Votre compte sera réactivé immédiatement dès le paiement réussi »."""
    m = merchant("kalenner")
    d = decide_reactivation(m, cash(m, "29.00"))
    assert d.outcome == DecisionOutcome.APPROVED
    assert d.amount == cash(m, "29.00")
    assert d.reasons == (Reason.REACTIVATED_ON_PAYMENT,)
    assert d.clauses == ("kalenner/failed-payments",)
