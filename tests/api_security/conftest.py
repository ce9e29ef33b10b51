"""Security-test fixtures: the ``tests/api`` app fixtures (so these tests run on both
in-memory SQLite and PostgreSQL), every ``/v1`` route of the app, and a two-merchant world.

``world`` builds, through the API only, merchant A (Conek, ZAR) whose customer
``a_cus_1`` has a subscription, paid invoices, a message-credit pack, a refund request
that was reviewed and paid to the wallet (so a refund and a wallet entry), a dispute on
its first payment, and a portal token; ``a_cus_2`` is a second customer of A with its own
subscription and portal token; merchant B (Conek as well) has ``b_cus_1`` with a
subscription and a portal token. All codes are prefixed ``a_``/``b_`` so that no code of
one merchant names an object of the other.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import func, select

from api.conftest import api, database_url, runtime  # noqa: F401  (the same fixtures)
from api.helpers import ADMIN_TOKEN, Api, Merchant
from fairbill.store.tables import AuditLogRow

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
GATEWAY_TOKEN = "tok_a_secret"
SET_UP_AT = "2026-04-01T10:00:00+02:00"
NOW = "2026-04-20T12:00:00+02:00"  # the clock when ``world`` is handed over
# The outage A reports (finance), ended before NOW.
OUTAGE = {
    "start": "2026-04-10T00:00:00+02:00",
    "end": "2026-04-13T01:00:00+02:00",
    "cause": "internal",
    "reported_at": "2026-04-10T02:00:00+02:00",
}


# -- the app's routes --------------------------------------------------------------------
def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every ``APIRoute`` under ``/v1``, wherever it is mounted: ``app.routes`` holds the
    routes themselves or, since FastAPI 0.16x, included routers (``original_router``)."""

    def walk(routes: list[Any]) -> Iterator[APIRoute]:
        for route in routes:
            if isinstance(route, APIRoute):
                yield route
            elif hasattr(route, "original_router"):
                yield from walk(route.original_router.routes)
            elif hasattr(route, "routes"):  # a mounted router
                yield from walk(route.routes)

    found = [r for r in walk(list(app.routes)) if r.path.startswith("/v1")]
    # Cross-check with the OpenAPI document, which FastAPI builds from the same routes:
    # a route the walk above missed fails here instead of going untested.
    documented = {
        (path, method.upper())
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/v1")
        for method in item
    }
    walked = {(r.path, m) for r in found for m in r.methods or ()}
    assert walked == documented, f"route walk and OpenAPI differ: {walked ^ documented}"
    return found


def operations(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    """(method, path template, route) for every /v1 operation, sorted."""
    ops = [(m, r.path, r) for r in api_routes(app) for m in r.methods or () if m != "HEAD"]
    return sorted(ops, key=lambda op: (op[1], op[0]))


def fill(template: str, params: dict[str, str]) -> str:
    """The path with each ``{name}`` replaced by ``params[name]`` (KeyError if unknown)."""
    return re.sub(r"\{(\w+)\}", lambda m: params[m.group(1)], template)


# -- the database ------------------------------------------------------------------------
def audit_rows(fb: Api, after_id: int = 0) -> list[AuditLogRow]:
    """The audit log's rows after ``after_id``, in order."""
    with fb.runtime.sessions() as session:
        return list(
            session.scalars(
                select(AuditLogRow).where(AuditLogRow.id > after_id).order_by(AuditLogRow.id)
            )
        )


def audit_count(fb: Api) -> int:
    with fb.runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(AuditLogRow)) or 0


# -- the world ---------------------------------------------------------------------------
@dataclass
class World:
    api: Api
    a: Merchant
    b: Merchant
    # A's objects, by path parameter name (as the routes spell them).
    params: dict[str, str]
    portal: dict[str, str]  # customer code -> a portal token
    plan: str = "a-monthly"
    product: str = "a-msg-1000"
    ids: dict[str, list[str]] = field(default_factory=dict)  # kind -> A's ids (a_cus_1's)

    def a_markers(self) -> set[str]:
        """Everything that names one of a_cus_1's objects: ids and codes."""
        return {v for values in self.ids.values() for v in values}


