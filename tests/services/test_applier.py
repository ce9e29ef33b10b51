"""The applier: one writer of plans, for one call or a chunk."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from fairbill.ledger.accounts import Account
from fairbill.ledger.journal import transfer
from fairbill.money import Money
from fairbill.plans.effects import Joined, Plan, Rows
from fairbill.services import applier, billing_cycle, operations
from fairbill.store.tables import (
    CustomerRow,
    GatewayOperationRow,
    InvoiceLineRow,
    InvoiceRow,
    JournalTransactionRow,
)

from .test_billing_cycle import START, _snapshot, _world


def _invoice(customer_id: int, number: int) -> dict[str, object]:
    return {
        "customer_id": customer_id,
        "subscription_id": None,
        "number": number,
        "issued_at": START,
        "currency": "EUR",
        "total_minor": 500,
        "wallet_applied_minor": 0,
        "credit_applied_minor": 0,
        "amount_paid_minor": 0,
        "overcharge_minor": 0,
        "status": "open",
        "period_start": None,
        "period_end": None,
        "purpose": "product",
    }


def test_refs_and_keys_are_resolved_changes_folded_and_charges_registered() -> None:
    ctx, _ = _world(set())
    customer = ctx.session.scalars(select(CustomerRow)).first()
    assert customer is not None
    plan = Plan()
    ref = plan.insert(Rows.INVOICES, _invoice(customer.id, 90), ref=True)
    assert ref is not None
    plan.insert(
        Rows.INVOICE_LINES,
        {
            "invoice_id": ref,
            "kind": "product",
            "description": "x",
            "amount_minor": 500,
            "period_start": None,
            "period_end": None,
        },
    )
    plan.change(Rows.INVOICES, ref, status="paid")  # folded into the insert
    plan.insert(
        Rows.GATEWAY_OPERATIONS,
        {
            "merchant_id": ctx.merchant_row.id,
            "customer_id": customer.id,
            "kind": "charge",
            "purpose": "purchase",
            "status": "pending",
            "key": Joined(("charge", ref, 1)),
            "invoice_id": ref,
            "subscription_id": None,
            "token": "t",
            "method": "card",
            "amount_minor": 500,
            "currency": "EUR",
            "settled_minor": 500,
            "attempt": 1,
            "tries": 0,
            "created_at": START,
            "updated_at": START,
            "details": {},
        },
    )
    ctx.session.info.pop(operations.PENDING, None)
    applied = applier.apply(ctx, plan)
    invoice = ctx.session.get_one(InvoiceRow, applied[ref])
    assert invoice.status == "paid" and invoice.number == 90
    line = ctx.session.scalar(select(InvoiceLineRow).where(InvoiceLineRow.invoice_id == invoice.id))
    assert line is not None
    op = ctx.session.scalar(
        select(GatewayOperationRow).where(GatewayOperationRow.invoice_id == invoice.id)
    )
    assert op is not None and op.key == f"charge:{invoice.id}:1"
    assert ctx.session.info[operations.PENDING] == [op.id]


def test_changes_to_one_row_merge_in_order_and_loaded_objects_see_them() -> None:
    ctx, _ = _world(set())
    customer = ctx.session.scalars(select(CustomerRow)).first()
    assert customer is not None and customer.wallet_minor == 0
    plan = Plan()
    plan.change(Rows.CUSTOMERS, customer.id, wallet_minor=100, language="en")
    plan.change(Rows.CUSTOMERS, customer.id, wallet_minor=300)
    applier.apply(ctx, plan)
    assert (customer.wallet_minor, customer.language) == (300, "en")  # expired, read again


def test_a_posting_is_stored_once_by_its_key() -> None:
    ctx, _ = _world(set())
    txn = transfer("k:1", START, "t", Account.CASH, Account.REVENUE, Money.from_minor(5, "EUR"))
    for _ in range(2):
        plan = Plan()
        plan.post(txn, None)
        applier.apply(ctx, plan)
    keys = ctx.session.scalars(
        select(JournalTransactionRow.key).where(JournalTransactionRow.key == "k:1")
    )
    assert list(keys) == ["k:1"]


@pytest.mark.parametrize("chunk", [1, 4])
def test_a_chunk_of_renewals_writes_what_renewals_one_plan_each_write(chunk: int) -> None:
    results = []
    for size in (chunk, 6):
        ctx, clock = _world({2})
        clock.advance_to(START + timedelta(days=40))
        billing_cycle.renew_due(ctx, chunk_size=size)
        operations.commit_and_settle(ctx)
        results.append(_snapshot(ctx))
    assert results[0] == results[1]
    # Six first invoices, and renewals of the four monthly subscriptions in good standing
    # (the annual one is not due; the declined card left one past due).
    assert len(results[0]["invoices"]) == 10


def test_a_plan_changing_more_rows_than_the_session_holds_still_refreshes_what_it_holds() -> None:
    ctx, _ = _world(set())
    ids = list(ctx.session.scalars(select(CustomerRow.id)))
    ctx.session.expunge_all()
    held = ctx.session.get_one(CustomerRow, ids[-1])
    assert len(ctx.session.identity_map) < len(ids)  # the walk goes over the session
    plan = Plan()
    for customer_id in ids:
        plan.change(Rows.CUSTOMERS, customer_id, wallet_minor=customer_id * 10)
    applier.apply(ctx, plan)
    assert held.wallet_minor == ids[-1] * 10
