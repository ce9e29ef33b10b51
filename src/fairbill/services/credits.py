"""One-time purchases and prepaid credits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from fairbill.decisions.credits import credit_expiry, decide_expiry, decide_failed_delivery
from fairbill.decisions.decision import Decision, DecisionOutcome
from fairbill.decisions.reasons import Reason
from fairbill.errors import NotFound
from fairbill.lifecycle import CreditPackStatus
from fairbill.plans.billing import Collected, Line
from fairbill.plans.credits import Pack, plan_forfeit, plan_give_back, plan_pack, plan_spend
from fairbill.plans.effects import Plan
from fairbill.services import applier, billing, subscriptions
from fairbill.services.context import Ctx
from fairbill.services.operations import Purpose
from fairbill.store.tables import CreditPackRow, CustomerRow, InvoiceRow, ProductRow


def purchase(
    ctx: Ctx,
    customer: CustomerRow,
    product_code: str,
    quantity: int = 1,
    payment_method: str | None = None,
) -> InvoiceRow:
    subscriptions.ensure_open(customer)
    product = ctx.session.scalar(
        select(ProductRow).where(
            ProductRow.merchant_id == ctx.merchant_row.id, ProductRow.code == product_code
        )
    )
    if product is None:
        raise NotFound(f"no product {product_code!r}")
    amount = ctx.money(product.price_minor * quantity)
    invoice = billing.issue_invoice(
        ctx,
        customer,
        [Line("product", f"{product.kind}: {product.code} × {quantity}", amount)],
        purpose="product",
    )
    pack: dict[str, Any] = {}
    if product.kind == "message_credits":
        pack = {
            "kind": product.credit_kind or "message",
            "quantity": (product.quantity or 0) * quantity,
        }
    collected = billing.collect(
        ctx, customer, invoice, payment_method, Purpose.PURCHASE, {"pack": pack} if pack else None
    )
    if collected == Collected.PAID:
        billing.after_paid(ctx, customer, invoice, Purpose.PURCHASE, amount, {"pack": pack})
    return invoice


def grant_pack(ctx: Ctx, customer: CustomerRow, pack: dict[str, Any]) -> None:
    """The credits a paid purchase brings: ``pack`` is ``{"kind", "quantity"}``."""
    plan = Plan()
    expires_at = credit_expiry(ctx.merchant, ctx.now)
    plan_pack(plan, customer.id, str(pack["kind"]), int(pack["quantity"]), ctx.now, expires_at)
    applier.apply(ctx, plan)


def active_packs(ctx: Ctx, customer: CustomerRow, kind: str | None = None) -> list[CreditPackRow]:
    query = select(CreditPackRow).where(
        CreditPackRow.customer_id == customer.id, CreditPackRow.status == CreditPackStatus.ACTIVE
    )
    if kind is not None:
        query = query.where(CreditPackRow.kind == kind)
    packs = list(ctx.session.scalars(query.order_by(CreditPackRow.id)).all())
    # Spend what expires first.
    return sorted(packs, key=lambda p: (p.expires_at is None, p.expires_at or p.purchased_at, p.id))


def _facts(packs: list[CreditPackRow]) -> list[Pack]:
    return [Pack(p.id, p.kind, p.remaining, p.forfeited, CreditPackStatus(p.status)) for p in packs]


def consume(
    ctx: Ctx, customer: CustomerRow, kind: str, quantity: int, failed: str | None = None
) -> Decision:
    """Spend ``quantity`` credits of ``kind`` (``plans.credits.plan_spend``); a delivery
    that ``failed`` gives back what the policy says (``decide_failed_delivery``). The
    spend, any return and the decision are one plan."""
    plan = Plan()
    spent = plan_spend(plan, _facts(active_packs(ctx, customer, kind)), quantity)
    used = sum(take for _, take in spent)
    left = quantity - used
    if failed is None:
        decision = Decision(
            action="consume_credits",
            outcome=DecisionOutcome.APPROVED,
            amount=ctx.money(0),
            explanation=f"{used} {kind} credits used"
            + (f"; {left} could not be sent for lack of credits." if left else "."),
        )
    else:
        decision, returned = ctx.decide(customer.id, decide_failed_delivery, failed, used)
        plan_give_back(plan, spent, returned)
    plan.record(ctx.decided_of(customer.id, decision))
    applier.apply(ctx, plan)
    return decision


def expire(ctx: Ctx, customer: CustomerRow, pack: CreditPackRow) -> None:
    """A pack past its expiry ends with what it had left (a decision, one plan)."""
    if (
        pack.status != CreditPackStatus.ACTIVE
        or pack.expires_at is None
        or pack.expires_at > ctx.now
    ):
        return
    decision = ctx.decide(customer.id, decide_expiry, pack.kind, pack.remaining)
    plan = Plan()
    plan_forfeit(plan, _facts([pack]), CreditPackStatus.EXPIRED)
    plan.record(ctx.decided_of(customer.id, decision))
    applier.apply(ctx, plan)


def forfeit_all(ctx: Ctx, customer: CustomerRow, clause: str | None, why: str, plan: Plan) -> None:
    """Every active pack forfeited, and the decision saying so, into ``plan``."""
    packs = active_packs(ctx, customer)
    if not packs:
        return
    total = plan_forfeit(plan, _facts(packs), CreditPackStatus.FORFEITED)
    decision = Decision(
        action="forfeit",
        outcome=DecisionOutcome.APPROVED,
        amount=ctx.money(0),
        reasons=(Reason.CREDITS_FORFEITED,),
        clauses=(clause,) if clause else (),
        explanation=f"{total} unused credits forfeited: {why}.",
    )
    plan.record(ctx.decided_of(customer.id, decision))
