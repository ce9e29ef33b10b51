"""No key sees another merchant's data, and no portal token another customer's.

Every ``/v1`` operation of the app is enumerated (``conftest.operations``: a new route
cannot be forgotten: it fails ``test_every_operation_has_a_request`` until it is given a
request here). Each is called with merchant A's real ids and codes substituted for its
path parameters (and in its body), by merchant B's admin key, by B's customer's portal
token and by the portal token of A's *other* customer: every answer is a 403 or a 404,
never a success and never a 500, and names none of A's objects it was not asked about;
nothing of A's changes. A's own admin key (and a_cus_1's own portal token) then get
answers on the same paths, so the denials above are not vacuous. An `Idempotency-Key`
replays a stored response only to the customer (portal) or merchant (keys) that made it.
"""

from __future__ import annotations

import json
import re
from typing import Any, get_args

import httpx
from pydantic import BaseModel
from sqlalchemy import Table, select

from fairbill.api.app import create_app
from fairbill.api.settings import Runtime
from fairbill.policy.load import bundled_policy_text
from fairbill.store.db import make_engine
from fairbill.store.tables import Base, CustomerRow

from .conftest import ADMIN, GATEWAY_TOKEN, NOW, OUTAGE, World, fill, operations

Op = tuple[str, str]


def requests(
    params: dict[str, str], undisputed: str, plan: str = "a-monthly", product: str = "a-msg-1000"
) -> dict[Op, dict[str, Any]]:
    """For every operation: the body and query that name A's objects (``a_cus_1`` and its
    subscription, payment, refund request, ...) where the operation takes any, else
    ones that are valid for any merchant (fresh codes, so B's own objects)."""
    p = params
    return {
        ("POST", "/v1/merchants"): {"json": {"name": "intruder", "policy": "conek"}},
        ("GET", "/v1/merchant"): {},
        ("POST", "/v1/merchant"): {"json": {"finance_email": "finance@example.org"}},
        ("GET", "/v1/job_failures"): {},
        ("GET", "/v1/gateway_operations"): {},
        ("GET", "/v1/gateway_operations/{operation_id}"): {},
        ("POST", "/v1/plans"): {"json": {"id": "x-plan", "price": "1.00"}},
        ("GET", "/v1/plans"): {},
        ("POST", "/v1/products"): {"json": {"id": "x-prod", "kind": "add_on", "price": "1.00"}},
        ("GET", "/v1/products"): {},
        ("POST", "/v1/promotions"): {"json": {"id": "x-promo", "percent_off": "5"}},
        ("GET", "/v1/promotions"): {},
        ("POST", "/v1/test_clock/advance"): {"params": {"to": NOW}},
        ("POST", "/v1/customers"): {"json": {"id": "x_cus"}},
        ("GET", "/v1/customers"): {},
        ("GET", "/v1/customers/{customer_id}"): {},
        ("POST", "/v1/customers/{customer_id}/payment_methods"): {"json": {"id": "x_card"}},
        ("POST", "/v1/customers/{customer_id}/portal_tokens"): {"json": {}},
        ("POST", "/v1/customers/{customer_id}/portal_tokens/{token_prefix}/revoke"): {},
        ("POST", "/v1/subscriptions"): {
            "json": {"customer": "a_cus_1", "plan": plan, "payment_method": "a_card_1"}
        },
        ("GET", "/v1/subscriptions"): {"params": {"customer": "a_cus_1"}},
        ("GET", "/v1/subscriptions/{sub_id}"): {},
        ("POST", "/v1/subscriptions/{sub_id}/cancel"): {"json": {"immediately": True}},
        ("POST", "/v1/subscriptions/{sub_id}/change_plan"): {"json": {"plan": plan}},
        ("POST", "/v1/subscriptions/{sub_id}/usage"): {"json": {"metric": "m", "value": 1}},
        ("POST", "/v1/subscriptions/{sub_id}/preview"): {"json": {"action": "cancel"}},
        ("POST", "/v1/refund_requests"): {
            "json": {
                "customer": "a_cus_1",
                "kind": "money_back",
                "payment": p["payment_id"],
                "reason": "mine now",
            }
        },
        ("GET", "/v1/refund_requests"): {"params": {"customer": "a_cus_1"}},
        ("GET", "/v1/refund_requests/{request_id}"): {},
        ("POST", "/v1/refund_requests/{request_id}/review"): {"json": {"decision": "accept"}},
        ("POST", "/v1/refund_requests/{request_id}/appeal"): {"json": {"reason": "again"}},
        ("GET", "/v1/invoices"): {"params": {"customer": "a_cus_1"}},
        ("GET", "/v1/invoices/{invoice_id}"): {},
        ("GET", "/v1/payments"): {"params": {"customer": "a_cus_1"}},
        ("GET", "/v1/payments/{payment_id}"): {},
        ("GET", "/v1/refunds"): {"params": {"customer": "a_cus_1"}},
        ("GET", "/v1/credit_notes"): {"params": {"customer": "a_cus_1"}},
        ("GET", "/v1/customers/{customer_id}/wallet"): {},
        ("GET", "/v1/customers/{customer_id}/credit_packs"): {},
        ("POST", "/v1/customers/{customer_id}/purchases"): {
            "json": {"product": product, "payment_method": "a_card_1"}
        },
        ("POST", "/v1/customers/{customer_id}/credits/consume"): {
            "json": {"kind": "message", "quantity": 1}
        },
        ("POST", "/v1/customers/{customer_id}/pay_outstanding"): {"json": {}},
        ("POST", "/v1/customers/{customer_id}/activity"): {},
        ("POST", "/v1/disputes"): {
            "json": {"payment": undisputed, "reason": "x", "contacted_support_first": False}
        },
        ("POST", "/v1/disputes/{payment_id}/close"): {"json": {"outcome": "lost"}},
        ("POST", "/v1/outages"): {"json": OUTAGE | {"customers": ["a_cus_1"]}},
        ("POST", "/v1/terms_changes"): {"json": {"material": True}},
        ("POST", "/v1/customers/{customer_id}/decline_terms"): {},
        ("POST", "/v1/customers/{customer_id}/close"): {},
        ("GET", "/v1/customers/{customer_id}/export"): {},
        ("POST", "/v1/merchants/{merchant_id}/api_keys"): {"json": {"role": "readonly"}},
        ("GET", "/v1/api_keys"): {},
        ("POST", "/v1/api_keys"): {"json": {"role": "readonly"}},
        ("POST", "/v1/api_keys/{prefix}/revoke"): {},
        ("GET", "/v1/policy_versions"): {},
        ("GET", "/v1/policy_versions/{version_id}"): {},
        ("GET", "/v1/policy_versions/{version_id}/diff/{other_id}"): {},
        ("POST", "/v1/policy_versions"): {"content": POLICY_V2},  # a YAML body
        ("POST", "/v1/policy_versions/{version_id}/publish"): {},
        ("GET", "/v1/public/merchants/{merchant_id}/policy"): {},
    }


