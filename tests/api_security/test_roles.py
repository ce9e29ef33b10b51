"""Who may do what: every ``/v1`` operation against every credential.

``MATRIX`` is the specification, written out: for each operation, the credentials that
may call it (``A`` admin, ``F`` finance, ``S`` support, ``R`` readonly, ``P`` a portal
token on its own customer, ``O`` the platform operator's token). It is checked against
``deps.ROLE_PERMISSIONS``/``PORTAL`` (so a change there must be made here too), and then
run: each credential calls every operation, in ``ORDER``, on objects of its own (a
customer per credential, with a subscription, a payment and a refund request in review).
An allowed call answers the route's success status (200 or 201); a refused one answers
403 with code ``forbidden`` and changes nothing.

Authentication: a missing or malformed ``Authorization``, an unknown, revoked or
mistyped key, and an unknown or expired portal token are each a 401 ``unauthorized``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from api.helpers import ADMIN_TOKEN, Api
from fairbill.api.deps import PORTAL, ROLE_PERMISSIONS
from fairbill.api.problems import PROBLEM_JSON
from fairbill.policy.load import bundled_policy_text
from fairbill.store.tables import ApiKeyRow, PortalTokenRow

from .conftest import OUTAGE, audit_count, fill, operations

Op = tuple[str, str]
CREDENTIALS = {
    "A": "admin",
    "F": "finance",
    "S": "support",
    "R": "readonly",
    "P": "portal",
    "O": "operator",
}
EVERYONE = "AFSRP"  # every merchant credential; the operator has no merchant

# operation -> (the permission its route asks ``need`` for, the credentials allowed)
MATRIX: dict[Op, tuple[str, str]] = {
    ("POST", "/v1/merchants"): ("platform", "O"),
    ("POST", "/v1/test_clock/advance"): ("platform", "O"),
    ("POST", "/v1/merchants/{merchant_id}/api_keys"): ("platform", "O"),
    ("GET", "/v1/api_keys"): ("keys", "A"),
    ("POST", "/v1/api_keys"): ("keys", "A"),
    ("GET", "/v1/merchant"): ("read", EVERYONE),
    ("POST", "/v1/merchant"): ("keys", "A"),
    ("GET", "/v1/job_failures"): ("read:staff", "AFSR"),
    ("GET", "/v1/gateway_operations"): ("read", EVERYONE),
    ("GET", "/v1/gateway_operations/{operation_id}"): ("read", EVERYONE),
    ("GET", "/v1/plans"): ("read", EVERYONE),
    ("GET", "/v1/products"): ("read", EVERYONE),
    ("GET", "/v1/promotions"): ("read", EVERYONE),
    ("GET", "/v1/customers"): ("read", EVERYONE),
    ("GET", "/v1/customers/{customer_id}"): ("read", EVERYONE),
    ("GET", "/v1/subscriptions"): ("read", EVERYONE),
    ("GET", "/v1/subscriptions/{sub_id}"): ("read", EVERYONE),
    ("GET", "/v1/refund_requests"): ("read", EVERYONE),
    ("GET", "/v1/refund_requests/{request_id}"): ("read", EVERYONE),
    ("GET", "/v1/invoices"): ("read", EVERYONE),
    ("GET", "/v1/invoices/{invoice_id}"): ("read", EVERYONE),
    ("GET", "/v1/payments"): ("read", EVERYONE),
    ("GET", "/v1/payments/{payment_id}"): ("read", EVERYONE),
    ("GET", "/v1/refunds"): ("read", EVERYONE),
    ("GET", "/v1/credit_notes"): ("read", EVERYONE),
    ("GET", "/v1/customers/{customer_id}/wallet"): ("read", EVERYONE),
    ("GET", "/v1/customers/{customer_id}/credit_packs"): ("read", EVERYONE),
    ("POST", "/v1/plans"): ("catalog", "A"),
    ("POST", "/v1/products"): ("catalog", "A"),
    ("POST", "/v1/promotions"): ("catalog", "A"),
    ("POST", "/v1/customers"): ("customers", "A"),
    ("POST", "/v1/customers/{customer_id}/payment_methods"): ("customers", "A"),
    ("POST", "/v1/customers/{customer_id}/portal_tokens"): ("customers", "A"),
    ("POST", "/v1/subscriptions"): ("subscribe", "A"),
    ("POST", "/v1/subscriptions/{sub_id}/preview"): ("preview", "AFSP"),
    ("POST", "/v1/subscriptions/{sub_id}/usage"): ("usage", "A"),
    ("POST", "/v1/subscriptions/{sub_id}/change_plan"): ("change_plan", "A"),
    ("POST", "/v1/refund_requests"): ("request_refund", "AFSP"),
    ("POST", "/v1/refund_requests/{request_id}/review"): ("review", "AF"),
    ("POST", "/v1/refund_requests/{request_id}/appeal"): ("request_refund", "AFSP"),
    ("POST", "/v1/customers/{customer_id}/purchases"): ("purchase", "A"),
    ("POST", "/v1/customers/{customer_id}/credits/consume"): ("usage", "A"),
    ("POST", "/v1/customers/{customer_id}/pay_outstanding"): ("purchase", "A"),
    ("POST", "/v1/customers/{customer_id}/activity"): ("usage", "A"),
    ("POST", "/v1/disputes"): ("dispute", "AF"),
    ("POST", "/v1/disputes/{payment_id}/close"): ("dispute", "AF"),
    ("POST", "/v1/outages"): ("outage", "AF"),
    ("POST", "/v1/terms_changes"): ("terms", "A"),
    ("POST", "/v1/subscriptions/{sub_id}/cancel"): ("cancel", "ASP"),
    ("POST", "/v1/customers/{customer_id}/decline_terms"): ("cancel", "ASP"),
    ("GET", "/v1/customers/{customer_id}/export"): ("export", "AFSP"),
    ("GET", "/v1/policy_versions"): ("read_policy", "AFSR"),
    ("GET", "/v1/policy_versions/{version_id}"): ("read_policy", "AFSR"),
    ("GET", "/v1/policy_versions/{version_id}/diff/{other_id}"): ("read_policy", "AFSR"),
    ("POST", "/v1/policy_versions"): ("policy", "A"),
    ("POST", "/v1/policy_versions/{version_id}/publish"): ("policy", "A"),
    ("GET", "/v1/public/merchants/{merchant_id}/policy"): ("public", "AFSRPO"),
    ("POST", "/v1/customers/{customer_id}/portal_tokens/{token_prefix}/revoke"): ("customers", "A"),
    ("POST", "/v1/customers/{customer_id}/close"): ("close", "A"),
    ("POST", "/v1/api_keys/{prefix}/revoke"): ("keys", "A"),
}
# "public": no credential needed (a merchant's published policy is for anyone to read).
# "read:staff": the route asks ``need(who, "read")`` and a merchant key besides: what it
# shows (other customers' subscriptions) is not a portal customer's business.
ORDER = list(MATRIX)  # run in this order: creations before uses, closing last


def body(op: Op, code: str, ids: dict[str, str]) -> dict[str, Any]:
    """A valid request for ``op`` by the credential whose customer is ``code``."""
    bodies: dict[Op, dict[str, Any]] = {
        ("POST", "/v1/merchants"): {"json": {"name": f"new {code}", "policy": "conek"}},
        ("POST", "/v1/test_clock/advance"): {"params": {"to": "2026-04-20T12:00:00+02:00"}},
        ("POST", "/v1/merchants/{merchant_id}/api_keys"): {"json": {"role": "readonly"}},
        ("POST", "/v1/api_keys"): {"json": {"role": "readonly"}},
        ("POST", "/v1/merchant"): {"json": {"finance_email": f"{code}@example.org"}},
        ("POST", "/v1/plans"): {"json": {"id": f"plan-{code}", "price": "99.00"}},
        ("POST", "/v1/products"): {
            "json": {
                "id": f"msg-{code}",
                "kind": "message_credits",
                "quantity": 100,
                "credit_kind": "message",
                "price": "30.00",
            }
        },
        ("POST", "/v1/promotions"): {"json": {"id": f"promo-{code}", "amount_off": "5.00"}},
        ("POST", "/v1/customers"): {
            "json": {"id": f"new_{code}", "payment_methods": [{"id": "card_1"}]}
        },
        ("POST", "/v1/customers/{customer_id}/payment_methods"): {"json": {"id": "card_2"}},
        ("POST", "/v1/subscriptions"): {
            "json": {"customer": f"new_{code}", "plan": "monthly", "payment_method": "card_1"}
        },
        ("POST", "/v1/subscriptions/{sub_id}/preview"): {"json": {"action": "cancel"}},
        ("POST", "/v1/subscriptions/{sub_id}/usage"): {"json": {"metric": "seats", "value": 3}},
        ("POST", "/v1/subscriptions/{sub_id}/change_plan"): {"json": {"plan": "annual"}},
        ("POST", "/v1/refund_requests"): {
            "json": {"customer": code, "kind": "money_back", "payment": ids["payment_id"]}
        },
        ("POST", "/v1/refund_requests/{request_id}/review"): {"json": {"decision": "accept"}},
        ("POST", "/v1/refund_requests/{request_id}/appeal"): {"json": {"reason": "please"}},
        ("POST", "/v1/customers/{customer_id}/purchases"): {
            "json": {"product": "msg", "payment_method": "card_1"}
        },
        ("POST", "/v1/customers/{customer_id}/credits/consume"): {
            "json": {"kind": "message", "quantity": 10}
        },
        ("POST", "/v1/customers/{customer_id}/pay_outstanding"): {"json": {}},
        ("POST", "/v1/disputes"): {
            "json": {"payment": ids["payment_id"], "reason": "x", "contacted_support_first": True}
        },
        ("POST", "/v1/disputes/{payment_id}/close"): {"json": {"outcome": "won"}},
        ("POST", "/v1/outages"): {"json": OUTAGE | {"customers": [code]}},
        ("POST", "/v1/terms_changes"): {"json": {"material": True}},
        ("POST", "/v1/subscriptions/{sub_id}/cancel"): {"json": {"channel": "written"}},
        ("POST", "/v1/policy_versions"): {"content": _policy_text(f"v3-{code}")},
    }
    return bodies.get(op, {})


def _policy_text(label: str) -> str:
    """Conek's bundled policy under another version label: a new version's YAML."""
    return bundled_policy_text("conek").replace('version: "', f'version: "{label}-', 1)


def test_the_matrix_is_the_one_deps_grants() -> None:
    for op, (asked, allowed) in MATRIX.items():
        permission, _, staff_only = asked.partition(":")
        for letter, role in CREDENTIALS.items():
            if permission == "public":
                grants = True
            elif permission == "platform":
                grants = letter == "O"
            elif letter == "O":
                grants = False  # the operator passes ``need`` but has no merchant
            elif letter == "P":
                grants = permission in PORTAL and not staff_only
            else:
                grants = permission in ROLE_PERMISSIONS[role]
            assert (letter in allowed) == grants, (op, role)
    # The readings the roles are named for.
    assert "S" not in MATRIX["POST", "/v1/refund_requests/{request_id}/review"][1]
    assert "R" not in MATRIX["POST", "/v1/subscriptions/{sub_id}/cancel"][1]
    assert "F" not in MATRIX["POST", "/v1/plans"][1]
    assert "F" in MATRIX["POST", "/v1/outages"][1]


def setup(fb: Api) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """A Conek merchant with one customer per credential (``c_A`` ... ``c_P``), each
    subscribed since 2026-04-01 and with a service-disruption request in review; the
    clock at 2026-04-20. Returns each credential's customer's ids, and the tokens."""
    m = fb.merchant("conek")
    fb.advance("2026-04-01T10:00:00+02:00")
    m.plan("monthly", "499.00")
    m.plan("annual", "4990.00", 12)
    product = {"id": "msg", "kind": "message_credits", "quantity": 1000}
    m.ok(m.post("/v1/products", product | {"credit_kind": "message", "price": "300.00"}), 201)
    ids: dict[str, dict[str, str]] = {}
    for letter in CREDENTIALS:
        code = f"c_{letter}"
        m.customer(code)
        ids[letter] = {"customer_id": code, "sub_id": m.subscribe(code, "monthly")}
    fb.advance("2026-04-13T01:00:00+02:00")
    outage = m.ok(m.post("/v1/outages", OUTAGE | {"customers": list(ids_codes(ids))}), 201)
    fb.advance("2026-04-20T12:00:00+02:00")
    for letter, request in zip(ids, outage["data"], strict=True):
        assert request["status"] == "in_review"
        [payment] = m.ok(m.get("/v1/payments", customer=f"c_{letter}"))["data"]
        [charge] = m.ok(m.get("/v1/gateway_operations", customer=f"c_{letter}"))["data"]
        ids[letter] |= {
            "request_id": request["id"],
            "payment_id": payment["id"],
            "invoice_id": payment["invoice_id"],
            "operation_id": charge["id"],
        }
    spare = m.ok(m.post("/v1/api_keys", {"role": "readonly"}), 201)["prefix"]  # to revoke
    current = m.ok(m.get("/v1/policy_versions"))["current"]
    draft = m.client.post(
        "/v1/policy_versions", content=_policy_text("v2"), headers=m.headers("admin")
    ).json()["id"]  # admin publishes it in its turn
    for own in ids.values():
        own |= {"merchant_id": str(m.id), "prefix": spare}
        # A spare portal token of the credential's own customer, to revoke.
        own |= {"token_prefix": m.portal_token(own["customer_id"]).split(".")[0]}
        own |= {"version_id": draft, "other_id": current}
    tokens = {letter: m.keys[role] for letter, role in CREDENTIALS.items() if letter in "AFSR"}
    tokens["P"] = m.portal_token("c_P")
    tokens["O"] = ADMIN_TOKEN
    return ids, tokens


def ids_codes(ids: dict[str, dict[str, str]]) -> list[str]:
    return [i["customer_id"] for i in ids.values()]


def test_every_credential_against_every_operation(api: Api) -> None:
    ids, tokens = setup(api)
    routes = {(meth, path): route for meth, path, route in operations(api.client.app)}  # type: ignore[arg-type]
    assert set(ORDER) == set(routes), sorted(set(ORDER) ^ set(routes))
    for letter, token in tokens.items():
        own = ids[letter]
        for op in ORDER:
            allowed = letter in MATRIX[op][1]
            request = body(op, own["customer_id"], own)
            before = audit_count(api)
            response = api.client.request(
                op[0],
                fill(op[1], own),
                headers={"Authorization": f"Bearer {token}"},
                **request,
            )
            where = f"{CREDENTIALS[letter]} {op[0]} {op[1]}"
            if allowed:
                expected = routes[op].status_code or 200
                assert response.status_code == expected, (where, response.text)
            else:
                assert response.status_code == 403, (where, response.text)
                assert response.json()["code"] == "forbidden", where
                assert response.headers["content-type"] == PROBLEM_JSON
                assert audit_count(api) == before, f"{where}: a refusal was audited"

    # A portal token may do what it may only for its own customer: another customer's
    # subscription, request, payment or data is a 404.
    other = ids["A"]
    portal = {"Authorization": f"Bearer {tokens['P']}"}
    for op in (
        ("POST", "/v1/subscriptions/{sub_id}/cancel"),
        ("POST", "/v1/subscriptions/{sub_id}/preview"),
        ("POST", "/v1/refund_requests/{request_id}/appeal"),
        ("POST", "/v1/refund_requests"),
        ("GET", "/v1/customers/{customer_id}/export"),
        ("GET", "/v1/payments/{payment_id}"),
        ("GET", "/v1/invoices/{invoice_id}"),
        ("GET", "/v1/gateway_operations/{operation_id}"),
    ):
        response = api.client.request(
            op[0], fill(op[1], other), headers=portal, **body(op, "c_A", other)
        )
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), op


def unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert (problem["code"], problem["status"], problem["title"]) == (
        "unauthorized",
        401,
        "Unauthorized",
    )


def test_missing_malformed_unknown_revoked_and_expired_credentials_are_401(api: Api) -> None:
    m = api.merchant("conek")
    m.customer("c_1")
    key = m.keys["support"]
    portal = m.portal_token("c_1")

    def get(authorization: str | None, path: str = "/v1/customers/c_1") -> httpx.Response:
        headers = {} if authorization is None else {"Authorization": authorization}
        response: httpx.Response = api.client.get(path, headers=headers)
        return response

    # What works, for the refusals below to mean something.
    assert get(f"Bearer {key}").status_code == 200
    assert get(f"bearer {key}").status_code == 200  # the scheme is case-insensitive
    assert get(f"Bearer {portal}").status_code == 200
    prefix, secret = key.split(".", 1)
    mistyped = "y" if secret.endswith("x") else "x"  # never the secret's own last character
    for authorization in (
        None,
        "",
        "Bearer",
        "Bearer ",
        key,  # no scheme
        f"Basic {key}",
        f"Token {key}",
        f"Bearer {prefix}",  # the prefix alone
        f"Bearer {prefix}.{secret[:-1]}{mistyped}",  # a mistyped secret
        f"Bearer {prefix}x.{secret}",
        "Bearer fb_000000000000.unknown",
        "Bearer cpt_000000000000.unknown",
        f"Bearer {portal[:-2]}",
        f"Bearer {ADMIN_TOKEN}x",
        f"Bearer {ADMIN_TOKEN[:-1]}",
        "Bearer " + "x" * 4000,  # long
    ):
        unauthorized(get(authorization))
    # A POST is refused before its body is looked at (no 422 for the unauthenticated).
    unauthorized(api.client.post("/v1/plans", json={"id": 1}))
    unauthorized(api.client.post("/v1/plans", content=b"{not json"))

    # Revoked: the key that worked is refused from then on, for reads and writes.
    with api.runtime.sessions() as session:
        session.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.prefix == prefix)
            .values(revoked_at=api.runtime.clock.now())
        )
        session.commit()
    unauthorized(get(f"Bearer {key}"))
    unauthorized(
        api.client.post(
            "/v1/customers/c_1/activity", headers={"Authorization": f"Bearer {m.keys['admin']}x"}
        )
    )
    unauthorized(
        api.client.post(
            "/v1/subscriptions/sub_0000000000000/cancel",
            json={},
            headers={"Authorization": f"Bearer {key}"},
        )
    )
    assert get(f"Bearer {m.keys['readonly']}").status_code == 200  # the others still work

    # Expired: a portal token past its expiry is refused.
    with api.runtime.sessions() as session:
        session.execute(
            update(PortalTokenRow).values(expires_at=api.runtime.clock.now() + timedelta(seconds=1))
        )
        session.commit()
    assert get(f"Bearer {portal}").status_code == 200
    api.advance("2026-01-01T00:00:01+00:00")
    unauthorized(get(f"Bearer {portal}"))
