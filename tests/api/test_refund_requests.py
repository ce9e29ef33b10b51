"""Refund requests over HTTP: filing, the review queue, review, appeal, portal limits."""

from __future__ import annotations

from typing import Any

from .helpers import Api, Merchant


def emailconsul(api: Api) -> Merchant:
    """Three EmailConsul customers on pro-monthly (30.00) since 2026-03-01 00:00 UTC."""
    m = api.merchant("emailconsul")
    api.advance("2026-03-01T00:00:00+00:00")
    m.plan("pro-monthly", "30.00")
    for code in ("cus_e1", "cus_e2", "cus_e3"):
        m.customer(code)
        m.subscribe(code, "pro-monthly")
    return m


def file(m: Merchant, body: dict[str, Any], role: str = "support", **kw: Any) -> Any:
    return m.ok(m.post("/v1/refund_requests", body, role=role, **kw), 201)


def pay(m: Merchant, customer: str) -> str:
    """The customer's only payment's id (``pay_`` and 13 opaque characters)."""
    rows = m.ok(m.get("/v1/payments", customer=customer))["data"]
    assert len(rows) == 1
    pay_id: str = rows[0]["id"]
    return pay_id


def paid(m: Merchant, customer: str) -> dict[str, Any]:
    """The ``payment`` field naming the customer's only payment (EmailConsul wants one)."""
    return {"payment": pay(m, customer)}


def test_money_back_goes_to_review_then_accept_refunds_the_recommendation(api: Api) -> None:
    m = emailconsul(api)
    api.advance("2026-03-02T10:00:00+00:00")
    m.ok(m.post("/v1/customers/cus_e1/activity"))
    api.advance("2026-03-20T00:00:00+00:00")
    req = file(
        m,
        {
            "customer": "cus_e1",
            "kind": "money_back",
            "payment": pay(m, "cus_e1"),
            "reason": "deliverability was poor for our domain",
            "order_numbers": ["1"],
        },
    )
    assert req["id"].startswith("req_")
    assert req["customer"] == "cus_e1"
    assert (req["status"], req["decision"], req["amount"]) == ("in_review", "needs_review", "0.00")
    assert req["recommendation"] == {
        "decision": "partially_approved",
        "amount": "11.61",
        "destination": "original_method",
    }
    assert req["review_due"] is not None
    assert req["refunds"] == []
    [decision] = req["decisions"]
    assert decision["action"] == "refund_request"
    assert decision["outcome"] == "needs_review"
    assert decision["recommendation"]["amount"] == "11.61"
    assert decision["clauses"] and decision["explanation"]

    queue = m.ok(m.get("/v1/refund_requests", queue="true"))["data"]
    assert [r["id"] for r in queue] == [req["id"]]

    api.advance("2026-03-25T00:00:00+00:00")
    reviewed = m.ok(
        m.post(f"/v1/refund_requests/{req['id']}/review", {"decision": "accept"}, role="finance")
    )
    assert (reviewed["status"], reviewed["amount"], reviewed["destination"]) == (
        "paid",
        "11.61",
        "original_method",
    )
    [review] = reviewed["decisions"]
    assert (review["action"], review["outcome"], review["amount"], review["destination"]) == (
        "review",
        "partially_approved",
        "11.61",
        "original_method",
    )
    assert review["reasons"] == ["review_accepted_recommendation"]
    assert [(r["amount"], r["method"], r["request_id"]) for r in reviewed["refunds"]] == [
        ("11.61", "card_1", req["id"])
    ]
    refunds = m.ok(m.get("/v1/refunds"))["data"]
    assert [(r["amount"], r["customer"], r["payment_id"]) for r in refunds] == [
        ("11.61", "cus_e1", pay(m, "cus_e1"))
    ]
    assert m.ok(m.get("/v1/refund_requests", queue="true"))["data"] == []
    subs = m.ok(m.get("/v1/subscriptions", customer="cus_e1"))["data"]
    assert [s["status"] for s in subs] == ["canceled"]

    # A second review changes nothing: the request is no longer in review.
    again = m.ok(m.post(f"/v1/refund_requests/{req['id']}/review", {"decision": "accept"}))
    assert again["decisions"][0]["outcome"] == "declined"
    assert "not awaiting review" in again["decisions"][0]["explanation"]
    assert len(m.ok(m.get("/v1/refunds"))["data"]) == 1
    assert m.ok(m.get(f"/v1/refund_requests/{req['id']}"))["status"] == "paid"


