"""Idempotency keys that recover: a claim is a lease held by a process.

A key left in progress by a request whose process died (its owner is a dead process of
this host, an earlier process with this pid, or its lease is over) is taken over by a
retry, which runs the request and is replayed afterwards; a claim held by a live process
within its lease still answers 409. A request that outlived its claim does not commit.
``release_abandoned`` (also run when the app starts) deletes only abandoned unfinished
claims; ``prune_keys`` only finished keys older than 24 hours.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update

from fairbill.api import mutation
from fairbill.api.app import create_app
from fairbill.api.settings import Runtime
from fairbill.services import merchants as merchant_service
from fairbill.services.idempotency import (
    LEASE,
    owner_is_dead,
    process_owner,
    prune_keys,
    release_abandoned,
    wall_now,
)
from fairbill.store.db import create_schema, make_engine
from fairbill.store.tables import IdempotencyKeyRow, PlanRow

from .helpers import Api, Merchant

PLAN = {"id": "basic", "price": "10.00", "interval_months": 1}
HOST = process_owner().rsplit(":", 2)[0]


def key_header(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


@pytest.fixture
def live_pid() -> Iterator[int]:
    """A process of this host that runs for the test."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process of this host that has ended (and was reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def key_row(api: Api, key: str) -> IdempotencyKeyRow | None:
    with api.runtime.sessions() as session:
        return session.scalar(select(IdempotencyKeyRow).where(IdempotencyKeyRow.key == key))


def left_running(
    api: Api, m: Merchant, key: str, owner: str | None, locked_until: datetime | None
) -> dict[str, Any]:
    """Create the plan with ``key``, then put the database back as a request killed
    mid-work leaves it: its work rolled back, its claim unfinished and held by ``owner``.
    Returns the response the request gave."""
    body: dict[str, Any] = m.ok(m.post("/v1/plans", PLAN, headers=key_header(key)), 201)
    with api.runtime.sessions() as session:
        session.execute(delete(PlanRow).where(PlanRow.code == PLAN["id"]))
        session.execute(
            update(IdempotencyKeyRow)
            .where(IdempotencyKeyRow.key == key)
            .values(status_code=None, result={}, owner=owner, locked_until=locked_until)
        )
        session.commit()
    return body


def assert_taken_over(m: Merchant, key: str, first: dict[str, Any]) -> None:
    """A retry runs the request again and answers as the first did; the next replays."""
    retried = m.post("/v1/plans", PLAN, headers=key_header(key))
    assert retried.status_code == 201, retried.text
    assert retried.json() == first
    assert "Idempotent-Replayed" not in retried.headers
    assert [p["id"] for p in m.ok(m.get("/v1/plans"))["data"]] == ["basic"]
    replayed = m.post("/v1/plans", PLAN, headers=key_header(key))
    assert (replayed.status_code, replayed.json()) == (201, first)
    assert replayed.headers["Idempotent-Replayed"] == "true"


# -- a retry takes over an abandoned claim ---------------------------------------------------


def test_a_claim_of_a_dead_process_of_this_host_is_taken_over(api: Api, dead_pid: int) -> None:
    m = api.merchant("kalenner")
    first = left_running(api, m, "k-dead", f"{HOST}:{dead_pid}:0123456789ab", wall_now() + LEASE)
    assert_taken_over(m, "k-dead", first)
    row = key_row(api, "k-dead")
    assert row is not None and row.owner == process_owner() and row.status_code == 201


def test_a_claim_of_an_earlier_process_with_this_pid_is_taken_over(api: Api) -> None:
    m = api.merchant("kalenner")
    pid = process_owner().rsplit(":", 2)[1]
    first = left_running(api, m, "k-pid", f"{HOST}:{pid}:earlier0boot", wall_now() + LEASE)
    assert_taken_over(m, "k-pid", first)


def test_a_claim_past_its_lease_is_taken_over(api: Api) -> None:
    m = api.merchant("kalenner")
    first = left_running(api, m, "k-late", "elsewhere:42:0123456789ab", wall_now())
    assert_taken_over(m, "k-late", first)


