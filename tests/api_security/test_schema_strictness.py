"""The OpenAPI document says what the server does (schemathesis found them disagree):
each body or query below is sent to the server and checked against the document, and
the two must agree on whether it is acceptable. Also: a 405 names every method of its
path; a second dispute on a payment is ``already_disputed`` however it races.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema_rs import Draft202012Validator

from api.helpers import ADMIN_TOKEN, START, Api, Merchant
from fairbill.api.app import create_app
from fairbill.api.problems import from_error
from fairbill.api.settings import Runtime
from fairbill.errors import AlreadyDisputed
from fairbill.ids import Ids, Prefix
from fairbill.services import accounts
from fairbill.services.clock import TestClock
from fairbill.services.merchants import context, find_customer
from fairbill.store.db import create_schema, make_engine
from fairbill.store.tables import MerchantRow, PaymentRow


@pytest.fixture
def fb() -> Iterator[Api]:
    engine = make_engine("sqlite://")
    create_schema(engine)
    runtime = Runtime(engine, clock=TestClock(START), admin_token=ADMIN_TOKEN)
    try:
        with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
            yield Api(client, runtime)
    finally:
        engine.dispose()


def _documented(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of ``schema``, its ``$ref``s resolved in the OpenAPI ``document``."""
    return Draft202012Validator(schema | {"components": document["components"]})


def _body_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    content = document["paths"][path]["post"]["requestBody"]["content"]
    schema: dict[str, Any] = content["application/json"]["schema"]
    return schema


