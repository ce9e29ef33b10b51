"""The one component that writes plans (``plans.effects``): for one call or a chunk of a
million renewals, with the same statements.

Steps, in one transaction (the caller's):

1. the session's own pending changes are flushed, so the plan's statements come after
   them;
2. ids are allocated for the tables whose rows the plan refers to (``Ref``), and every
   ``Ref`` and ``Joined`` in the plan is resolved;
3. changes to a row the plan inserts are folded into its insert; the other changes to one
   row are merged in order (the last value of a column wins);
4. rows are inserted table by table in ``Rows`` order, one executemany per shape; rows
   are updated by id, one executemany per set of columns; the journal transactions are
   posted (each once: a key already stored is skipped) and the decisions stored;
5. the gateway operations inserted are registered to be sent after the commit
   (``operations.commit_and_settle``), and the session's objects of the rows changed are
   expired, so what the caller reads next is what was written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm.util import identity_key

from fairbill.errors import UnbalancedTransaction
from fairbill.ledger.journal import Transaction, check_balanced
from fairbill.plans.effects import Joined, NewRow, Plan, Posting, Ref, Rows
from fairbill.services.context import Ctx, decision_values
from fairbill.services.operations import PENDING
from fairbill.store.bulk import BulkWriter, update_by_id
from fairbill.store.ids import allocate_ids
from fairbill.store.sets import one_of
from fairbill.store.tables import (
    Base,
    CreditNoteRow,
    CreditPackRow,
    CustomerRow,
    DecisionRow,
    FailedPaymentRow,
    GatewayOperationRow,
    InvoiceLineRow,
    InvoiceRow,
    JournalEntryRow,
    JournalTransactionRow,
    NotificationRow,
    OutageRow,
    PaymentMethodRow,
    PaymentRow,
    RefundRow,
    RequestRow,
    SubscriptionRow,
    WalletEntryRow,
    table,
)

MODELS: dict[Rows, type[Base]] = {
    Rows.INVOICES: InvoiceRow,
    Rows.INVOICE_LINES: InvoiceLineRow,
    Rows.PAYMENTS: PaymentRow,
    Rows.REQUESTS: RequestRow,
    Rows.REFUNDS: RefundRow,
    Rows.GATEWAY_OPERATIONS: GatewayOperationRow,
    Rows.FAILED_PAYMENTS: FailedPaymentRow,
    Rows.CREDIT_NOTES: CreditNoteRow,
    Rows.CREDIT_PACKS: CreditPackRow,
    Rows.WALLET_ENTRIES: WalletEntryRow,
    Rows.NOTIFICATIONS: NotificationRow,
    Rows.SUBSCRIPTIONS: SubscriptionRow,
    Rows.CUSTOMERS: CustomerRow,
    Rows.PAYMENT_METHODS: PaymentMethodRow,
    Rows.OUTAGES: OutageRow,
}


@dataclass(frozen=True, slots=True)
class Applied:
    """The ids the applier gave the plan's new rows."""

    ids: dict[int, int]

    def __getitem__(self, ref: Ref) -> int:
        return self.ids[id(ref)]


# The columns that may hold a ``Ref`` or a ``Joined``, by table: resolving only these keeps
# the applier's cost per row flat (a chunk's plan has a million values).
DEFERRED: dict[Rows, tuple[str, ...]] = {
    Rows.INVOICES: ("subscription_id",),
    Rows.INVOICE_LINES: ("invoice_id",),
    Rows.PAYMENTS: ("invoice_id",),
    Rows.REFUNDS: ("payment_id",),
    Rows.GATEWAY_OPERATIONS: ("key", "invoice_id", "payment_id", "refund_id", "subscription_id"),
    Rows.CREDIT_PACKS: ("subscription_id",),
    Rows.FAILED_PAYMENTS: ("invoice_id",),
    Rows.CREDIT_NOTES: ("invoice_id", "applied_to_invoice_id"),
}