def test_a_claim_of_this_process_that_no_request_runs_is_taken_over(api: Api) -> None:
    """Its release failed (the database was away when the work raised)."""
    m = api.merchant("kalenner")
    first = left_running(api, m, "k-mine", process_owner(), wall_now() + LEASE)
    assert_taken_over(m, "k-mine", first)


def test_a_claim_from_before_leases_is_taken_over(api: Api) -> None:
    m = api.merchant("kalenner")
    first = left_running(api, m, "k-old", None, None)
    assert_taken_over(m, "k-old", first)


def test_a_taken_over_claim_still_checks_the_request(api: Api, dead_pid: int) -> None:
    m = api.merchant("kalenner")
    left_running(api, m, "k-body", f"{HOST}:{dead_pid}:0123456789ab", wall_now() + LEASE)
    other = m.post("/v1/plans", PLAN | {"price": "11.00"}, headers=key_header("k-body"))
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")


# -- a live claim within its lease still answers 409 -------------------------------------------


@pytest.mark.parametrize("where", ["this host", "another host"])
def test_a_live_claim_within_its_lease_answers_409(api: Api, live_pid: int, where: str) -> None:
    m = api.merchant("kalenner")
    owner = f"{HOST}:{live_pid}:0123456789ab" if where == "this host" else "elsewhere:1:ab"
    left_running(api, m, "k-live", owner, wall_now() + LEASE)
    retried = m.post("/v1/plans", PLAN, headers=key_header("k-live"))
    assert (retried.status_code, retried.json()["code"]) == (409, "idempotency_key_in_progress")
    assert m.ok(m.get("/v1/plans"))["data"] == []
    row = key_row(api, "k-live")
    assert row is not None and row.owner == owner and row.status_code is None