# A merchant's published refund policy is public by design: customers must read it.
PUBLIC = frozenset({("GET", "/v1/public/merchants/{merchant_id}/policy")})
POLICY_V2 = bundled_policy_text("conek").replace('version: "', 'version: "v2-', 1)


def call(w: World, op: Op, token: str, request: dict[str, Any]) -> httpx.Response:
    method, template = op
    response: httpx.Response = w.api.client.request(
        method,
        fill(template, w.params),
        headers={"Authorization": f"Bearer {token}"},
        **request,
    )
    return response


def names(text: str, markers: set[str]) -> set[str]:
    """The markers ``text`` contains as whole ids (``sub_1`` is not in ``sub_12``)."""
    return {m for m in markers if re.search(rf"(?<![\w-]){re.escape(m)}(?![\w-])", text)}


def a_rows(w: World) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of A's: rows carrying A's merchant id or one of A's customers' ids (the
    audit log and idempotency keys included), by table."""
    with w.api.runtime.sessions() as session:
        customers = list(
            session.scalars(select(CustomerRow.id).where(CustomerRow.merchant_id == w.a.id))
        )
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table in Base.metadata.sorted_tables:
            assert isinstance(table, Table)
            cols = table.c
            if "merchant_id" in cols:
                where = cols.merchant_id == w.a.id
            elif "customer_id" in cols:
                where = cols.customer_id.in_(customers)
            else:
                continue  # rows hanging off another table (invoice lines, ...)
            rows = session.execute(select(table).where(where).order_by(*table.primary_key))
            out[table.name] = [tuple(r) for r in rows]
    assert out["customers"] and out["subscriptions"] and out["payments"], "A has data"
    return out


def world_requests(w: World) -> dict[Op, dict[str, Any]]:
    return requests(w.params, undisputed=w.ids["payment"][1], plan=w.plan, product=w.product)


def test_every_operation_has_a_request_with_a_valid_body() -> None:
    """Each operation is in ``requests``, and its body is valid for the route's own body
    model (and its query has the required parameters): a denial below is the access
    check, never a 422 for a bad request."""

    def unknown(prefix: str) -> str:  # a well-formed public id, as the routes take
        return f"{prefix}_{'0' * 13}"

    params = {"customer_id": "c", "sub_id": unknown("sub"), "request_id": unknown("req")}
    params |= {"prefix": "fb_1", "operation_id": unknown("gop")}
    params |= {"invoice_id": unknown("inv"), "payment_id": unknown("pay")}
    table = requests(params, "pay_" + "1" * 13)
    ops = {(m, p): r for m, p, r in operations(create_app(Runtime(make_engine("sqlite://"))))}
    assert set(table) == set(ops), (
        f"operations without a request: {sorted(set(ops) - set(table))}; "
        f"stale entries: {sorted(set(table) - set(ops))}"
    )
    assert len(ops) == 60
    for op, route in ops.items():
        body = table[op].get("json")
        assert (route.body_field is not None) == (body is not None), op
        if route.body_field is not None:
            model = route.body_field.field_info.annotation
            if not isinstance(model, type):  # an optional body: ``Model | None``
                [model] = [a for a in get_args(model) if a is not type(None)]
            assert isinstance(model, type) and issubclass(model, BaseModel), op
            model.model_validate(body)
        query = {p.alias for p in route.dependant.query_params if p.field_info.is_required()}
        assert query <= set(table[op].get("params", {})), op


def _is_targeted(op: Op, request: dict[str, Any], markers: set[str]) -> bool:
    """Whether the call acts on one of A's objects (named in its path or body); a list
    filtered by A's customer code (a query) is answered, and must be empty."""
    return "{" in op[1] or bool(names(json.dumps(request.get("json")), markers))


