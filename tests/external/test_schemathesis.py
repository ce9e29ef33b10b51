"""Schemathesis against the app's own ``/openapi.json``: every operation, positive and
negative inputs, with a merchant's admin key.

Checks on every response: no 5xx; the status code and the content type are documented
for the operation (errors are ``application/problem+json``, declared through
``problems.RESPONSES``); the body matches the documented schema.

The app runs in process (ASGI) on an in-memory SQLite database seeded with the demo
merchants (``services.demo.seed``), so ids that exist are known: path parameters, query
filters and body fields that name a customer, subscription, payment, invoice, refund
request, plan, product or payment method are drawn either from the generated value or
from the Conek merchant's real ones, which gets the fuzzing past the 404s into the
services. The state changes as the examples run (customers closed, plans added), which
is the point: any order of calls must answer 2xx or a documented 4xx.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from api.helpers import Api
from fairbill.api.app import create_app
from fairbill.api.problems import PROBLEM_JSON
from fairbill.api.settings import Runtime
from fairbill.services.clock import TestClock
from fairbill.services.demo import seed
from fairbill.store.db import create_schema, make_engine
from fairbill.store.tables import (
    CustomerRow,
    InvoiceRow,
    PaymentRow,
    RequestRow,
    SubscriptionRow,
)

MERCHANT = "conek"  # plans, a message-credit product, business customers, ZAR
ADMIN_TOKEN = "adm_schemathesis"


def _world() -> tuple[Runtime, str, dict[str, list[str]]]:
    """The demo database; the Conek admin key; the ids that exist, by field name."""
    engine = make_engine("sqlite://")
    create_schema(engine)
    rt = Runtime(
        engine, clock=TestClock(datetime(2026, 3, 2, 9, tzinfo=UTC)), admin_token=ADMIN_TOKEN
    )
    with rt.sessions() as session:
        merchant = next(m for m in seed(session, rt.clock, rt.gateway) if m.policy == MERCHANT)
        customers = list(
            session.scalars(
                select(CustomerRow).where(CustomerRow.merchant_id == merchant.merchant_id)
            )
        )
        ids = [c.id for c in customers]

        def of(model: Any, prefix: str) -> list[str]:
            rows = session.scalars(select(model.id).where(model.customer_id.in_(ids)))
            return [f"{prefix}_{n}" for n in rows]

        codes = [c.code for c in customers]
        subs, pays = of(SubscriptionRow, "sub"), of(PaymentRow, "pay")
        invs, reqs = of(InvoiceRow, "inv"), of(RequestRow, "req")
    known = {
        # path parameters
        "customer_id": codes,
        "sub_id": subs,
        "payment_id": pays,
        "invoice_id": invs,
        "request_id": reqs,
        # query filters and body fields
        "customer": codes,
        "payment": pays,
        "invoice": invs,
        "plan": ["starter-monthly", "business-monthly"],
        "product": ["msg-1000"],
        "payment_method": ["card_1"],
        "refund_to": ["card_1"],
    }
    assert all(known.values()), known  # the demo seeds at least one of each
    return rt, merchant.keys["admin"], known


RUNTIME, KEY, KNOWN = _world()
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(RUNTIME))


def _swap(values: Any) -> st.SearchStrategy[Any]:
    """Each field that names an object: the generated value or an existing one."""
    if not isinstance(values, dict):
        return st.just(values)
    return st.fixed_dictionaries(
        {
            name: st.one_of(st.just(value), st.sampled_from(KNOWN[name]))
            if name in KNOWN
            else st.just(value)
            for name, value in values.items()
        }
    )


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: Any) -> st.SearchStrategy[Any]:
    return _swap(path_parameters)


@schema.hook
def flatmap_query(context: Any, query: Any) -> st.SearchStrategy[Any]:
    return _swap(query)


@schema.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    return _swap(body)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_every_operation_documents_its_problems() -> None:
    """Each /v1 operation declares the 4xx problems it answers as problem+json (FastAPI's
    own ``application/json`` 422, which this API never sends, is gone)."""
    document = create_app(RUNTIME).openapi()
    operations = [
        (method.upper(), path, op)
        for path, item in document["paths"].items()
        if path.startswith("/v1")
        for method, op in item.items()
    ]
    assert len(operations) >= 45
    for method, path, op in operations:
        for status in ("400", "401", "403", "404", "409", "422"):
            content = op["responses"][status]["content"]
            assert list(content) == [PROBLEM_JSON], (method, path, status)
    gateway = {(m, p) for m, p, op in operations if "502" in op["responses"]}
    assert ("POST", "/v1/refund_requests/{request_id}/review") in gateway
    assert ("POST", "/v1/subscriptions/{sub_id}/cancel") in gateway
    assert ("GET", "/v1/plans") not in gateway
    assert "HTTPValidationError" not in document.get("components", {}).get("schemas", {})


@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_schema(case: Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, checks=CHECKS)


# -- the 500s the fuzzing found, pinned (on SQLite and on PostgreSQL) ----------------------
BIG = 2**31  # one past the 32-bit integer columns (ids, counts) on PostgreSQL


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_numbers_too_large_for_their_columns_are_422_not_500(api: Api) -> None:
    """Each of these was a 500 (OverflowError on SQLite, "integer out of range" on
    PostgreSQL) before the API bounded its inputs."""
    m = api.merchant("conek")
    m.plan("starter", "499.00")
    m.customer("cus_1")
    sub = m.subscribe("cus_1", "starter")
    cases: list[tuple[str, dict[str, Any], str]] = [
        (
            "/v1/products",
            {"id": "p", "kind": "add_on", "quantity": BIG, "price": "1.00"},
            "quantity",
        ),
        ("/v1/plans", {"id": "p1", "price": "1234567890.00"}, "price"),
        ("/v1/plans", {"id": "p2", "price": "1.00", "includes": {"sms": BIG}}, "includes.sms"),
        (
            "/v1/plans",
            {
                "id": "p3",
                "tiers": {"metric": "contacts", "levels": [{"up_to": BIG, "price": "1.00"}]},
            },
            "tiers.levels.0.up_to",
        ),
        (
            "/v1/promotions",
            {"id": "x", "percent_off": "5", "duration_periods": BIG},
            "duration_periods",
        ),
        ("/v1/subscriptions", {"customer": "cus_1", "plan": "starter", "usage": BIG}, "usage"),
        (f"/v1/subscriptions/{sub}/usage", {"metric": "contacts", "value": BIG}, "value"),
    ]
    for path, body, field in cases:
        response = m.post(path, body)
        assert response.status_code == 422, (path, response.text)
        assert response.headers["content-type"] == PROBLEM_JSON
        problem = response.json()
        assert problem["code"] == "validation_error"
        assert field in [e["field"] for e in problem["errors"]], (path, problem)


def test_a_purchase_whose_credits_overflow_a_pack_is_422(api: Api) -> None:
    m = api.merchant("conek")
    m.customer("cus_1")
    product = {
        "id": "msg-big",
        "kind": "message_credits",
        "quantity": 100_000,
        "credit_kind": "sms",
        "price": "1.00",
    }
    m.ok(m.post("/v1/products", product), 201)
    body = {"product": "msg-big", "quantity": 1_000_000, "payment_method": "card_1"}
    response = m.post("/v1/customers/cus_1/purchases", body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"field": "quantity", "message": "at most 2147483647 credits in one purchase"}
    ]
    # 21,474 packs of 100,000 fit: bought and paid.
    ok = m.ok(m.post("/v1/customers/cus_1/purchases", body | {"quantity": 21_474}), 201)
    assert ok["invoice"]["total"] == "21474.00"
    assert [p["quantity"] for p in ok["credit_packs"]] == [2_147_400_000]


def test_ids_and_cursors_out_of_range_or_malformed_are_404_and_422(api: Api) -> None:
    m = api.merchant("conek")
    for path in (
        f"/v1/invoices/inv_{BIG}",
        f"/v1/payments/pay_{BIG}",
        f"/v1/refund_requests/req_{BIG}",
        f"/v1/subscriptions/sub_{BIG}",
        "/v1/subscriptions/sub_99999999999999999999999",
        "/v1/invoices/inv_\u00b2",  # "²".isdigit() is True but int("²") fails
        "/v1/subscriptions/sub_1_0",  # int("1_0") == 10
        "/v1/subscriptions/sub_-1",
    ):
        response = m.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["code"] == "not_found"
    for path, extra in (
        ("/v1/customers", {}),
        ("/v1/invoices", {}),
        ("/v1/refund_requests", {"queue": "true"}),
    ):
        for text in (f"id:{BIG}", "id:-5", "id:1_0"):
            response = m.get(path, cursor=_cursor(text), **extra)
            assert response.status_code == 422, (path, text, response.text)
            assert response.json()["code"] == "invalid_cursor"


def test_promotions_and_products_follow_the_scenario_contract(api: Api) -> None:
    """More than 100% off made every invoice negative (-249.50 on a 499.00 plan, marked
    paid); a promotion with both discounts silently ignored amount_off."""
    m = api.merchant("conek")
    for body in (
        {"id": "a", "percent_off": "150"},
        {"id": "b", "percent_off": "100.5"},
        {"id": "c", "percent_off": "10", "amount_off": "5.00"},
        {"id": "d"},
    ):
        response = m.post("/v1/promotions", body)
        assert response.status_code == 422, (body, response.text)
    assert (
        m.ok(m.post("/v1/promotions", {"id": "e", "percent_off": "100"}), 201)["percent_off"]
        == "100"
    )
    response = m.post("/v1/products", {"id": "m", "kind": "message_credits", "price": "1.00"})
    assert response.status_code == 422
    assert "quantity and credit_kind" in response.json()["errors"][0]["message"]


def test_a_body_that_is_not_json_is_a_documented_problem(api: Api) -> None:
    """Bytes that are not UTF-8 were an undocumented 400; broken JSON named its character
    offset as the field ("invalid field: 1")."""
    m = api.merchant("conek")
    headers = m.headers() | {"Content-Type": "application/json"}
    response = m.client.post("/v1/customers", content=b"\x92\xf3\x94", headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == "http_error"
    response = m.client.post("/v1/customers", content=b"{not json", headers=headers)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert (problem["code"], problem["detail"]) == ("validation_error", "invalid request")
    assert problem["errors"] == [{"field": "", "message": "JSON decode error"}]
