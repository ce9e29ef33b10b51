"""Every way the gateway fails, on every money path, ends in a state the API shows.

The app's gateway is the database sandbox (``DatabaseSandbox``), told to fail through its
``sandbox_faults``: a decline, a timeout before the money is taken, a timeout after it is
taken (the answer lost), a connection error, a slow answer. Paths: the first charge, a
renewal, a retry, a refund paid after a review, a cancellation's refund. After each, the
sandbox's own books are counted against fairbill's rows: money is taken or given back
once, never twice, never lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fairbill.api.app import create_app
from fairbill.api.settings import Runtime
from fairbill.gateway.sandbox_db import DatabaseSandbox, Fault, FaultTarget
from fairbill.services.clock import TestClock
from fairbill.store.db import make_engine
from fairbill.store.migrate import upgrade
from fairbill.store.tables import NotificationRow, SandboxOperationRow

from .helpers import ADMIN_TOKEN, START, Api, Merchant

# Faults tried on SQLite: the API's code path does not depend on the database, and the
# durability tests run the same operations on PostgreSQL.
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

UNANSWERED = [Fault.TIMEOUT_BEFORE, Fault.TIMEOUT_AFTER, Fault.CONNECTION_ERROR]


def sandbox(api: Api) -> DatabaseSandbox:
    gateway = api.runtime.gateway
    assert isinstance(gateway, DatabaseSandbox)
    return gateway


def books(api: Api, kind: str) -> list[tuple[str, int]]:
    """What the sandbox itself did: (key, amount) of every operation that moved money."""
    with api.runtime.sessions() as session:
        rows = session.execute(
            select(SandboxOperationRow.key, SandboxOperationRow.amount_minor)
            .where(SandboxOperationRow.kind == kind, SandboxOperationRow.ok.is_(True))
            .order_by(SandboxOperationRow.id)
        ).all()
    return [(k, int(a)) for k, a in rows]


def kalenner(api: Api) -> Merchant:
    m = api.merchant("kalenner")
    api.advance("2026-01-10T09:00:00+01:00")
    m.plan("pro-monthly", "29.00")
    m.customer("cus_1")
    return m


def invoices(m: Merchant) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = m.ok(m.get("/v1/invoices", customer="cus_1"))["data"]
    return rows


def operations(m: Merchant, **params: Any) -> list[tuple[str, str]]:
    rows = m.ok(m.get("/v1/gateway_operations", customer="cus_1", **params))["data"]
    return [(o["kind"], o["status"]) for o in rows]


def subscription(m: Merchant) -> str:
    [sub] = m.ok(m.get("/v1/subscriptions", customer="cus_1"))["data"]
    status: str = sub["status"]
    return status


# -- charges -----------------------------------------------------------------------------------
@ON_SQLITE
@pytest.mark.parametrize("fault", UNANSWERED)
def test_a_first_charge_with_no_answer_is_unknown_then_settled_once(api: Api, fault: Fault) -> None:
    m = kalenner(api)
    sandbox(api).add_fault(fault, operation=FaultTarget.CHARGE)
    m.subscribe("cus_1", "pro-monthly")
    [inv] = invoices(m)
    assert (inv["status"], inv["amount_paid"]) == ("open", "0.00")
    assert inv["collection"]["status"] == "unknown"
    assert inv["collection"]["error"].startswith("Gateway")
    assert operations(m) == [("charge", "unknown")]
    assert m.ok(m.get("/v1/payments", customer="cus_1"))["data"] == []
    # The janitor asks again under the same key a minute later.
    api.advance("2026-01-10T09:05:00+01:00")
    [inv] = invoices(m)
    assert (inv["status"], inv["amount_paid"]) == ("paid", "29.00")
    assert inv["collection"]["status"] == "succeeded"
    assert operations(m) == [("charge", "succeeded")]
    [payment] = m.ok(m.get("/v1/payments", customer="cus_1"))["data"]
    assert payment["amount"] == "29.00"
    # Taken once at the gateway, whichever side of the money the answer was lost on.
    assert [amount for _, amount in books(api, "charge")] == [2900]
    assert subscription(m) == "active"


@ON_SQLITE
def test_a_declined_first_charge_makes_the_subscription_past_due(api: Api) -> None:
    m = kalenner(api)
    sandbox(api).add_fault(Fault.DECLINE, operation=FaultTarget.CHARGE)
    m.subscribe("cus_1", "pro-monthly")
    [inv] = invoices(m)
    assert (inv["status"], inv["collection"]["status"]) == ("open", "failed")
    assert inv["collection"]["error"] == "card_declined"
    assert subscription(m) == "past_due"
    assert books(api, "charge") == []
    # The dunning retry goes through.
    api.advance("2026-01-12T09:00:00+01:00")
    assert subscription(m) == "active"
    assert [i["status"] for i in invoices(m)] == ["paid"]
    assert [amount for _, amount in books(api, "charge")] == [2900]
    assert operations(m) == [("charge", "failed"), ("charge", "succeeded")]


@ON_SQLITE
def test_a_slow_gateway_is_waited_for(api: Api) -> None:
    m = kalenner(api)
    sandbox(api).add_fault(Fault.SLOW, delay_ms=50)
    m.subscribe("cus_1", "pro-monthly")
    assert [(i["status"], i["collection"]["status"]) for i in invoices(m)] == [
        ("paid", "succeeded")
    ]


@ON_SQLITE
@pytest.mark.parametrize("fault", UNANSWERED)
def test_a_renewal_with_no_answer_is_settled_by_the_janitor(api: Api, fault: Fault) -> None:
    m = kalenner(api)
    m.subscribe("cus_1", "pro-monthly")
    sandbox(api).add_fault(fault, operation=FaultTarget.CHARGE)
    api.advance("2026-02-10T09:00:00+01:00")
    renewal = invoices(m)[1]
    assert (renewal["status"], renewal["collection"]["status"]) == ("open", "unknown")
    assert subscription(m) == "active"  # no answer is not a decline: no dunning
    api.advance("2026-02-10T10:00:00+01:00")
    assert [(i["status"], i["amount_paid"]) for i in invoices(m)] == [
        ("paid", "29.00"),
        ("paid", "29.00"),
    ]
    assert [amount for _, amount in books(api, "charge")] == [2900, 2900]


@ON_SQLITE
def test_a_retry_whose_answer_is_lost_pays_once(api: Api) -> None:
    m = kalenner(api)
    m.customer("cus_2", payment_methods=[{"id": "card_1", "token": "tok_flaky"}])
    m.subscribe("cus_2", "pro-monthly")
    sandbox(api).add_fault(Fault.DECLINE, operation=FaultTarget.CHARGE, token="tok_flaky")
    api.advance("2026-02-10T09:00:00+01:00")  # the renewal is declined
    subs = m.ok(m.get("/v1/subscriptions", customer="cus_2"))["data"]
    assert [s["status"] for s in subs] == ["past_due"]
    sandbox(api).add_fault(Fault.TIMEOUT_AFTER, operation=FaultTarget.CHARGE, token="tok_flaky")
    api.advance("2026-02-20T09:00:00+01:00")  # the retry takes the money, its answer is lost
    subs = m.ok(m.get("/v1/subscriptions", customer="cus_2"))["data"]
    assert [s["status"] for s in subs] == ["active"]
    rows = m.ok(m.get("/v1/invoices", customer="cus_2"))["data"]
    assert [(i["status"], i["amount_paid"]) for i in rows] == [
        ("paid", "29.00"),
        ("paid", "29.00"),
    ]
    payments = m.ok(m.get("/v1/payments", customer="cus_2"))["data"]
    assert [p["amount"] for p in payments] == ["29.00", "29.00"]
    keys = [k for k, _ in books(api, "charge")]
    assert len(keys) == len(set(keys)) == 2


# -- refunds -------------------------------------------------------------------------------
@ON_SQLITE
@pytest.mark.parametrize("fault", UNANSWERED)
def test_a_cancellation_never_waits_on_its_refund(api: Api, fault: Fault) -> None:
    """Kalenner's 14-day guarantee: the cancellation commits by itself; its refund is an
    operation of its own, paid when the gateway answers."""
    m = kalenner(api)
    sub = m.subscribe("cus_1", "pro-monthly")
    sandbox(api).add_fault(fault, operation=FaultTarget.REFUND)
    api.advance("2026-01-15T09:00:00+01:00")
    cancelled = m.ok(m.post(f"/v1/subscriptions/{sub}/cancel", {"immediately": True}))
    assert cancelled["status"] == "canceled"
    [refund] = m.ok(m.get("/v1/refunds", customer="cus_1"))["data"]
    assert (refund["amount"], refund["status"]) == ("29.00", "pending")
    assert operations(m, kind="refund") == [("refund", "unknown")]
    api.advance("2026-01-15T10:00:00+01:00")
    [refund] = m.ok(m.get("/v1/refunds", customer="cus_1"))["data"]
    assert (refund["amount"], refund["status"]) == ("29.00", "succeeded")
    assert refund["gateway_reference"].startswith("re_")
    assert [amount for _, amount in books(api, "refund")] == [2900]
    [payment] = m.ok(m.get("/v1/payments", customer="cus_1"))["data"]
    assert payment["refunded"] == "29.00"


@ON_SQLITE
def test_a_refund_the_gateway_keeps_refusing_fails_visibly(api: Api) -> None:
    m = kalenner(api)
    sub = m.subscribe("cus_1", "pro-monthly")
    sandbox(api).add_fault(Fault.DECLINE, operation=FaultTarget.REFUND, times=None)
    api.advance("2026-01-15T09:00:00+01:00")
    cancelled = m.ok(m.post(f"/v1/subscriptions/{sub}/cancel", {"immediately": True}))
    assert cancelled["status"] == "canceled"  # the cancellation stands
    # Tried again after 1, 4, 16 and 64 minutes: five refusals in all, then failed.
    api.advance("2026-01-16T09:00:00+01:00")
    [refund] = m.ok(m.get("/v1/refunds", customer="cus_1"))["data"]
    assert refund["status"] == "failed"
    [op] = m.ok(m.get("/v1/gateway_operations", customer="cus_1", kind="refund"))["data"]
    assert (op["status"], op["tries"]) == ("failed", 5)
    # Nothing was paid, so nothing is counted as refunded: the customer is still owed it.
    [payment] = m.ok(m.get("/v1/payments", customer="cus_1"))["data"]
    assert payment["refunded"] == "0.00"
    assert books(api, "refund") == []
    with api.runtime.sessions() as session:
        alerts = session.scalar(
            select(func.count())
            .select_from(NotificationRow)
            .where(
                NotificationRow.template == "refund_failed",
                NotificationRow.merchant_id == m.id,
                NotificationRow.customer_id.is_(None),
            )
        )
    assert alerts == 1


@ON_SQLITE
def test_a_reviewed_refund_whose_answer_is_lost_is_paid_once(api: Api) -> None:
    m = api.merchant("emailconsul")
    api.advance("2026-03-01T00:00:00+00:00")
    m.plan("pro-monthly", "30.00")
    m.customer("cus_1")
    m.subscribe("cus_1", "pro-monthly")
    [payment] = m.ok(m.get("/v1/payments", customer="cus_1"))["data"]
    api.advance("2026-03-02T10:00:00+00:00")
    m.ok(m.post("/v1/customers/cus_1/activity"))
    api.advance("2026-03-20T00:00:00+00:00")
    body = {
        "customer": "cus_1",
        "kind": "money_back",
        "payment": payment["id"],
        "reason": "deliverability was poor for our domain",
        "order_numbers": ["1"],
    }
    req = m.ok(m.post("/v1/refund_requests", body, role="support"), 201)
    sandbox(api).add_fault(Fault.TIMEOUT_AFTER, operation=FaultTarget.REFUND)
    reviewed = m.ok(
        m.post(f"/v1/refund_requests/{req['id']}/review", {"decision": "accept"}, role="finance")
    )
    assert reviewed["status"] == "paid"
    assert [r["status"] for r in reviewed["refunds"]] == ["pending"]
    api.advance("2026-03-20T01:00:00+00:00")
    refunds = m.ok(m.get("/v1/refunds", customer="cus_1"))["data"]
    assert [(r["status"], r["amount"]) for r in refunds] == [("succeeded", reviewed["amount"])]
    assert len(books(api, "refund")) == 1


# -- a restart --------------------------------------------------------------------------------
def test_after_a_restart_earlier_payments_are_refunded(tmp_path: Path) -> None:
    """The gateway's books are in the database: a new server process (a new runtime and
    app on the same file) refunds a payment the previous one took, and a cancellation
    inside Kalenner's guarantee is refunded, not refused with a gateway error."""
    url = f"sqlite:///{tmp_path / 'fairbill.db'}"
    upgrade(url)
    clock = TestClock(START)
    with served(url, clock) as api:
        m = kalenner(api)
        sub = m.subscribe("cus_1", "pro-monthly")
        merchant_keys = m.keys
    with served(url, clock) as api:
        m = Merchant(api.client, m.id, merchant_keys)
        api.advance("2026-01-15T09:00:00+01:00")
        cancelled = m.ok(m.post(f"/v1/subscriptions/{sub}/cancel", {"immediately": True}))
        assert cancelled["status"] == "canceled"
        [refund] = m.ok(m.get("/v1/refunds", customer="cus_1"))["data"]
        assert (refund["amount"], refund["status"]) == ("29.00", "succeeded")
        assert [amount for _, amount in books(api, "refund")] == [2900]


