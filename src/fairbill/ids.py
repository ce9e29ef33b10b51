"""Opaque public ids: ``sub_7g2m0kq1v3z9w`` instead of ``sub_21``.

A row's public id is its kind's prefix and its row id, enciphered under the merchant's own
key (``merchants.id_key``): a keyed permutation of 64-bit numbers (a four-round Feistel
network whose round function is keyed BLAKE2b, tweaked by the prefix), written in
Crockford's base 32, lower case, 13 characters. So:

- ids say nothing of volume: consecutive rows get unrelated ids, and neither a merchant
  nor anyone else can tell how many rows exist, theirs or other merchants';
- an id is stable (the key never changes) and decodes without a lookup table;
- ids of different kinds never decode as one another, nor under another merchant's key
  (the number they decode to is, but for a chance of 2^-33, no row id: ``MAX_ID``).

Row ids stay integers inside; invoice and payment *numbers* stay per customer (1, 2, 3…),
as the scenario contract and invoices show them.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from hashlib import blake2b

__all__ = ["MAX_ID", "Ids", "Prefix", "new_key"]

# Row ids are 32-bit integer columns on PostgreSQL: nothing above names a row.
MAX_ID = 2**31 - 1
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base 32, lower case
_DIGIT = {c: i for i, c in enumerate(_ALPHABET)}
_LENGTH = 13  # 64 bits in 5-bit digits
_ROUNDS = 4
_HALF = 0xFFFFFFFF


class Prefix(StrEnum):
    """What a public id names."""

    SUBSCRIPTION = "sub"
    INVOICE = "inv"
    PAYMENT = "pay"
    DECISION = "dec"
    REQUEST = "req"
    OPERATION = "gop"
    POLICY_VERSION = "pv"
    OUTAGE = "out"
    JOB_FAILURE = "jf"
    REFUND = "ref"
    CREDIT_NOTE = "cn"
    CREDIT_PACK = "pack"
    CURSOR = "cur"  # a page's place in a list (``api.pagination``)


def new_key() -> str:
    """A merchant's id key: 128 random bits, as hex."""
    return secrets.token_hex(16)


class Ids:
    """Public ids under one merchant's key."""

    __slots__ = ("_keyed",)

    def __init__(self, key: str) -> None:
        # Keyed once; each round hashes a copy (the key's setup costs more than a round).
        self._keyed = blake2b(key=bytes.fromhex(key), digest_size=4)

    def public(self, prefix: Prefix, row_id: int) -> str:
        """The public id of row ``row_id`` (0 < row_id ≤ ``MAX_ID``)."""
        if not 0 < row_id <= MAX_ID:
            raise ValueError(f"{row_id} is no row id")
        return f"{prefix}_{_text(self._permute(prefix, row_id))}"

    def private(self, prefix: Prefix, text: str) -> int | None:
        """The row id ``text`` names, or None: not one of ``prefix``'s ids under this key
        (a foreign, mistyped or made-up id)."""
        head, sep, tail = text.partition("_")
        if not sep or head != prefix:
            return None
        number = _number(tail)
        if number is None:
            return None
        row_id = self._unpermute(prefix, number)
        return row_id if 0 < row_id <= MAX_ID else None

    def _round(self, prefix: Prefix, index: int, half: int) -> int:
        hashed = self._keyed.copy()
        hashed.update(bytes((index,)) + half.to_bytes(4, "big") + prefix.encode())
        return int.from_bytes(hashed.digest(), "big")

    def _permute(self, prefix: Prefix, value: int) -> int:
        left, right = value >> 32, value & _HALF
        for index in range(_ROUNDS):
            left, right = right, left ^ self._round(prefix, index, right)
        return (left << 32) | right

    def _unpermute(self, prefix: Prefix, value: int) -> int:
        left, right = value >> 32, value & _HALF
        for index in reversed(range(_ROUNDS)):
            left, right = right ^ self._round(prefix, index, left), left
        return (left << 32) | right


def _text(value: int) -> str:
    digits = []
    for _ in range(_LENGTH):
        digits.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(digits))


def _number(text: str) -> int | None:
    """The 64-bit number of 13 base-32 digits; anything else (length, characters, a
    first digit that would overflow 64 bits) is None."""
    if len(text) != _LENGTH:
        return None
    value = 0
    for char in text:
        digit = _DIGIT.get(char)
        if digit is None:
            return None
        value = (value << 5) | digit
    return value if value < 1 << 64 else None