def test_review_queue_orders_by_review_due_and_pages(api: Api) -> None:
    m = emailconsul(api)
    api.advance("2026-03-05T00:00:00+00:00")
    # No reason given: declined at once; appealed, it returns to review without a deadline.
    declined = file(m, {"customer": "cus_e2", "kind": "money_back", "payment": pay(m, "cus_e2")})
    assert (declined["status"], declined["decision"]) == ("decided", "declined")
    assert declined["review_due"] is None
    appealed = m.ok(
        m.post(f"/v1/refund_requests/{declined['id']}/appeal", {"reason": "I did give one"})
    )
    assert appealed["status"] == "in_review"
    assert appealed["decisions"][0]["reasons"] == ["appeal_to_review"]
    api.advance("2026-03-10T00:00:00+00:00")
    first = file(
        m, {"customer": "cus_e1", "kind": "money_back", "reason": "too slow"} | paid(m, "cus_e1")
    )
    api.advance("2026-03-12T00:00:00+00:00")
    second = file(
        m, {"customer": "cus_e3", "kind": "money_back", "reason": "not for us"} | paid(m, "cus_e3")
    )
    assert first["review_due"] < second["review_due"]

    expected = [first["id"], second["id"], declined["id"]]
    whole = m.ok(m.get("/v1/refund_requests", queue="true"))
    assert [r["id"] for r in whole["data"]] == expected
    assert (whole["has_more"], whole["next_cursor"]) == (False, None)
    walked = m.walk("/v1/refund_requests", queue="true", limit=1)
    assert [r["id"] for r in walked] == expected
    # Without the queue: id order, all statuses.
    assert [r["id"] for r in m.walk("/v1/refund_requests", limit=2)] == [
        declined["id"],
        first["id"],
        second["id"],
    ]
    bad = m.get("/v1/refund_requests", queue="true", cursor="bm90LWEtY3Vyc29y")
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_cursor")


def test_list_filters(api: Api) -> None:
    m = emailconsul(api)
    api.advance("2026-03-05T00:00:00+00:00")
    a = file(m, {"customer": "cus_e1", "kind": "money_back"} | paid(m, "cus_e1"))  # no reason
    api.advance("2026-03-09T12:00:00+00:00")
    b = file(
        m, {"customer": "cus_e2", "kind": "money_back", "reason": "unused"} | paid(m, "cus_e2")
    )

    def ids(**params: Any) -> list[str]:
        return [r["id"] for r in m.ok(m.get("/v1/refund_requests", **params))["data"]]

    assert ids(status="decided") == [a["id"]]
    assert ids(status="in_review") == [b["id"]]
    assert ids(customer="cus_e2") == [b["id"]]
    assert ids(kind="money_back") == [a["id"], b["id"]]
    assert ids(kind="duplicate_charge") == []
    assert ids(created_from="2026-03-06") == [b["id"]]
    assert ids(created_to="2026-03-05") == [a["id"]]
    assert ids(created_to="2026-03-09T12:00:00+00:00") == [a["id"], b["id"]]
    assert ids(created_to="2026-03-09T11:59:59+00:00") == [a["id"]]
    naive = m.get("/v1/refund_requests", created_from="2026-03-06T00:00:00")
    assert naive.status_code == 422
    assert naive.json()["errors"][0]["field"] == "created_from"
    assert m.get("/v1/refund_requests", created_to="March").status_code == 422


def test_conek_appeal_is_refused_because_decisions_are_final(api: Api) -> None:
    m = api.merchant("conek")
    api.advance("2026-04-01T10:00:00+02:00")
    m.plan("business-monthly", "499.00")
    m.customer("cus_c_appeal")
    m.subscribe("cus_c_appeal", "business-monthly")
    api.advance("2026-04-05T10:00:00+02:00")
    req = file(
        m,
        {
            "customer": "cus_c_appeal",
            "kind": "money_back",
            "payment": pay(m, "cus_c_appeal"),
            "reason": "we are not using it",
        },
    )
    assert (req["decision"], req["amount"], req["clauses"]) == (
        "declined",
        "0.00",
        ["conek/no-refund-general"],
    )
    assert req["decisions"][0]["reasons"] == ["non_refundable_period_started"]
    api.advance("2026-04-08T10:00:00+02:00")
    appealed = m.ok(
        m.post(f"/v1/refund_requests/{req['id']}/appeal", {"reason": "please reconsider"})
    )
    [decision] = appealed["decisions"]
    assert (decision["action"], decision["outcome"], decision["amount"]) == (
        "appeal",
        "declined",
        "0.00",
    )
    assert decision["reasons"] == ["appeal_not_allowed"]
    assert decision["clauses"] == ["conek/decisions-final"]
    assert (appealed["status"], appealed["decision"]) == ("decided", "declined")
    assert m.ok(m.get("/v1/refunds"))["data"] == []


