"""The back office in process: signing in with an API key, roles as the API has them,
CSRF, the review queue and reviews (overrides bounded as the API bounds them), customers
and timelines, the dashboard, outages, the audit log and API keys. The browser tests
(``test_backoffice_browser.py``) walk the same pages in Chromium."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fairbill.ids import Prefix
from fairbill.services.clock import TestClock
from fairbill.services.merchants import revoke_key
from fairbill.store.tables import AuditLogRow, CustomerRow, RefundRow, RequestRow
from fairbill.web import http, sessions

from .conftest import World, enter
from .staff import csrf_of, merchant_of, new_key, sign_in


def queue_ids(html: str) -> list[str]:
    return re.findall(r'href="/app/requests/(req_[0-9a-z]{13})"', html)


def kalenner_request(world: World) -> int:
    """The row id of the demo Kalenner money-back request."""
    with world.runtime.reads() as session:
        found = session.scalar(
            select(RequestRow.id)
            .join(CustomerRow, CustomerRow.id == RequestRow.customer_id)
            .where(CustomerRow.merchant_id == merchant_of(session, "kalenner").id)
            .where(RequestRow.kind == "money_back")
        )
    assert found is not None
    return found


def asking_request(client: TestClient) -> str:
    """The demo EmailConsul request in review (the queue's only one)."""
    [found] = queue_ids(client.get("/app/queue").text)
    return found


# -- signing in ----------------------------------------------------------------------------
def test_an_api_key_is_traded_for_an_httponly_cookie_that_holds_no_secret(
    client: TestClient, world: World
) -> None:
    key = new_key(world.runtime, "emailconsul", "finance")
    form = client.get("/app/sign-in")
    assert form.status_code == 200
    assert 'type="password"' in form.text and 'name="csrf"' in form.text
    assert "HttpOnly" in form.headers["set-cookie"]  # the form's own short session
    done = client.post("/app/sign-in", data={"csrf": csrf_of(form.text), "key": key})
    assert done.status_code == 303 and done.headers["location"] == "/app/"
    cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("fairbill_app="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/app" in cookie
    assert key.split(".")[1] not in cookie  # the prefix only, never the secret
    home = client.get("/app/")
    assert home.status_code == 200 and "Dashboard" in home.text
    assert "default-src 'self'" in home.headers["content-security-policy"]
    assert client.get("/app/sign-in").status_code == 303  # already in
    with world.runtime.reads() as session:
        audit = session.scalar(
            select(AuditLogRow).where(AuditLogRow.action == "back_office.sign_in")
        )
        assert audit is not None and audit.actor == f"app:{key.split('.')[0]}"


def test_a_bad_or_revoked_key_does_not_sign_in_and_failures_are_throttled(
    client: TestClient, world: World
) -> None:
    revoked = new_key(world.runtime, "voip", "finance")
    with world.runtime.sessions() as session:
        merchant = merchant_of(session, "voip")
        revoke_key(session, merchant, revoked.split(".")[0], world.runtime.clock.now())
        session.commit()
    form = client.get("/app/sign-in")
    token = csrf_of(form.text)
    for key in ("", "fb_000000000000.nope", "nonsense", "x" * 500, revoked):
        bad = client.post("/app/sign-in", data={"csrf": token, "key": key})
        assert bad.status_code == 401 and "not valid" in bad.text
    assert client.get("/app/").status_code == 401
    world.runtime.throttle.limit = 5  # 5 failures: refused before the key is looked at
    key = new_key(world.runtime, "voip", "admin")
    refused = client.post("/app/sign-in", data={"csrf": token, "key": key})
    assert refused.status_code == 429 and "Too many attempts" in refused.text


def test_a_session_ends_with_its_key_idle_time_or_sign_out(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = new_key(world.runtime, "voip", "admin")
    other = new_key(world.runtime, "voip", "readonly")
    sign_in(client, other)
    assert client.get("/app/").status_code == 200
    with TestClient(client.app, follow_redirects=False) as admin_client:
        sign_in(admin_client, admin)
        keys = admin_client.get("/app/keys")
        prefix = other.split(".")[0]
        revoked = admin_client.post(f"/app/keys/{prefix}/revoke", data={"csrf": csrf_of(keys.text)})
        assert revoked.status_code == 303
        gone = client.get("/app/")
        assert gone.status_code == 401 and "Please sign in again" in gone.text
        later = http.wall_now() + sessions.IDLE + 1
        monkeypatch.setattr(http, "wall_now", lambda: later)
        assert admin_client.get("/app/").status_code == 401  # idle too long
        monkeypatch.undo()
    sign_in(client, admin)
    token = csrf_of(client.get("/app/").text)
    out = client.post("/app/sign-out", data={"csrf": token})
    assert out.status_code == 303 and out.headers["location"] == "/app/signed-out"
    assert client.get("/app/signed-out").status_code == 200
    assert client.get("/app/").status_code == 401


# -- roles and CSRF ----------------------------------------------------------------------------
def test_each_role_sees_and_does_what_its_key_may_through_the_api(
    client: TestClient, world: World
) -> None:
    sign_in(client, new_key(world.runtime, "emailconsul", "support"))
    home = client.get("/app/")
    assert "/app/queue" in home.text and "/app/customers" in home.text
    assert 'href="/app/keys"' not in home.text and 'href="/app/audit"' not in home.text
    for path in ("/app/keys", "/app/audit"):
        refused = client.get(path)
        assert refused.status_code == 403 and "Not for your role" in refused.text
    req = asking_request(client)
    page = client.get(f"/app/requests/{req}")
    assert "Accept the recommendation" not in page.text
    assert "may read this request but not decide it" in page.text
    review = client.post(
        f"/app/requests/{req}/review", data={"csrf": csrf_of(page.text), "decision": "accept"}
    )
    assert review.status_code == 403
    outages = client.get("/app/outages")
    assert "Declare the outage" not in outages.text
    declared = client.post("/app/outages", data={"csrf": csrf_of(outages.text)})
    assert declared.status_code == 403
    row_id = world.row_id("emailconsul", Prefix.REQUEST, req)
    with world.runtime.reads() as session:
        row = session.get_one(RequestRow, row_id)
        assert row.status == "in_review"  # nothing changed


def test_every_form_without_the_session_csrf_token_is_refused(
    client: TestClient, world: World
) -> None:
    assert client.post("/app/sign-in", data={"key": "x"}).status_code == 403  # no form session
    sign_in(client, new_key(world.runtime, "emailconsul", "admin"))
    req = asking_request(client)
    for path, data in (
        (f"/app/requests/{req}/review", {"decision": "accept"}),
        ("/app/outages", {"cause": "internal"}),
        ("/app/keys", {"role": "admin"}),
        ("/app/keys/fb_000000000000/revoke", {}),
        ("/app/sign-out", {}),
    ):
        for token in ({}, {"csrf": "forged"}, {"csrf": ""}):
            response = client.post(path, data=data | token)
            assert response.status_code == 403, path
            assert "Form refused" in response.text
    row_id = world.row_id("emailconsul", Prefix.REQUEST, req)
    with world.runtime.reads() as session:
        row = session.get_one(RequestRow, row_id)
        assert row.status == "in_review"
    assert client.get("/app/").status_code == 200  # still signed in


# -- the queue and reviews --------------------------------------------------------------------
def test_the_queue_shows_deadlines_in_business_days_and_what_is_overdue(
    client: TestClient, world: World
) -> None:
    sign_in(client, new_key(world.runtime, "emailconsul", "finance"))
    queue = client.get("/app/queue").text
    assert "1 request(s) in review: 0 overdue" in queue
    assert "March 16, 2026" in queue and "10 business day(s) left" in queue
    clock = world.runtime.clock
    assert isinstance(clock, TestClock)
    clock.advance_to(clock.now() + timedelta(days=11))  # Friday the 13th: 1 business day
    assert "due soon" in client.get("/app/queue").text
    clock.advance_to(clock.now() + timedelta(days=5))  # Wednesday the 18th
    late = client.get("/app/queue").text
    assert "1 overdue" in late and "by 2 business day(s)" in late
    assert "1 overdue, 0 due soon" in client.get("/app/").text


def test_a_finance_user_accepts_the_recommendation_and_the_customer_sees_the_refund(
    client: TestClient, world: World
) -> None:
    sign_in(client, new_key(world.runtime, "emailconsul", "finance"))
    req = asking_request(client)
    page = client.get(f"/app/requests/{req}")
    text = page.text
    assert "The product does not fit our team." in text  # the facts: the reason given
    assert "Refund $30.00 to the original payment method." in text  # the recommendation
    assert "EmailConsul offers a 30-day money back guarantee." in text  # a source sentence
    assert "emailconsul/money-back-guarantee" in text and "Explanation" in text
    done = client.post(
        f"/app/requests/{req}/review", data={"csrf": csrf_of(text), "decision": "accept"}
    )
    assert done.status_code == 303
    assert re.match(rf"/app/requests/{req}\?decided=dec_[0-9a-z]{{13}}$", done.headers["location"])
    decided = client.get(done.headers["location"]).text
    assert "Decided: approved" in decided and "accepted the recommendation" in decided
    assert client.get("/app/queue").text.count("/app/requests/") == 0
    row_id = world.row_id("emailconsul", Prefix.REQUEST, req)
    with world.runtime.reads() as session:
        row = session.get_one(RequestRow, row_id)
        assert (row.status, row.amount_minor) == ("paid", 3000)
        refund = session.scalar(select(RefundRow).where(RefundRow.request_id == row.id))
        assert refund is not None and refund.amount_minor == 3000
        audit = session.scalar(
            select(AuditLogRow).where(AuditLogRow.action == "refund_request.review")
        )
        assert audit is not None and audit.target == f"refund_request:{req}"
        assert audit.actor.startswith("app:fb_") and audit.details["decision"] == "accept"


def test_an_override_beyond_the_policy_is_refused_with_its_reasons(
    client: TestClient, world: World
) -> None:
    sign_in(client, new_key(world.runtime, "emailconsul", "admin"))
    req = asking_request(client)
    page = client.get(f"/app/requests/{req}").text
    assert "At most $30.00 is refundable." in page
    assert "original payment method only (clause emailconsul/same-method)" in page
    bad = client.post(
        f"/app/requests/{req}/review",
        data={"csrf": csrf_of(page), "decision": "approve", "amount": "5.555"},
    )
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text
    assert "at most the currency&#39;s decimals" in bad.text
    done = client.post(
        f"/app/requests/{req}/review",
        data={
            "csrf": csrf_of(page),
            "decision": "approve",
            "amount": "45.00",
            "destination": "wallet",
            "note": "goodwill",
        },
    )
    shown = client.get(done.headers["location"]).text
    assert "The override was not applied as asked" in shown
    assert "capped at what is still refundable" in shown
    assert "refunds to the original payment method only" in shown
    row_id = world.row_id("emailconsul", Prefix.REQUEST, req)
    with world.runtime.reads() as session:
        row = session.get_one(RequestRow, row_id)
        assert (row.amount_minor, row.destination) == (3000, "original_method")


def test_another_merchants_request_does_not_exist_here(client: TestClient, world: World) -> None:
    sign_in(client, new_key(world.runtime, "emailconsul", "admin"))
    foreign = kalenner_request(world)
    for path in (
        # Kalenner's own id of its request, and the same row named under this merchant's key.
        f"/app/requests/{world.keyed('kalenner').public(Prefix.REQUEST, foreign)}",
        f"/app/requests/{world.keyed('emailconsul').public(Prefix.REQUEST, foreign)}",
        "/app/requests/req_0000000000000",
        "/app/requests/req_x",
        "/app/nowhere",
    ):
        assert client.get(path).status_code == 404, path
    assert client.get("/app/customers/kalenner-active").status_code == 404


# -- customers, the dashboard ------------------------------------------------------------------
def test_customers_are_found_and_a_timeline_lists_everything_in_time_order(
    client: TestClient, world: World
) -> None:
    sign_in(client, new_key(world.runtime, "emailconsul", "support"))
    found = client.get("/app/customers", params={"q": "ASK"}).text
    assert "emailconsul-asking" in found and "emailconsul-active" not in found
    assert "emailconsul-active" in client.get("/app/customers", params={"q": "@example"}).text
    assert "No customer matches" in client.get("/app/customers", params={"q": "%"}).text
    page = client.get("/app/customers/emailconsul-asking").text
    kinds = re.findall(r'<tr class="event-([a-z_]+)">', page)
    # In one instant, things in the order they happen; an email after what it tells of.
    assert kinds[:5] == ["subscription_started", "email", "invoice", "payment", "email"]
    assert {"request", "decision", "email"} <= set(kinds)
    assert "Refund request received" in page and "waiting in the outbox" in page


def test_the_dashboard_adds_up_the_merchants_figures(client: TestClient, world: World) -> None:
    sign_in(client, new_key(world.runtime, "kalenner", "readonly"))
    page = client.get("/app/", params={"lang": "en"}).text

    def figure(label: str) -> str:
        found = re.search(rf'{label}</span>\s*<span class="figure-value">([^<]+)<', page)
        assert found, label
        return found.group(1)

    # Kalenner's demo: one active and one past-due subscription at €29 a month; two
    # guarantee refunds of €29 (the cancelling and the asking customers); one failed charge.
    assert figure("Active subscriptions") == "1"
    assert figure("Monthly recurring revenue") == "€58.00"
    assert figure("Refunds this month") == "€58.00"
    assert figure("Failed payments this month") == "1"
    assert figure("Requests in review") == "0"
    assert '<code>kalenner/guarantee</code></th><td class="num">2</td>' in page
    assert 'role="img"' in page and '<title id="refunds-chart-title">' in page
    assert "Refunds per month by clause" in page and "The review queue over time" in page


# -- outages, the audit log, API keys ------------------------------------------------------------
def test_an_outage_is_declared_merchant_wide_and_shows_each_customers_compensation(
    client: TestClient, world: World
) -> None:
    sign_in(client, new_key(world.runtime, "voip", "finance"))
    page = client.get("/app/outages").text
    token = csrf_of(page)
    future = client.post(
        "/app/outages",
        data={
            "csrf": token,
            "start": "2026-03-02T01:00",
            "end": "2026-03-09T01:00",
            "cause": "internal",
        },
    )
    assert future.status_code == 422 and "has not ended yet" in future.text
    done = client.post(
        "/app/outages",
        data={
            "csrf": token,
            "start": "2026-03-01T20:00",
            "end": "2026-03-01T23:00",
            "cause": "internal",
            "reported_at": "",
        },
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/app/outages/out_")
    incident = client.get(done.headers["location"]).text
    for code in ("voip-active", "voip-leaving", "voip-failing", "voip-asking"):
        assert f'href="/app/customers/{code}"' in incident
    assert incident.count("/app/requests/req_") == 4
    assert "out_" in client.get("/app/outages").text
    with world.runtime.reads() as session:
        audit = session.scalar(select(AuditLogRow).where(AuditLogRow.action == "outage.report"))
        assert audit is not None and audit.details["cause"] == "internal"


def test_an_admin_reads_the_audit_log_and_issues_and_revokes_keys(
    client: TestClient, world: World
) -> None:
    sign_in(client, new_key(world.runtime, "qomon", "admin"))
    keys = client.get("/app/keys").text
    issued = client.post("/app/keys", data={"csrf": csrf_of(keys), "role": "support"})
    assert issued.status_code == 200
    new = re.search(r'<code class="secret" id="new-key">(fb_[^<]+)</code>', issued.text)
    assert new is not None  # shown once, on the answer to the form
    assert new.group(1) not in client.get("/app/keys").text
    prefix = new.group(1).split(".")[0]
    revoke = client.post(f"/app/keys/{prefix}/revoke", data={"csrf": csrf_of(keys)})
    assert revoke.status_code == 303
    assert "revoked on" in client.get("/app/keys").text
    audit = client.get("/app/audit").text
    for action in ("back_office.sign_in", "api_key.create", "api_key.revoke"):
        assert action in audit


def test_the_last_admin_key_cannot_be_revoked(client: TestClient, world: World) -> None:
    key = new_key(world.runtime, "conek", "admin")
    sign_in(client, key)
    page = client.get("/app/keys").text
    prefixes = re.findall(r'action="/app/keys/(fb_[0-9a-f]+)/revoke"', page)
    admins = [p for p in prefixes if p != key.split(".")[0]]
    token = csrf_of(page)
    for prefix in admins:  # the demo's own admin key goes; this session's stays
        client.post(f"/app/keys/{prefix}/revoke", data={"csrf": token})
    last = client.post(f"/app/keys/{key.split('.')[0]}/revoke", data={"csrf": token})
    assert last.status_code == 409 and "last admin key" in last.text


def test_a_portal_session_is_not_a_back_office_session(client: TestClient, world: World) -> None:
    enter(client, world.tokens["voip"])
    assert client.get("/app/").status_code == 401


def test_a_french_merchants_back_office_is_in_french(client: TestClient, world: World) -> None:
    sign_in(client, new_key(world.runtime, "kalenner", "admin"))
    home = client.get("/app/")
    assert '<html lang="fr">' in home.text and "Revenu mensuel récurrent" in home.text
    req = world.keyed("kalenner").public(Prefix.REQUEST, kalenner_request(world))
    for path, words in (
        ("/app/queue", "File d'examen"),
        (f"/app/requests/{req}", "Faits"),
        ("/app/customers", "Trouver un client"),
        ("/app/customers/kalenner-leaving", "Chronologie"),
        ("/app/outages", "Déclarer une panne"),
        ("/app/audit", "Journal d'audit"),
        ("/app/keys", "Émettre une clé"),
    ):
        page = client.get(path)
        assert page.status_code == 200, path
        assert words in page.text.replace("&#39;", "'"), path
    assert "Dashboard" in client.get("/app/", params={"lang": "en"}).text
