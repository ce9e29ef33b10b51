"""The chart of accounts. Names are stable: stored entries refer to them."""

from __future__ import annotations

from enum import StrEnum


class Account(StrEnum):
    CASH = "cash"  # the processor's settlement balance
    RECEIVABLE = "customer_receivable"  # invoiced, not yet paid (negative: we owe the customer)
    REVENUE = "revenue"
    WALLET = "wallet_liability"  # customer balance held for future invoices
    CREDIT_NOTES = "credit_notes"  # contra-revenue: prorated credits
    REFUNDS = "refunds"  # contra-revenue: money given back for service
    COMPENSATION = "compensation"  # outage credits and goodwill
    CHARGEBACKS = "chargebacks"
    FEES = "fee_revenue"  # fees withheld from refunds
    FX = "fx_clearing"  # where a payment in another currency meets the invoice's currency