def intrusions(w: World, ops: list[Op], table: dict[Op, dict[str, Any]]) -> list[str]:
    """Every operation by each intruder; what went wrong, as readable lines."""
    catalog = {w.plan, w.product, "a-promo", "merchant A"}
    a_ids = w.a_markers()
    intruders = {
        "B admin key": (w.b.keys["admin"], a_ids | catalog),
        "B's customer portal": (w.portal["b_cus_1"], a_ids | catalog),
        # The other customer of A may see A's catalog, not a_cus_1's objects.
        "a_cus_2 portal": (w.portal["a_cus_2"], a_ids),
    }
    failures: list[str] = []
    targeted = 0
    for who, (token, markers) in intruders.items():
        for op in [op for op in ops if op not in PUBLIC]:
            request = table[op]
            response = call(w, op, token, request)
            # Naming back what was asked (``no subscription 'sub_…'``) leaks nothing.
            asked = names(fill(op[1], w.params) + json.dumps(request), markers)
            leaked = names(response.text, markers) - asked
            where = f"{who}: {op[0]} {fill(op[1], w.params)} -> {response.status_code}"
            if leaked:
                failures.append(f"{where} names {sorted(leaked)}")
            if response.status_code >= 500:
                failures.append(f"{where} (a server error)")
            if _is_targeted(op, request, markers):
                targeted += 1
                if response.status_code not in (403, 404):
                    failures.append(f"{where}: {response.text[:200]}")
                elif response.json()["code"] not in ("forbidden", "not_found"):
                    failures.append(f"{where} code {response.json()['code']}")
            elif (
                op[0] == "GET"
                and "customer" in request.get("params", {})
                and (response.status_code != 200 or response.json()["data"] != [])
            ):
                # A list filtered by A's customer code is answered, and empty.
                failures.append(f"{where}: {response.text[:200]}")
    # 30 operations on a path naming an object of A's, 4 naming one in the body.
    assert targeted == 3 * 34
    return failures


