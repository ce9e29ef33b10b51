"""The sandbox gateway with its books in the database: a restart changes nothing.

It stands for a processor: what it took and gave back is in ``sandbox_operations``, by
idempotency key, committed in its own transaction (never in the caller's: a processor's
books do not roll back with fairbill's). A token whose payment method is set to decline
(``payment_methods.declines``, the sandbox's test cards) is declined. ``sandbox_faults``
tells it to fail the way real gateways fail, for one token or all, a number of times:

- ``decline``: the charge is declined (``card_declined``), or the refund refused;
- ``timeout_before``: no answer, and nothing was done (the next call with the key does it);
- ``timeout_after``: the money moved, but the answer was lost (``GatewayTimeout``);
- ``connection_error``: the connection failed before anything was sent;
- ``slow``: the answer comes after ``delay_ms``, and is right.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fairbill.errors import GatewayTimeout, GatewayUncertain, GatewayUnreachable
from fairbill.gateway.port import ChargeResult, RefundResult
from fairbill.money import Money
from fairbill.store.bulk import BulkWriter
from fairbill.store.ids import allocate_ids
from fairbill.store.sets import one_of
from fairbill.store.tables import (
    PaymentMethodRow,
    SandboxFaultRow,
    SandboxOperationRow,
    table,
)


class Fault(StrEnum):
    DECLINE = "decline"
    TIMEOUT_BEFORE = "timeout_before"
    TIMEOUT_AFTER = "timeout_after"
    CONNECTION_ERROR = "connection_error"
    SLOW = "slow"


class FaultTarget(StrEnum):
    CHARGE = "charge"
    REFUND = "refund"
    ANY = "any"


class DatabaseSandbox:
    """A ``PaymentGateway`` whose state is rows, so it survives restarts and is shared by
    every process on the database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # -- the port ---------------------------------------------------------------------------
    def charge(self, token: str, amount: Money, idempotency_key: str) -> ChargeResult:
        try:
            return self._charge(token, amount, idempotency_key)
        except IntegrityError:  # the same key, sent at the same time by another caller
            return self.charge(token, amount, idempotency_key)  # now answered by its key

    def charge_many(
        self, charges: Sequence[tuple[str, Money, str]]
    ) -> list[ChargeResult | GatewayUncertain]:
        """``charge`` for each (token, amount, key), booked in one transaction: the same
        rows and answers as one at a time. While a fault is set, or when another caller
        booked one of the keys meanwhile, each goes through ``charge`` instead (faults
        are used up one call at a time, in order)."""
        if charges:
            try:
                with self._sessions() as session:
                    if not _faulty(session):
                        return _book_many(session, charges)
            except IntegrityError:  # a key booked meanwhile: its first answer is the answer
                pass
        return [_uncertain(self.charge, *charge) for charge in charges]

    def refund(self, charge_reference: str, amount: Money, idempotency_key: str) -> RefundResult:
        try:
            return self._refund(charge_reference, amount, idempotency_key)
        except IntegrityError:  # as for charges: the first call's answer is the answer
            return self.refund(charge_reference, amount, idempotency_key)

    def _charge(self, token: str, amount: Money, idempotency_key: str) -> ChargeResult:
        with self._sessions() as session:
            done = _by_key(session, idempotency_key)
            if done is not None:
                return ChargeResult(done.ok, done.reference, done.decline_code)
            fault = _take_fault(session, FaultTarget.CHARGE, token)
            _before(session, fault)
            declined = fault is not None and fault.fault == Fault.DECLINE
            declined = declined or _declines(session, token)
            row = _book(
                session,
                SandboxOperationRow(
                    key=idempotency_key,
                    kind="charge",
                    token=token,
                    amount_minor=amount.minor,
                    currency=amount.currency,
                    ok=not declined,
                    decline_code="card_declined" if declined else None,
                ),
                "ch",
            )
            _after(fault)
            return ChargeResult(row.ok, row.reference, row.decline_code)

    def _refund(self, charge_reference: str, amount: Money, idempotency_key: str) -> RefundResult:
        with self._sessions() as session:
            done = _by_key(session, idempotency_key)
            if done is not None:
                return RefundResult(done.ok, done.reference)
            charge = session.scalar(
                select(SandboxOperationRow).where(
                    SandboxOperationRow.kind == "charge",
                    SandboxOperationRow.reference == charge_reference,
                )
            )
            fault = _take_fault(session, FaultTarget.REFUND, charge.token if charge else None)
            _before(session, fault)
            refused = fault is not None and fault.fault == Fault.DECLINE
            refused = refused or charge is None or not _refundable(session, charge, amount)
            row = _book(
                session,
                SandboxOperationRow(
                    key=idempotency_key,
                    kind="refund",
                    token=charge.token if charge else None,
                    charge_reference=charge_reference,
                    amount_minor=amount.minor,
                    currency=amount.currency,
                    ok=not refused,
                    decline_code="refund_refused" if refused else None,
                ),
                "re",
            )
            _after(fault)
            return RefundResult(row.ok, row.reference)

    # -- telling it how to fail ---------------------------------------------------------------
    def add_fault(
        self,
        fault: Fault,
        *,
        operation: FaultTarget = FaultTarget.ANY,
        token: str | None = None,
        times: int | None = 1,
        delay_ms: int = 0,
    ) -> None:
        with self._sessions() as session:
            session.add(
                SandboxFaultRow(
                    operation=str(operation),
                    token=token,
                    fault=str(fault),
                    remaining=times,
                    delay_ms=delay_ms,
                )
            )
            session.commit()

    def clear_faults(self) -> None:
        with self._sessions() as session:
            for row in session.scalars(select(SandboxFaultRow)):
                session.delete(row)
            session.commit()


