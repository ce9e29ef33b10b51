"""Errors are RFC 9457 problem details, and bad input is never a 500.

Every error is ``application/problem+json`` with ``type``, ``title``, ``status`` (the HTTP
status), a stable ``code``, ``detail`` and ``instance``; a 422 names the offending field
in ``errors[].field``. Unknown routes and ids are 404, wrong methods 405. ``CASES`` sends
malformed JSON, wrong types, huge numbers, money as JSON numbers, negative quantities,
unknown enum values, over-long strings, naive datetimes, NUL characters (which
PostgreSQL text cannot hold) and odd ids to a sample of routes, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import httpx

from api.helpers import ADMIN_TOKEN, Api, Merchant
from fairbill.api.problems import PROBLEM_JSON

OUTAGE = {
    "start": "2026-04-10T00:00:00+02:00",
    "end": "2026-04-13T01:00:00+02:00",
    "cause": "internal",
}
OPERATOR = "operator"  # ``Case.role`` for the platform admin token


def check_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """``response`` is the problem ``status``/``code``, with every member of RFC 9457
    (and ours) filled in; returns it."""
    assert (response.status_code, response.headers["content-type"]) == (status, PROBLEM_JSON), (
        response.text
    )
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["code"] == code, problem
    assert problem["type"] == f"https://fairbill.dev/problems/{code}"
    assert problem["instance"] == httpx.URL(str(response.request.url)).path
    assert isinstance(problem["title"], str) and problem["title"]
    assert isinstance(problem["detail"], str) and problem["detail"]
    return problem


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    status: int
    code: str
    field_name: str | None = None  # the field a 422 must name
    json: Any = None
    content: bytes | None = None  # a raw body, sent as application/json
    params: dict[str, Any] = field(default_factory=dict)
    role: str = "admin"
    headers: dict[str, str] = field(default_factory=dict)


def bad(path: str, body: Any, name: str, code: str = "validation_error") -> Case:
    """A POST of ``body`` refused with a 422 naming the field ``name``."""
    return Case("POST", path, 422, code, name, json=body)


PLAN = {"id": "p", "price": "1.00"}
SUB = "/v1/subscriptions/{sub}"
REVIEW = "/v1/refund_requests/{req}/review"
BIG_CURSOR = base64.urlsafe_b64encode(b"id:99999999999999999999").decode().rstrip("=")

CASES = [
    # Malformed and non-object JSON, other content types.
    Case("POST", "/v1/plans", 422, "validation_error", content=b'{"id": "p", '),
    Case("POST", "/v1/plans", 422, "validation_error", content=b"[]"),
    Case("POST", "/v1/plans", 422, "validation_error", content=b'"a plan"'),
    Case("POST", "/v1/plans", 422, "validation_error", content=b"null"),
    Case("POST", "/v1/plans", 422, "validation_error", content=b""),
    Case("POST", "/v1/plans", 422, "validation_error", content=b'{"id": "p", "price": "1.00"}',
         headers={"content-type": "text/plain"}),
    Case("POST", "/v1/plans", 400, "http_error", content=b'{"id": "\xff"}'),
    # Wrong types, nulls, unknown members.
    bad("/v1/plans", {"id": 5, "price": "1.00"}, "id"),
    bad("/v1/plans", {"id": None, "price": "1.00"}, "id"),
    bad("/v1/plans", PLAN | {"interval_months": "monthly"}, "interval_months"),
    bad("/v1/plans", PLAN | {"interval_months": 1.5}, "interval_months"),
    bad("/v1/plans", PLAN | {"surprise": 1}, "surprise"),
    bad(f"{SUB}/cancel", {"immediately": "maybe"}, "immediately"),
    bad("/v1/terms_changes", {"material": "yes please"}, "material"),
    bad("/v1/customers", {"id": "c_9", "flags": "vip"}, "flags"),
    bad("/v1/outages", OUTAGE | {"customers": "c_1"}, "customers"),
    # Huge numbers.
    bad("/v1/plans", PLAN | {"interval_months": 10**30}, "interval_months"),
    bad("/v1/plans", {"id": "p", "price": "99999999999999999999"}, "price"),
    bad("/v1/plans", PLAN | {"includes": {"seats": 10**20}}, "includes.seats"),
    bad("/v1/plans", {"id": "p", "tiers": {"metric": "seats", "levels": [
        {"up_to": 2**40, "price": "1.00"}, {"up_to": None, "price": "2.00"}]}},
        "tiers.levels.0.up_to"),
    bad(f"{SUB}/usage", {"metric": "seats", "value": 10**30}, "value"),
    bad("/v1/subscriptions", {"customer": "c_1", "plan": "monthly", "usage": 2**63}, "usage"),
    bad("/v1/customers/c_1/purchases", {"product": "msg", "quantity": 10**30}, "quantity"),
    bad("/v1/customers/c_1/credits/consume", {"kind": "message", "quantity": 2**63}, "quantity"),
    bad("/v1/products", {"id": "x", "kind": "add_on", "quantity": 2**31, "price": "1.00"},
        "quantity"),
    bad("/v1/promotions", {"id": "x", "percent_off": "5", "duration_periods": 10**12},
        "duration_periods"),
    Case("POST", "/v1/customers/c_1/purchases", 422, "validation_error", "quantity",
         content=b'{"product": "msg", "quantity": 1e400}'),
    Case("POST", "/v1/customers/c_1/purchases", 422, "validation_error", "quantity",
         content=b'{"product": "msg", "quantity": NaN}'),
    Case("GET", "/v1/invoices", 422, "validation_error", "limit", params={"limit": 10**30}),
    Case("GET", "/v1/invoices", 422, "invalid_cursor", "cursor", params={"cursor": BIG_CURSOR}),
    Case("GET", "/v1/refund_requests", 422, "invalid_cursor", "cursor",
         params={"cursor": BIG_CURSOR, "queue": "true"}),
    Case("GET", "/v1/subscriptions/sub_99999999999999999999", 404, "not_found"),
    Case("GET", "/v1/payments/pay_99999999999", 404, "not_found"),
    Case("GET", "/v1/subscriptions/sub_zzzzzzzzzzzzz", 404, "not_found"),  # over 64 bits
    Case("GET", "/v1/payments/pay_0000000000000", 404, "not_found"),
    # Money as JSON numbers, or written wrong.
    bad("/v1/plans", {"id": "p", "price": 499.0}, "price"),
    bad("/v1/plans", {"id": "p", "price": 499}, "price"),
    bad("/v1/products", {"id": "x", "kind": "add_on", "price": 30}, "price"),
    bad("/v1/promotions", {"id": "x", "amount_off": 5.5}, "amount_off"),
    bad(REVIEW, {"decision": "approve", "amount": 10.5}, "amount"),
    bad("/v1/plans", {"id": "p", "price": "-1.00"}, "price"),
    bad("/v1/plans", {"id": "p", "price": "1,00"}, "price"),
    bad("/v1/plans", {"id": "p", "price": "1e3"}, "price"),
    bad("/v1/plans", {"id": "p", "price": " 1.00"}, "price"),
    bad("/v1/plans", {"id": "p", "price": "١٠٠"}, "price"),  # Arabic-Indic digits
    Case("POST", "/v1/plans", 422, "invalid_amount", json={"id": "p", "price": "1.001"}),
    bad(REVIEW, {"decision": "approve", "amount": "1.001"}, "amount"),
    # Negative and zero quantities.
    bad("/v1/customers/c_1/purchases", {"product": "msg", "quantity": -1}, "quantity"),
    bad("/v1/customers/c_1/credits/consume", {"kind": "message", "quantity": 0}, "quantity"),
    bad(f"{SUB}/usage", {"metric": "seats", "value": -1}, "value"),
    bad("/v1/subscriptions", {"customer": "c_1", "plan": "monthly", "trial_days": -3},
        "trial_days"),
    bad("/v1/plans", PLAN | {"interval_months": 0}, "interval_months"),
    bad("/v1/products", {"id": "x", "kind": "add_on", "quantity": 0, "price": "1.00"},
        "quantity"),
    bad("/v1/plans", PLAN | {"includes": {"seats": -1}}, "includes.seats"),
    # Unknown enum values.
    bad("/v1/refund_requests", {"customer": "c_1", "kind": "gimme"}, "kind"),
    bad("/v1/outages", OUTAGE | {"cause": "aliens"}, "cause"),
    bad(f"{SUB}/preview", {"action": "explode"}, "action"),
    bad(f"{SUB}/cancel", {"channel": "fax"}, "channel"),
    bad(REVIEW, {"decision": "maybe"}, "decision"),
    bad(REVIEW, {"decision": "approve", "destination": "moon"}, "destination"),
    bad("/v1/customers/c_1/credits/consume", {"kind": "pigeon", "quantity": 1}, "kind"),
    bad("/v1/customers/c_1/credits/consume", {"kind": "sms", "quantity": 1,
                                              "failed": "gremlins"}, "failed"),
    bad("/v1/products", {"id": "x", "kind": "timeshare", "price": "1.00"}, "kind"),
    bad("/v1/customers", {"id": "c_9", "type": "alien"}, "type"),
    bad("/v1/customers/c_1/payment_methods", {"id": "pm", "type": "bitcoin"}, "type"),
    bad("/v1/disputes/{pay}/close", {"outcome": "draw"}, "outcome"),
    Case("GET", "/v1/refund_requests", 422, "validation_error", "queue",
         params={"queue": "maybe"}),
    # Over-long strings and lists.
    bad("/v1/customers", {"id": "c" * 101}, "id"),
    bad(f"{SUB}/cancel", {"reason": "x" * 2001}, "reason"),
    bad("/v1/refund_requests", {"customer": "c_1", "kind": "money_back", "reason": "x" * 2001},
        "reason"),
    bad("/v1/refund_requests", {"customer": "c_1", "kind": "money_back",
                                "documents": ["d" * 501]}, "documents.0"),
    bad("/v1/refund_requests", {"customer": "c_1", "kind": "money_back",
                                "documents": ["d"] * 21}, "documents"),
    bad("/v1/customers", {"id": "c_9", "flags": ["f"] * 21}, "flags"),
    Case("POST", "/v1/merchants", 422, "validation_error", "name", role=OPERATOR,
         json={"name": "n" * 201, "policy": "conek"}),
    Case("POST", "/v1/merchants", 422, "validation_error", "timezone", role=OPERATOR,
         json={"name": "m", "policy": "conek", "timezone": "t" * 65}),
    Case("POST", "/v1/customers/c_1/activity", 422, "validation_error", "Idempotency-Key",
         headers={"Idempotency-Key": "k" * 129}),
    # Times without an offset, out of range, or not times.
    bad("/v1/outages", OUTAGE | {"start": "2026-04-10T00:00:00"}, "start"),
    bad("/v1/outages", OUTAGE | {"reported_at": "2026-04-10T02:00"}, "reported_at"),
    bad("/v1/outages", OUTAGE | {"start": "0001-01-01T00:00:00+14:00"}, "start"),
    bad("/v1/outages", OUTAGE | {"end": "yesterday"}, "end"),
    Case("POST", "/v1/test_clock/advance", 422, "validation_error", "to", role=OPERATOR,
         params={"to": "2026-05-01T00:00:00"}),
    Case("GET", "/v1/invoices", 422, "validation_error", "from",
         params={"from": "2026-04-01T00:00:00"}),
    Case("GET", "/v1/invoices", 422, "validation_error", "from", params={"from": "2026-13-45"}),
    Case("GET", "/v1/payments", 422, "validation_error", "to", params={"to": "9999-12-31"}),
    Case("GET", "/v1/refund_requests", 422, "validation_error", "created_from",
         params={"created_from": "2026-04-01T00:00"}),
    # Unknown zones, NUL characters, odd limits and cursors.
    Case("POST", "/v1/merchants", 422, "validation_error", "timezone", role=OPERATOR,
         json={"name": "m", "policy": "conek", "timezone": "Mars/Olympus_Mons"}),
    Case("POST", "/v1/merchants", 422, "validation_error", "timezone", role=OPERATOR,
         json={"name": "m", "policy": "conek", "timezone": "../../etc/passwd"}),
    Case("POST", "/v1/merchants", 422, "validation_error", "name", role=OPERATOR,
         json={"name": "a\u0000b", "policy": "conek"}),
    bad("/v1/refund_requests", {"customer": "c_1", "kind": "money_back", "reason": "a\u0000"},
        "reason"),
    Case("GET", "/v1/customers/c%001", 404, "not_found"),
    Case("GET", "/v1/invoices", 422, "validation_error", "customer",
         params={"customer": "c\u00001"}),
    Case("GET", "/v1/subscriptions", 422, "validation_error", "status",
         params={"status": "\u0000"}),
    Case("GET", "/v1/invoices", 422, "validation_error", "limit", params={"limit": 0}),
    Case("GET", "/v1/invoices", 422, "validation_error", "limit", params={"limit": 101}),
    Case("GET", "/v1/invoices", 422, "validation_error", "limit", params={"limit": "ten"}),
    Case("GET", "/v1/invoices", 422, "invalid_cursor", "cursor", params={"cursor": "garbage"}),
    # Ids we never issued.
    Case("GET", "/v1/subscriptions/sub_-1", 404, "not_found"),
    Case("GET", "/v1/subscriptions/sub_\u0661", 404, "not_found"),
    Case("GET", "/v1/subscriptions/1", 404, "not_found"),
    Case("GET", "/v1/invoices/inv_1e3", 404, "not_found"),
    Case("GET", "/v1/refund_requests/req_", 404, "not_found"),
    Case("GET", "/v1/payments/pay_0x10", 404, "not_found"),
    Case("GET", "/v1/payments/pay_000000000000i", 404, "not_found"),  # no Crockford "i"
    Case("GET", "/v1/invoices/INV_0000000000000", 404, "not_found"),
    Case("GET", "/v1/customers/nobody", 404, "not_found"),
    Case("GET", "/v1/customers/" + "x" * 5000, 404, "not_found"),
    Case("GET", "/v1/customers/%F0%9F%92%A9/wallet", 404, "not_found"),
    Case("POST", "/v1/customers/nobody/close", 404, "not_found"),
]  # fmt: skip


def world(fb: Api) -> tuple[Merchant, dict[str, str]]:
    """A Conek merchant whose c_1 is subscribed (paid), with a request in review."""
    m = fb.merchant("conek")
    fb.advance("2026-04-01T10:00:00+02:00")
    m.plan("monthly", "499.00")
    product = {"id": "msg", "kind": "message_credits", "quantity": 100, "credit_kind": "message"}
    m.ok(m.post("/v1/products", product | {"price": "30.00"}), 201)
    m.customer("c_1")
    sub = m.subscribe("c_1", "monthly")
    fb.advance("2026-04-13T01:00:00+02:00")
    [req] = m.ok(m.post("/v1/outages", OUTAGE | {"customers": ["c_1"]}), 201)["data"]
    [pay] = m.ok(m.get("/v1/payments", customer="c_1"))["data"]
    return m, {"sub": sub, "req": req["id"], "pay": pay["id"]}


def send(fb: Api, m: Merchant, case: Case, ids: dict[str, str]) -> httpx.Response:
    token = ADMIN_TOKEN if case.role == OPERATOR else m.keys[case.role]
    headers = {"Authorization": f"Bearer {token}"} | case.headers
    kwargs: dict[str, Any] = {"params": case.params}
    if case.content is not None:
        headers.setdefault("content-type", "application/json")
        kwargs["content"] = case.content
    elif case.json is not None:
        kwargs["json"] = case.json
    response: httpx.Response = fb.client.request(
        case.method, case.path.format(**ids), headers=headers, **kwargs
    )
    return response


def test_bad_input_is_a_problem_naming_the_field_never_a_500(api: Api) -> None:
    m, ids = world(api)
    failures = []
    for case in CASES:
        response = send(api, m, case, ids)
        try:
            problem = check_problem(response, case.status, case.code)
            if case.field_name is not None:
                # FastAPI's own query checks say ``query.limit``; the routes' ``from``.
                fields = [e["field"].removeprefix("query.") for e in problem["errors"]]
                assert case.field_name in fields, fields
        except AssertionError as exc:
            what = f"{case.method} {case.path} {case.params or case.json or case.content!r}"
            failures.append(f"{what}: {response.status_code} {response.text[:300]} ({exc})")
    assert not failures, "\n".join(failures)
    # Nothing of it was kept: no plan, customer or merchant more.
    assert [p["id"] for p in m.ok(m.get("/v1/plans"))["data"]] == ["monthly"]
    assert [c["id"] for c in m.ok(m.get("/v1/customers"))["data"]] == ["c_1"]


def test_valid_edge_input_is_not_a_500(api: Api) -> None:
    """Input at the limits the schemas allow is stored, on PostgreSQL as on SQLite."""
    m, ids = world(api)
    long_code = "c" * 100
    m.ok(m.post("/v1/customers", {"id": long_code}), 201)
    # The audit target ``payment_method:<customer>/<method>`` is 216 characters here.
    added = m.post(f"/v1/customers/{long_code}/payment_methods", {"id": "p" * 100})
    assert (added.status_code, added.json()["id"]) == (201, "p" * 100)
    # An X-Request-Id too long for the log is replaced by a generated one.
    activity = m.post("/v1/customers/c_1/activity", headers={"X-Request-Id": "r" * 500})
    assert activity.status_code == 200
    assert activity.headers["X-Request-Id"].startswith("req_")
    assert len(activity.headers["X-Request-Id"]) == 20
    assert m.ok(m.post("/v1/plans", {"id": "p" * 100, "price": "999999999.99"}), 201)["price"] == (
        "999999999.99"
    )
    usage = m.post(f"/v1/subscriptions/{ids['sub']}/usage", {"metric": "m", "value": 2**31 - 1})
    assert usage.json()["usage_level"] == 2**31 - 1


def test_a_tier_metric_longer_than_its_column(api: Api) -> None:
    """The column holds 64 characters: a longer metric is a 422, never a 500."""
    m = api.merchant("conek")
    tiers = {"metric": "m" * 80, "levels": [{"up_to": None, "price": "1.00"}]}
    response = m.post("/v1/plans", {"id": "tiered", "tiers": tiers})
    check_problem(response, 422, "validation_error")


def test_errors_are_problem_details(api: Api) -> None:
    m = api.merchant("conek")
    m.customer("c_1")
    client = api.client
    assert client.get("/v1/customers/c_1").status_code == 401
    check_problem(client.get("/v1/customers/c_1"), 401, "unauthorized")
    check_problem(m.post("/v1/customers", {"id": "c_2"}, role="readonly"), 403, "forbidden")
    check_problem(m.post("/v1/customers", {"id": "c_1"}), 409, "conflict")
    invalid = check_problem(m.post("/v1/customers", {"id": "c 2"}), 422, "validation_error")
    assert [e["field"] for e in invalid["errors"]] == ["id"]
    assert invalid["detail"] == "invalid field: id"
    assert all(isinstance(e["message"], str) and e["message"] for e in invalid["errors"])
    check_problem(m.get("/v1/customers/c_2"), 404, "not_found")
    # Unknown routes are 404 and wrong methods 405, with or without credentials.
    for headers in ({}, m.headers()):
        for method, path in (
            ("GET", "/v1/nope"),
            ("POST", "/v1/nope"),
            ("GET", "/v1"),
            ("GET", "/nope"),
            ("GET", "/v1/customers/c_1/nope"),
            ("PUT", "/v1/plans/monthly"),
        ):
            check_problem(client.request(method, path, headers=headers), 404, "not_found")
        for method, path in (
            ("DELETE", "/v1/customers"),
            ("DELETE", "/v1/customers/c_1"),
            ("PATCH", "/v1/customers/c_1"),
            ("PUT", "/v1/merchant"),
            ("GET", "/v1/outages"),
            ("GET", "/v1/disputes"),
            ("POST", "/v1/invoices"),
            ("GET", "/v1/subscriptions/sub_1/cancel"),
            ("POST", "/v1/customers/c_1/export"),
        ):
            response = client.request(method, path, headers=headers)
            check_problem(response, 405, "method_not_allowed")
    # The request id comes back on errors too.
    refused = client.get("/v1/customers/c_1", headers={"X-Request-Id": "trace-1"})
    assert (refused.status_code, refused.headers["X-Request-Id"]) == (401, "trace-1")
