"""Demo data: one merchant per bundled policy, each with a catalog and customers in
different states (active, cancellation scheduled, payment failing, refund in review).
Built through the same services the API calls."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from fairbill.gateway.port import PaymentGateway
from fairbill.policy.model import RequestKind
from fairbill.services import accounts, operations, refunds, subscriptions
from fairbill.services import merchants as merchant_service
from fairbill.services.clock import Clock
from fairbill.services.context import Ctx

CATALOGS: dict[str, dict[str, Any]] = {
    "kalenner": {
        "name": "Kalenner",
        "plans": [("solo-monthly", 1, "29.00"), ("pro-annual", 12, "240.00")],
    },
    "qomon": {
        "name": "Qomon",
        "plans": [("growth-annual", 12, "1200.00")],
        "tiers": ("essential", "contacts", [(5000, "100.00"), (10000, "160.00"), (None, "250.00")]),
    },
    "voip": {"name": "VoIP provider", "plans": [("line-monthly", 1, "50.00")]},
    "conek": {
        "name": "Conek",
        "plans": [("starter-monthly", 1, "499.00"), ("business-monthly", 1, "899.00")],
        "products": [("msg-1000", "message_credits", 1000, "message", "300.00")],
    },
    "emailconsul": {"name": "EmailConsul", "plans": [("pro-monthly", 1, "30.00")]},
}


@dataclass(frozen=True)
class DemoMerchant:
    policy: str
    merchant_id: int
    keys: dict[str, str]
    portal_token: str


def seed(session: Session, clock: Clock, gateway: PaymentGateway) -> list[DemoMerchant]:
    made = []
    for policy_id, spec in CATALOGS.items():
        merchant, keys = merchant_service.create_merchant(
            session, clock.now(), name=spec["name"], policy_ref=policy_id
        )
        for code, months, price in spec["plans"]:
            merchant_service.add_plan(
                session, merchant, {"id": code, "interval_months": months, "price": Decimal(price)}
            )
        if "tiers" in spec:
            code, metric, levels = spec["tiers"]
            merchant_service.add_plan(
                session,
                merchant,
                {
                    "id": code,
                    "interval_months": 1,
                    "tiers": {
                        "metric": metric,
                        "levels": [{"up_to": up_to, "price": Decimal(p)} for up_to, p in levels],
                    },
                },
            )
        for code, kind, quantity, credit_kind, price in spec.get("products", []):
            merchant_service.add_product(
                session,
                merchant,
                {
                    "id": code,
                    "kind": kind,
                    "quantity": quantity,
                    "credit_kind": credit_kind,
                    "price": Decimal(price),
                },
            )
        ctx = merchant_service.context(session, clock, gateway, merchant)
        portal = _customers(ctx, policy_id, spec)
        operations.commit_and_settle(ctx)  # the demo's first charges, sent and recorded
        made.append(DemoMerchant(policy_id, merchant.id, {k.role: k.key for k in keys}, portal))
    session.commit()
    return made


def _customers(ctx: Ctx, policy_id: str, spec: dict[str, Any]) -> str:
    s, m = ctx.session, ctx.merchant_row
    plan = spec["tiers"][0] if "tiers" in spec else spec["plans"][0][0]
    usage = 4000 if "tiers" in spec else None

    def customer(code: str, **extra: Any) -> Any:
        row = merchant_service.create_customer(
            s, m, {"id": code, "email": f"{code}@example.com", **extra}
        )
        merchant_service.add_payment_method(s, m, row, {"id": "card_1"})
        return row

    active = customer(f"{policy_id}-active")
    subscriptions.subscribe(ctx, active, plan, payment_method="card_1", usage=usage)
    leaving = customer(f"{policy_id}-leaving")
    sub = subscriptions.subscribe(ctx, leaving, plan, payment_method="card_1", usage=usage)
    operations.commit_and_settle(ctx)  # a cancellation waits for the first charge's answer
    subscriptions.cancel(ctx, leaving, sub, channel="portal")
    failing = customer(f"{policy_id}-failing")
    accounts.set_method_behaviour(ctx, failing, "card_1", True)
    subscriptions.subscribe(ctx, failing, plan, payment_method="card_1", usage=usage)
    asking = customer(f"{policy_id}-asking")
    subscriptions.subscribe(ctx, asking, plan, payment_method="card_1", usage=usage)
    operations.commit_and_settle(ctx)  # the payments exist once the gateway answered
    payment = refunds.payment_by_number(ctx, asking, 1)
    refunds.request_refund(
        ctx,
        asking,
        RequestKind.MONEY_BACK,
        payment=payment,
        reason="The product does not fit our team.",
    )
    return merchant_service.issue_portal_token(s, active, ctx.now).token
