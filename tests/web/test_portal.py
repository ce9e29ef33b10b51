"""The customer portal in process: sign-in by link, sessions, CSRF, isolation between
customers, cancelling, refund requests, appeals. The browser tests (``test_browser.py``)
walk the same pages in Chromium."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from fairbill.ids import Prefix
from fairbill.services.clock import TestClock
from fairbill.store.tables import AuditLogRow, SubscriptionRow

from .conftest import World, enter


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def test_a_portal_link_is_traded_for_an_httponly_cookie_and_leaves_the_address_bar(
    client: TestClient, world: World
) -> None:
    response = client.get("/portal/enter", params={"token": world.tokens["kalenner"]})
    assert response.status_code == 303
    assert response.headers["location"] == "/portal/"  # no token in the next address
    assert response.headers["referrer-policy"] == "no-referrer"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("fairbill_portal=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/portal" in cookie
    assert world.tokens["kalenner"].split(".")[1] not in cookie  # the secret is not kept
    home = client.get("/portal/")
    assert home.status_code == 200
    assert '<html lang="fr">' in home.text  # Kalenner's customers read French
    assert "Vos abonnements" in home.text
    assert "default-src 'self'" in home.headers["content-security-policy"]


def test_a_bad_link_and_a_missing_session_ask_to_sign_in_again(client: TestClient) -> None:
    bad = client.get("/portal/enter", params={"token": "cpt_000000000000.nope"})
    assert bad.status_code == 401
    assert "text/html" in bad.headers["content-type"]
    assert client.get("/portal/").status_code == 401
    client.cookies.set("fairbill_portal", "e30.AAAA", path="/portal")
    assert client.get("/portal/").status_code == 401


def test_a_session_cannot_reach_another_customers_pages(client: TestClient, world: World) -> None:
    enter(client, world.tokens["kalenner"])
    neighbour = world.ids("kalenner-leaving")  # the same merchant's other customer
    stranger = world.ids("emailconsul-active")  # another merchant's
    # Another merchant's rows, named as if this merchant had issued their ids.
    disguised = world.ids("emailconsul-active", under="kalenner")
    for ids in (neighbour, stranger, disguised):
        for path in (
            f"/portal/subscriptions/{ids['sub']}",
            f"/portal/subscriptions/{ids['sub']}/cancel",
            f"/portal/payments/{ids['pay']}",
            f"/portal/payments/{ids['pay']}/refund",
        ):
            response = client.get(path)
            assert response.status_code == 404, path
            assert "Page introuvable" in response.text
    for path in (
        "/portal/subscriptions/sub_x",
        "/portal/subscriptions/sub_0000000000000",
        "/portal/invoices/inv_1x",
        "/portal/invoices/inv_0000000000000",
        "/portal/payments/pay_0000000000000",
        "/portal/nowhere",
    ):
        assert client.get(path).status_code == 404, path
    token = csrf_of(client.get("/portal/").text)
    cancel = client.post(f"/portal/subscriptions/{neighbour['sub']}/cancel", data={"csrf": token})
    assert cancel.status_code == 404


def test_forms_without_the_session_csrf_token_are_refused(client: TestClient, world: World) -> None:
    enter(client, world.tokens["kalenner"])
    sub = world.ids("kalenner-active")["sub"]
    for data in ({}, {"csrf": "forged"}, {"csrf": ""}):
        response = client.post(f"/portal/subscriptions/{sub}/cancel", data=data)
        assert response.status_code == 403
        assert "Formulaire refusé" in response.text
    assert client.post("/portal/sign-out", data={}).status_code == 403
    row_id = world.row_id("kalenner", Prefix.SUBSCRIPTION, sub)
    with world.runtime.reads() as session:
        row = session.get_one(SubscriptionRow, row_id)
        assert row.status == "active" and row.cancel_at is None  # nothing changed


def test_kalenner_cancels_inside_the_guarantee_and_sees_the_refund_and_why(
    client: TestClient, world: World
) -> None:
    enter(client, world.tokens["kalenner"])
    sub = world.ids("kalenner-active")["sub"]
    page = client.get(f"/portal/subscriptions/{sub}")
    assert "Si vous résiliez maintenant" in page.text
    assert "Vous êtes remboursé de 29,00\xa0€" in page.text
    assert "kalenner/guarantee" in page.text and "14 jours" in page.text  # the clause quoted
    confirm = client.get(f"/portal/subscriptions/{sub}/cancel")
    assert 'id="cancel-confirm"' in confirm.text
    done = client.post(
        f"/portal/subscriptions/{sub}/cancel",
        data={"csrf": csrf_of(confirm.text), "reason": "Trop cher"},
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith("/portal/decisions/dec_")
    decision = client.get(done.headers["location"])
    assert "29,00\xa0€" in decision.text
    assert "within the 14-day guarantee" in decision.text  # the engine's explanation
    assert "kalenner/guarantee" in decision.text
    billing = client.get("/portal/billing")
    assert billing.text.count("29,00\xa0€") >= 3  # paid, refunded (settled after commit)
    row_id = world.row_id("kalenner", Prefix.SUBSCRIPTION, sub)
    with world.runtime.reads() as session:
        row = session.get_one(SubscriptionRow, row_id)
        assert row.status == "canceled"
        audit = session.scalar(
            select(AuditLogRow).where(AuditLogRow.action == "subscription.cancel")
        )
        assert audit is not None and audit.actor.startswith("portal:cpt_")
        assert audit.target == f"subscription:{sub}"


def test_a_refund_request_asks_what_the_policy_requires_then_waits_for_review(
    client: TestClient, world: World
) -> None:
    enter(client, world.tokens["emailconsul"])
    pay = world.ids("emailconsul-active")["pay"]
    kinds = client.get(f"/portal/payments/{pay}/refund")
    assert '<html lang="en">' in kinds.text
    assert "Money-back guarantee" in kinds.text and "?kind=money_back" in kinds.text
    form = client.get(f"/portal/payments/{pay}/refund", params={"kind": "money_back"})
    assert 'name="reason"' in form.text and "required" in form.text
    assert 'name="order_numbers"' in form.text  # EmailConsul asks for the order number
    token = csrf_of(form.text)
    missing = client.post(
        f"/portal/payments/{pay}/refund", data={"csrf": token, "kind": "money_back"}
    )
    assert missing.status_code == 422
    assert "This field is required." in missing.text
    filed = client.post(
        f"/portal/payments/{pay}/refund",
        data={
            "csrf": token,
            "kind": "money_back",
            "reason": "We never sent a campaign.",
            "order_numbers": "1",
        },
    )
    assert filed.status_code == 303
    request_page = client.get(filed.headers["location"])
    assert "In review: the answer is due by" in request_page.text
    assert "emailconsul/money-back-guarantee" in request_page.text
    assert "Appeal this decision" not in request_page.text  # it is with a person already
    assert client.get("/portal/requests").text.count("Request 1") == 1


def test_an_appeal_is_offered_where_the_policy_allows_it(client: TestClient, world: World) -> None:
    enter(client, world.tokens["emailconsul"])
    pay = world.ids("emailconsul-active")["pay"]
    form = client.get(f"/portal/payments/{pay}/refund", params={"kind": "terms_declined"})
    filed = client.post(
        f"/portal/payments/{pay}/refund",
        data={
            "csrf": csrf_of(form.text),
            "kind": "terms_declined",
            "reason": "I do not accept the new terms.",
            "order_numbers": "1",
        },
    )
    where = filed.headers["location"]
    declined = client.get(where)
    assert "declined" in declined.text  # no change of terms was declined: declined
    assert "Appeal this decision" in declined.text  # EmailConsul has no "final" clause
    appealed = client.post(f"{where}/appeal", data={"csrf": csrf_of(declined.text)})
    assert appealed.status_code == 303
    assert "In review" in client.get(where).text


def test_no_appeal_where_decisions_are_final(client: TestClient, world: World) -> None:
    enter(client, world.tokens["conek"])
    pay = world.ids("conek-active")["pay"]
    form = client.get(f"/portal/payments/{pay}/refund", params={"kind": "duplicate_charge"})
    filed = client.post(
        f"/portal/payments/{pay}/refund",
        data={"csrf": csrf_of(form.text), "kind": "duplicate_charge", "reason": "Twice."},
    )
    page = client.get(filed.headers["location"])
    assert "declined" in page.text
    assert "Appeal this decision" not in page.text  # Conek: refund decisions are final


def test_kalenner_offers_no_refund_request_its_refunds_come_with_cancelling(
    client: TestClient, world: World
) -> None:
    enter(client, world.tokens["kalenner"])
    pay = world.ids("kalenner-active")["pay"]
    page = client.get(f"/portal/payments/{pay}/refund")
    assert "ne prévoit aucun remboursement" in page.text
    assert (
        client.get(f"/portal/payments/{pay}/refund", params={"kind": "money_back"}).status_code
        == 404
    )


def test_the_language_switch_is_kept_for_the_session(client: TestClient, world: World) -> None:
    enter(client, world.tokens["kalenner"])
    assert "Your subscriptions" in client.get("/portal/", params={"lang": "en"}).text
    assert "Invoices and payments" in client.get("/portal/billing").text
    assert "Factures et paiements" in client.get("/portal/billing", params={"lang": "fr"}).text


def test_the_policy_page_is_the_published_document(client: TestClient, world: World) -> None:
    enter(client, world.tokens["kalenner"])
    page = client.get("/portal/policy")
    assert "conditions de facturation, d&#39;annulation et de remboursement" in page.text
    assert 'id="kalenner/guarantee"' in page.text


def test_receipts_and_invoices_are_printable_pages(client: TestClient, world: World) -> None:
    enter(client, world.tokens["voip"])
    pay = world.ids("voip-active")["pay"]
    receipt = client.get(f"/portal/payments/{pay}")
    assert receipt.status_code == 200 and "Receipt for payment 1" in receipt.text
    invoice_link = re.search(r'href="(/portal/invoices/inv_[0-9a-z]{13})"', receipt.text)
    assert invoice_link is not None
    invoice = client.get(invoice_link.group(1))
    assert "Invoice 1" in invoice.text and "$50.00" in invoice.text


def test_sign_out_ends_the_session(client: TestClient, world: World) -> None:
    enter(client, world.tokens["qomon"])
    out = client.post("/portal/sign-out", data={"csrf": csrf_of(client.get("/portal/").text)})
    assert out.status_code == 303 and out.headers["location"] == "/portal/signed-out"
    assert (
        'fairbill_portal=""' in out.headers["set-cookie"]
        or "Max-Age=0" in out.headers["set-cookie"]
    )
    assert client.get("/portal/signed-out").status_code == 200
    assert client.get("/portal/").status_code == 401


def test_a_session_ends_with_its_portal_token(client: TestClient, world: World) -> None:
    enter(client, world.tokens["voip"])
    assert client.get("/portal/").status_code == 200
    clock = world.runtime.clock
    assert isinstance(clock, TestClock)
    clock.advance_to(clock.now() + timedelta(days=31))  # portal tokens live 30 days
    assert client.get("/portal/").status_code == 401


def test_a_form_that_is_too_big_or_not_a_form_is_refused(client: TestClient, world: World) -> None:
    enter(client, world.tokens["voip"])
    sub = world.ids("voip-active")["sub"]
    path = f"/portal/subscriptions/{sub}/cancel"
    assert client.post(path, content=b"x" * 70_000).status_code == 400
    assert client.post(path, json={"csrf": "x"}).status_code == 400