def _query_schema(document: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    [parameter] = [p for p in document["paths"][path]["get"]["parameters"] if p["name"] == name]
    schema: dict[str, Any] = parameter["schema"]
    return schema


def agree(m: Merchant, path: str, bodies: list[tuple[dict[str, Any], bool]]) -> None:
    """Each body is valid for the document exactly when the server takes it."""
    document = m.client.app.openapi()  # type: ignore[attr-defined]
    validator = _documented(document, _body_schema(document, path))
    for body, ok in bodies:
        assert validator.is_valid(body) == ok, ("document", path, body)
        response = m.post(path, body)
        assert (response.status_code in (200, 201)) == ok, ("server", path, body, response.text)


def test_plans_have_a_price_or_tiers_and_booleans_and_counts_are_json_ones(fb: Api) -> None:
    m = fb.merchant("conek")
    tiers = {"metric": "seats", "levels": [{"up_to": None, "price": "1.00"}]}
    agree(
        m,
        "/v1/plans",
        [
            ({"id": "p1", "price": "1.00", "tiers": tiers}, False),
            ({"id": "p2"}, False),
            ({"id": "p3", "price": None, "tiers": None}, False),
            ({"id": "p4", "price": "1.00", "interval_months": "12"}, False),
            ({"id": "p5", "price": "1.00", "interval_months": 12.0}, True),  # JSON Schema's too
            ({"id": "p6", "price": "1.00", "includes": {"seats": True}}, False),
            ({"id": "p7", "price": "1.00", "tiers": None}, True),
            ({"id": "p8", "price": None, "tiers": tiers}, True),
            ({"id": "p9", "tiers": tiers, "interval_months": 12}, True),
        ],
    )
    agree(
        m,
        "/v1/promotions",
        [
            ({"id": "x1", "percent_off": "5", "amount_off": "1.00"}, False),
            ({"id": "x2"}, False),
            ({"id": "x3", "percent_off": "5", "duration_periods": "2"}, False),
            ({"id": "x4", "amount_off": "1.00", "percent_off": None}, True),
        ],
    )
    agree(
        m,
        "/v1/terms_changes",
        [({"material": 0}, False), ({"material": "yes"}, False), ({"material": "true"}, False)],
    )
    # Times are text with an offset, never a number (pydantic took a Unix time).
    outage = {"end": "2026-01-02T00:00:00+00:00", "cause": "internal"}
    agree(m, "/v1/outages", [(outage | {"start": 1767225600}, False)])


def test_merchants_name_a_known_currency_timezone_and_country(fb: Api) -> None:
    """Country ``ZZ`` made every refund request of the merchant a 500 (``holidays``)."""
    admin = Merchant(fb.client, 0, {"admin": ADMIN_TOKEN})
    base = {"name": "m", "policy": "conek"}
    agree(
        admin,
        "/v1/merchants",
        [
            (base | {"country": "ZZ"}, False),
            (base | {"currency": "ZZZ"}, False),
            (base | {"timezone": "Mars/Olympus_Mons"}, False),
            (base | {"policy_text": "id: x"}, False),  # both a policy and its text
            (base | {"country": "ES", "currency": "ZAR", "timezone": "Europe/Madrid"}, True),
        ],
    )
    refused = admin.post("/v1/merchants", base | {"country": "ZZ"}).json()
    assert refused["code"] == "validation_error"
    assert [e["field"] for e in refused["errors"]] == ["country"]
    assert "unknown country 'ZZ'" in refused["errors"][0]["message"]


def test_query_booleans_and_time_bounds_are_what_the_document_says(fb: Api) -> None:
    m = fb.merchant("conek")
    document = m.client.app.openapi()  # type: ignore[attr-defined]
    cases: list[tuple[str, str, str, bool]] = [
        ("/v1/refund_requests", "queue", "true", True),
        ("/v1/refund_requests", "queue", "false", True),
        ("/v1/refund_requests", "queue", "yes", False),
        ("/v1/refund_requests", "queue", "1", False),
        ("/v1/refund_requests", "queue", "0", False),
        ("/v1/job_failures", "all", "on", False),
        ("/v1/job_failures", "all", "true", True),
        ("/v1/invoices", "from", "", False),
        ("/v1/invoices", "from", "2026-04-01", True),
        ("/v1/invoices", "from", "2026-04-01T10:00:00+02:00", True),
        ("/v1/invoices", "from", "2026-04-01T10:00Z", True),
        ("/v1/invoices", "from", "2026-04-01T10:00:00", False),  # no offset
        ("/v1/invoices", "from", "20260401T100000Z", False),  # ISO 8601's basic form
        ("/v1/invoices", "to", "2026-W14-3", False),  # a week date
        ("/v1/refund_requests", "created_from", "", False),
    ]
    for path, name, value, ok in cases:
        schema = _query_schema(document, path, name)
        documented = Draft202012Validator(schema)
        typed: Any = {"true": True, "false": False}.get(value, value)
        if schema.get("type") == "boolean":
            # A client sends true/false as such; anything else is not a boolean.
            assert documented.is_valid(typed) == ok, (path, name, value)
        else:
            assert documented.is_valid(value) == ok, (path, name, value)
        response = m.get(path, **{name: value})
        assert (response.status_code == 200) == ok, (path, name, value, response.text)
        if not ok:
            assert response.json()["code"] == "validation_error"


def test_a_405_names_every_method_of_the_path(fb: Api) -> None:
    m = fb.merchant("conek")
    for method, path, allow in (
        ("OPTIONS", "/v1/customers", "GET, POST"),
        ("DELETE", "/v1/plans", "GET, POST"),
        ("PUT", "/v1/customers/c_1", "GET"),
        ("GET", "/v1/disputes", "POST"),
    ):
        response = fb.client.request(method, path, headers=m.headers())
        assert response.status_code == 405
        assert response.headers["Allow"] == allow, (method, path)


# -- disputes: one stable code for the losers of a race -----------------------------------
def _paid(api: Api) -> tuple[Merchant, str]:
    m = api.merchant("conek")
    m.plan("monthly", "499.00")
    m.customer("c_1")
    m.subscribe("c_1", "monthly")
    [payment] = m.ok(m.get("/v1/payments", customer="c_1"))["data"]
    return m, payment["id"]


def test_a_dispute_found_only_under_the_lock_is_already_disputed(api: Api) -> None:
    """The loser of a race passes the route's check (the winner has not committed yet)
    and finds the dispute in the service, once it holds the customer's lock (the payment
    is read again then): the same code as the route's own check."""
    m, pay = _paid(api)
    body = {"payment": pay, "reason": "x", "contacted_support_first": True}
    m.ok(m.post("/v1/disputes", body), 201)  # the winner
    rt = api.runtime
    with rt.sessions() as session:
        merchant = session.get_one(MerchantRow, m.id)
        ctx = context(session, rt.clock, rt.gateway, merchant)
        customer = find_customer(session, merchant, "c_1")
        row_id = Ids(merchant.id_key).private(Prefix.PAYMENT, pay)
        assert row_id is not None
        payment = session.get_one(PaymentRow, row_id)
        with pytest.raises(AlreadyDisputed) as lost:
            accounts.chargeback(ctx, customer, payment, True)
        session.rollback()
    assert from_error(lost.value).code == "already_disputed"
    again = m.post("/v1/disputes", body)
    assert (again.status_code, again.json()["code"]) == (409, "already_disputed")


# PostgreSQL only: in-memory SQLite has one connection, so no two requests run at once.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_concurrent_disputes_on_one_payment_one_wins_the_rest_already_disputed(
    api: Api,
) -> None:
    m, pay = _paid(api)
    body = {"payment": pay, "reason": "x", "contacted_support_first": True}
    start = Barrier(6)

    def dispute(_: int) -> tuple[int, str | None]:
        start.wait()
        response = m.post("/v1/disputes", body)
        return response.status_code, response.json().get("code")

    with ThreadPoolExecutor(6) as pool:
        answers = sorted(pool.map(dispute, range(6)), key=str)
    assert answers == [(201, None)] + [(409, "already_disputed")] * 5, answers
