"""The audit log: one row per successful state change, none for anything else.

``test_every_state_change_writes_one_row`` builds a merchant from nothing through every
state-changing operation of the API (``STEPS`` must cover them all: a new one fails the
test until it is added) with each kind of credential: each successful call adds exactly
one ``AuditLogRow`` naming the actor (``admin`` for the platform operator,
``key:<prefix>``, ``portal:<prefix>``), the action, the target and the request id (the
``X-Request-Id`` sent, or else the one the response echoes), and every earlier row stays
as it was (append-only). Previews, the test clock and every read write nothing.
``test_refusals_and_replays_write_nothing``: 401/403/404/409/422 answers, a failure after
part of the work was done, and idempotent replays add no row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from api.helpers import ADMIN_TOKEN, Api, Merchant
from fairbill.ids import Ids, Prefix
from fairbill.policy.load import bundled_policy
from fairbill.store.tables import AuditLogRow, MerchantRow

from .conftest import audit_count, audit_rows, fill, operations

OUTAGE = {
    "start": "2026-01-05T00:00:00+02:00",
    "end": "2026-01-08T01:00:00+02:00",
    "cause": "internal",
    "reported_at": "2026-01-05T02:00:00+02:00",
}
CONEK_V2 = bundled_policy("conek").model_dump(mode="json") | {"version": "2"}
GENERATED_ID = re.compile(r"^req_[0-9a-f]{16}$")


@dataclass(frozen=True)
class Step:
    who: str  # "operator", a role, or "portal" (c_1's token)
    method: str
    path: str  # a template: {sub1} {sub2} {req1} {req2} {pay2} from earlier answers
    body: dict[str, Any] | None = None
    action: str | None = None  # None: the call writes no audit row
    target: str = ""  # a template, like ``path``
    status: int = 200
    params: dict[str, str] = field(default_factory=dict)


STEPS = [
    Step("operator", "POST", "/v1/merchants", {"name": "audited", "policy": "conek"},
         "merchant.create", "merchant:{merchant}", 201),
    Step("admin", "POST", "/v1/plans", {"id": "monthly", "price": "499.00"},
         "plan.create", "plan:monthly", 201),
    Step("admin", "POST", "/v1/plans", {"id": "annual", "price": "4990.00", "interval_months": 12},
         "plan.create", "plan:annual", 201),
    Step("admin", "POST", "/v1/products",
         {"id": "msg", "kind": "message_credits", "quantity": 100, "credit_kind": "message",
          "price": "30.00"},
         "product.create", "product:msg", 201),
    Step("admin", "POST", "/v1/promotions", {"id": "promo", "percent_off": "10"},
         "promotion.create", "promotion:promo", 201),
    Step("operator", "POST", "/v1/merchants/{merchant}/api_keys", {"role": "support"},
         "api_key.create", "api_key:{key1}", 201),
    Step("admin", "POST", "/v1/api_keys", {"role": "finance"},
         "api_key.create", "api_key:{key2}", 201),
    Step("admin", "POST", "/v1/api_keys/{key2}/revoke", {},
         "api_key.revoke", "api_key:{key2}"),
    Step("admin", "POST", "/v1/merchant", {"finance_email": "finance@audited.example.org"},
         "merchant.update", "merchant:{merchant}"),
    Step("admin", "POST", "/v1/customers", {"id": "c_1", "payment_methods": [{"id": "card_1"}]},
         "customer.create", "customer:c_1", 201),
    Step("admin", "POST", "/v1/customers", {"id": "c_2", "payment_methods": [{"id": "card_1"}]},
         "customer.create", "customer:c_2", 201),
    Step("admin", "POST", "/v1/customers/c_1/payment_methods", {"id": "card_2"},
         "payment_method.create", "payment_method:c_1/card_2", 201),
    Step("admin", "POST", "/v1/customers/c_1/portal_tokens", None,
         "portal_token.create", "portal_token:c_1", 201),
    Step("admin", "POST", "/v1/subscriptions",
         {"customer": "c_1", "plan": "monthly", "payment_method": "card_1"},
         "subscription.create", "subscription:{sub1}", 201),
    Step("admin", "POST", "/v1/subscriptions",
         {"customer": "c_2", "plan": "monthly", "payment_method": "card_1"},
         "subscription.create", "subscription:{sub2}", 201),
    Step("admin", "POST", "/v1/subscriptions/{sub1}/usage", {"metric": "seats", "value": 2},
         "subscription.usage", "subscription:{sub1}"),
    Step("portal", "POST", "/v1/subscriptions/{sub1}/preview", {"action": "cancel"}),
    Step("operator", "POST", "/v1/test_clock/advance", None,
         params={"to": "2026-01-10T00:00:00+02:00"}),
    Step("finance", "POST", "/v1/outages", OUTAGE | {"customers": ["c_1"]},
         "outage.report", "outage:2026-01-05T00:00:00+02:00/2026-01-08T01:00:00+02:00", 201),
    Step("finance", "POST", "/v1/refund_requests/{req1}/review", {"decision": "accept"},
         "refund_request.review", "refund_request:{req1}"),
    Step("support", "POST", "/v1/refund_requests",
         {"customer": "c_2", "kind": "money_back", "payment": "{pay2}"},
         "refund_request.create", "refund_request:{req2}", 201),
    Step("support", "POST", "/v1/refund_requests/{req2}/appeal", {"reason": "please"},
         "refund_request.appeal", "refund_request:{req2}"),
    Step("admin", "POST", "/v1/customers/c_1/purchases",
         {"product": "msg", "payment_method": "card_1"},
         "customer.purchase", "customer:c_1", 201),
    Step("admin", "POST", "/v1/customers/c_1/credits/consume", {"kind": "message", "quantity": 5},
         "customer.consume_credits", "customer:c_1"),
    Step("admin", "POST", "/v1/customers/c_1/pay_outstanding", {},
         "customer.pay_outstanding", "customer:c_1"),
    Step("admin", "POST", "/v1/customers/c_1/activity", None,
         "customer.activity", "customer:c_1"),
    Step("finance", "POST", "/v1/disputes",
         {"payment": "{pay2}", "reason": "unknown", "contacted_support_first": True},
         "dispute.open", "payment:{pay2}", 201),
    Step("finance", "POST", "/v1/disputes/{pay2}/close", {"outcome": "won"},
         "dispute.close", "payment:{pay2}"),
    Step("admin", "POST", "/v1/subscriptions/{sub2}/change_plan", {"plan": "annual"},
         "subscription.change_plan", "subscription:{sub2}"),
    Step("support", "POST", "/v1/subscriptions/{sub1}/cancel", {"channel": "written"},
         "subscription.cancel", "subscription:{sub1}"),
    Step("admin", "POST", "/v1/terms_changes", {"material": True},
         "terms.change", "terms", 201),
    Step("portal", "POST", "/v1/customers/c_1/decline_terms", None,
         "customer.decline_terms", "customer:c_1"),
    Step("portal", "GET", "/v1/customers/c_1/export", None,
         "customer.export", "customer:c_1"),
    Step("admin", "POST", "/v1/customers/c_2/close", None,
         "customer.close", "customer:c_2"),
    # A JSON body is YAML too: the conek policy with a new label (not a material change).
    Step("admin", "POST", "/v1/policy_versions", CONEK_V2,
         "policy_version.create", "policy_version:{pv2}", 201),
    Step("admin", "POST", "/v1/policy_versions/{pv2}/publish", None,
         "policy_version.publish", "policy_version:{pv2}"),
    Step("admin", "POST", "/v1/customers/c_1/portal_tokens/{ptok}/revoke", None,
         "portal_token.revoke", "portal_token:{ptok}"),
]  # fmt: skip


def expand(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with ``{name}`` replaced from ``ids`` in every string."""
    if isinstance(value, str):
        return fill(value, ids)
    if isinstance(value, dict):
        return {k: expand(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, ids) for v in value]
    return value