def apply(ctx: Ctx, plan: Plan) -> Applied:
    """Write ``plan`` in the caller's transaction (steps in the module's docstring). The
    plan is written once: its rows are completed in place (ids, resolved references)."""
    session = ctx.session
    session.flush()
    conn = session.connection()
    writer = BulkWriter(conn)  # ``plan`` keeps every bound value alive
    ids = _allocate(ctx, plan.new)
    resolve = _Resolver(ids)
    stored, folded = _fold(plan, resolve)
    rows_by_table: dict[Rows, list[dict[str, Any]]] = {rows: [] for rows in Rows}
    for new in plan.new:
        rows, values, ref = new
        deferred = DEFERRED.get(rows)
        if deferred is not None:
            for key in deferred:
                if key in values:
                    values[key] = resolve(values[key])
        row_id = ids.get(id(ref if ref is not None else new))
        if row_id is not None:
            values["id"] = row_id
            if ref is not None and id(ref) in folded:
                values |= folded[id(ref)]
        rows_by_table[rows].append(values)
    for rows in Rows:
        _insert(writer, rows, rows_by_table[rows])
    for rows, changes in stored.items():
        update_by_id(writer, table(MODELS[rows]), list(changes.values()))
    txns = [_posted(p, resolve) for p in plan.postings]
    customers = {t.key: p.customer_id for t, p in zip(txns, plan.postings, strict=True)}
    _post_many(ctx, txns, {key: cid for key, cid in customers.items() if cid is not None})
    _decisions(ctx, writer, plan)
    sent = [row["id"] for row in rows_by_table[Rows.GATEWAY_OPERATIONS]]
    if sent:
        session.info.setdefault(PENDING, []).extend(sent)
    _expire(ctx, stored)
    return Applied(ids)


class _Resolver:
    def __init__(self, ids: dict[int, int]) -> None:
        self.ids = ids

    def __call__(self, value: Any) -> Any:
        if isinstance(value, Ref):
            return self.ids[id(value)]
        if isinstance(value, Joined):
            return value.sep.join(str(self(part)) for part in value.parts)
        return value


def _posted(posting: Posting, resolve: _Resolver) -> Transaction:
    """The transaction with its key and text resolved (checked again where stored)."""
    txn = posting.txn
    if posting.key is None and posting.text is None:
        return txn
    key = resolve(posting.key) if posting.key is not None else txn.key
    text = resolve(posting.text) if posting.text is not None else txn.description
    return replace(txn, key=key, description=text)


def _allocate(ctx: Ctx, new: list[NewRow]) -> dict[int, int]:
    """Ids for the rows of every table some row of the plan refers to; a gateway
    operation always gets one (it is registered to be sent by it)."""
    wanted: dict[Rows, list[NewRow]] = {}
    for row in new:
        if row.ref is not None or row.rows == Rows.GATEWAY_OPERATIONS:
            wanted.setdefault(row.rows, []).append(row)
    ids: dict[int, int] = {}
    conn = ctx.session.connection()
    for rows, found in wanted.items():
        for row, row_id in zip(
            found, allocate_ids(conn, table(MODELS[rows]), len(found)), strict=True
        ):
            # Keyed by the ``Ref``, or by the row itself for a row without one.
            ids[id(row.ref if row.ref is not None else row)] = row_id
    return ids


def _fold(
    plan: Plan, resolve: _Resolver
) -> tuple[dict[Rows, dict[int, dict[str, Any]]], dict[int, dict[str, Any]]]:
    """The plan's changes: merged per stored row (``row_id`` and the columns' last
    values), and those to rows the plan inserts, per ``Ref``, to fold into the insert."""
    stored: dict[Rows, dict[int, dict[str, Any]]] = {}
    planned: dict[int, dict[str, Any]] = {}
    # Per change, the fewest steps: a chunk of the daily cycle has hundreds of thousands.
    for rows, row_id, values in plan.changes:
        deferred = DEFERRED.get(rows)
        if deferred is not None:
            for key in deferred:
                if key in values:
                    values[key] = resolve(values[key])
        if isinstance(row_id, Ref):
            planned.setdefault(id(row_id), {}).update(values)
            continue
        by_id = stored.get(rows)
        if by_id is None:
            by_id = stored[rows] = {}
        merged = by_id.get(row_id)
        if merged is None:
            by_id[row_id] = {"row_id": row_id, **values}
        else:
            merged.update(values)
    return stored, planned


