"""The database sandbox's charges in a batch: the same books and answers as one at a time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fairbill.errors import GatewayTimeout
from fairbill.gateway.port import ChargeResult, ChargesInBatches
from fairbill.gateway.sandbox_db import DatabaseSandbox, Fault, FaultTarget
from fairbill.money import Money
from fairbill.store.db import create_schema, make_engine, session_factory
from fairbill.store.tables import CustomerRow, MerchantRow, PaymentMethodRow, SandboxOperationRow

EUR = Money("29.00", "EUR")


@pytest.fixture
def sessions() -> Iterator[sessionmaker[Session]]:
    engine = make_engine("sqlite://")
    create_schema(engine)
    made = session_factory(engine)
    with made() as session:
        merchant = MerchantRow(
            name="m",
            policy_ref="kalenner",
            policy_id="kalenner",
            policy_version="1",
            currency="EUR",
            timezone="Europe/Paris",
            country="FR",
            language="fr",
        )
        session.add(merchant)
        session.flush()
        customer = CustomerRow(merchant_id=merchant.id, code="c", flags=[])
        session.add(customer)
        session.flush()
        for token, declines in (("tok_ok", False), ("tok_bad", True)):
            session.add(
                PaymentMethodRow(
                    customer_id=customer.id,
                    code=token,
                    currency="EUR",
                    token=token,
                    declines=declines,
                )
            )
        session.commit()
    yield made
    engine.dispose()


def _books(sessions: sessionmaker[Session]) -> list[tuple[str, bool, str | None]]:
    with sessions() as session:
        rows = session.scalars(select(SandboxOperationRow).order_by(SandboxOperationRow.id))
        return [(r.key, r.ok, r.reference) for r in rows]


def test_a_batch_books_each_new_key_once_and_answers_as_one_at_a_time(
    sessions: sessionmaker[Session],
) -> None:
    gateway = DatabaseSandbox(sessions)
    assert isinstance(gateway, ChargesInBatches)
    first = gateway.charge("tok_ok", EUR, "k0")
    answers = gateway.charge_many(
        [("tok_ok", EUR, "k1"), ("tok_bad", EUR, "k2"), ("tok_ok", EUR, "k1"), ("x", EUR, "k0")]
    )
    assert answers == [
        ChargeResult(True, "ch_000002"),
        ChargeResult(False, None, "card_declined"),
        ChargeResult(True, "ch_000002"),
        first,  # a key booked before is answered from the books
    ]
    assert gateway.charge("tok_ok", EUR, "k1") == answers[0]
    assert _books(sessions) == [
        ("k0", True, "ch_000001"),
        ("k1", True, "ch_000002"),
        ("k2", False, None),
    ]


def test_while_a_fault_is_set_each_charge_goes_one_at_a_time(
    sessions: sessionmaker[Session],
) -> None:
    gateway = DatabaseSandbox(sessions)
    gateway.add_fault(Fault.TIMEOUT_BEFORE, operation=FaultTarget.CHARGE, times=1)
    gateway.add_fault(Fault.DECLINE, operation=FaultTarget.CHARGE, times=1)
    answers = gateway.charge_many([("tok_ok", EUR, f"k{i}") for i in range(3)])
    assert isinstance(answers[0], GatewayTimeout)  # in its place, not raised
    assert answers[1:] == [
        ChargeResult(False, None, "card_declined"),
        ChargeResult(True, "ch_000002"),
    ]
    # Nothing was done under k0: asked again (no fault left), it is booked now.
    assert gateway.charge_many([("tok_ok", EUR, "k0")]) == [ChargeResult(True, "ch_000003")]