def test_portal_files_only_for_its_own_customer(api: Api) -> None:
    m = emailconsul(api)
    token = m.portal_token("cus_e1")
    api.advance("2026-03-04T00:00:00+00:00")
    own = file(m, {"customer": "cus_e1", "kind": "money_back", "reason": "x"}, token=token)
    assert own["customer"] == "cus_e1"
    other = m.post("/v1/refund_requests", {"customer": "cus_e2", "kind": "money_back"}, token=token)
    assert (other.status_code, other.json()["code"]) == (404, "not_found")
    theirs = file(m, {"customer": "cus_e2", "kind": "money_back", "reason": "y"})
    # The portal sees its own requests only; another customer's id is a 404.
    listed = m.ok(m.get("/v1/refund_requests", token=token))["data"]
    assert [r["id"] for r in listed] == [own["id"]]
    assert m.get(f"/v1/refund_requests/{theirs['id']}", token=token).status_code == 404
    # Another customer's payment cannot be named either.
    foreign = m.post(
        "/v1/refund_requests",
        {"customer": "cus_e1", "kind": "money_back", "payment": pay(m, "cus_e2")},
        token=token,
    )
    assert foreign.status_code == 404
    # A portal token may not review, not even its own request.
    review = m.post(f"/v1/refund_requests/{own['id']}/review", {"decision": "accept"}, token=token)
    assert (review.status_code, review.json()["code"]) == (403, "forbidden")
    # Read-only keys may not file.
    ro = m.post(
        "/v1/refund_requests", {"customer": "cus_e1", "kind": "money_back"}, role="readonly"
    )
    assert ro.status_code == 403


def test_bad_input_is_a_problem_never_a_500(api: Api) -> None:
    m = emailconsul(api)
    api.advance("2026-03-04T00:00:00+00:00")
    req = file(
        m, {"customer": "cus_e1", "kind": "money_back", "reason": "slow"} | paid(m, "cus_e1")
    )
    assert req["status"] == "in_review"
    url = f"/v1/refund_requests/{req['id']}/review"

    def problem(response: Any, status: int, field: str | None = None) -> None:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        if field is not None:
            assert field in [e["field"] for e in response.json()["errors"]]

    problem(m.post(url, {"decision": "approve", "amount": 5}), 422, "amount")
    problem(m.post(url, {"decision": "approve", "amount": 5.5}), 422, "amount")
    problem(m.post(url, {"decision": "approve", "amount": "5.555"}), 422, "amount")
    problem(m.post(url, {"decision": "approve", "fee_percent": 10}), 422, "fee_percent")
    problem(m.post(url, {"decision": "maybe"}), 422, "decision")
    problem(m.post(url, {"decision": "accept", "extra": 1}), 422, "extra")
    problem(m.post("/v1/refund_requests", {"customer": "cus_e1", "kind": "nope"}), 422, "kind")
    problem(
        m.post("/v1/refund_requests", {"customer": "cus_e1", "kind": "money_back", "payment": 1}),
        422,
        "payment",
    )
    problem(m.post("/v1/refund_requests", {"customer": "cus_zz", "kind": "money_back"}), 404)
    # A well-formed id that names no payment is not found; a malformed one is invalid.
    asked = {"customer": "cus_e1", "kind": "money_back"}
    payment = pay(m, "cus_e1")
    problem(m.post("/v1/refund_requests", asked | {"payment": "pay_0000000000000"}), 404)
    for malformed in ("pay_999", "pay_1", req["id"], payment.upper()):
        problem(m.post("/v1/refund_requests", asked | {"payment": malformed}), 422, "payment")
    # Paths: malformed, well-formed but unknown, another kind's id, another kind's digits.
    swapped = "req_" + payment.removeprefix("pay_")
    for bad_id in ("req_999", "999", "req_x", "pay_1", "req_0000000000000", payment, swapped):
        problem(m.get(f"/v1/refund_requests/{bad_id}"), 404)
        problem(m.post(f"/v1/refund_requests/{bad_id}/review", {"decision": "accept"}), 404)
    # Nothing above changed the request.
    assert m.ok(m.get(f"/v1/refund_requests/{req['id']}"))["status"] == "in_review"


def test_approve_override_is_capped_and_idempotent(api: Api) -> None:
    m = emailconsul(api)
    api.advance("2026-03-04T00:00:00+00:00")
    req = file(
        m,
        {
            "customer": "cus_e1",
            "kind": "money_back",
            "payment": pay(m, "cus_e1"),
            "reason": "slow",
        },
    )
    url = f"/v1/refund_requests/{req['id']}/review"
    body = {"decision": "approve", "amount": "45.00", "destination": "wallet", "note": "goodwill"}
    key = {"Idempotency-Key": "rev-1"}
    first = m.post(url, body, headers=key)
    again = m.post(url, body, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    out = first.json()
    # Capped at the 30.00 paid, and EmailConsul refunds only to the method charged.
    assert (out["status"], out["amount"], out["destination"]) == (
        "paid",
        "30.00",
        "original_method",
    )
    [decision] = out["decisions"]
    assert {"review_amount_capped", "review_destination_fixed"} <= set(decision["reasons"])
    assert decision["destination"] == "original_method"
    assert [(r["amount"], r["destination"]) for r in m.ok(m.get("/v1/refunds"))["data"]] == [
        ("30.00", "original_method")
    ]
    assert m.ok(m.get("/v1/customers/cus_e1/wallet"))["balance"] == "0.00"
    reused = m.post(url, {"decision": "decline"}, headers=key)
    assert (reused.status_code, reused.json()["code"]) == (409, "idempotency_key_reused")
