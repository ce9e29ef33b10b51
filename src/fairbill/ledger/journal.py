"""Journal transactions: the only way money moves in fairbill.

Invariants, checked when a transaction is built (and again when it is stored):
- it has at least two legs;
- per currency, the legs sum to exactly zero (debits positive, credits negative);
- every leg amount is rounded to its currency's minor unit.
Transactions are append-only: a correction is a new transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from fairbill.errors import UnbalancedTransaction
from fairbill.ledger.accounts import Account
from fairbill.money import Money


@dataclass(frozen=True, slots=True)
class Leg:
    account: Account
    amount: Money  # debit > 0, credit < 0


@dataclass(frozen=True, slots=True)
class Transaction:
    key: str  # idempotency key: the same key is never posted twice
    at: datetime
    description: str
    legs: tuple[Leg, ...]

    def __post_init__(self) -> None:
        check_balanced(self.legs)


def imbalance(legs: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Per-currency sums of (currency, minor amount) pairs that are not zero."""
    sums: dict[str, int] = defaultdict(int)
    for currency, minor in legs:
        sums[currency] += minor
    return {c: s for c, s in sums.items() if s != 0}


def check_balanced(legs: tuple[Leg, ...]) -> None:
    if len(legs) < 2:
        raise UnbalancedTransaction("a transaction needs at least two legs")
    if len(legs) == 2:
        # The common transfer: two exactly opposite amounts of one currency, the first
        # rounded (so the second is), balance. Anything else gets the full checks below.
        first, second = legs[0].amount, legs[1].amount
        if (
            first.currency == second.currency
            and first.amount == second.amount.copy_negate()
            and first.is_rounded()
        ):
            return
    for leg in legs:
        if not leg.amount.is_rounded():
            raise UnbalancedTransaction(f"leg {leg.account} is not rounded: {leg.amount!r}")
    off = imbalance((leg.amount.currency, leg.amount.minor) for leg in legs)
    if off:
        raise UnbalancedTransaction(f"legs do not balance: {off}")


def transfer(
    key: str, at: datetime, description: str, debit: Account, credit: Account, amount: Money
) -> Transaction:
    """The common two-leg transaction: ``amount`` from ``credit`` to ``debit``."""
    return Transaction(key, at, description, (Leg(debit, amount), Leg(credit, -amount)))


def zero_sum(amounts: Iterable[Decimal]) -> bool:
    return sum(amounts, Decimal(0)) == 0
