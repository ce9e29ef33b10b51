"""Exchange rates: a payment method in another currency than the merchant's.

A charge converts the invoice amount at the rate of the charge day; a refund converts the
granted amount at the rate of the refund day, so the customer carries the FX difference
(Qomon: "Qomon does not cover foreign exchange (FX) risk"). Rates come from the merchant's
rate table: the latest rate at or before the instant, for the pair or its inverse.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from fairbill.errors import Conflict
from fairbill.money import Money
from fairbill.services.context import Ctx
from fairbill.store.tables import FxRateRow


def rate(ctx: Ctx, base: str, quote: str, at: datetime) -> Decimal:
    """How many ``quote`` one ``base`` buys at ``at``."""
    if base == quote:
        return Decimal(1)
    for b, q, invert in ((base, quote, False), (quote, base, True)):
        row = ctx.session.scalar(
            select(FxRateRow)
            .where(
                FxRateRow.merchant_id == ctx.merchant_row.id,
                FxRateRow.base == b,
                FxRateRow.quote == q,
                FxRateRow.at <= at,
            )
            .order_by(FxRateRow.at.desc())
            .limit(1)
        )
        if row is not None:
            value = Decimal(row.rate)
            return Decimal(1) / value if invert else value
    raise Conflict(f"no {base}/{quote} exchange rate on {at.isoformat()}")


def convert(ctx: Ctx, amount: Money, currency: str, at: datetime) -> Money:
    """``amount`` in ``currency`` at the rate of ``at``, rounded once to its minor unit."""
    if amount.currency == currency:
        return amount
    return Money(amount.amount * rate(ctx, amount.currency, currency, at), currency).round(
        ctx.merchant.rounding
    )


def record_rate(ctx: Ctx, base: str, quote: str, at: datetime, value: Decimal) -> None:
    ctx.session.add(
        FxRateRow(merchant_id=ctx.merchant_row.id, base=base, quote=quote, at=at, rate=str(value))
    )