@contextmanager
def served(url: str, clock: TestClock) -> Iterator[Api]:
    engine = make_engine(url)
    runtime = Runtime(engine, clock=clock, admin_token=ADMIN_TOKEN)
    try:
        with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
            yield Api(client, runtime)
    finally:
        runtime.close()


@ON_SQLITE
def test_paying_two_suspended_subscriptions_records_both_payments(api: Api) -> None:
    """Found by the crash harness: the first payment reactivated the account, the second
    one's reactivation raised, and its money (taken at the gateway) was never recorded."""
    m = kalenner(api)
    m.customer("cus_2", payment_methods=[{"id": "card_1", "token": "tok_two"}])
    m.subscribe("cus_2", "pro-monthly")
    m.subscribe("cus_2", "pro-monthly")
    sandbox(api).add_fault(Fault.DECLINE, operation=FaultTarget.CHARGE, token="tok_two", times=None)
    api.advance("2026-02-25T00:00:00+01:00")  # renewals and every retry declined
    subs = m.ok(m.get("/v1/subscriptions", customer="cus_2"))["data"]
    assert [s["status"] for s in subs] == ["suspended", "suspended"]
    m.ok(m.post("/v1/customers/cus_2/payment_methods", {"id": "card_2"}), 201)
    paid = m.ok(m.post("/v1/customers/cus_2/pay_outstanding", {"payment_method": "card_2"}))
    assert (paid["paid"], paid["open_invoices"]) == ("58.00", [])
    assert paid["customer"]["status"] == "active"
    assert [s["status"] for s in paid["subscriptions"]] == ["active", "active"]
    payments = m.ok(m.get("/v1/payments", customer="cus_2"))["data"]
    assert len(payments) == len(books(api, "charge")) == 4
