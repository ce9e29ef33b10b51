"""The API's idempotency claims, as the service writes them (``services.idempotency``):
``claim`` inserts a key's row leased to this process, or tells what the row there says
(``Finished``, ``Reused``, ``Running``, or ``Claimed`` again when it was abandoned);
``finish`` stores the response only while this process holds the claim; and
``replace_result`` stores a response rendered again. On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from fairbill.services import idempotency
from fairbill.services.idempotency import (
    LEASE,
    Claimed,
    Finished,
    Reused,
    Running,
    process_owner,
    wall_now,
)
from fairbill.store.db import create_schema, make_engine, session_factory
from fairbill.store.migrate import upgrade
from fairbill.store.tables import IdempotencyKeyRow

DIGEST = "a" * 64


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest) -> Iterator[sessionmaker[Session]]:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        upgrade(url)
        engine = make_engine(url)
    else:
        engine = make_engine("sqlite://")
        create_schema(engine)
    yield session_factory(engine)
    engine.dispose()


def claimed(sessions: sessionmaker[Session], key: str = "k") -> int:
    """Claim ``key`` and commit the claim unfinished; its row's id."""
    with sessions() as session:
        claim = idempotency.claim(session, 1, key, DIGEST, "plan.create", wall_now())
        session.commit()
    assert isinstance(claim, Claimed)
    return claim.id


def row(sessions: sessionmaker[Session], key: str = "k") -> IdempotencyKeyRow:
    with sessions() as session:
        found = session.scalar(select(IdempotencyKeyRow).where(IdempotencyKeyRow.key == key))
        assert found is not None
        return found


def test_a_new_key_is_claimed_for_this_process_for_a_lease(
    sessions: sessionmaker[Session],
) -> None:
    before = wall_now()
    claimed(sessions)
    seen = row(sessions)
    assert (seen.owner, seen.status_code, seen.result) == (process_owner(), None, {})
    assert seen.locked_until is not None
    assert seen.locked_until.replace(tzinfo=None) >= (before + LEASE).replace(tzinfo=None)


def test_a_finished_key_answers_its_stored_response(sessions: sessionmaker[Session]) -> None:
    claim = claimed(sessions)
    with sessions() as session:
        assert idempotency.finish(session, claim, {"id": "basic"}, 201)
        session.commit()
    with sessions() as session:
        again = idempotency.claim(session, 1, "k", DIGEST, "plan.create", wall_now())
    assert again == Finished({"id": "basic"}, 201)


def test_a_key_used_with_another_request_is_reused(sessions: sessionmaker[Session]) -> None:
    claimed(sessions)
    with sessions() as session:
        other = idempotency.claim(session, 1, "k", "b" * 64, "plan.create", wall_now())
    assert other == Reused()


def test_a_claim_held_by_a_live_process_within_its_lease_is_running(
    sessions: sessionmaker[Session],
) -> None:
    claim = claimed(sessions)
    with sessions() as session:
        session.execute(
            update(IdempotencyKeyRow)
            .where(IdempotencyKeyRow.id == claim)
            .values(owner="elsewhere:1:ab", locked_until=wall_now() + LEASE)
        )
        session.commit()
    with sessions() as session:
        assert idempotency.claim(session, 1, "k", DIGEST, "plan.create", wall_now()) == Running()
        # Past its lease, the same claim is abandoned: taken over, the same row.
        later = wall_now() + LEASE + timedelta(seconds=1)
        assert idempotency.claim(session, 1, "k", DIGEST, "plan.create", later) == Claimed(claim)
        session.commit()
    assert row(sessions).owner == process_owner()


def test_finish_stores_nothing_once_another_process_took_the_claim(
    sessions: sessionmaker[Session],
) -> None:
    claim = claimed(sessions)
    with sessions() as session:
        session.execute(update(IdempotencyKeyRow).values(owner="elsewhere:7:0123456789ab"))
        assert not idempotency.finish(session, claim, {"id": "basic"}, 201)
        session.commit()
    seen = row(sessions)
    assert (seen.owner, seen.status_code, seen.result) == ("elsewhere:7:0123456789ab", None, {})


def test_replace_result_rewrites_a_finished_response(sessions: sessionmaker[Session]) -> None:
    claim = claimed(sessions)
    with sessions() as session:
        assert idempotency.finish(session, claim, {"status": "pending"}, 201)
        idempotency.replace_result(session, claim, {"status": "paid"})
        session.commit()
    seen = row(sessions)
    assert (seen.result, seen.status_code) == ({"status": "paid"}, 201)
