"""What each bundled policy offers a customer who asks for a refund."""

from __future__ import annotations

from fairbill.policy.customer_terms import appeal_allowed, offered_kinds, quotes, requirements
from fairbill.policy.load import bundled_policy
from fairbill.policy.model import RequestKind

K = RequestKind


def kinds(policy_id: str) -> list[RequestKind]:
    return [k.kind for k in offered_kinds(bundled_policy(policy_id))]


def test_each_policy_offers_the_kinds_its_clauses_decide() -> None:
    assert kinds("kalenner") == []  # its guarantee is claimed by cancelling
    assert kinds("emailconsul")[0] == K.MONEY_BACK
    assert set(kinds("emailconsul")) >= {K.DUPLICATE_CHARGE, K.TERMS_DECLINED, K.EXCEPTIONAL}
    assert K.COOLING_OFF in kinds("conek") and K.NON_DELIVERY in kinds("conek")
    assert K.UNUSED_PERIOD in kinds("voip")
    for policy_id in ("qomon", "voip", "conek", "emailconsul", "kalenner"):
        found = kinds(policy_id)
        assert len(found) == len(set(found)), policy_id


def test_requirements_name_the_fields_a_request_would_be_declined_without() -> None:
    money_back = requirements(bundled_policy("emailconsul"), K.MONEY_BACK)
    assert money_back.reason and money_back.order_numbers == 1
    assert money_back.clauses
    mistake = requirements(bundled_policy("emailconsul"), K.PAYMENT_BY_MISTAKE)
    assert mistake.order_numbers == 2  # the one to refund and the correct one
    unauthorized = requirements(bundled_policy("conek"), K.UNAUTHORIZED)
    assert unauthorized.documents
    assert not requirements(bundled_policy("qomon"), K.DUPLICATE_CHARGE).documents


def test_appeals_and_quotes() -> None:
    assert not appeal_allowed(bundled_policy("conek"))  # "decisions are final"
    assert appeal_allowed(bundled_policy("emailconsul"))  # no clause: a reviewer sees it
    kalenner = bundled_policy("kalenner")
    [(clause_id, words)] = quotes(kalenner, ["kalenner/guarantee"])
    assert clause_id == "kalenner/guarantee" and "14 jours" in words
    assert quotes(kalenner, ["nope"]) == [("nope", "")]