def replays_only_to_its_caller(world: World) -> None:
    """A stored response is replayed only to the one who made it: another customer's
    portal token (or another merchant's key) sending the same key and request gets its
    own answer (here a 404), not the first caller's data."""
    w = world
    path = "/v1/customers/a_cus_1/export"

    def get(token: str, key: str = "export-1") -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
        response: httpx.Response = w.api.client.get(path, headers=headers)
        return response

    first = get(w.portal["a_cus_1"])
    assert first.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    again = get(w.portal["a_cus_1"])
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (200, "true")
    assert again.json() == first.json()
    for token in (w.portal["a_cus_2"], w.b.keys["admin"], w.portal["b_cus_1"]):
        other = get(token)
        assert other.status_code == 404, other.text
        assert "Idempotent-Replayed" not in other.headers
        assert not names(other.text, w.a_markers() - {"a_cus_1"})
    # A's staff share the merchant's keys, not the portal's: A's admin gets its own run.
    staff = get(w.a.keys["admin"])
    assert staff.status_code == 200
    assert "Idempotent-Replayed" not in staff.headers
    # The platform operator has no merchant (403), and its keys are its own too.
    operator = w.api.client.get(path, headers=ADMIN | {"Idempotency-Key": "export-1"})
    assert operator.status_code == 403


def test_no_key_sees_another_merchants_data(world: World) -> None:
    w = world
    table = world_requests(w)
    ops = [(m, p) for m, p, _ in operations(w.api.client.app)]  # type: ignore[arg-type]
    before = a_rows(w)
    assert intrusions(w, ops, table) == []
    assert a_rows(w) == before, "a refused call changed A's data"

    # Not vacuous: A's own admin key reads every path above and sees a_cus_1's objects,
    # and a_cus_1's own portal token reads each of its customer's paths.
    policy = [
        op
        for op in ops
        if op[0] == "GET" and op[1].startswith(("/v1/policy_versions/", "/v1/public/"))
    ]
    for op in policy:  # the merchant's policy, not a customer's: A's key reads it
        assert call(w, op, w.a.keys["admin"], table[op]).status_code == 200, op
    reads = [op for op in ops if op[0] == "GET" and "{" in op[1] and op not in policy]
    assert len(reads) == 9
    for op in reads:
        mine = call(w, op, w.a.keys["admin"], table[op])
        assert mine.status_code == 200, (op, mine.text)
        assert names(mine.text, w.a_markers())
        assert GATEWAY_TOKEN not in mine.text
        assert call(w, op, w.portal["a_cus_1"], table[op]).status_code == 200, op
    listed = call(w, ("GET", "/v1/invoices"), w.a.keys["admin"], table["GET", "/v1/invoices"])
    assert [i["id"] for i in listed.json()["data"]] == w.ids["invoice"]

    replays_only_to_its_caller(w)

    # ... and every state change refused above is found by A's own admin key (no 404)
    # and none is a 500. Platform routes are the operator's alone.
    closing = ("POST", "/v1/customers/{customer_id}/close")  # last: a closed account buys nothing
    posts = [op for op in ops if op[0] == "POST" and op != closing] + [closing]
    statuses = {op: call(w, op, w.a.keys["admin"], table[op]).status_code for op in posts}
    assert {op: s for op, s in statuses.items() if s not in (200, 201)} == {
        ("POST", "/v1/merchants"): 403,
        ("POST", "/v1/test_clock/advance"): 403,
        ("POST", "/v1/merchants/{merchant_id}/api_keys"): 403,
        # No terms change was published (terms_changes sorts after it).
        ("POST", "/v1/customers/{customer_id}/decline_terms"): 409,
        # A's version named in the path is its current one: published already.
        ("POST", "/v1/policy_versions/{version_id}/publish"): 409,
    }