def test_a_request_that_outlived_its_claim_does_not_commit(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process took the claim over while the work ran (its lease had ended): the
    work rolls back, and the claim stays the other process's."""
    m = api.merchant("kalenner")
    add_plan: Callable[..., PlanRow] = merchant_service.add_plan

    def taken_over_meanwhile(session: Any, *args: Any) -> PlanRow:
        session.execute(update(IdempotencyKeyRow).values(owner="elsewhere:7:0123456789ab"))
        return add_plan(session, *args)

    monkeypatch.setattr(merchant_service, "add_plan", taken_over_meanwhile)
    lost = m.post("/v1/plans", PLAN, headers=key_header("k-lost"))
    assert (lost.status_code, lost.json()["code"]) == (409, "idempotency_key_in_progress")
    monkeypatch.undo()
    assert m.ok(m.get("/v1/plans"))["data"] == []
    assert m.ok(m.post("/v1/plans", PLAN, headers=key_header("k-other")), 201)


# -- release_abandoned, at start and on its own ----------------------------------------------


def add_key(
    runtime: Runtime,
    key: str,
    *,
    status: int | None = None,
    owner: str | None = None,
    locked_until: datetime | None = None,
    age: timedelta = timedelta(0),
) -> None:
    with runtime.sessions() as session:
        session.add(
            IdempotencyKeyRow(
                merchant_id=1,
                key=key,
                operation="plan.create",
                fingerprint="f" * 64,
                result={"id": key} if status else {},
                status_code=status,
                created_at=wall_now() - age,
                owner=owner,
                locked_until=locked_until,
            )
        )
        session.commit()


def keys(runtime: Runtime) -> list[str]:
    with runtime.sessions() as session:
        return sorted(session.scalars(select(IdempotencyKeyRow.key)))


def add_claims(runtime: Runtime, dead_pid: int, live_pid: int) -> None:
    """Abandoned: ``late``, ``dead``, ``reborn``; the rest are kept."""
    now = wall_now()
    add_key(runtime, "late", owner="elsewhere:1:ab", locked_until=now - timedelta(seconds=1))
    add_key(runtime, "dead", owner=f"{HOST}:{dead_pid}:ab", locked_until=now + LEASE)
    pid = process_owner().rsplit(":", 2)[1]
    add_key(runtime, "reborn", owner=f"{HOST}:{pid}:earlier0boot", locked_until=now + LEASE)
    add_key(runtime, "live", owner=f"{HOST}:{live_pid}:ab", locked_until=now + LEASE)
    add_key(runtime, "remote", owner="elsewhere:1:ab", locked_until=now + LEASE)
    add_key(runtime, "no-owner")  # a service key of run_once, or a claim from before leases
    add_key(runtime, "done", status=201, owner="elsewhere:1:ab", locked_until=now - LEASE)


KEPT = ["done", "live", "no-owner", "remote"]


def test_release_abandoned_deletes_only_abandoned_unfinished_claims(
    runtime: Runtime, dead_pid: int, live_pid: int
) -> None:
    add_claims(runtime, dead_pid, live_pid)
    with runtime.sessions() as session:
        assert release_abandoned(session, wall_now()) == 3
        session.commit()
    assert keys(runtime) == KEPT


def test_a_starting_app_releases_abandoned_claims(
    runtime: Runtime, dead_pid: int, live_pid: int
) -> None:
    add_claims(runtime, dead_pid, live_pid)
    assert len(keys(runtime)) == 7
    with TestClient(create_app(runtime)):
        assert keys(runtime) == KEPT


# -- prune_keys -------------------------------------------------------------------------------


def test_prune_keys_deletes_only_finished_keys_older_than_a_day(runtime: Runtime) -> None:
    day = timedelta(hours=24)
    add_key(runtime, "old", status=201, age=day + timedelta(seconds=1))
    add_key(runtime, "old-409", status=409, age=day * 30)
    add_key(runtime, "recent", status=200, age=day - timedelta(minutes=1))
    add_key(runtime, "running", owner="elsewhere:1:ab", locked_until=wall_now(), age=day * 2)
    add_key(runtime, "no-owner", age=day * 2)
    with runtime.sessions() as session:
        assert prune_keys(session, wall_now()) == 2
        session.commit()
    assert keys(runtime) == ["no-owner", "recent", "running"]
    with runtime.sessions() as session:
        assert prune_keys(session, wall_now(), older_than=timedelta(minutes=30)) == 1
        session.commit()
    assert keys(runtime) == ["no-owner", "running"]


# -- owners -----------------------------------------------------------------------------------


def test_a_process_name_fits_its_column_and_is_stable() -> None:
    owner = process_owner()
    assert owner == process_owner()
    assert len(owner) <= 64
    assert not owner_is_dead(owner)


@pytest.mark.parametrize("owner", ["", "x", "elsewhere:1:ab", f"{HOST}:0:ab", f"{HOST}:-1:ab"])
def test_an_owner_that_cannot_be_judged_counts_as_alive(owner: str) -> None:
    assert not owner_is_dead(owner)


def test_a_killed_server_process_claim_is_released(tmp_path: Path) -> None:
    """kill -9 of a process holding a claim: it is dead to its host at once."""
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    engine = make_engine(url)
    create_schema(engine)
    claimer = (
        "import sys, time\n"
        "from fairbill.api.mutation import _claim\n"
        "from fairbill.api.settings import Runtime\n"
        "from fairbill.store.db import make_engine\n"
        "_claim(Runtime(make_engine(sys.argv[1])), 1, 'k', 'f' * 64, 'plan.create', 'k')\n"
        "print('claimed', flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", claimer, url], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None and process.stdout.readline() == "claimed\n"
        finally:
            process.kill()  # SIGKILL
    runtime = Runtime(engine)
    try:
        assert keys(runtime) == ["k"]
        with runtime.sessions() as session:
            assert release_abandoned(session, wall_now()) == 1
            session.commit()
        assert keys(runtime) == []
    finally:
        runtime.close()


def test_mutation_keeps_no_running_key_after_requests(api: Api) -> None:
    m = api.merchant("kalenner")
    m.ok(m.post("/v1/plans", PLAN, headers=key_header("k-1")), 201)
    m.post("/v1/plans", PLAN, headers=key_header("k-2"))  # 409: the plan exists
    assert mutation._RUNNING._keys == set()