def build_world(fb: Api) -> World:
    a = fb.merchant("conek", "merchant A")
    b = fb.merchant("conek", "merchant B")
    fb.advance(SET_UP_AT)
    a.plan("a-monthly", "499.00")
    b.plan("b-monthly", "499.00")
    product = {
        "id": "a-msg-1000",
        "kind": "message_credits",
        "quantity": 1000,
        "credit_kind": "message",
        "price": "300.00",
    }
    a.ok(a.post("/v1/products", product), 201)
    a.ok(a.post("/v1/promotions", {"id": "a-promo", "percent_off": "10"}), 201)
    a.customer("a_cus_1", payment_methods=[{"id": "a_card_1", "token": GATEWAY_TOKEN}])
    a.customer("a_cus_2", payment_methods=[{"id": "card_1"}])
    b.customer("b_cus_1", payment_methods=[{"id": "card_1"}])
    sub = a.ok(
        a.post(
            "/v1/subscriptions",
            {"customer": "a_cus_1", "plan": "a-monthly", "payment_method": "a_card_1"},
        ),
        201,
    )["id"]
    a.subscribe("a_cus_2", "a-monthly")
    b.subscribe("b_cus_1", "b-monthly")
    fb.advance("2026-04-02T10:00:00+02:00")
    bought = a.ok(
        a.post(
            "/v1/customers/a_cus_1/purchases",
            {"product": "a-msg-1000", "payment_method": "a_card_1"},
        ),
        201,
    )
    [pack] = bought["credit_packs"]
    fb.advance("2026-04-13T01:00:00+02:00")
    outage = a.ok(a.post("/v1/outages", OUTAGE | {"customers": ["a_cus_1"]}, role="finance"), 201)
    [req] = outage["data"]
    fb.advance("2026-04-14T09:00:00+02:00")
    reviewed = a.ok(a.post(f"/v1/refund_requests/{req['id']}/review", {"decision": "accept"}))
    [refund] = reviewed["refunds"]
    invoices = [i["id"] for i in a.ok(a.get("/v1/invoices", customer="a_cus_1"))["data"]]
    payments = [p["id"] for p in a.ok(a.get("/v1/payments", customer="a_cus_1"))["data"]]
    assert len(invoices) == len(payments) == 2  # the subscription and the pack
    fb.advance("2026-04-15T09:00:00+02:00")
    disputed = {"payment": payments[0], "reason": "not me", "contacted_support_first": True}
    a.ok(a.post("/v1/disputes", disputed, role="finance"), 201)
    fb.advance(NOW)
    [operation, *_] = a.ok(a.get("/v1/gateway_operations", customer="a_cus_1"))["data"]
    portal = {code: m.portal_token(code) for m, code in ((a, "a_cus_1"), (a, "a_cus_2"))}
    portal["b_cus_1"] = b.portal_token("b_cus_1")
    world = World(
        api=fb,
        a=a,
        b=b,
        params={
            "customer_id": "a_cus_1",
            "sub_id": sub,
            "request_id": req["id"],
            "invoice_id": invoices[0],
            # The disputed payment: /v1/disputes/{payment_id}/close has an open dispute.
            "payment_id": payments[0],
            "operation_id": operation["id"],
            "merchant_id": str(a.id),
            # A's policy version (the one it was created with): shown, compared, published.
            "version_id": a.ok(a.get("/v1/policy_versions"))["current"],
            "other_id": a.ok(a.get("/v1/policy_versions"))["current"],
            "prefix": a.keys["readonly"].split(".")[0],
            # A spare portal token of a_cus_1's (revoked by A in the last round).
            "token_prefix": a.portal_token("a_cus_1").split(".")[0],
        },
        portal=portal,
    )
    world.ids = {
        "customer": ["a_cus_1"],
        "payment_method": ["a_card_1"],
        "subscription": [sub],
        "invoice": invoices,
        "payment": payments,
        "request": [req["id"]],
        "refund": [refund["id"]],
        "pack": [pack["id"]],
        "gateway_token": [GATEWAY_TOKEN],  # never shown to anyone
    }
    return world


@pytest.fixture
def world(api: Api) -> World:  # noqa: F811  (``api`` is the imported fixture)
    return build_world(api)