def within(given: Any, kept: Any) -> bool:
    """Whether everything ``given`` is in ``kept`` (which may hold more: defaults)."""
    if isinstance(given, dict):
        return isinstance(kept, dict) and all(
            k in kept and within(v, kept[k]) for k, v in given.items()
        )
    if isinstance(given, list):
        return (
            isinstance(kept, list)
            and len(given) == len(kept)
            and all(within(g, k) for g, k in zip(given, kept, strict=True))
        )
    return bool(given == kept)


def snapshot(fb: Api) -> list[tuple[Any, ...]]:
    return [
        (r.id, r.merchant_id, r.at, r.actor, r.action, r.target, r.request_id, r.details)
        for r in audit_rows(fb)
    ]


def test_every_state_change_writes_one_row(api: Api) -> None:
    app = api.client.app
    changing = {(m, p) for m, p, _ in operations(app) if m != "GET"}  # type: ignore[arg-type]
    changing.add(("GET", "/v1/customers/{customer_id}/export"))  # recorded, so audited
    stepped = {
        (s.method, re.sub(r"/(c_\d|\{\w+\})(?=/|$)", lambda m: "/{x}", s.path)) for s in STEPS
    }
    templates = {(m, re.sub(r"\{\w+\}", "{x}", p)) for m, p in changing}
    assert stepped == templates, sorted(stepped ^ templates)

    ids: dict[str, str] = {}
    merchant: Merchant | None = None
    portal = ""
    rows = snapshot(api)
    assert rows == []
    for number, step in enumerate(STEPS):
        if step.who == "operator":
            token = ADMIN_TOKEN
        elif step.who == "portal":
            token = portal
        else:
            assert merchant is not None
            token = merchant.keys[step.who]
        headers = {"Authorization": f"Bearer {token}"}
        sent = None
        if number % 3 == 0:
            sent = f"rid-{number}"
        elif number % 3 == 1:
            sent = "x" * 65  # too long for the log: replaced by a generated one
        if sent is not None:
            headers["X-Request-Id"] = sent
        body = expand(step.body, ids)
        response: httpx.Response = api.client.request(
            step.method,
            expand(step.path, ids),
            headers=headers,
            params=step.params,
            **({"json": body} if body is not None else {}),
        )
        assert response.status_code == step.status, (step, response.text)
        out = response.json()
        # What later steps name.
        if step.path == "/v1/merchants":
            merchant = Merchant(api.client, out["id"], out["api_keys"])
            ids["merchant"] = str(out["id"])
        elif step.path == "/v1/subscriptions":
            ids["sub1" if "sub1" not in ids else "sub2"] = out["id"]
        elif step.path.endswith("/api_keys"):
            ids["key1" if "key1" not in ids else "key2"] = out["prefix"]
        elif step.path.endswith("/portal_tokens"):
            portal, ids["ptok"] = out["token"], out["prefix"]
        elif step.path == "/v1/outages":
            ids["req1"] = out["data"][0]["id"]
            assert merchant is not None
            [pay] = merchant.ok(merchant.get("/v1/payments", customer="c_2"))["data"]
            ids["pay2"] = pay["id"]
        elif step.path == "/v1/refund_requests":
            ids["req2"] = out["id"]
        elif step.path == "/v1/policy_versions":
            ids["pv2"] = out["id"]

        echoed = response.headers["X-Request-Id"]
        if sent == f"rid-{number}":
            assert echoed == sent
        else:
            assert GENERATED_ID.match(echoed), echoed
        now = snapshot(api)
        assert now[: len(rows)] == rows, f"{step}: an earlier audit row changed"
        new = now[len(rows) :]
        if step.action is None:
            assert new == [], step
        else:
            [(_, merchant_id, at, actor, action, target, request_id, details)] = new
            assert merchant is not None
            if step.who == "operator":
                expected_actor = "admin"
            elif step.who == "portal":
                expected_actor = f"portal:{portal.split('.')[0]}"
            else:
                expected_actor = f"key:{merchant.keys[step.who].split('.')[0]}"
            assert (actor, action, target, request_id) == (
                expected_actor,
                step.action,
                expand(step.target, ids),
                echoed,
            ), step
            assert (merchant_id, at) == (merchant.id, api.runtime.clock.now())
            # The request as validated (defaults filled in) is kept with the row.
            given = body if body is not None else {"customer": step.path.split("/")[3]}
            if step.path == "/v1/policy_versions":  # a YAML body is kept as its text
                given = {"text": response.request.content.decode()}
            elif step.path.endswith("/publish"):
                given = {}
            assert within(given, details["payload"]), (given, details)
        rows = now
    assert len(rows) == sum(1 for s in STEPS if s.action) == 35

    # Reads write nothing, and nothing rewrites the log.
    assert merchant is not None
    params = {"customer_id": "c_1", "sub_id": ids["sub1"], "request_id": ids["req1"]}
    [invoice, *_] = merchant.ok(merchant.get("/v1/invoices"))["data"]
    params |= {"invoice_id": invoice["id"], "payment_id": ids["pay2"]}
    [operation, *_] = merchant.ok(merchant.get("/v1/gateway_operations"))["data"]
    params |= {"operation_id": operation["id"], "merchant_id": ids["merchant"]}
    params |= {"version_id": ids["pv2"], "other_id": ids["pv2"]}
    for method, path, _ in operations(app):  # type: ignore[arg-type]
        if method == "GET" and not path.endswith("/export"):
            role = "admin" if path == "/v1/api_keys" else "readonly"  # keys: admins only
            response = merchant.get(fill(path, params), role=role)
            assert response.status_code == 200, (path, response.text)
    assert snapshot(api) == rows


