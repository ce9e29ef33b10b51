"""What a use case writes and which money moves, as a value.

A planner (a pure function of facts) appends effects to a ``Plan``; one applier
(``services.applier.apply``) writes them: the rows to insert, the changes to rows that
exist, the journal transactions, the decisions, and the gateway operations, which are
sent after the commit. A single call plans into a plan of its own; the daily cycle plans
a chunk of renewals into one plan. Either way the planning code is the same, and so is the
code that writes it.

Invariants:
- a plan holds no database object: ids of rows it inserts are ``Ref``s, resolved by the
  applier when it allocates them;
- every journal transaction in a plan is balanced (``ledger.journal`` checks it when it is
  built, the applier again where it is stored);
- a change's ``status`` went through ``lifecycle.advance`` when it was planned.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from fairbill.decisions.codec import Call
from fairbill.decisions.decision import Decision
from fairbill.ledger.journal import Transaction


class Rows(StrEnum):
    """The tables a plan writes, in the order their rows are inserted (a row's foreign
    keys point at rows of earlier tables)."""

    CUSTOMERS = "customers"
    PAYMENT_METHODS = "payment_methods"
    OUTAGES = "outages"
    SUBSCRIPTIONS = "subscriptions"
    INVOICES = "invoices"
    INVOICE_LINES = "invoice_lines"
    PAYMENTS = "payments"
    REQUESTS = "requests"
    REFUNDS = "refunds"
    GATEWAY_OPERATIONS = "gateway_operations"
    FAILED_PAYMENTS = "failed_payments"
    CREDIT_NOTES = "credit_notes"
    CREDIT_PACKS = "credit_packs"
    WALLET_ENTRIES = "wallet_entries"
    NOTIFICATIONS = "notifications"


class Ref:
    """The id of a row the plan inserts, known once the applier allocated it. Compared
    by identity: each is one row."""

    __slots__ = ("rows",)

    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    def __repr__(self) -> str:
        return f"Ref({self.rows}@{id(self):x})"


class Joined(NamedTuple):
    """A text made of parts, some of them ``Ref``s: ``charge:<invoice id>:<attempt>``
    before the invoice has an id."""

    parts: tuple[Any, ...]
    sep: str = ":"


class Posting(NamedTuple):
    """A journal transaction to post for a customer (or none: the merchant's own). A
    transaction about a row the plan inserts gets its key and text once that row has an
    id (``key`` and ``text``, when given, replace the transaction's own)."""

    txn: Transaction
    customer_id: int | None
    key: Joined | None = None
    text: Joined | None = None


class NewRow(NamedTuple):
    rows: Rows
    values: dict[str, Any]
    ref: Ref | None = None


class Change(NamedTuple):
    """New values of some columns of an existing (or planned) row."""

    rows: Rows
    id: int | Ref
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Decided:
    """A decision to store, with the call it was taken by (its facts) and the version of
    the policy it was taken under."""

    customer_id: int
    at: datetime
    decision: Decision
    call: Call | None
    version_id: int | None
    version: str


@dataclass(slots=True)
class Plan:
    """Effects, in the order they were planned."""

    new: list[NewRow] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    postings: list[Posting] = field(default_factory=list)
    decided: list[Decided] = field(default_factory=list)

    def insert(self, rows: Rows, values: dict[str, Any], *, ref: bool = False) -> Ref | None:
        """A row to insert; with ``ref``, the handle its id will be known by."""
        handle = Ref(rows) if ref else None
        self.new.append(NewRow(rows, values, handle))
        return handle

    def change(self, rows: Rows, row_id: int | Ref, **values: Any) -> None:
        self.changes.append(Change(rows, row_id, values))

    def post(
        self,
        txn: Transaction,
        customer_id: int | None,
        *,
        key: Joined | None = None,
        text: Joined | None = None,
    ) -> None:
        self.postings.append(Posting(txn, customer_id, key, text))

    def record(self, decided: Decided) -> None:
        """A decision to store with the plan's rows (``Ctx.decided_of`` makes one)."""
        self.decided.append(decided)

    def money_to_move(self) -> Iterator[NewRow]:
        """The gateway operations to perform once the plan is committed."""
        return (row for row in self.new if row.rows == Rows.GATEWAY_OPERATIONS)

    def __bool__(self) -> bool:
        return bool(self.new or self.changes or self.postings or self.decided)
