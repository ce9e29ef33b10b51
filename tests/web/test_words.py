"""The pages' words: every key in both languages, every key a template names exists."""

from __future__ import annotations

import re
from pathlib import Path

from fairbill.web.words import CATALOGUE, word

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "fairbill" / "web" / "templates"


def test_english_and_french_have_the_same_keys_and_placeholders() -> None:
    en, fr = CATALOGUE["en"], CATALOGUE["fr"]
    assert set(en) == set(fr)
    for key in en:
        names = set(re.findall(r"{(\w+)}", en[key]))
        assert names == set(re.findall(r"{(\w+)}", fr[key])), key


def test_every_key_a_template_names_is_in_the_catalogue() -> None:
    named = set()
    for path in TEMPLATES.rglob("*.html"):
        named |= set(re.findall(r"\bt\('([a-z_.]+[a-z_])'", path.read_text()))
    assert named, "no template found"
    assert named <= set(CATALOGUE["en"]), named - set(CATALOGUE["en"])


def test_a_missing_word_falls_back_to_english_then_to_plain_words() -> None:
    assert word("fr", "nav.home") == "Abonnements"
    assert word("de", "nav.home") == "Subscriptions"
    assert word("fr", "status.on_hold") == "on hold"
    assert word("fr-CA", "sub.next_charge_value", amount="1 €", date="2 mai") == "1 € le 2 mai"


def test_every_state_and_kind_the_engine_knows_has_its_words() -> None:
    from fairbill.decisions.decision import DecisionOutcome
    from fairbill.lifecycle import InvoiceStatus, RefundStatus, RequestStatus, SubscriptionStatus
    from fairbill.policy.model import RequestKind

    for prefix, values in (
        ("status", SubscriptionStatus),
        ("invoice_status", InvoiceStatus),
        ("refund_status", RefundStatus),
        ("request_status", RequestStatus),
        ("outcome", DecisionOutcome),
        ("kind", RequestKind),
    ):
        for value in values:
            assert f"{prefix}.{value}" in CATALOGUE["en"], f"{prefix}.{value}"
