"""API keys and portal tokens: issued, listed, revoked, expiring, and shown only once.

A secret is in the response that issues it and nowhere in the database: not as a key
(only its hash), not in the stored response an ``Idempotency-Key`` replays (there it is
cut back to its prefix), and not in the audit log.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from fairbill.store.tables import AuditLogRow, IdempotencyKeyRow

from .helpers import ADMIN_TOKEN, Api, Merchant

OPERATOR = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def stored_text(api: Api) -> str:
    """Everything the database keeps beside responses: stored replays and audit rows."""
    with api.runtime.sessions() as session:
        results = [r.result for r in session.scalars(select(IdempotencyKeyRow))]
        details = [(r.target, r.details) for r in session.scalars(select(AuditLogRow))]
    return json.dumps([results, details])


def answers(m: Merchant, token: str) -> int:
    return m.get("/v1/merchant", token=token).status_code


def test_an_admin_issues_lists_and_revokes_keys(api: Api) -> None:
    m = api.merchant("kalenner")
    issued = m.ok(m.post("/v1/api_keys", {"role": "support"}), 201)
    assert issued["role"] == "support" and issued["revoked_at"] is None
    assert issued["key"].startswith(issued["prefix"] + ".")
    assert answers(m, issued["key"]) == 200
    # Support may cancel but not issue keys: the new key has its role, not the issuer's.
    refused = m.post("/v1/api_keys", {"role": "admin"}, token=issued["key"])
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")

    listed = m.ok(m.get("/v1/api_keys"))["data"]
    assert [(k["role"], k["revoked_at"]) for k in listed] == [
        ("admin", None),
        ("finance", None),
        ("support", None),
        ("readonly", None),
        ("support", None),
    ]
    assert all("key" not in k for k in listed)
    assert issued["key"] not in json.dumps(listed)

    revoked = m.ok(m.post(f"/v1/api_keys/{issued['prefix']}/revoke"))
    assert revoked["revoked_at"] is not None
    assert answers(m, issued["key"]) == 401
    again = m.ok(m.post(f"/v1/api_keys/{issued['prefix']}/revoke"))
    assert again["revoked_at"] == revoked["revoked_at"]  # revoking twice changes nothing
    assert answers(m, m.keys["support"]) == 200  # the other support key still works


def test_the_last_admin_key_cannot_be_revoked(api: Api) -> None:
    m = api.merchant("conek")
    first = m.keys["admin"].split(".")[0]
    refused = m.post(f"/v1/api_keys/{first}/revoke")
    assert (refused.status_code, refused.json()["code"]) == (409, "conflict")
    assert answers(m, m.keys["admin"]) == 200
    # Rotation: issue a new admin key, then revoke the old one with it.
    new = m.ok(m.post("/v1/api_keys", {"role": "admin"}), 201)
    m.ok(m.post(f"/v1/api_keys/{first}/revoke", token=new["key"]))
    assert answers(m, m.keys["admin"]) == 401
    assert answers(m, new["key"]) == 200
    unknown = m.post("/v1/api_keys/fb_000000000000/revoke", token=new["key"])
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")


def test_the_operator_recovers_a_merchant_that_lost_its_keys(api: Api) -> None:
    m = api.merchant("voip")
    response = api.client.post(
        f"/v1/merchants/{m.id}/api_keys", json={"role": "admin"}, headers=OPERATOR
    )
    assert response.status_code == 201, response.text
    assert answers(m, response.json()["key"]) == 200
    missing = api.client.post(
        "/v1/merchants/99999/api_keys", json={"role": "admin"}, headers=OPERATOR
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    # A merchant's own admin is not the operator.
    by_merchant = m.post(f"/v1/merchants/{m.id}/api_keys", {"role": "admin"})
    assert (by_merchant.status_code, by_merchant.json()["code"]) == (403, "forbidden")


def replay(api: Api, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[Any, Any]:
    """The first answer and its replay under one ``Idempotency-Key``."""
    headers = headers | {"Idempotency-Key": f"once-{path}"}
    first = api.client.post(path, json=body, headers=headers)
    second = api.client.post(path, json=body, headers=headers)
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert second.headers["Idempotent-Replayed"] == "true"
    return first.json(), second.json()


def test_secrets_are_shown_once_and_stored_nowhere(api: Api) -> None:
    first, again = replay(api, "/v1/merchants", {"name": "n", "policy": "qomon"}, OPERATOR)
    m = Merchant(api.client, first["id"], first["api_keys"])
    m.customer("c_1")
    token, token_again = replay(api, "/v1/customers/c_1/portal_tokens", {}, m.headers())
    key, key_again = replay(api, "/v1/api_keys", {"role": "finance"}, m.headers())

    # The replay is the same answer with each secret cut back to its prefix ...
    for role, secret in first["api_keys"].items():
        assert again["api_keys"][role] == secret.split(".")[0] + ".redacted"
    assert token_again == token | {"token": token["prefix"] + ".redacted"}
    assert key_again == key | {"key": key["prefix"] + ".redacted"}
    # ... which authenticates nothing, while the secret shown once works.
    assert answers(m, again["api_keys"]["admin"]) == 401
    assert answers(m, first["api_keys"]["admin"]) == 200
    assert m.get("/v1/customers/c_1", token=token["token"]).status_code == 200

    secrets = [*first["api_keys"].values(), token["token"], key["key"]]
    kept = stored_text(api)
    assert [s for s in secrets if s in kept] == []
    assert [s for s in secrets if s.split(".")[1] in kept] == []


def test_portal_tokens_expire(api: Api) -> None:
    m = api.merchant("kalenner")
    api.advance("2026-03-01T00:00:00+01:00")
    m.customer("c_1")
    short = m.ok(m.post("/v1/customers/c_1/portal_tokens", {"expires_in_days": 2}), 201)
    default = m.ok(m.post("/v1/customers/c_1/portal_tokens"), 201)
    assert short["expires_at"] == "2026-03-02T23:00:00+00:00"
    assert default["expires_at"] == "2026-03-30T23:00:00+00:00"  # 30 days unless told

    def reads(token: str) -> int:
        return m.get("/v1/customers/c_1", token=token).status_code

    assert (reads(short["token"]), reads(default["token"])) == (200, 200)
    api.advance("2026-03-03T00:00:00+01:00")  # one hour after the short one ended
    assert (reads(short["token"]), reads(default["token"])) == (401, 200)
    api.advance("2026-03-31T00:00:00+02:00")  # DST: 22:00 UTC, still before its end
    assert reads(default["token"]) == 200
    api.advance("2026-04-01T00:00:00+02:00")
    assert reads(default["token"]) == 401

    for days in (0, 366):
        bad = m.post("/v1/customers/c_1/portal_tokens", {"expires_in_days": days})
        assert (bad.status_code, bad.json()["errors"][0]["field"]) == (422, "expires_in_days")
