"""Rendering every template in English and French: words, amounts, dates, escaping."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from fairbill.notify.render import (
    TEMPLATES,
    Message,
    RenderError,
    available,
    render,
    template_language,
)

KALENNER = {"merchant_name": "Kalenner", "currency": "EUR", "timezone": "Europe/Paris"}


def plain(text: str) -> str:
    """Babel and French typography use no-break spaces; compare with plain ones."""
    return text.replace("\u00a0", " ").replace("\u202f", " ")


# The payloads the services emit today (grep `notify(` in src/fairbill/services), plus the
# two templates no service emits yet, with the values a service would give them.
PAYLOADS: dict[str, dict[str, Any]] = {
    "welcome": {"plan": "pro-monthly"},
    "receipt": {"invoice": "3", "amount": "160.00"},
    "payment_failed": {"invoice": "3", "amount": "160.00"},
    "suspended": {},
    "reactivated": {},
    "cancellation_confirmed": {"ends_at": "2026-04-01T00:00:00+02:00"},
    "request_received": {"request": "2"},
    "refund_decided": {"request": "2", "outcome": "approved"},
    "refund_paid": {"amount": "160.00", "destination": "original_method"},
    "data_deletion_notice": {},
    "terms_changed": {},
    "job_failed": {
        "job": "subscription_boundary",
        "target": "subscription:42",
        "error": "Conflict: boom",
        "failed_at": "2026-04-01T00:00:00+02:00",
        "next_attempt_at": "2026-04-01T00:01:00+02:00",
    },
    "refund_failed": {
        "customer": "c_1",
        "refund": "12",
        "amount": "160.00",
        "currency": "EUR",
        "error": "card_declined",
    },
    "request_needs_information": {"request": "2"},
    "credits_expiring": {
        "remaining": "5",
        "kind": "message",
        "expires_at": "2026-04-30T21:59:00+00:00",
    },
}

# (template, language) → (a piece of the subject, a piece of the text body)
EXPECTED: dict[tuple[str, str], tuple[str, str]] = {
    ("welcome", "en"): (
        "Welcome to Kalenner",
        "subscription to the pro-monthly plan is now active",
    ),
    ("welcome", "fr"): ("Bienvenue chez Kalenner", "Votre abonnement à l'offre pro-monthly est"),
    ("receipt", "en"): ("invoice 3: €160.00", "your payment of €160.00 for invoice 3"),
    ("receipt", "fr"): (
        "facture n° 3 : 160,00 €",
        "votre paiement de 160,00 € pour la facture n° 3",
    ),
    ("payment_failed", "en"): (
        "Payment of €160.00 failed",
        "could not collect your payment of €160.00",
    ),
    ("payment_failed", "fr"): (
        "Échec du paiement de 160,00 €",
        "Nous n'avons pas pu encaisser votre paiement de 160,00 €",
    ),
    ("suspended", "en"): ("Your Kalenner account is suspended", "has been suspended"),
    ("suspended", "fr"): ("Votre compte Kalenner est suspendu", "a été suspendu"),
    ("reactivated", "en"): ("account is active again", "your account is active again"),
    ("reactivated", "fr"): ("est de nouveau actif", "votre compte est de nouveau actif"),
    ("cancellation_confirmed", "en"): (
        "Your cancellation is confirmed",
        "It ends on April 1, 2026, 12:00 AM (Europe/Paris)",
    ),
    ("cancellation_confirmed", "fr"): (
        "Confirmation de l'annulation de votre abonnement",
        "Il prendra fin le 1er avril 2026, 00:00 (Europe/Paris)",
    ),
    ("request_received", "en"): ("We have received your request 2", "(reference 2)"),
    ("request_received", "fr"): ("Nous avons bien reçu votre demande n° 2", "(référence 2)"),
    ("refund_decided", "en"): ("request 2: approved", "Your request 2 has been approved."),
    ("refund_decided", "fr"): (
        "demande n° 2 : acceptée",
        "Votre demande n° 2 a été acceptée.",
    ),
    ("refund_paid", "en"): (
        "Your refund of €160.00",
        "€160.00 has been refunded to your original payment method.",
    ),
    ("refund_paid", "fr"): (
        "Votre remboursement de 160,00 €",
        "Un montant de 160,00 € a été remboursé sur votre moyen de paiement d'origine.",
    ),
    ("data_deletion_notice", "en"): ("Your account data has been deleted", "we have deleted"),
    ("data_deletion_notice", "fr"): (
        "Les données de votre compte ont été supprimées",
        "nous les avons donc supprimées",
    ),
    ("terms_changed", "en"): ("Kalenner is updating its terms", "We have updated our terms"),
    ("terms_changed", "fr"): (
        "Kalenner met à jour ses conditions générales",
        "Nous avons modifié nos conditions générales",
    ),
    ("job_failed", "en"): (
        "Scheduled job failed: subscription_boundary for subscription:42",
        "next on April 1, 2026, 12:01 AM (Europe/Paris)",
    ),
    ("job_failed", "fr"): (
        "Échec d'une tâche planifiée : subscription_boundary pour subscription:42",
        "prochain essai le 1er avril 2026, 00:01 (Europe/Paris)",
    ),
    ("refund_failed", "en"): (
        "Refund failed: €160.00 to customer c_1",
        "refused the refund of €160.00 to customer c_1 (refund 12)",
    ),
    ("refund_failed", "fr"): (
        "Échec d'un remboursement : 160,00 € au client c_1",
        "a refusé le remboursement de 160,00 € au client c_1 (remboursement 12)",
    ),
    ("request_needs_information", "en"): (
        "We need more information about your request 2",
        "we need more information from you",
    ),
    ("request_needs_information", "fr"): (
        "Informations complémentaires nécessaires pour votre demande n° 2",
        "nous avons besoin d'informations complémentaires",
    ),
    ("credits_expiring", "en"): (
        "5 message credits expire on April 30, 2026",
        "will expire on April 30, 2026, 11:59 PM (Europe/Paris)",
    ),
    ("credits_expiring", "fr"): (
        "5 crédits de messages expirent le 30 avril 2026",
        "ils expireront le 30 avril 2026, 23:59 (Europe/Paris)",
    ),
}

# Alerts to the merchant's finance address: they are fairbill's, not the merchant's, and
# name no customer (``services.alerts.notify_finance``).
FINANCE_ALERTS = ("job_failed", "refund_failed")

# English words that must not show up in a French message (outside payload values).
ENGLISH = (" the ", " your ", " has been ", " we ", " please ", " will ", " and ")


def test_every_template_is_written_in_both_languages() -> None:
    assert list(available("en")) == list(TEMPLATES)
    assert list(available("fr")) == list(TEMPLATES)
    assert set(PAYLOADS) == set(TEMPLATES)


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("template", TEMPLATES)
def test_template_in_language(template: str, language: str) -> None:
    message = render(
        template, language, {**KALENNER, "customer_code": "cus-7", **PAYLOADS[template]}
    )
    subject_part, text_part = EXPECTED[(template, language)]
    assert subject_part in plain(message.subject)
    assert text_part in plain(message.text)
    assert message.language == language
    assert "\n" not in message.subject
    if template in FINANCE_ALERTS:
        check_finance_layout(message, language)
        return
    greeting, signature = (
        ("Hello,", "The Kalenner team")
        if language == "en"
        else (
            "Bonjour,",
            "L'équipe Kalenner",
        )
    )
    assert message.text.startswith(greeting + "\n\n")
    assert signature in message.text
    assert "cus-7" in message.text
    # The HTML part says the same thing, in a document of the right language.
    assert f'<html lang="{language}">' in message.html
    assert f"<title>{message.subject}</title>" in message.html.replace("&#39;", "'")
    assert signature in message.html.replace("&#39;", "'")
    if language == "fr":
        lowered = f" {plain(message.text).lower()} "
        assert not [w for w in ENGLISH if w in lowered], message.text


def check_finance_layout(message: Message, language: str) -> None:
    greeting, footer = (
        ("Hello,", "automatic alert from fairbill to the finance contact of Kalenner")
        if language == "en"
        else ("Bonjour,", "alerte automatique est envoyée par fairbill au contact financier")
    )
    assert message.text.startswith(greeting + "\n\n")
    assert footer in message.text and footer in message.html
    assert "cus-7" not in message.text  # about the merchant's work, not a customer's account
    assert f'<html lang="{language}">' in message.html
    if language == "fr":
        lowered = f" {plain(message.text).lower()} "
        assert not [w for w in ENGLISH if w in lowered], message.text


def test_a_job_failure_alert_says_what_failed_and_when_it_is_retried() -> None:
    payload = PAYLOADS["job_failed"] | {"error": "Conflict: customer <c_1> is closed"}
    en = render("job_failed", "en", {**KALENNER, **payload})
    assert "The scheduled job subscription_boundary failed for subscription:42" in en.text
    assert "on April 1, 2026, 12:00 AM (Europe/Paris)" in plain(en.text)
    assert "Error: Conflict: customer <c_1> is closed" in en.text
    assert "&lt;c_1&gt;" in en.html and "<c_1>" not in en.html
    assert "GET /v1/job_failures" in en.text
    fr = render("job_failed", "fr", {**KALENNER, **payload})
    assert "Erreur : Conflict: customer <c_1> is closed" in plain(fr.text)
    # Without a next attempt (none planned) the sentence stops at "automatically".
    without_next = {k: v for k, v in payload.items() if k != "next_attempt_at"}
    bare = render("job_failed", "en", {**KALENNER, **without_next})
    assert "It is retried automatically, waiting longer" in bare.text


@pytest.mark.parametrize(
    ("template", "payload"),
    [
        ("receipt", {"invoice": "3", "amount": "160.00"}),
        ("payment_failed", {"invoice": "3", "amount": "160.00"}),
        ("refund_paid", {"amount": "160.00", "destination": "original_method"}),
    ],
)
def test_amount_in_subject_and_body_per_locale(template: str, payload: dict[str, str]) -> None:
    en = render(template, "en", {**KALENNER, **payload})
    fr = render(template, "fr", {**KALENNER, **payload})
    for message, shown in ((en, "€160.00"), (fr, "160,00 €")):
        assert shown in plain(message.subject)
        assert shown in plain(message.text)
        assert shown in plain(message.html)
    assert "160.00" not in fr.text and "160,00" not in en.text


def test_amounts_are_exact_decimals_in_the_merchant_currency() -> None:
    usd = {"merchant_name": "EmailConsul", "currency": "USD", "timezone": "UTC"}
    big = render("receipt", "en", {**usd, "invoice": "9", "amount": "1234.50"})
    assert "$1,234.50" in big.subject
    fr = render("receipt", "fr", {**KALENNER, "invoice": "9", "amount": "1234567.89"})
    assert "1 234 567,89 €" in plain(fr.subject)
    # A Decimal is fine; 0.1 + 0.2 shown exactly, never through a float.
    exact = render("refund_paid", "en", {**KALENNER, "amount": Decimal("0.1") + Decimal("0.2")})
    assert "€0.30" in exact.subject
    with pytest.raises(RenderError, match="float"):
        render("receipt", "en", {**KALENNER, "invoice": "1", "amount": 160.0})
    with pytest.raises(RenderError, match="not a decimal amount"):
        render("receipt", "en", {**KALENNER, "invoice": "1", "amount": "160,00"})
    with pytest.raises(RenderError, match="currency"):
        render("receipt", "en", {"merchant_name": "X", "invoice": "1", "amount": "1.00"})


def test_dates_are_shown_in_the_merchant_timezone() -> None:
    # 22:30 UTC on March 31 is already April 1 in Paris (UTC+2 in summer time).
    payload = {"ends_at": "2026-03-31T22:30:00+00:00"}
    assert (
        "1er avril 2026, 00:30 (Europe/Paris)"
        in render("cancellation_confirmed", "fr", {**KALENNER, **payload}).text
    )
    assert "April 1, 2026, 12:30 AM (Europe/Paris)" in plain(
        render("cancellation_confirmed", "en", {**KALENNER, **payload}).text
    )
    ny = {"merchant_name": "VoIP", "currency": "USD", "timezone": "America/New_York"}
    assert "March 31, 2026, 6:30 PM (America/New_York)" in plain(
        render("cancellation_confirmed", "en", {**ny, **payload}).text
    )
    # Without an offset an instant is merchant-local time; a bare date stays that date.
    local = render("cancellation_confirmed", "fr", {**KALENNER, "ends_at": "2026-05-01T09:00"})
    assert "1er mai 2026, 09:00 (Europe/Paris)" in local.text
    due = render("request_received", "fr", {**KALENNER, "request": "4", "review_due": "2026-04-10"})
    assert "au plus tard le 10 avril 2026." in due.text


def test_decision_explanation_and_clauses_are_included() -> None:
    payload = {
        "request": "5",
        "outcome": "partially_approved",
        "amount": "80.00",
        "destination": "wallet",
        "explanation": "€160.00 × 15 / 30 days = €80.00",
        "clauses": [
            {"id": "kalenner/guarantee", "quote": "Vous pouvez annuler votre abonnement."},
            "kalenner/deadlines",
        ],
    }
    fr = render("refund_decided", "fr", {**KALENNER, **payload})
    text = plain(fr.text)
    assert "Votre demande n° 5 a été partiellement acceptée." in text
    assert "Montant : 80,00 €, versé sur le solde de votre compte." in text
    assert "Explication : €160.00 × 15 / 30 days = €80.00" in text
    assert "« Vous pouvez annuler votre abonnement. » (kalenner/guarantee)" in text
    assert "- kalenner/deadlines" in text
    en = render("refund_decided", "en", {**KALENNER, **payload})
    assert "Amount: €80.00, paid to your account balance." in en.text
    assert "“Vous pouvez annuler votre abonnement.” (kalenner/guarantee)" in en.text
    # A declined request shows no amount line.
    declined = render("refund_decided", "en", {**KALENNER, **payload, "outcome": "declined"})
    assert "has been declined" in declined.text and "Amount:" not in declined.text


def test_html_is_escaped_and_text_is_not() -> None:
    payload = {
        "request": "6",
        "outcome": "declined",
        "explanation": "<script>alert(1)</script> & co",
    }
    message = render("refund_decided", "en", {**KALENNER, "merchant_name": "A&B <Ltd>", **payload})
    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in message.html
    assert "A&amp;B &lt;Ltd&gt;" in message.html
    assert "<script>alert(1)</script> & co" in message.text
    assert "A&B <Ltd>" in message.subject or "A&B <Ltd>" in message.text


def test_optional_details_and_plurals() -> None:
    one = render(
        "credits_expiring",
        "fr",
        {**KALENNER, "remaining": "1", "kind": "sms", "expires_at": "2026-06-01"},
    )
    assert plain(one.subject) == "1 crédit SMS expire le 1er juin 2026"
    assert "Il vous reste 1 crédit SMS non utilisé ; il expirera le 1er juin 2026." in plain(
        one.text
    )
    en_one = render(
        "credits_expiring", "en", {**KALENNER, "remaining": "1", "expires_at": "2026-06-01"}
    )
    assert en_one.subject == "1 credit expires on June 1, 2026"
    failed = render(
        "payment_failed",
        "fr",
        {**KALENNER, "invoice": "7", "amount": "9.90", "next_retry_at": "2026-03-12T09:00:00Z"},
    )
    assert (
        "Nous ferons une nouvelle tentative le 12 mars 2026, 10:00 (Europe/Paris)." in failed.text
    )
    notice = render("data_deletion_notice", "en", {**KALENNER, "deletes_at": "2026-07-01"})
    assert notice.subject == "Your account data will be deleted on July 1, 2026"
    assert "You can export it until then." in notice.text
    terms = render(
        "terms_changed",
        "fr",
        {**KALENNER, "effective_at": "2026-05-01", "decline_days": "10"},
    )
    assert "s'appliquent à compter du 1er mai 2026." in plain(terms.text)
    assert "dans les 10 jours suivant cet avis" in terms.text
    info = render(
        "request_needs_information",
        "en",
        {**KALENNER, "request": "8", "information": "the invoice number", "due": "2026-04-15"},
    )
    assert "What we need: the invoice number" in info.text
    assert "by April 15, 2026, quoting reference 8." in info.text


@pytest.mark.parametrize(
    ("language", "written_in"),
    [("fr", "fr"), ("fr-CA", "fr"), ("FR_fr", "fr"), ("en", "en"), ("de", "en"), ("", "en")],
)
def test_language_fallback(language: str, written_in: str) -> None:
    assert template_language(language) == written_in
    message = render("receipt", language, {**KALENNER, "invoice": "1", "amount": "160.00"})
    assert message.language == written_in
    assert ("160,00 €" if written_in == "fr" else "€160.00") in plain(message.subject)


def test_render_errors() -> None:
    with pytest.raises(RenderError, match="unknown notification template"):
        render("nope", "en", KALENNER)
    with pytest.raises(RenderError, match="amount"):
        render("receipt", "en", {**KALENNER, "invoice": "1"})
    with pytest.raises(RenderError, match="merchant_name"):
        render("welcome", "en", {"plan": "x"})
    with pytest.raises(RenderError, match="ISO 8601"):
        render("cancellation_confirmed", "en", {**KALENNER, "ends_at": "next week"})
