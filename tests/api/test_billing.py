"""Billing records over HTTP: invoices, payments, refunds, credit notes; scoping, ranges
and cursor pagination."""

from __future__ import annotations

from typing import Any

from .helpers import ADMIN_TOKEN, Api, Merchant


def kalenner_annual(api: Api, customer: str = "cus_k3") -> tuple[Merchant, str]:
    """Kalenner pro-annual (240.00) from 2026-01-10 09:00 Paris."""
    m = api.merchant("kalenner")
    api.advance("2026-01-10T09:00:00+01:00")
    m.plan("pro-annual", "240.00", 12)
    m.customer(customer)
    return m, m.subscribe(customer, "pro-annual")


def test_kalenner_cancel_refund_shows_in_refunds_payments_and_invoice(api: Api) -> None:
    m, sub = kalenner_annual(api)
    api.advance("2026-04-20T10:00:00+02:00")
    cancel = m.ok(m.post(f"/v1/subscriptions/{sub}/cancel", {"channel": "portal"}))
    assert (cancel["decision"]["amount"], cancel["decision"]["destination"]) == (
        "160.00",
        "original_method",
    )
    [refund] = m.ok(m.get("/v1/refunds"))["data"]
    assert refund["id"].startswith("ref_")
    assert (refund["amount"], refund["destination"], refund["method"], refund["payment"]) == (
        "160.00",
        "original_method",
        "card_1",
        1,
    )
    assert refund["at"] == "2026-04-20T10:00:00+02:00"
    assert refund["clauses"] == ["kalenner/cancel-end-of-month", "kalenner/annual-cancel-refund"]
    [payment] = m.ok(m.get("/v1/payments"))["data"]
    assert payment["id"] == refund["payment_id"]
    assert (payment["amount"], payment["refunded"], payment["disputed"]) == (
        "240.00",
        "160.00",
        None,
    )
    invoice = m.ok(m.get(f"/v1/invoices/{payment['invoice_id']}"))
    assert (invoice["number"], invoice["total"], invoice["status"], invoice["subscription"]) == (
        1,
        "240.00",
        "paid",
        sub,
    )
    assert invoice["amount_due"] == "0.00"
    assert [(ln["kind"], ln["amount"]) for ln in invoice["lines"]] == [("subscription", "240.00")]
    assert invoice["lines"][0]["period_end"] == "2027-01-10T09:00:00+01:00"
    # The refund is dated: a range that ends the day before leaves it out.
    assert m.ok(m.get("/v1/refunds", to="2026-04-19"))["data"] == []
    assert (
        len(m.ok(m.get("/v1/refunds", **{"from": "2026-04-20", "to": "2026-04-20"}))["data"]) == 1
    )
    assert m.ok(m.get("/v1/refunds", customer="someone_else"))["data"] == []


def monthly_book(api: Api) -> Merchant:
    """Two Kalenner customers on a 29.00 monthly plan, billed Jan 10 → Apr 10 (4 each)."""
    m = api.merchant("kalenner")
    api.advance("2026-01-10T09:00:00+01:00")
    m.plan("pro-monthly", "29.00")
    for code in ("cus_a", "cus_b"):
        m.customer(code)
        m.subscribe(code, "pro-monthly")
    api.advance("2026-04-15T12:00:00+02:00")
    return m


def test_pagination_walks_every_page(api: Api) -> None:
    m = monthly_book(api)
    whole = m.ok(m.get("/v1/invoices", limit=100))
    assert len(whole["data"]) == 8
    assert (whole["has_more"], whole["next_cursor"]) == (False, None)
    first = m.ok(m.get("/v1/invoices", limit=1))
    assert first["has_more"] is True and first["next_cursor"]
    walked = m.walk("/v1/invoices", limit=1)
    assert [i["id"] for i in walked] == [i["id"] for i in whole["data"]]
    assert len({i["id"] for i in walked}) == 8
    assert [p["id"] for p in m.walk("/v1/payments", limit=3)] == [
        p["id"] for p in m.ok(m.get("/v1/payments", limit=100))["data"]
    ]
    assert {i["total"] for i in walked} == {"29.00"}
    bad = m.get("/v1/invoices", cursor="%%%")
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_cursor")
    assert m.get("/v1/invoices", limit=0).status_code == 422
    assert m.get("/v1/invoices", limit=101).status_code == 422


def test_filters_by_customer_status_and_dates(api: Api) -> None:
    m = monthly_book(api)

    def issued(**params: Any) -> list[tuple[str, str]]:
        rows = m.ok(m.get("/v1/invoices", limit=100, **params))["data"]
        return [(i["customer"], i["issued_at"][:10]) for i in rows]

    assert issued(customer="cus_b") == [
        ("cus_b", "2026-01-10"),
        ("cus_b", "2026-02-10"),
        ("cus_b", "2026-03-10"),
        ("cus_b", "2026-04-10"),
    ]
    assert len(issued(status="paid")) == 8
    assert issued(status="open") == []
    assert issued(**{"from": "2026-02-01", "to": "2026-03-10"}) == [
        ("cus_a", "2026-02-10"),
        ("cus_b", "2026-02-10"),
        ("cus_a", "2026-03-10"),
        ("cus_b", "2026-03-10"),
    ]
    # A time bound is an instant (inclusive); 09:00 Paris is 08:00 UTC.
    assert issued(**{"from": "2026-04-10T07:00:00+00:00"}) == [
        ("cus_a", "2026-04-10"),
        ("cus_b", "2026-04-10"),
    ]
    assert issued(**{"from": "2026-04-10T07:00:01+00:00"}) == []
    payments = m.ok(m.get("/v1/payments", customer="cus_a", to="2026-01-31"))["data"]
    assert [(p["number"], p["amount"], p["invoice"]) for p in payments] == [(1, "29.00", 1)]
    for bad in (
        {"from": "2026-02-01T00:00:00"},
        {"to": "yesterday"},
        {"to": "2026-02-30"},
        {"from": "0001-01-01"},
        {"to": "9999-12-31"},
    ):
        response = m.get("/v1/invoices", **bad)
        assert response.status_code == 422, bad
        assert response.json()["errors"][0]["field"] == next(iter(bad))