def _insert(writer: BulkWriter, rows: Rows, values: Iterable[dict[str, Any]]) -> None:
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in values:
        shapes.setdefault(tuple(row), []).append(row)
    statement = insert(table(MODELS[rows]))
    for batch in shapes.values():
        writer.execute(statement, batch)


def _decisions(ctx: Ctx, writer: BulkWriter, plan: Plan) -> None:
    if not plan.decided:
        return
    rounding = ctx.merchant.rounding
    ctx.decided.extend((d.customer_id, d.decision) for d in plan.decided)
    rows = [decision_values(d, rounding) for d in plan.decided]
    writer.execute(insert(table(DecisionRow)), rows)


def _expire(ctx: Ctx, changed: dict[Rows, dict[int, dict[str, Any]]]) -> None:
    """The session's objects of changed rows read again when next used. Whichever is
    smaller is walked: the session's objects (a chunk of the cycle changes thousands of
    rows the session never loaded) or the rows changed (one call changes a few)."""
    session = ctx.session
    total = sum(len(by_id) for by_id in changed.values())
    if len(session.identity_map) < total:
        models: dict[type, dict[int, dict[str, Any]]] = {
            MODELS[rows]: by_id for rows, by_id in changed.items()
        }
        for obj in list(session.identity_map.values()):
            by_id = models.get(type(obj))
            if by_id is not None and getattr(obj, "id", None) in by_id:
                session.expire(obj)
        return
    for rows, by_id in changed.items():
        model = MODELS[rows]
        for row_id in by_id:
            obj = session.identity_map.get(identity_key(model, row_id))
            if obj is not None:
                session.expire(obj)


def _post_many(ctx: Ctx, txns: list[Transaction], customers: dict[str, int]) -> None:
    """Store balanced transactions once: a key already stored (or repeated in the batch)
    is an idempotency key, skipped; one query for the stored keys, then bulk inserts. Each
    transaction was checked when built; its legs are checked again here, where stored."""
    if not txns:
        return
    seen = set(
        ctx.session.scalars(
            select(JournalTransactionRow.key).where(
                one_of(ctx.session, JournalTransactionRow.key, [t.key for t in txns])
            )
        )
    )
    # A key repeated inside the batch is one post, as it would be across two calls.
    fresh: list[Transaction] = []
    for txn in txns:
        if txn.key not in seen:
            seen.add(txn.key)
            fresh.append(txn)
    for txn in fresh:
        recheck(txn)
    if not fresh:
        return
    conn = ctx.session.connection()
    journal = table(JournalTransactionRow)
    ids = allocate_ids(conn, journal, len(fresh))
    writer = BulkWriter(conn)  # its instants are the txns' own, alive throughout
    writer.execute(
        insert(journal),
        [
            {
                "id": txn_id,
                "merchant_id": ctx.merchant_row.id,
                "key": t.key,
                "at": t.at,
                "description": t.description,
            }
            for t, txn_id in zip(fresh, ids, strict=True)
        ],
    )
    writer.execute(
        insert(table(JournalEntryRow)),
        [
            {
                "transaction_id": txn_id,
                "account": str(leg.account),
                "customer_id": customers.get(txn.key),
                "amount_minor": leg.amount.minor,
                "currency": leg.amount.currency,
            }
            for txn, txn_id in zip(fresh, ids, strict=True)
            for leg in txn.legs
        ],
    )


def recheck(txn: Transaction) -> None:
    """The journal's balance rule again, where the transaction is stored: a transaction
    is frozen, but a forged or mutated one must not reach the ledger."""
    try:
        check_balanced(txn.legs)
    except UnbalancedTransaction as exc:
        raise UnbalancedTransaction(f"refusing to store {txn.key}: {exc}") from None
