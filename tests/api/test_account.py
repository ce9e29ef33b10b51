"""Account-level actions over HTTP: outages, purchases and credits, disputes, collection,
terms, closure, activity and the data export."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from fairbill.api.problems import transient
from fairbill.gateway.sandbox_db import DatabaseSandbox, Fault
from fairbill.services import accounts
from fairbill.store.tables import NotificationRow

from .helpers import Api, Merchant


def conek(api: Api, customers: tuple[str, ...], at: str = "2026-04-01T00:00:00+02:00") -> Merchant:
    """Conek customers on business-monthly (499.00 ZAR) from ``at``."""
    m = api.merchant("conek")
    api.advance(at)
    m.plan("business-monthly", "499.00")
    for code in customers:
        m.customer(code)
        m.subscribe(code, "business-monthly")
    return m


OUTAGE = {
    "start": "2026-04-10T00:00:00+02:00",
    "end": "2026-04-13T01:00:00+02:00",
    "cause": "internal",
    "reported_at": "2026-04-10T02:00:00+02:00",
}


def test_conek_outage_over_72h_opens_one_request_per_live_customer(api: Api) -> None:
    m = conek(api, ("cus_1", "cus_2", "cus_3"))
    m.customer("cus_idle")  # no subscription: not affected
    api.advance("2026-04-13T01:00:00+02:00")
    out = m.ok(m.post("/v1/outages", OUTAGE, role="finance"), 201)
    assert out["count"] == 3
    assert [r["customer"] for r in out["data"]] == ["cus_1", "cus_2", "cus_3"]
    for req in out["data"]:
        assert (req["kind"], req["status"], req["decision"]) == (
            "service_disruption",
            "in_review",
            "needs_review",
        )
        # 499.00 × 73 h / 720 h = 50.5930… → 50.59 to the wallet.
        assert req["recommendation"] == {
            "decision": "approved",
            "amount": "50.59",
            "destination": "wallet",
        }
        assert req["review_due"] == "2026-04-28T23:59:59+02:00"
        [decision] = req["decisions"]
        assert (decision["action"], decision["outcome"]) == ("refund_request", "needs_review")
        assert decision["recommendation"]["destination"] == "wallet"
        assert decision["clauses"] and decision["explanation"]
    queue = m.ok(m.get("/v1/refund_requests", queue="true"))["data"]
    assert [r["id"] for r in queue] == [r["id"] for r in out["data"]]

    api.advance("2026-04-14T09:00:00+02:00")
    first = out["data"][0]["id"]
    accepted = m.ok(m.post(f"/v1/refund_requests/{first}/review", {"decision": "accept"}))
    assert (accepted["status"], accepted["amount"], accepted["destination"]) == (
        "paid",
        "50.59",
        "wallet",
    )
    assert accepted["paid_due"] == "2026-04-29T23:59:59+02:00"
    wallet = m.ok(m.get("/v1/customers/cus_1/wallet"))
    assert wallet["balance"] == "50.59"
    assert [e["amount"] for e in wallet["entries"]] == ["50.59"]
    assert m.ok(m.get("/v1/customers/cus_2/wallet"))["balance"] == "0.00"
    # The wallet pays part of the May invoice.
    api.advance("2026-05-02T00:00:00+02:00")
    may = m.ok(m.get("/v1/invoices", customer="cus_1"))["data"][1]
    assert (may["total"], may["wallet_applied"], may["amount_paid"]) == (
        "499.00",
        "50.59",
        "448.41",
    )
    wallet = m.ok(m.get("/v1/customers/cus_1/wallet"))
    assert wallet["balance"] == "0.00"
    assert [e["amount"] for e in wallet["entries"]] == ["50.59", "-50.59"]


def test_outage_for_listed_customers_and_bad_bodies(api: Api) -> None:
    m = conek(api, ("cus_1", "cus_2"))
    api.advance("2026-04-13T01:00:00+02:00")
    listed = m.ok(m.post("/v1/outages", OUTAGE | {"customers": ["cus_2", "cus_2"]}), 201)
    assert [r["customer"] for r in listed["data"]] == ["cus_2"]

    def field_of(body: dict[str, Any]) -> list[str]:
        response = m.post("/v1/outages", body)
        assert response.status_code == 422, response.text
        return [e["field"] for e in response.json()["errors"]]

    assert field_of(OUTAGE | {"start": "2026-04-10T00:00:00"}) == ["start"]
    assert field_of(OUTAGE | {"reported_at": "2026-04-10T02:00"}) == ["reported_at"]
    assert field_of(OUTAGE | {"end": "2026-04-09T00:00:00+02:00"}) == ["end"]
    assert field_of(OUTAGE | {"end": "2026-04-13T02:00:00+02:00"}) == ["end"]  # not over yet
    assert field_of(OUTAGE | {"reported_at": "2026-04-14T00:00:00+02:00"}) == ["reported_at"]
    assert field_of(OUTAGE | {"start": "0001-01-01T00:00:00+14:00"}) == ["start"]
    assert field_of(OUTAGE | {"cause": "aliens"}) == ["cause"]
    assert field_of(OUTAGE | {"customers": []}) == ["customers"]
    unknown = m.post("/v1/outages", OUTAGE | {"customers": ["cus_1", "cus_nobody"]})
    assert unknown.status_code == 404
    # Nothing of the refused call was kept (one transaction).
    assert len(m.ok(m.get("/v1/refund_requests"))["data"]) == 1
    assert m.post("/v1/outages", OUTAGE, role="support").status_code == 403


def test_purchase_consume_and_close_forfeits_credits(api: Api) -> None:
    m = conek(api, ("cus_c",), at="2026-03-01T10:00:00+02:00")
    body = {
        "id": "msg-1000",
        "kind": "message_credits",
        "quantity": 1000,
        "credit_kind": "message",
        "price": "300.00",
    }
    m.ok(m.post("/v1/products", body), 201)
    api.advance("2026-03-02T10:00:00+02:00")
    bought = m.ok(
        m.post(
            "/v1/customers/cus_c/purchases", {"product": "msg-1000", "payment_method": "card_1"}
        ),
        201,
    )
    assert (bought["invoice"]["total"], bought["invoice"]["status"]) == ("300.00", "paid")
    assert bought["invoice"]["purpose"] == "product"
    [pack] = bought["credit_packs"]
    assert (pack["kind"], pack["quantity"], pack["remaining"], pack["status"]) == (
        "message",
        1000,
        1000,
        "active",
    )
    assert pack["expires_at"] == "2026-04-01T10:00:00+02:00"  # 30 days
    api.advance("2026-03-05T10:00:00+02:00")
    failed = m.ok(
        m.post(
            "/v1/customers/cus_c/credits/consume",
            {"kind": "message", "quantity": 200, "failed": "platform"},
        )
    )
    assert failed["credit_packs"][0]["remaining"] == 1000  # a platform failure gives them back
    [returned] = failed["decisions"]
    assert (returned["action"], returned["reasons"]) == (
        "failed_delivery",
        ["failed_delivery_credits_returned"],
    )
    used = m.ok(m.post("/v1/customers/cus_c/credits/consume", {"kind": "message", "quantity": 250}))
    assert used["credit_packs"][0]["remaining"] == 750
    [consumed] = used["decisions"]
    assert (consumed["action"], consumed["outcome"]) == ("consume_credits", "approved")
    assert consumed["explanation"] == "250 message credits used."
    assert m.ok(m.get("/v1/customers/cus_c/credit_packs"))["data"][0]["remaining"] == 750

    assert m.post("/v1/customers/cus_c/purchases", {"product": "nope"}).status_code == 404
    zero = m.post("/v1/customers/cus_c/credits/consume", {"kind": "message", "quantity": 0})
    assert zero.status_code == 422
    assert (
        m.post("/v1/customers/cus_c/purchases", {"product": "msg-1000"}, role="support").status_code
        == 403
    )

    api.advance("2026-03-15T12:00:00+02:00")
    closed = m.ok(m.post("/v1/customers/cus_c/close"))
    assert closed["customer"]["status"] == "closed"
    assert closed["customer"]["data_retained_until"] == "2026-09-28T10:00:00+02:00"
    assert [(s["status"], s["cancel_at"]) for s in closed["subscriptions"]] == [
        ("active", "2026-04-01T10:00:00+02:00")
    ]
    actions = [d["action"] for d in closed["decisions"]]
    assert "forfeit" in actions
    forfeit = next(d for d in closed["decisions"] if d["action"] == "forfeit")
    assert forfeit["reasons"] == ["credits_forfeited"]
    assert forfeit["explanation"].startswith("750 unused credits forfeited")
    packs = m.ok(m.get("/v1/customers/cus_c/credit_packs"))["data"]
    assert [(p["remaining"], p["forfeited"], p["status"]) for p in packs] == [(0, 750, "forfeited")]
    again = m.post("/v1/customers/cus_c/close")
    assert (again.status_code, again.json()["code"]) == (409, "account_closed")
    # A closed account takes no new business: no new subscription, no purchase.
    for path, body in (
        ("/v1/subscriptions", {"customer": "cus_c", "plan": "monthly", "payment_method": "card_1"}),
        ("/v1/customers/cus_c/purchases", {"product": "msg-1000", "payment_method": "card_1"}),
    ):
        refused = m.post(path, body)
        assert (refused.status_code, refused.json()["code"]) == (409, "conflict"), path
        assert "cus_c is closed" in refused.json()["detail"]

    # The data can be exported until it is deleted, then not any more.
    assert m.get("/v1/customers/cus_c/export").status_code == 200
    api.advance("2026-10-01T00:00:00+02:00")
    gone = m.get("/v1/customers/cus_c/export")
    assert (gone.status_code, gone.json()["code"]) == (409, "data_deleted")


def test_chargebacks_open_and_close(api: Api) -> None:
    m = conek(api, ("cus_cb", "cus_polite"), at="2026-04-01T10:00:00+02:00")
    api.advance("2026-04-10T10:00:00+02:00")
    [pay_cb] = [p["id"] for p in m.ok(m.get("/v1/payments", customer="cus_cb"))["data"]]
    [pay_polite] = [p["id"] for p in m.ok(m.get("/v1/payments", customer="cus_polite"))["data"]]
    body = {"payment": pay_cb, "reason": "not recognised", "contacted_support_first": False}
    opened = m.ok(m.post("/v1/disputes", body, role="finance"), 201)
    assert opened["customer"]["status"] == "suspended"
    assert [s["status"] for s in opened["subscriptions"]] == ["suspended"]
    assert opened["payment"]["disputed"] == "open"
    [decision] = opened["decisions"]
    assert decision["clauses"] and decision["explanation"]
    assert (decision["action"], decision["amount"]) == ("chargeback", "499.00")
    assert decision["reasons"] == ["dispute_suspended_no_contact"]
    twice = m.post("/v1/disputes", body)
    assert (twice.status_code, twice.json()["code"]) == (409, "already_disputed")

    polite = m.ok(
        m.post(
            "/v1/disputes",
            {"payment": pay_polite, "reason": "double", "contacted_support_first": True},
        ),
        201,
    )
    assert [d["reasons"] for d in polite["decisions"]] == [["dispute_recorded"]]
    assert polite["customer"]["status"] == "active"
    assert [s["status"] for s in polite["subscriptions"]] == ["active"]

    lost = m.ok(m.post(f"/v1/disputes/{pay_cb}/close", {"outcome": "lost"}))
    assert (lost["payment"]["disputed"], lost["payment"]["refunded"]) == ("lost", "499.00")
    assert [(d["action"], d["amount"], d["reasons"]) for d in lost["decisions"]] == [
        ("dispute_closed", "499.00", ["dispute_lost"])
    ]
    closed_again = m.post(f"/v1/disputes/{pay_cb}/close", {"outcome": "won"})
    assert (closed_again.status_code, closed_again.json()["code"]) == (409, "no_open_dispute")
    won = m.ok(m.post(f"/v1/disputes/{pay_polite}/close", {"outcome": "won"}))
    assert (won["payment"]["disputed"], won["payment"]["refunded"]) == ("won", "0.00")

    unknown = "pay_0000000000000"  # well-formed, names no payment
    assert m.post("/v1/disputes", body | {"payment": unknown}).status_code == 404
    for malformed in ("1", "pay_999", pay_cb.upper()):
        assert m.post("/v1/disputes", body | {"payment": malformed}).status_code == 422
    assert m.post(f"/v1/disputes/{unknown}/close", {"outcome": "won"}).status_code == 404
    assert m.post("/v1/disputes/pay_999/close", {"outcome": "won"}).status_code == 404
    assert m.post(f"/v1/disputes/{pay_cb}/close", {"outcome": "draw"}).status_code == 422
    assert m.post("/v1/disputes", body, role="support").status_code == 403


def test_failed_renewal_then_pay_outstanding_reactivates(api: Api) -> None:
    m = api.merchant("kalenner")
    api.advance("2026-01-10T09:00:00+01:00")
    m.plan("pro-monthly", "29.00")
    m.customer("cus_k", payment_methods=[{"id": "card_1", "token": "tok_soon_declines"}])
    m.subscribe("cus_k", "pro-monthly")
    sandbox = api.runtime.gateway
    assert isinstance(sandbox, DatabaseSandbox)
    sandbox.add_fault(Fault.DECLINE, token="tok_soon_declines", times=None)
    api.advance("2026-02-25T00:00:00+01:00")  # renewal 02-10 and the 3 retries all fail
    subs = m.ok(m.get("/v1/subscriptions", customer="cus_k"))["data"]
    assert [s["status"] for s in subs] == ["suspended"]
    m.ok(m.post("/v1/customers/cus_k/payment_methods", {"id": "card_2"}), 201)
    paid = m.ok(m.post("/v1/customers/cus_k/pay_outstanding", {"payment_method": "card_2"}))
    assert paid["paid"] == "29.00"
    assert paid["open_invoices"] == []
    assert paid["customer"]["status"] == "active"
    assert [s["status"] for s in paid["subscriptions"]] == ["active"]
    assert [d["action"] for d in paid["decisions"]] == ["reactivation"]
    nothing = m.ok(m.post("/v1/customers/cus_k/pay_outstanding"))
    assert (nothing["paid"], nothing["decisions"]) == ("0.00", [])
    unknown = m.post("/v1/customers/cus_k/pay_outstanding", {"payment_method": "card_9"})
    assert unknown.status_code == 200  # nothing is open: no method is needed


def test_terms_change_reaches_every_customer_and_decline_cancels(api: Api) -> None:
    m = api.merchant("emailconsul")
    api.advance("2026-03-01T00:00:00+00:00")
    m.plan("pro-monthly", "30.00")
    for code in ("cus_1", "cus_2"):
        m.customer(code)
        m.subscribe(code, "pro-monthly")
    early = m.post("/v1/customers/cus_1/decline_terms")
    assert (early.status_code, early.json()["code"]) == (409, "no_terms_change")
    api.advance("2026-03-10T00:00:00+00:00")
    changed = m.ok(m.post("/v1/terms_changes", {"material": True}), 201)
    assert (changed["customers"], changed["at"]) == (2, "2026-03-10T00:00:00+00:00")
    assert m.post("/v1/terms_changes", {"material": "yes please"}).status_code == 422
    api.advance("2026-03-15T00:00:00+00:00")
    declined = m.ok(m.post("/v1/customers/cus_1/decline_terms"))
    # The cancellation runs to the period end ...
    assert [(s["status"], s["cancel_at"]) for s in declined["subscriptions"]] == [
        ("active", "2026-04-01T00:00:00+00:00")
    ]
    assert [(d["action"], d["reasons"]) for d in declined["decisions"]] == [
        ("cancel", ["cancel_at_period_end"])
    ]
    twice = m.post("/v1/customers/cus_1/decline_terms")
    assert (twice.status_code, twice.json()["code"]) == (409, "terms_already_declined")
    # ... and a terms_declined request asks for the unused days back.
    pay = m.ok(m.get("/v1/payments", customer="cus_1"))["data"][0]["id"]
    req = m.ok(
        m.post(
            "/v1/refund_requests",
            {"customer": "cus_1", "kind": "terms_declined", "payment": pay, "reason": "new terms"},
        ),
        201,
    )
    # 30.00 × 17 unused days / 31 = 16.45, for a reviewer to confirm.
    assert (req["status"], req["reasons"]) == ("in_review", ["terms_declined_in_window"])
    assert req["recommendation"] == {
        "decision": "partially_approved",
        "amount": "16.45",
        "destination": "original_method",
    }
    export = m.ok(m.get("/v1/customers/cus_2/export"))
    assert "terms_changed" in [n["template"] for n in export["notifications"]]
    assert export["customer"]["terms_notice_at"] == "2026-03-10T00:00:00+00:00"


def test_activity_is_recorded(api: Api) -> None:
    m = conek(api, ("cus_a",))
    api.advance("2026-04-03T08:30:00+02:00")
    out = m.ok(m.post("/v1/customers/cus_a/activity"))
    assert out["last_activity_at"] == "2026-04-03T08:30:00+02:00"
    assert out["decisions"] == []
    token = m.portal_token("cus_a")
    assert m.post("/v1/customers/cus_a/activity", token=token).status_code == 403


def test_export_holds_everything_the_customer_owns_without_tokens(api: Api) -> None:
    m = api.merchant("kalenner")
    api.advance("2026-01-10T09:00:00+01:00")
    m.plan("pro-annual", "240.00", 12)
    m.customer("cus_k3", payment_methods=[{"id": "card_1", "token": "tok_very_secret"}])
    sub = m.subscribe("cus_k3", "pro-annual")
    api.advance("2026-04-20T10:00:00+02:00")
    m.ok(m.post(f"/v1/subscriptions/{sub}/cancel", {"channel": "portal"}))
    response = m.get("/v1/customers/cus_k3/export", role="support")
    assert response.status_code == 200, response.text
    assert "tok_very_secret" not in response.text
    assert "token" not in response.text
    data = response.json()
    assert data["customer"]["id"] == "cus_k3"
    assert data["payment_methods"] == [{"id": "card_1", "type": "card", "currency": "EUR"}]
    assert [s["id"] for s in data["subscriptions"]] == [sub]
    assert [(i["total"], len(i["lines"])) for i in data["invoices"]] == [("240.00", 1)]
    assert [(p["amount"], p["refunded"]) for p in data["payments"]] == [("240.00", "160.00")]
    assert [(r["amount"], r["destination"]) for r in data["refunds"]] == [
        ("160.00", "original_method")
    ]
    assert data["wallet"]["balance"] == "0.00"
    assert (data["credit_notes"], data["credit_packs"], data["requests"]) == ([], [], [])
    assert [d["action"] for d in data["decisions"]] == ["cancel", "export_data"]
    assert {"receipt", "refund_paid"} <= {n["template"] for n in data["notifications"]}
    # The customer may export their own data (portability), and only their own.
    own = m.get("/v1/customers/cus_k3/export", token=m.portal_token("cus_k3"))
    assert own.status_code == 200
    assert own.json()["customer"]["id"] == "cus_k3"
    other = api.merchant("kalenner", "second")
    assert other.get("/v1/customers/cus_k3/export").status_code == 404


class _Deadlock(Exception):
    sqlstate = "40P01"


def test_a_request_the_database_undid_is_a_503_to_retry_and_the_retry_runs(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deadlock (or a serialisation failure) is the database's choice of a request to
    give way: a problem with ``Retry-After``, never a 500, and nothing written, so the
    retry with the same key runs the work."""
    m = api.merchant("kalenner")
    api.advance("2026-01-10T09:00:00+01:00")
    m.plan("pro-monthly", "29.00")
    m.customer("cus_k")
    real = accounts.pay_outstanding
    calls: list[int] = []

    def undone_once(*args: Any, **kwargs: Any) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT … FOR UPDATE", {}, _Deadlock("deadlock detected"))
        return real(*args, **kwargs)

    monkeypatch.setattr(accounts, "pay_outstanding", undone_once)
    key = {"Idempotency-Key": "pay-1"}
    busy = m.post("/v1/customers/cus_k/pay_outstanding", headers=key)
    assert busy.status_code == 503
    assert busy.json()["code"] == "database_busy" and busy.headers["Retry-After"] == "1"
    again = m.post("/v1/customers/cus_k/pay_outstanding", headers=key)
    assert again.status_code == 200 and len(calls) == 2


def test_other_database_errors_are_not_called_transient() -> None:
    assert transient(OperationalError("x", {}, _Deadlock("deadlock detected")))
    assert transient(OperationalError("x", {}, Exception("database is locked")))
    assert not transient(OperationalError("x", {}, Exception("no such table: invoices")))


def test_a_chargeback_suspends_every_subscription_and_tells_the_customer_once(api: Api) -> None:
    m = conek(api, ("cus_two",), at="2026-04-01T10:00:00+02:00")
    m.subscribe("cus_two", "business-monthly")  # a second live subscription
    api.advance("2026-04-10T10:00:00+02:00")
    [pay, _] = [p["id"] for p in m.ok(m.get("/v1/payments", customer="cus_two"))["data"]]
    body = {"payment": pay, "reason": "not recognised", "contacted_support_first": False}
    opened = m.ok(m.post("/v1/disputes", body, role="finance"), 201)
    assert [s["status"] for s in opened["subscriptions"]] == ["suspended", "suspended"]
    with api.runtime.sessions() as session:
        told = session.scalars(
            select(NotificationRow.template).where(NotificationRow.template == "suspended")
        ).all()
    assert told == ["suspended"]
