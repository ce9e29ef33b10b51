"""Idempotency keys for service calls: the same key runs the work once.

A call with a key that was seen before returns the stored result without running the
work again; the same key with a different input is a ``Conflict`` (as Stripe answers a
reused key with a different body). The key row is written in the same transaction as the
work, so either both are stored or neither is.

The API's keys (``fairbill.api.mutation``) live in the same table but are claimed before
their work runs, so a claim can outlive a process that died mid-request. A claim is a
lease: ``owner`` names the process (``process_owner``) and ``locked_until`` when the lease
ends (``LEASE`` after the claim). Past its end, or once its owner is known to be dead, the
claim is abandoned: a retry takes it over and ``release_abandoned`` deletes it. Leases and
the keys' ages run on the wall clock, never on the runtime's clock: a frozen test clock
would hold a dead claim for ever, and advancing it by a month would end every running
request's lease at once. Finished keys are kept for ``KEEP_FINISHED`` (Stripe's 24 hours),
then ``prune_keys`` deletes them.

The API's claims are written here alone: ``claim`` claims a key in the caller's
transaction (or tells what the key's row says: ``Claimed``, ``Finished``, ``Reused``,
``Running``), ``finish`` stores the response while the claim is still this process's,
and ``replace_result`` stores a response rendered again after the commit. The API maps
these outcomes to its responses (``fairbill.api.mutation``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Delete,
    Integer,
    Update,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from fairbill.errors import Conflict
from fairbill.services.context import Ctx
from fairbill.store.tables import IdempotencyKeyRow, table


def fingerprint(operation: str, payload: dict[str, Any]) -> str:
    text = json.dumps({"op": operation, "in": payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def run_once(
    ctx: Ctx,
    key: str | None,
    operation: str,
    payload: dict[str, Any],
    work: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    if key is None:
        return work()
    digest = fingerprint(operation, payload)
    seen = _key_row(ctx.session, ctx.merchant_row.id, key)
    if seen is not None:
        if seen.fingerprint != digest:
            raise Conflict(f"idempotency key {key!r} was used with a different request")
        return dict(seen.result)
    result = work()
    ctx.session.add(
        IdempotencyKeyRow(
            merchant_id=ctx.merchant_row.id,
            key=key,
            operation=operation,
            fingerprint=digest,
            result=result,
            created_at=ctx.now,
        )
    )
    ctx.session.flush()
    return result


# Longer than requests take (their gateway calls go out after the commit); one that takes
# longer may be taken over, and then does not commit (``finish``). A retry of
# a request whose process died on another host waits for the lease to end.
LEASE = timedelta(seconds=30)
KEEP_FINISHED = timedelta(hours=24)
# ``owner`` is a String(64): host (at most this), ":", a pid (7 digits), ":", the token.
_HOST_WIDTH = 40
_me: tuple[str, int, str] | None = None  # host, pid, token


def wall_now() -> datetime:
    """The wall clock, in UTC: the one clock for leases and the keys' ages."""
    return datetime.now(UTC)


def process_owner() -> str:
    """``host:pid:token``, this process's name as a key's owner. Computed once per process
    (again after a fork: the child is another process); the random token tells this
    process from an earlier one of the same host that had the same pid."""
    host, pid, token = _identity()
    return f"{host}:{pid}:{token}"


def _identity() -> tuple[str, int, str]:
    """(host, pid, token) of this process, made anew when the pid changed (a fork). Made
    under a lock: two request threads asking first at once must get one token, or a claim
    stamped with the other would look like a dead process's."""
    global _me
    with _identity_lock:
        if _me is None or _me[1] != os.getpid():
            _me = (_host(), os.getpid(), secrets.token_hex(6))
        return _me


def _after_fork() -> None:
    """A forked child is another process: a lock held at the fork is not its to wait on."""
    global _identity_lock, _me
    _identity_lock = threading.Lock()
    _me = None


_identity_lock = threading.Lock()
os.register_at_fork(after_in_child=_after_fork)


def _host() -> str:
    """The hostname and the pid namespace: the processes ``os.kill`` can see. Containers
    on the host's network share its hostname but not its pids, so a pid dead here may be
    alive in the other one: the namespace (Linux's id) keeps them apart."""
    name = socket.gethostname()
    with contextlib.suppress(OSError):  # no /proc: the hostname alone
        name += f"@{os.stat('/proc/self/ns/pid').st_ino}"
    if len(name) > _HOST_WIDTH:  # still one name per host: the hash keeps them distinct
        name = f"{name[: _HOST_WIDTH - 9]}~{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return name