def test_another_merchants_invoice_is_not_found(api: Api) -> None:
    m, _ = kalenner_annual(api)
    other = api.merchant("kalenner", "second merchant")
    other.plan("pro-annual", "240.00", 12)
    other.customer("cus_other")
    other.subscribe("cus_other", "pro-annual")
    [mine] = m.ok(m.get("/v1/invoices"))["data"]
    [theirs] = other.ok(other.get("/v1/invoices"))["data"]
    assert mine["id"] != theirs["id"]
    response = m.get(f"/v1/invoices/{theirs['id']}")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert response.json()["status"] == 404
    assert (
        m.get(f"/v1/payments/{other.ok(other.get('/v1/payments'))['data'][0]['id']}").status_code
        == 404
    )
    assert m.get("/v1/customers/cus_other/wallet").status_code == 404
    assert other.ok(other.get(f"/v1/invoices/{theirs['id']}"))["customer"] == "cus_other"
    # Each merchant lists its own records only.
    assert [i["customer"] for i in m.ok(m.get("/v1/invoices"))["data"]] == ["cus_k3"]
    # Malformed, well-formed but unknown, and another kind's id (or its digits): none found.
    [payment] = m.ok(m.get("/v1/payments"))["data"]
    swapped = "inv_" + payment["id"].removeprefix("pay_")
    for bad in ("inv_999", "inv_", "12", "inv_1x", "pay_1", mine["id"].upper()):
        assert m.get(f"/v1/invoices/{bad}").status_code == 404, bad
    for bad in ("inv_0000000000000", "inv_zzzzzzzzzzzzz", payment["id"], swapped):
        assert m.get(f"/v1/invoices/{bad}").status_code == 404, bad


def test_portal_and_credentials(api: Api) -> None:
    m = monthly_book(api)
    token = m.portal_token("cus_a")
    mine = m.ok(m.get("/v1/invoices", token=token, limit=100))["data"]
    assert {i["customer"] for i in mine} == {"cus_a"}
    assert len(mine) == 4
    theirs = m.ok(m.get("/v1/invoices", customer="cus_b"))["data"][0]["id"]
    assert m.get(f"/v1/invoices/{theirs}", token=token).status_code == 404
    assert m.get("/v1/customers/cus_b/wallet", token=token).status_code == 404
    assert m.ok(m.get("/v1/customers/cus_a/wallet", token=token))["balance"] == "0.00"
    assert len(m.ok(m.get("/v1/payments", role="readonly", limit=100))["data"]) == 8
    platform = m.get("/v1/invoices", token=ADMIN_TOKEN)
    assert (platform.status_code, platform.json()["code"]) == (403, "forbidden")
    assert m.client.get("/v1/invoices").status_code == 401


def test_qomon_tier_drop_credit_note_applies_to_the_next_invoice(api: Api) -> None:
    m = api.merchant("qomon")
    api.advance("2026-03-01T00:00:00+01:00")
    tiers = {
        "metric": "contacts",
        "levels": [
            {"up_to": 5000, "price": "100.00"},
            {"up_to": 10000, "price": "160.00"},
            {"up_to": None, "price": "250.00"},
        ],
    }
    m.ok(m.post("/v1/plans", {"id": "essential", "tiers": tiers}), 201)
    m.customer("cus_q1")
    sub = m.ok(
        m.post(
            "/v1/subscriptions",
            {"customer": "cus_q1", "plan": "essential", "payment_method": "card_1", "usage": 4000},
        ),
        201,
    )["id"]
    api.advance("2026-03-11T10:00:00+01:00")
    m.ok(m.post(f"/v1/subscriptions/{sub}/usage", {"metric": "contacts", "value": 6200}))
    api.advance("2026-03-21T10:00:00+01:00")
    m.ok(m.post(f"/v1/subscriptions/{sub}/usage", {"metric": "contacts", "value": 4800}))
    api.advance("2026-04-02T00:00:00+02:00")
    invoices = m.ok(m.get("/v1/invoices"))["data"]
    assert [(i["number"], i["total"], i["credit_applied"], i["amount_paid"]) for i in invoices] == [
        (1, "100.00", "0.00", "100.00"),
        (2, "40.65", "0.00", "40.65"),
        (3, "100.00", "21.29", "78.71"),
    ]
    [note] = m.ok(m.get("/v1/credit_notes"))["data"]
    assert note["id"].startswith("cn_")
    assert (note["amount"], note["applied_to_invoice"], note["applied_to_invoice_id"]) == (
        "21.29",
        3,
        invoices[2]["id"],
    )
    assert m.ok(m.get("/v1/credit_notes", to="2026-03-20"))["data"] == []
    assert m.ok(m.get("/v1/credit_notes", customer="cus_q1"))["data"] == [note]
