"""One-time purchases and prepaid credits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from fairbill.decisions.credits import credit_expiry, decide_expiry, decide_failed_delivery
from fairbill.decisions.decision import Decision, DecisionOutcome
from fairbill.decisions.reasons import Reason
from fairbill.errors import NotFound
from fairbill.lifecycle import CreditPackStatus, advance
from fairbill.plans.billing import Collected, Line
from fairbill.services import billing, subscriptions
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
    total = int(pack["quantity"])
    ctx.session.add(
        CreditPackRow(
            customer_id=customer.id,
            kind=str(pack["kind"]),
            quantity=total,
            remaining=total,
            purchased_at=ctx.now,
            expires_at=credit_expiry(ctx.merchant, ctx.now),
            status=CreditPackStatus.ACTIVE,
        )
    )


def active_packs(ctx: Ctx, customer: CustomerRow, kind: str | None = None) -> list[CreditPackRow]:
    query = select(CreditPackRow).where(
        CreditPackRow.customer_id == customer.id, CreditPackRow.status == CreditPackStatus.ACTIVE
    )
    if kind is not None:
        query = query.where(CreditPackRow.kind == kind)
    packs = list(ctx.session.scalars(query.order_by(CreditPackRow.id)).all())
    # Spend what expires first.
    return sorted(packs, key=lambda p: (p.expires_at is None, p.expires_at or p.purchased_at, p.id))


def consume(
    ctx: Ctx, customer: CustomerRow, kind: str, quantity: int, failed: str | None = None
) -> Decision:
    left = quantity
    spent: list[tuple[CreditPackRow, int]] = []
    for pack in active_packs(ctx, customer, kind):
        take = min(pack.remaining, left)
        pack.remaining -= take
        left -= take
        spent.append((pack, take))
        if pack.remaining == 0:
            pack.status = advance(pack.status, CreditPackStatus.USED)
        if left == 0:
            break
    used = quantity - left
    if failed is None:
        decision = Decision(
            action="consume_credits",
            outcome=DecisionOutcome.APPROVED,
            amount=ctx.money(0),
            explanation=f"{used} {kind} credits used"
            + (f"; {left} could not be sent for lack of credits." if left else "."),
        )
        ctx.record(customer, decision)
        return decision
    decision, returned = ctx.decide(customer.id, decide_failed_delivery, failed, used)
    for pack, take in spent:
        back = min(take, returned)
        if back:
            pack.remaining += back
            if pack.status == CreditPackStatus.USED:  # emptied above: spendable again
                pack.status = advance(pack.status, CreditPackStatus.ACTIVE)
            returned -= back
    ctx.record(customer, decision)
    return decision


def expire(ctx: Ctx, customer: CustomerRow, pack: CreditPackRow) -> None:
    if (
        pack.status != CreditPackStatus.ACTIVE
        or pack.expires_at is None
        or pack.expires_at > ctx.now
    ):
        return
    decision = ctx.decide(customer.id, decide_expiry, pack.kind, pack.remaining)
    pack.forfeited += pack.remaining
    pack.remaining = 0
    pack.status = advance(pack.status, CreditPackStatus.EXPIRED)
    ctx.record(customer, decision)


def forfeit_all(ctx: Ctx, customer: CustomerRow, clause: str | None, why: str) -> None:
    packs = active_packs(ctx, customer)
    if not packs:
        return
    total = 0
    for pack in packs:
        total += pack.remaining
        pack.forfeited += pack.remaining
        pack.remaining = 0
        pack.status = advance(pack.status, CreditPackStatus.FORFEITED)
    ctx.record(
        customer,
        Decision(
            action="forfeit",
            outcome=DecisionOutcome.APPROVED,
            amount=ctx.money(0),
            reasons=(Reason.CREDITS_FORFEITED,),
            clauses=(clause,) if clause else (),
            explanation=f"{total} unused credits forfeited: {why}.",
        ),
    )