def test_refusals_and_replays_write_nothing(api: Api) -> None:
    m = api.merchant("conek")
    api.advance("2026-04-01T10:00:00+02:00")
    m.plan("monthly", "499.00")
    m.customer("c_1")
    m.customer("c_2")
    sub = m.subscribe("c_1", "monthly")
    api.advance("2026-04-13T01:00:00+02:00")
    before = snapshot(api)

    def refused(response: httpx.Response, status: int, code: str) -> None:
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
        assert snapshot(api) == before

    refused(m.post("/v1/plans", {"id": "p", "price": "1.00"}, token="fb_nobody.x"), 401,
            "unauthorized")  # fmt: skip
    refused(m.post(f"/v1/subscriptions/{sub}/cancel", {}, role="readonly"), 403, "forbidden")
    refused(m.post("/v1/plans", {"id": "p", "price": "1.00"}, role="finance"), 403, "forbidden")
    refused(m.post("/v1/customers/nobody/activity"), 404, "not_found")
    refused(m.post("/v1/subscriptions/sub_0000000000000/cancel", {}), 404, "not_found")
    refused(m.post("/v1/subscriptions/sub_999/cancel", {}), 404, "not_found")  # malformed
    refused(m.post("/v1/plans", {"id": "monthly", "price": "1.00"}), 409, "conflict")
    refused(m.post("/v1/plans", {"id": "p", "price": 1}), 422, "validation_error")
    refused(m.post("/v1/plans", {"id": "p"}), 422, "validation_error")  # no price, no tiers
    refused(m.post("/v1/customers/c_1/decline_terms"), 409, "no_terms_change")
    # The first customer's request was made before the unknown second one was found: the
    # whole call is undone, its audit row and its request.
    outage = {
        "start": "2026-04-10T00:00:00+02:00",
        "end": "2026-04-13T01:00:00+02:00",
        "cause": "internal",
    }
    refused(m.post("/v1/outages", outage | {"customers": ["c_1", "nobody"]}), 404, "not_found")
    assert m.ok(m.get("/v1/refund_requests"))["data"] == []

    # A replay answers the stored response and writes nothing; the same key with another
    # body is refused.
    key = {"Idempotency-Key": "outage-1"}
    first = m.post("/v1/outages", outage, headers=key)
    assert first.status_code == 201
    after_first = snapshot(api)
    assert len(after_first) == len(before) + 1
    assert after_first[-1][4:6] == (
        "outage.report",
        "outage:2026-04-10T00:00:00+02:00/2026-04-13T01:00:00+02:00",
    )
    again = m.post("/v1/outages", outage, headers=key)
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (201, "true")
    assert again.json() == first.json()
    other = m.post("/v1/outages", outage | {"cause": "third_party"}, headers=key)
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")
    assert snapshot(api) == after_first
    assert len(m.ok(m.get("/v1/refund_requests"))["data"]) == 1  # one outage, one request
    too_long = m.post("/v1/outages", outage, headers={"Idempotency-Key": "k" * 129})
    assert (too_long.status_code, too_long.json()["errors"][0]["field"]) == (
        422,
        "Idempotency-Key",
    )
    assert snapshot(api) == after_first
    assert audit_count(api) == len(after_first)


def test_audit_targets_name_objects_canonically(api: Api) -> None:
    m = api.merchant("conek")
    m.plan("monthly", "499.00")
    m.customer("c_1")
    sub = m.subscribe("c_1", "monthly")
    with api.runtime.sessions() as session:
        key = session.get_one(MerchantRow, m.id).id_key
    row_id = Ids(key).private(Prefix.SUBSCRIPTION, sub)
    assert row_id is not None
    usage = {"metric": "seats", "value": 1}
    # A public id has one spelling: padded, upper-cased or the row id's, it names nothing.
    before = audit_count(api)
    for other in (sub.replace("sub_", "sub_0"), sub.upper(), f"sub_{row_id}"):
        refused = m.post(f"/v1/subscriptions/{other}/usage", usage)
        assert (refused.status_code, refused.json()["code"]) == (404, "not_found"), other
    assert audit_count(api) == before
    # The target is the public id the API shows, never the row id.
    m.ok(m.post(f"/v1/subscriptions/{sub}/usage", usage))
    last: AuditLogRow = audit_rows(api)[-1]
    assert last.target == f"subscription:{sub}"
