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
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Delete, delete, select
from sqlalchemy.orm import Session

from fairbill.errors import Conflict
from fairbill.services.context import Ctx
from fairbill.store.tables import IdempotencyKeyRow


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
    seen = ctx.session.scalar(
        select(IdempotencyKeyRow).where(
            IdempotencyKeyRow.merchant_id == ctx.merchant_row.id, IdempotencyKeyRow.key == key
        )
    )
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
# longer may be taken over, and then does not commit (``mutation._finish``). A retry of
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


def _rowcount(session: Session, statement: Delete) -> int:
    # A DML statement's result is a cursor result: it has the row count.
    return cast(CursorResult[Any], session.execute(statement)).rowcount
