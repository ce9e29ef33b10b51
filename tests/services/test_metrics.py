"""Gateway outcomes are counted when their transaction commits, never when it rolls back,
by kind: charges (renewals among them) and refunds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session

from fairbill.services import metrics
from fairbill.store.db import make_engine


@pytest.fixture
def session() -> Iterator[Session]:
    engine = make_engine("sqlite://")
    with Session(engine) as s:
        yield s
    engine.dispose()


def _count(name: str, outcome: str) -> float:
    return REGISTRY.get_sample_value(f"fairbill_{name}_total", {"outcome": outcome}) or 0.0


def test_outcome_labels() -> None:
    assert metrics.outcome("charge", "succeeded") == "succeeded"
    assert metrics.outcome("charge", "failed") == "declined"
    assert metrics.outcome("refund", "pending") == "refused"
    assert metrics.outcome("refund", "failed") == "failed"
    assert metrics.outcome("refund", "unknown") == "unknown"


def test_counted_on_commit_dropped_on_rollback(session: Session) -> None:
    before = {
        k: _count(*k)
        for k in (("charges", "succeeded"), ("renewals", "succeeded"), ("refunds", "refused"))
    }
    session.connection()  # a transaction
    metrics.count_outcomes(session, {("charge", "renewal", "succeeded"): 3})
    metrics.count_outcome(session, "refund", "refund", "pending")
    session.rollback()
    session.connection()
    metrics.count_outcomes(session, {("charge", "first", "succeeded"): 2})
    assert _count("charges", "succeeded") == before["charges", "succeeded"]  # not yet
    metrics.count_outcomes(session, {("charge", "renewal", "succeeded"): 1})
    session.commit()
    assert _count("charges", "succeeded") == before["charges", "succeeded"] + 3
    assert _count("renewals", "succeeded") == before["renewals", "succeeded"] + 1
    assert _count("refunds", "refused") == before["refunds", "refused"]
    session.connection()
    metrics.count_outcome(session, "refund", "refund", "pending")
    session.close()  # ended without a commit: not counted, and not left for the next one
    session.commit()
    assert _count("refunds", "refused") == before["refunds", "refused"]
