"""Failing scheduled work over HTTP: ``GET /v1/job_failures``, the merchant's finance
address (``finance_email``) and a closed account's plan changes."""

from __future__ import annotations

from sqlalchemy import select

from fairbill.store.tables import CustomerRow, NotificationRow, SubscriptionRow

from .helpers import ADMIN_TOKEN, Api


def test_a_failing_renewal_is_listed_until_it_runs(api: Api) -> None:
    m = api.merchant("kalenner")
    api.advance("2026-03-01T10:00:00+01:00")
    m.plan("solo", "29.00")
    public: dict[str, str] = {}  # customer code -> its subscription's public id
    for code in ("c_ok", "c_broken"):
        m.customer(code)
        public[code] = m.subscribe(code, "solo")
    # The closure bug's leftover, as rows written before the fix are: a closed account
    # whose downgrade still resubscribes it at the period end (a Conflict there).
    with api.runtime.sessions() as session:
        customer = session.scalars(select(CustomerRow).where(CustomerRow.code == "c_broken")).one()
        sub = session.scalars(
            select(SubscriptionRow).where(SubscriptionRow.customer_id == customer.id)
        ).one()
        customer.status = "closed"
        sub.successor_plan, sub.cancel_at = "solo", sub.current_period_end
        session.commit()
        broken = sub.id
    assert m.ok(m.get("/v1/job_failures")) == {"data": [], "has_more": False, "next_cursor": None}

    api.advance("2026-04-01T12:00:00+02:00")  # past the period end, retried meanwhile
    [failure] = m.ok(m.get("/v1/job_failures", role="readonly"))["data"]
    assert failure["job"] == "subscription_boundary"
    assert failure["target"] == f"subscription:{public['c_broken']}"  # no row id shown
    assert failure["status"] == "open"
    assert failure["error"].startswith("Conflict: customer c_broken is closed")
    assert failure["attempts"] >= 2  # retried with backoff while the clock moved
    assert failure["first_failed_at"] == "2026-04-01T10:00:00+02:00"
    assert failure["next_attempt_at"] > "2026-04-01T12:00:00+02:00"
    assert failure["resolved_at"] is None
    # The other customer renewed regardless.
    [ok] = [s for s in m.ok(m.get("/v1/subscriptions", customer="c_ok"))["data"]]
    assert ok["current_period_end"] == "2026-05-01T10:00:00+02:00"
    # The merchant's finance address was alerted once (none on file: it waits, parked).
    with api.runtime.sessions() as session:
        alerts = session.scalars(
            select(NotificationRow).where(NotificationRow.merchant_id == m.id)
        ).all()
        assert [(a.template, a.customer_id) for a in alerts] == [("job_failed", None)]

    # Repaired, it runs at its next attempt: gone from the list, kept with ?all=true.
    with api.runtime.sessions() as session:
        session.get_one(SubscriptionRow, broken).successor_plan = None
        session.commit()
    api.advance("2026-04-02T12:00:00+02:00")
    assert m.ok(m.get("/v1/job_failures"))["data"] == []
    [resolved] = m.ok(m.get("/v1/job_failures", all="true", role="finance"))["data"]
    assert resolved["id"] == failure["id"]
    assert (resolved["status"], resolved["next_attempt_at"]) == ("resolved", None)
    assert resolved["resolved_at"] is not None

    # A portal token is the customer's, not the merchant's staff.
    token = m.portal_token("c_ok")
    refused = m.get("/v1/job_failures", token=token)
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")


def test_finance_email_is_set_at_creation_and_updated(api: Api) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    created = api.client.post(
        "/v1/merchants",
        json={"name": "Q", "policy": "qomon", "finance_email": "compta@qomon.example.org"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    assert created.json()["finance_email"] == "compta@qomon.example.org"
    bad = api.client.post(
        "/v1/merchants",
        json={"name": "Q2", "policy": "qomon", "finance_email": "not an address"},
        headers=admin,
    )
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["finance_email"]

    m = api.merchant("conek")
    finance = "finance@conek.example.org"
    assert m.ok(m.get("/v1/merchant"))["finance_email"] is None
    updated = m.ok(m.post("/v1/merchant", {"finance_email": finance}))
    assert updated["finance_email"] == finance
    assert m.ok(m.get("/v1/merchant", role="readonly"))["finance_email"] == finance
    assert m.ok(m.post("/v1/merchant", {}))["finance_email"] == finance  # kept
    for body in ({"finance_email": "finance@"}, {"finance_email": 5}, {"other": "x"}):
        refused = m.post("/v1/merchant", body)
        assert refused.status_code == 422, body
    by_finance = m.post("/v1/merchant", {"finance_email": "x@y.example.org"}, role="finance")
    assert by_finance.status_code == 403
    assert m.ok(m.post("/v1/merchant", {"finance_email": None}))["finance_email"] is None

    # A customer's portal sees the merchant, not its staff's address.
    m.ok(m.post("/v1/merchant", {"finance_email": finance}))
    m.customer("c_1")
    seen = m.ok(m.get("/v1/merchant", token=m.portal_token("c_1")))
    assert "finance_email" not in seen and seen["id"] == m.id


def test_a_closed_account_changes_no_plan(api: Api) -> None:
    m = api.merchant("conek")
    api.advance("2026-04-01T00:00:00+02:00")
    m.plan("business-monthly", "499.00")
    m.plan("business-annual", "4990.00", 12)
    m.customer("c_1")
    sub = m.subscribe("c_1", "business-monthly")
    m.ok(m.post("/v1/customers/c_1/close"))
    refused = m.post(f"/v1/subscriptions/{sub}/change_plan", {"plan": "business-annual"})
    assert (refused.status_code, refused.json()["code"]) == (409, "conflict")
    assert "c_1 is closed" in refused.json()["detail"]