def _book(session: Session, row: SandboxOperationRow, prefix: str) -> SandboxOperationRow:
    """Write what the sandbox did, committed at once (its books, not the caller's); an
    operation that moved money gets a reference (``ch_000001``, ``re_000001``)."""
    row.at = datetime.now(UTC)
    session.add(row)
    session.flush()
    if row.ok:
        row.reference = f"{prefix}_{row.id:06d}"
    session.commit()
    return row


def _book_many(
    session: Session, charges: Sequence[tuple[str, Money, str]]
) -> list[ChargeResult | GatewayUncertain]:
    """Book the charges whose keys are new (a key seen twice in ``charges`` once) and
    answer every one from the books; committed."""
    box = SandboxOperationRow
    keys = [key for _, _, key in charges]
    done = {
        row.key: row for row in session.scalars(select(box).where(one_of(session, box.key, keys)))
    }
    tokens = {token for token, _, _ in charges}
    declining = set(
        session.scalars(
            select(PaymentMethodRow.token).where(
                one_of(session, PaymentMethodRow.token, tokens), PaymentMethodRow.declines
            )
        )
    )
    answers = {
        key: ChargeResult(row.ok, row.reference, row.decline_code) for key, row in done.items()
    }
    fresh = {key: (token, amount) for token, amount, key in charges if key not in done}
    conn = session.connection()
    ids = allocate_ids(conn, table(box), len(fresh))
    at = datetime.now(UTC)
    rows: list[dict[str, object]] = []
    for row_id, (key, (token, amount)) in zip(ids, fresh.items(), strict=True):
        ok = token not in declining
        answer = answers[key] = ChargeResult(
            ok, f"ch_{row_id:06d}" if ok else None, None if ok else "card_declined"
        )
        rows.append(
            {
                "id": row_id,
                "key": key,
                "kind": "charge",
                "token": token,
                "charge_reference": None,
                "amount_minor": amount.minor,
                "currency": amount.currency,
                "ok": ok,
                "reference": answer.reference,
                "decline_code": answer.decline_code,
                "at": at,
            }
        )
    BulkWriter(conn).execute(insert(table(box)), rows)
    session.commit()
    return [answers[key] for key in keys]


def _faulty(session: Session) -> bool:
    """Whether any fault is set that may still strike."""
    live = or_(SandboxFaultRow.remaining.is_(None), SandboxFaultRow.remaining > 0)
    return session.scalar(select(SandboxFaultRow.id).where(live).limit(1)) is not None


def _uncertain(
    charge: Callable[[str, Money, str], ChargeResult], token: str, amount: Money, key: str
) -> ChargeResult | GatewayUncertain:
    try:
        return charge(token, amount, key)
    except GatewayUncertain as exc:
        return exc


def _by_key(session: Session, key: str) -> SandboxOperationRow | None:
    return session.scalar(select(SandboxOperationRow).where(SandboxOperationRow.key == key))


def _declines(session: Session, token: str) -> bool:
    return bool(
        session.scalar(
            select(PaymentMethodRow.declines).where(PaymentMethodRow.token == token).limit(1)
        )
    )


def _refundable(session: Session, charge: SandboxOperationRow, amount: Money) -> bool:
    refunds = session.scalars(
        select(SandboxOperationRow.amount_minor).where(
            SandboxOperationRow.kind == "refund",
            SandboxOperationRow.ok.is_(True),
            SandboxOperationRow.charge_reference == charge.reference,
        )
    )
    return charge.ok and sum(refunds) + amount.minor <= charge.amount_minor


def _take_fault(session: Session, target: FaultTarget, token: str | None) -> SandboxFaultRow | None:
    """The first fault that applies, used up by one (its count goes down in the same
    transaction as the operation it spoils)."""
    fault = session.scalar(
        select(SandboxFaultRow)
        .where(
            SandboxFaultRow.operation.in_((str(target), str(FaultTarget.ANY))),
            or_(SandboxFaultRow.token.is_(None), SandboxFaultRow.token == token),
            or_(SandboxFaultRow.remaining.is_(None), SandboxFaultRow.remaining > 0),
        )
        .order_by(SandboxFaultRow.id)
        .limit(1)
    )
    if fault is not None and fault.remaining is not None:
        fault.remaining -= 1
    return fault


def _before(session: Session, fault: SandboxFaultRow | None) -> None:
    """Faults that strike before anything is done: the used-up count is kept."""
    if fault is None:
        return
    if fault.fault == Fault.SLOW:
        time.sleep(fault.delay_ms / 1000)
    elif fault.fault == Fault.TIMEOUT_BEFORE:
        session.commit()
        raise GatewayTimeout("the sandbox did not answer (nothing was done)")
    elif fault.fault == Fault.CONNECTION_ERROR:
        session.commit()
        raise GatewayUnreachable("the sandbox refused the connection")


def _after(fault: SandboxFaultRow | None) -> None:
    """Faults that strike once the money moved: the answer is lost."""
    if fault is not None and fault.fault == Fault.TIMEOUT_AFTER:
        raise GatewayTimeout("the sandbox's answer was lost (the operation was done)")
