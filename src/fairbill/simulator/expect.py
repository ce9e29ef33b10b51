"""Partial matching of a simulation result against a scenario's ``expect:`` block.

Contract (``docs/scenario-format.md``, section ``expect:``): each key of ``expect`` is a key
of the result, matched partially —

- a mapping matches when every key it lists is equal (recursively); keys it does not list
  are not compared;
- a list matches when it has the same length and each element matches in order;
- ``refunds_total`` is the sum of ``refunds[*].amount``; ``wallet_balance`` is
  ``wallet.balance``;
- scalars are equal; two decimal strings compare as numbers ("160.0" == "160.00"); two
  ISO timestamps with offsets compare as instants;
- a float in ``expect`` never matches: money is never a float, write it as a string.

``first_mismatch`` returns the first mismatch in the order the file lists its keys, or
None when everything matches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from fairbill.money import minor_units

MISSING = "<missing>"
_DECIMAL_TEXT = re.compile(r"^-?\d+(\.\d+)?$")


@dataclass(frozen=True)
class Mismatch:
    """``path`` like ``refunds[0].amount``, ``refunds_total`` or ``subscriptions (length)``;
    ``reason`` says why when equality alone would not explain it (a float)."""

    path: str
    expected: Any
    actual: Any
    reason: str = ""

    def __str__(self) -> str:
        text = f"{self.path}: expected {_show(self.expected)}, got {_show(self.actual)}"
        return f"{text} ({self.reason})" if self.reason else text


def first_mismatch(expect: Mapping[str, Any], result: Mapping[str, Any]) -> Mismatch | None:
    for key, expected in expect.items():
        if key == "refunds_total":
            found = _match(expected, _refunds_total(result), key)
        elif key == "wallet_balance":
            wallet = result.get("wallet")
            balance = wallet.get("balance", MISSING) if isinstance(wallet, Mapping) else MISSING
            found = _match(expected, balance, key)
        elif key not in result:
            found = Mismatch(key, expected, MISSING)
        else:
            found = _match(expected, result[key], key)
        if found is not None:
            return found
    return None


def _refunds_total(result: Mapping[str, Any]) -> Any:
    refunds = result.get("refunds")
    if not isinstance(refunds, list):
        return MISSING
    currency = result.get("currency")
    digits = minor_units(currency) if isinstance(currency, str) else 2
    total = Decimal(0).scaleb(-digits)  # "0.00" when there are no refunds
    for refund in refunds:
        amount = refund.get("amount") if isinstance(refund, Mapping) else None
        if not isinstance(amount, str) or not _DECIMAL_TEXT.match(amount):
            return f"<refund amount {amount!r} is not a decimal string>"
        total += Decimal(amount)
    return str(total)


def _match(expected: Any, actual: Any, path: str) -> Mismatch | None:
    if isinstance(expected, float):
        return Mismatch(
            path,
            expected,
            actual,
            'a float never matches: money is never a float, write it as a string, e.g. "160.00"',
        )
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return Mismatch(path, expected, actual)
        for key, value in expected.items():
            sub = f"{path}.{key}"
            if key not in actual:
                return Mismatch(sub, value, MISSING)
            found = _match(value, actual[key], sub)
            if found is not None:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return Mismatch(path, expected, actual)
        if len(expected) != len(actual):
            return Mismatch(f"{path} (length)", len(expected), len(actual))
        for index, (item, got) in enumerate(zip(expected, actual, strict=True)):
            found = _match(item, got, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    return None if _equal(expected, actual) else Mismatch(path, expected, actual)


def _equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if (isinstance(expected, Decimal) and isinstance(actual, Decimal | str)) or (
        isinstance(actual, Decimal) and isinstance(expected, str)
    ):
        amounts = _decimal(expected), _decimal(actual)
        return None not in amounts and amounts[0] == amounts[1]
    if isinstance(expected, str) and isinstance(actual, str):
        if expected == actual:
            return True
        if _is_decimal(expected) and _is_decimal(actual):
            return Decimal(expected) == Decimal(actual)
        left, right = _instant(expected), _instant(actual)
        return left is not None and right is not None and left == right
    if isinstance(expected, int) and isinstance(actual, int):
        return expected == actual
    if expected is None or actual is None:
        return expected is actual
    return type(expected) is type(actual) and bool(expected == actual)


def _is_decimal(text: str) -> bool:
    return bool(_DECIMAL_TEXT.match(text))


def _decimal(value: Decimal | str) -> Decimal | None:
    if isinstance(value, Decimal):
        return value
    return Decimal(value) if _is_decimal(value) else None


def _instant(text: str) -> datetime | None:
    if "T" not in text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _show(value: Any) -> str:
    if value == MISSING:
        return MISSING
    return repr(value) if isinstance(value, str | float) else str(value)
