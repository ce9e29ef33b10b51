"""One transaction per state change (``api.mutation``): the ``Idempotency-Key`` is
claimed in the work's own transaction, so a request that fails leaves no claim behind,
and a mutation begins exactly one write transaction. On PostgreSQL a key that another
transaction is running answers 409 at once (the claim's advisory lock), never waits."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from fairbill.api import mutation
from fairbill.api.problems import Problem
from fairbill.api.settings import Runtime
from fairbill.services.credential_cache import CredentialCache
from fairbill.services.idempotency import fingerprint
from fairbill.store.tables import IdempotencyKeyRow

from .helpers import Api

PLAN = {"id": "basic", "price": "10.00", "interval_months": 1}


def keys(api: Api) -> list[tuple[str, int | None]]:
    with api.runtime.sessions() as session:
        rows = session.execute(select(IdempotencyKeyRow.key, IdempotencyKeyRow.status_code))
        return sorted((key, status) for key, status in rows)


def test_a_failed_request_leaves_no_claim_and_its_retry_runs(api: Api) -> None:
    m = api.merchant("kalenner")
    m.ok(m.post("/v1/plans", PLAN, headers={"Idempotency-Key": "k-1"}), 201)
    refused = m.post("/v1/plans", PLAN, headers={"Idempotency-Key": "k-2"})  # it exists
    assert refused.status_code == 409
    assert keys(api) == [("k-1", 201)]
    # Nothing of the first k-2 remains: the key runs another request (not 409 reused).
    again = m.post("/v1/plans", PLAN | {"id": "other"}, headers={"Idempotency-Key": "k-2"})
    assert (again.status_code, "Idempotent-Replayed" in again.headers) == (201, False)
    assert keys(api) == [("k-1", 201), ("k-2", 201)]
    assert mutation._RUNNING._keys == set()


def test_a_mutation_begins_one_write_transaction(api: Api) -> None:
    api.runtime.credentials = CredentialCache(60.0)  # as served: no lookup of the key
    m = api.merchant("kalenner")
    m.plan("basic", "10.00")
    engine: Engine = api.runtime.engine
    begun: list[Any] = []

    def count(conn: Any) -> None:
        begun.append(conn)

    event.listen(engine, "begin", count)
    try:
        body = {"id": "c_1", "payment_methods": [{"id": "card_1"}]}
        m.ok(m.post("/v1/customers", body, headers={"Idempotency-Key": "c-1"}), 201)
    finally:
        event.remove(engine, "begin", count)
    # The key's claim, the customer, its card, the audit row and the stored response.
    assert len(begun) == 1
    assert keys(api) == [("c-1", 201)]


# PostgreSQL only: SQLite runs write transactions one at a time, none is ever concurrent.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_key_another_transaction_runs_is_409_at_once_on_postgresql(
    runtime: Runtime,
) -> None:
    digest = fingerprint("POST /v1/plans", PLAN)
    with runtime.sessions() as first, runtime.sessions() as second:
        claim = mutation._claim_in(first, 1, "k", digest, "plan.create", "k")
        assert isinstance(claim, int)
        with pytest.raises(Problem) as running:  # the first has not committed: no wait
            mutation._claim_in(second, 1, "k", digest, "plan.create", "k")
        assert running.value.code == "idempotency_key_in_progress"
        second.rollback()
        mutation._finish(first, claim, {"id": "basic"}, 201)
        first.commit()
        replay = mutation._claim_in(second, 1, "k", digest, "plan.create", "k")
        assert not isinstance(replay, int)
        assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (201, "true")