def owner_is_dead(owner: str) -> bool:
    """True only when ``owner`` is certainly gone: a process of this host whose pid is not
    running, or an earlier process that had this process's pid. Another host's process,
    a malformed owner or a pid that cannot be probed counts as alive: its lease decides."""
    parts = owner.rsplit(":", 2)
    me = _identity()
    # On Windows os.kill(pid, 0) would end the process.
    if len(parts) != 3 or parts[0] != me[0] or not parts[1].isdecimal() or os.name != "posix":
        return False
    pid, token = int(parts[1]), parts[2]
    if pid == 0:  # os.kill(0, ...) signals this process's group
        return False
    if pid == me[1]:
        return token != me[2]
    return not _running(pid)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


# -- the API's claims -----------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """The key's row is this process's claim now (a new one, or an abandoned one taken
    over): run the work, then ``finish`` the claim in the same transaction."""

    id: int


@dataclass(frozen=True)
class Finished:
    """The key's request was done: its stored response, to replay."""

    result: dict[str, Any]
    status_code: int


@dataclass(frozen=True)
class Reused:
    """The key was claimed for another request (another fingerprint)."""


@dataclass(frozen=True)
class Running:
    """Another request runs the key now: it holds the claim within its lease, holds the
    key's lock (PostgreSQL, not yet committed), or took the claim over first."""


Claim = Claimed | Finished | Reused | Running


def claim(
    session: Session, merchant_id: int, key: str, digest: str, operation: str, now: datetime
) -> Claim:
    """Claim ``key`` in the session's transaction, leased to this process until ``now +
    LEASE`` (``now`` on the wall clock, ``wall_now``), or tell what the key's row already
    there says. Nothing is committed: the caller runs its work and ``finish``es the claim
    in the same transaction, so a request that dies leaves nothing behind.

    The caller runs at most one request of a key per process (``mutation._RUNNING``): an
    unfinished claim of this process's own is one no request runs any more."""
    values = _claim_values(merchant_id, key, digest, operation, now)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        values["lock"] = _lock_key(merchant_id, key)
    statement = _CLAIMS.get(dialect)
    if statement is None:  # pragma: no cover - fairbill runs on SQLite and PostgreSQL
        raise NotImplementedError(dialect)
    claimed = session.scalar(statement, values)
    if claimed is not None:
        return Claimed(int(claimed))
    seen = _key_row(session, merchant_id, key)
    if seen is None:  # another transaction holds the key's lock: that request runs it
        return Running()
    return _answer(session, seen, digest, now)


def finish(session: Session, claim_id: int, result: dict[str, Any], status_code: int) -> bool:
    """Store the response on the key's row, in the session's transaction, if this process
    still holds the claim; False (nothing stored) if not, and the caller rolls its work
    back: a request that outlived its lease and was taken over must not be done twice."""
    values = {
        "claim": claim_id,
        "me": process_owner(),
        "result": result,
        "status_code": status_code,
    }
    return _rowcount(session, _FINISH, values) == 1


def replace_result(session: Session, claim_id: int, result: dict[str, Any]) -> None:
    """Replace the stored response of a finished claim (its body rendered again once the
    gateway answered, after the work's commit). The caller commits."""
    session.execute(
        update(_KEYS)
        .where(_KEYS.c.id == claim_id)
        .values(result=result)
        .execution_options(synchronize_session=False)
    )


def _key_row(session: Session, merchant_id: int, key: str) -> IdempotencyKeyRow | None:
    return session.scalar(
        select(IdempotencyKeyRow).where(
            IdempotencyKeyRow.merchant_id == merchant_id, IdempotencyKeyRow.key == key
        )
    )


_KEYS = table(IdempotencyKeyRow)
# The first key of the claims' advisory locks on PostgreSQL (``store.locks``'s scheme:
# 0x4642 "FB", then a kind); the second is 31 bits of the key's hash.
_CLAIM_LOCKS = 0x46420010


def _claim_values(
    merchant_id: int, key: str, digest: str, operation: str, now: datetime
) -> dict[str, Any]:
    """The bound values of a new claim: unfinished, leased to this process."""
    return {
        "merchant_id": merchant_id,
        "key": key,
        "operation": operation,
        "fingerprint": digest,
        "result": {},
        "created_at": now,
        "owner": process_owner(),
        "locked_until": now + LEASE,
    }


def _claim_statements() -> dict[str, Any]:
    """The claim's ``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` per dialect, built
    once (its values are bound per request)."""
    columns = ["merchant_id", "key", "operation", "fingerprint", "result", "created_at"]
    columns += ["owner", "locked_until"]
    params = {name: bindparam(name, type_=_KEYS.c[name].type) for name in columns}
    # On PostgreSQL only if no other transaction runs this key now (never waits: 409).
    lock = func.pg_try_advisory_xact_lock(_CLAIM_LOCKS, bindparam("lock", type_=Integer))
    on_postgresql = pg_insert(_KEYS).from_select(columns, select(*params.values()).where(lock))
    on_sqlite = sqlite_insert(_KEYS).values(params)
    unique = ["merchant_id", "key"]
    return {
        "postgresql": on_postgresql.on_conflict_do_nothing(index_elements=unique).returning(
            _KEYS.c.id
        ),
        "sqlite": on_sqlite.on_conflict_do_nothing(index_elements=unique).returning(_KEYS.c.id),
    }


