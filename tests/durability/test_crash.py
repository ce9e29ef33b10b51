"""A process that dies between deciding and committing leaves no half state.

A spawned child cancels a VoIP subscription at once: one transaction that records the
decision, pays the unused days back (refund row, payment's refunded amount, a journal
transaction, notifications) and ends the subscription. It dies before the commit, either
killed (SIGKILL) after flushing every row to the database, or by ``os._exit(1)`` as
``Session.commit`` is called. Nothing of it may remain; the same call then runs to
completion once, and everything is there exactly once.
"""

from __future__ import annotations

import multiprocessing
import signal
from datetime import datetime

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from .world import Ids, build_world, cancel_process, trace

START = "2026-03-01T00:00-05:00"
# voip-immediate-cancel: 50.00 × 21/31 unused days (Mar 11..31) = 33.87, paid at once.
CANCEL_AT = "2026-03-11T09:00-04:00"
REFUND = 3387


def run_child(url: str, ids: Ids, crash: str) -> int | None:
    child = multiprocessing.get_context("spawn").Process(
        target=cancel_process, args=(url, ids, CANCEL_AT, crash)
    )
    child.start()
    child.join(timeout=60)
    if child.is_alive():  # pragma: no cover - a hung child of this test
        child.kill()
        pytest.fail("the child did not finish")
    return child.exitcode


@pytest.mark.parametrize(
    ("crash", "exitcode"),
    [("kill", -signal.SIGKILL), ("exit-in-commit", 1)],
    ids=["sigkill-after-flush", "exit-in-commit"],
)
def test_a_crash_before_commit_leaves_no_half_state(
    migrated_url: str, engine: Engine, crash: str, exitcode: int
) -> None:
    ids = build_world(migrated_url, "voip", price="50.00", start=datetime.fromisoformat(START))

    assert run_child(migrated_url, ids, crash) == exitcode

    before = trace(engine, ids)
    assert before.subscription_status == "active"
    assert before.refunded_minor == 0
    assert before.refunds == []
    assert before.cancel_decisions == []
    assert before.journal_transactions == 0 and before.journal_entries == 0
    assert before.confirmations == 0
    assert before.ledger_balanced
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"

    # The same call, to completion, here (the dead child's locks are gone, or this would
    # wait for them, and on SQLite fail after the busy timeout).
    cancel_process(migrated_url, ids, CANCEL_AT, "none")

    after = trace(engine, ids)
    assert after.subscription_status == "canceled"
    assert after.refunded_minor == REFUND
    assert after.refunds == [REFUND]
    assert after.cancel_decisions == [("cancel", REFUND)]
    assert after.journal_transactions == 1 and after.journal_entries == 2
    assert after.confirmations == 2  # cancellation_confirmed and refund_paid, once each
    assert after.ledger_balanced
