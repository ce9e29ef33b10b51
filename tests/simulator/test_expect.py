"""Partial matching of a result against `expect:`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fairbill.simulator.expect import MISSING, Mismatch, first_mismatch

RESULT: dict[str, Any] = {
    "format": "fairbill.result/1",
    "currency": "EUR",
    "customer": {"id": "cus_1", "status": "active", "data_deleted_at": None},
    "subscriptions": [
        {
            "id": "sub_1",
            "plan": "pro-annual",
            "status": "canceled",
            "ended_at": "2026-05-10T09:00:00+02:00",
        }
    ],
    "invoices": [
        {"number": 1, "total": "240.00", "status": "paid"},
        {"number": 2, "total": "10.00", "status": "open"},
    ],
    "refunds": [
        {"amount": "100.00", "destination": "original_method", "payment": 1},
        {"amount": "60.00", "destination": "wallet", "payment": 1},
    ],
    "requests": [
        {
            "number": 1,
            "decision": "needs_review",
            "recommendation": {"decision": "approved", "amount": "55.44"},
        }
    ],
    "wallet": {"balance": "60.00", "entries": []},
    "ledger": {"balanced": True},
}


def test_everything_listed_matches() -> None:
    expect = {
        "subscriptions": [{"status": "canceled"}],
        "invoices": [{"number": 1}, {"total": "10.00"}],
        "customer": {"status": "active", "data_deleted_at": None},
        "ledger": {"balanced": True},
        "refunds_total": "160.00",
        "wallet_balance": "60.00",
    }
    assert first_mismatch(expect, RESULT) is None
    assert first_mismatch({}, RESULT) is None


def test_partial_mapping_mismatch_and_missing_key() -> None:
    assert first_mismatch({"customer": {"status": "closed"}}, RESULT) == Mismatch(
        "customer.status", "closed", "active"
    )
    assert first_mismatch({"customer": {"language": "fr"}}, RESULT) == Mismatch(
        "customer.language", "fr", MISSING
    )
    assert first_mismatch({"credit_notes": []}, RESULT) == Mismatch("credit_notes", [], MISSING)


def test_nested_mapping_path() -> None:
    expect = {"requests": [{"recommendation": {"amount": "55.45"}}]}
    assert first_mismatch(expect, RESULT) == Mismatch(
        "requests[0].recommendation.amount", "55.45", "55.44"
    )


def test_list_length_mismatch() -> None:
    found = first_mismatch({"invoices": [{"number": 1}]}, RESULT)
    assert found == Mismatch("invoices (length)", 1, 2)


def test_list_element_mismatch_path() -> None:
    expect = {"refunds": [{"amount": "100.00"}, {"destination": "original_method"}]}
    found = first_mismatch(expect, RESULT)
    assert found == Mismatch("refunds[1].destination", "original_method", "wallet")
    assert str(found) == "refunds[1].destination: expected 'original_method', got 'wallet'"


def test_first_mismatch_in_file_order() -> None:
    expect = {
        "invoices": [{"number": 1}, {"number": 3}],
        "subscriptions": [{"status": "active"}],
    }
    assert first_mismatch(expect, RESULT) == Mismatch("invoices[1].number", 3, 2)
    reordered = {"subscriptions": expect["subscriptions"], "invoices": expect["invoices"]}
    found = first_mismatch(reordered, RESULT)
    assert found is not None and found.path == "subscriptions[0].status"


def test_refunds_total() -> None:
    assert first_mismatch({"refunds_total": "160.0"}, RESULT) is None
    assert first_mismatch({"refunds_total": "150.00"}, RESULT) == Mismatch(
        "refunds_total", "150.00", "160.00"
    )
    no_refunds = {**RESULT, "refunds": []}
    assert first_mismatch({"refunds_total": "0.00"}, no_refunds) is None
    assert first_mismatch({"refunds_total": "5.00"}, no_refunds) == Mismatch(
        "refunds_total", "5.00", "0.00"
    )


def test_wallet_balance() -> None:
    assert first_mismatch({"wallet_balance": "60"}, RESULT) is None
    assert first_mismatch({"wallet_balance": "0.00"}, RESULT) == Mismatch(
        "wallet_balance", "0.00", "60.00"
    )
    assert first_mismatch({"wallet_balance": "0.00"}, {"refunds": []}) == Mismatch(
        "wallet_balance", "0.00", MISSING
    )


def test_decimal_normalisation() -> None:
    assert first_mismatch({"invoices": [{"total": "240"}, {"total": "10.000"}]}, RESULT) is None
    assert first_mismatch({"invoices": [{"total": "240.01"}, {}]}, RESULT) is not None
    # a Decimal (from Python callers) compares as an amount too
    assert first_mismatch({"wallet_balance": Decimal("60.00")}, RESULT) is None
    # an integer is not money text: it does not match "240.00"
    assert first_mismatch({"invoices": [{"total": 240}, {}]}, RESULT) == Mismatch(
        "invoices[0].total", 240, "240.00"
    )


def test_timestamp_equality() -> None:
    same = {"subscriptions": [{"ended_at": "2026-05-10T09:00:00+02:00"}]}
    assert first_mismatch(same, RESULT) is None
    same_instant = {"subscriptions": [{"ended_at": "2026-05-10T07:00:00Z"}]}
    assert first_mismatch(same_instant, RESULT) is None
    other = {"subscriptions": [{"ended_at": "2026-05-10T09:00:00+01:00"}]}
    assert first_mismatch(other, RESULT) == Mismatch(
        "subscriptions[0].ended_at", "2026-05-10T09:00:00+01:00", "2026-05-10T09:00:00+02:00"
    )
    naive = {"subscriptions": [{"ended_at": "2026-05-10T09:00:00"}]}
    assert first_mismatch(naive, RESULT) is not None


def test_float_expected_is_a_mismatch() -> None:
    found = first_mismatch({"refunds_total": 160.0}, RESULT)
    assert found is not None and found.path == "refunds_total"
    assert found.expected == 160.0 and found.actual == "160.00"
    assert "float" in found.reason and "float" in str(found)
    found = first_mismatch({"invoices": [{"total": 240.0}, {}]}, RESULT)
    assert found is not None and found.path == "invoices[0].total" and found.reason


def test_bool_is_not_an_int() -> None:
    assert first_mismatch({"ledger": {"balanced": 1}}, RESULT) == Mismatch(
        "ledger.balanced", 1, True
    )
    assert first_mismatch({"invoices": [{"number": True}, {}]}, RESULT) is not None


def test_type_mismatches() -> None:
    assert first_mismatch({"customer": ["cus_1"]}, RESULT) == Mismatch(
        "customer", ["cus_1"], RESULT["customer"]
    )
    assert first_mismatch({"invoices": {"number": 1}}, RESULT) == Mismatch(
        "invoices", {"number": 1}, RESULT["invoices"]
    )
    assert first_mismatch({"customer": {"data_deleted_at": "2026-01-01"}}, RESULT) is not None