_CLAIMS = _claim_statements()


def _lock_key(merchant_id: int, key: str) -> int:
    """A 31-bit number for the key (an ``int4`` of the advisory lock): two keys that
    share it only make each other 409 while both run."""
    digest = hashlib.blake2b(f"{merchant_id}:{key}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") >> 1


def _answer(session: Session, seen: IdempotencyKeyRow, digest: str, now: datetime) -> Claim:
    """What a key already claimed says: ``Reused`` for another request, ``Claimed`` when
    an abandoned claim was taken over, its stored response, or ``Running`` while it
    still runs."""
    if seen.fingerprint != digest:
        return Reused()
    now_seen: IdempotencyKeyRow | None = seen
    if seen.status_code is None and _abandoned(seen, now):
        if _take_over(session, seen, now):
            return Claimed(seen.id)
        # Another request took it over, finished it or released it first.
        now_seen = session.scalar(
            select(IdempotencyKeyRow)
            .where(IdempotencyKeyRow.id == seen.id)
            .execution_options(populate_existing=True)
        )
    if now_seen is None or now_seen.status_code is None:
        return Running()
    return Finished(now_seen.result, now_seen.status_code)


def _abandoned(seen: IdempotencyKeyRow, now: datetime) -> bool:
    """An unfinished claim that no request runs any more: one from before leases (no
    owner), one past its lease, one whose owner is dead, or this process's own (no request
    here runs it, ``mutation._RUNNING`` says: its release failed)."""
    if seen.owner is None or seen.locked_until is None or seen.owner == process_owner():
        return True
    return seen.locked_until <= now or owner_is_dead(seen.owner)


def _take_over(session: Session, seen: IdempotencyKeyRow, now: datetime) -> bool:
    """Move an abandoned claim to this process, in the session's transaction; False if
    another request moved, finished or released it since it was read (the update is
    conditional on that read)."""
    moved = (
        update(IdempotencyKeyRow)
        .where(
            IdempotencyKeyRow.id == seen.id,
            IdempotencyKeyRow.status_code.is_(None),
            IdempotencyKeyRow.owner.is_not_distinct_from(seen.owner),
            IdempotencyKeyRow.locked_until.is_not_distinct_from(seen.locked_until),
        )
        .values(owner=process_owner(), locked_until=now + LEASE)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(session, moved) == 1


_FINISH = (
    update(_KEYS)
    .where(
        _KEYS.c.id == bindparam("claim"),
        _KEYS.c.owner == bindparam("me"),
        _KEYS.c.status_code.is_(None),
    )
    .values(
        result=bindparam("result", type_=_KEYS.c.result.type),
        status_code=bindparam("status_code"),
    )
    .execution_options(synchronize_session=False)
)


# -- clean-up -------------------------------------------------------------------------------


def release_abandoned(session: Session, now: datetime) -> int:
    """Delete the API's unfinished claims whose lease ended before ``now`` (wall clock) or
    whose owner is dead (``owner_is_dead``); return how many. Finished keys and rows
    without an owner (the service keys of ``run_once``, and claims from before migration
    0005, which a retry takes over) are kept. The caller commits."""
    unfinished = IdempotencyKeyRow.status_code.is_(None) & IdempotencyKeyRow.owner.is_not(None)
    owners = session.scalars(select(IdempotencyKeyRow.owner).where(unfinished).distinct())
    dead = [owner for owner in owners if owner is not None and owner_is_dead(owner)]
    gone = delete(IdempotencyKeyRow).where(
        unfinished & ((IdempotencyKeyRow.locked_until < now) | IdempotencyKeyRow.owner.in_(dead))
    )
    return _rowcount(session, gone)


def prune_keys(session: Session, now: datetime, older_than: timedelta = KEEP_FINISHED) -> int:
    """Delete the API's finished keys created before ``now - older_than`` (``now`` on the
    wall clock, as ``created_at`` is); return how many. A retry after that runs again, as
    Stripe's keys expire. Unfinished claims are ``release_abandoned``'s. The caller
    commits."""
    old = delete(IdempotencyKeyRow).where(
        IdempotencyKeyRow.status_code.is_not(None), IdempotencyKeyRow.created_at < now - older_than
    )
    return _rowcount(session, old)


def _rowcount(
    session: Session, statement: Delete | Update, values: dict[str, Any] | None = None
) -> int:
    # A DML statement's result is a cursor result: it has the row count.
    return cast(CursorResult[Any], session.execute(statement, values)).rowcount
