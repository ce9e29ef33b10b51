"""Small helpers that put a calculation into words a support agent can paste."""

from __future__ import annotations

from fairbill.decisions.facts import Merchant
from fairbill.money import Money


def share_sentence(
    merchant: Merchant, base: Money, numerator: int, denominator: int, unit: str, result: Money
) -> str:
    return f"{merchant.fmt(base)} × {numerator} / {denominator} {unit} = {merchant.fmt(result)}"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
