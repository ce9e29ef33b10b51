"""Portal tokens can be revoked, and closing an account revokes its tokens: both kept
working before (read, refund request and export were all answered after the account
was closed). On SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
from sqlalchemy import select, update

from api.helpers import Api, Merchant
from fairbill.api.problems import PROBLEM_JSON
from fairbill.services.merchants import authenticate_portal
from fairbill.services.portal import token_alive
from fairbill.store.tables import PortalTokenRow


def unauthorized(response: httpx.Response) -> None:
    assert (response.status_code, response.headers["content-type"]) == (401, PROBLEM_JSON), (
        response.text
    )
    assert response.json()["code"] == "unauthorized"


def _as_portal(
    m: Merchant, token: str, payment: str = "pay_0000000000000"
) -> dict[str, httpx.Response]:
    """What a portal token does (read, ask for a refund, export), each answer."""
    asked = {"customer": "c_1", "kind": "money_back", "payment": payment}
    return {
        "read": m.get("/v1/customers/c_1", token=token),
        "refund": m.post("/v1/refund_requests", asked, token=token),
        "export": m.get("/v1/customers/c_1/export", token=token),
    }


def test_a_revoked_token_is_refused_at_once_and_everywhere(api: Api) -> None:
    m = api.merchant("conek")
    m.customer("c_1")
    m.customer("c_2")
    issued = m.ok(m.post("/v1/customers/c_1/portal_tokens"), 201)
    other = m.portal_token("c_1")
    assert m.get("/v1/customers/c_1", token=issued["token"]).status_code == 200

    revoke = f"/v1/customers/c_1/portal_tokens/{issued['prefix']}/revoke"
    revoked = m.ok(m.post(revoke))
    assert (revoked["prefix"], revoked["customer"]) == (issued["prefix"], "c_1")
    assert revoked["revoked_at"] == "2026-01-01T00:00:00+00:00"
    for response in _as_portal(m, issued["token"]).values():
        unauthorized(response)
    assert m.get("/v1/customers/c_1", token=other).status_code == 200  # only that one
    assert m.ok(m.post(revoke)) == revoked  # twice: the same answer
    # A prefix is found among the customer's own tokens only; a support key may not revoke.
    spare = other.split(".")[0]
    wrong = m.post(f"/v1/customers/c_2/portal_tokens/{spare}/revoke")
    assert (wrong.status_code, wrong.json()["code"]) == (404, "not_found")
    refused = m.post(f"/v1/customers/c_1/portal_tokens/{spare}/revoke", role="support")
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    # The web portal's sessions end with it (``services.portal.token_alive``).
    with api.runtime.reads() as session:
        now = api.runtime.clock.now()
        assert token_alive(session, issued["prefix"], now) is None
        assert token_alive(session, spare, now) is not None


def test_closing_the_account_revokes_its_tokens(api: Api) -> None:
    m = api.merchant("conek")
    m.plan("monthly", "499.00")
    m.customer("c_1")
    m.subscribe("c_1", "monthly")
    [payment] = m.ok(m.get("/v1/payments", customer="c_1"))["data"]
    tokens = [m.portal_token("c_1"), m.portal_token("c_1")]
    answers = _as_portal(m, tokens[0], payment["id"])
    assert [answers[k].status_code for k in ("read", "refund", "export")] == [200, 201, 200]

    m.ok(m.post("/v1/customers/c_1/close"))
    for token in tokens:
        for response in _as_portal(m, token, payment["id"]).values():
            unauthorized(response)
    with api.runtime.sessions() as session:
        rows = session.scalars(select(PortalTokenRow)).all()
        assert [r.revoked_at for r in rows] == [api.runtime.clock.now()] * 2
        # An account closed before tokens could be revoked: refused on its status alone.
        session.execute(update(PortalTokenRow).values(revoked_at=None))
        session.commit()
        assert authenticate_portal(session, tokens[0], api.runtime.clock.now()) is None
    unauthorized(m.get("/v1/customers/c_1", token=tokens[1]))
    # The merchant's own keys still read the closed account.
    assert m.ok(m.get("/v1/customers/c_1"))["status"] == "closed"
