"""Helpers of the back-office tests: keys and customers made through the services, on a
demo world (in process, or the live server's database), and signing in over HTTP."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fairbill.api.settings import Runtime
from fairbill.ids import Ids, Prefix
from fairbill.services import merchants as merchant_service
from fairbill.services import operations, subscriptions
from fairbill.store.tables import MerchantRow, PaymentRow, PlanRow


def merchant_of(session: Session, policy: str) -> MerchantRow:
    row = session.scalar(select(MerchantRow).where(MerchantRow.policy_id == policy))
    assert row is not None, policy
    return row


def new_key(runtime: Runtime, policy: str, role: str) -> str:
    """A new API key of ``role`` for the demo merchant of ``policy``."""
    with runtime.sessions() as session:
        issued = merchant_service.issue_key(
            session, merchant_of(session, policy), role, runtime.clock.now()
        )
        session.commit()
    return issued.key


def new_customer(runtime: Runtime, policy: str, code: str) -> tuple[str, str]:
    """A new customer of the demo merchant of ``policy``, subscribed to its first plan and
    charged: its portal token and its first payment's public id (``pay_…``)."""
    with runtime.sessions() as session:
        merchant = merchant_of(session, policy)
        ctx = merchant_service.context(session, runtime.clock, runtime.gateway, merchant)
        customer = merchant_service.create_customer(
            session, merchant, {"id": code, "email": f"{code}@example.com"}
        )
        merchant_service.add_payment_method(session, merchant, customer, {"id": "card_1"})
        first = session.scalar(
            select(PlanRow.code).where(PlanRow.merchant_id == merchant.id).order_by(PlanRow.id)
        )
        assert first is not None
        subscriptions.subscribe(ctx, customer, first, payment_method="card_1")
        operations.commit_and_settle(ctx)
        token = merchant_service.issue_portal_token(session, customer, ctx.now).token
        paid = session.scalar(select(PaymentRow.id).where(PaymentRow.customer_id == customer.id))
        assert paid is not None
        pay = Ids(merchant.id_key).public(Prefix.PAYMENT, paid)
        session.commit()
    return token, pay


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(client: TestClient, key: str) -> None:
    form = client.get("/app/sign-in")
    assert form.status_code == 200, form.text
    done = client.post("/app/sign-in", data={"csrf": csrf_of(form.text), "key": key})
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/app/"
