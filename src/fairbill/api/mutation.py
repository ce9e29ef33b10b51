"""Every state change the API makes goes through ``mutate``: one transaction, the audit
log, and ``Idempotency-Key`` replay.

Idempotency (as Stripe does it): the first response to a key is stored and replayed for
the same key and body; the same key with another body is 409 ``idempotency_key_reused``;
a second request while the first still runs is 409 ``idempotency_key_in_progress``.
Keys belong to the merchant; a portal token's belong to its customer alone. A stored
response keeps API keys and portal tokens by prefix only (they are shown once).
The key is claimed in its own short transaction first, so two concurrent requests with the
same key cannot both run. The claim is a lease held by this process
(``services.idempotency``): a retry takes over a claim whose process died or whose lease
ended, and the work commits only while its process still holds the claim, so a request
that outlived its lease is not done twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import CursorResult, String, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fairbill.api.deps import Principal, merchant_ctx
from fairbill.api.problems import Problem, conflict
from fairbill.api.settings import Runtime
from fairbill.services import operations
from fairbill.services.context import Ctx
from fairbill.services.idempotency import (
    LEASE,
    fingerprint,
    owner_is_dead,
    process_owner,
    wall_now,
)
from fairbill.services.merchants import redact_secrets
from fairbill.services.redaction import redact
from fairbill.store.tables import AuditLogRow, IdempotencyKeyRow, table

log = logging.getLogger("fairbill.api")


@dataclass(frozen=True)
class Done:
    """What a piece of work reports: the audit target, the response body, the merchant;
    and, for work that may move money, its context and how to render the body again once
    the gateway answered (``render``)."""

    target: str
    body: dict[str, Any]
    merchant_id: int
    ctx: Ctx | None = None
    render: Callable[[], dict[str, Any]] | None = None


Work = Callable[[Session], Done]
# A body, or how to render it: money-moving work renders after the gateway answered too.
Body = dict[str, Any] | Callable[[], dict[str, Any]]


def merchant_work(
    rt: Runtime,
    who: Principal,
    work: Callable[[Ctx], tuple[str, Body]],
) -> Work:
    """Adapt work that needs the caller's merchant context (the same context, a unit of
    work, then records the outcomes that come after the commit, and their decisions)."""

    def run(session: Session) -> Done:
        ctx = merchant_ctx(session, rt, who)
        target, body = work(ctx)
        if callable(body):
            return Done(target, body(), ctx.merchant_row.id, ctx, body)
        return Done(target, body, ctx.merchant_row.id, ctx)

    return run


def mutate(
    request: Request,
    rt: Runtime,
    who: Principal,
    action: str,
    payload: dict[str, Any],
    work: Work,
    status: int = 200,
) -> JSONResponse:
    shown = request.headers.get("idempotency-key")
    key = _scoped_key(who, shown)
    merchant_id = who.merchant_id or 0
    digest = fingerprint(f"{request.method} {request.url.path}", payload)
    if key:
        replay = _claim(rt, merchant_id, key, digest, action, shown or "")
        if replay is not None:
            return replay
    with rt.sessions() as session:
        try:
            done = work(session)
            body = done.body
            session.add(
                AuditLogRow(
                    merchant_id=done.merchant_id,
                    at=rt.clock.now(),
                    actor=who.actor,
                    action=action,
                    target=done.target[:_TARGET_LENGTH],
                    request_id=getattr(request.state, "request_id", "") or "",
                    # Secrets (gateway tokens, keys) are never stored in clear.
                    details={"payload": redact(_jsonable(payload))},
                )
            )
            if key:
                row = _held_key(session, merchant_id, key)
                # Secrets are shown once: a replay names them by prefix only.
                row.result, row.status_code = redact_secrets(body), status
            sent = bool(session.info.get(operations.PENDING))
            session.commit()
        except Exception:
            session.rollback()  # first: the release below must not wait for our own lock
            if key:
                _release(rt, merchant_id, key)
            raise
        # Committed: the key is finished and replays ``body`` until the gateway answered.
        # Now the money moves (after the commit, never inside it), and is rendered.
        if done.ctx is not None and sent:
            body = _settled(done, merchant_id, key, body)
    return JSONResponse(body, status_code=status)


def _settled(done: Done, merchant_id: int, key: str | None, body: dict[str, Any]) -> dict[str, Any]:
    """Send the operations the work requested and record their outcomes; the response
    (and the key's stored replay) then shows them. A failure here loses nothing: the
    operations stay open for the reconciler, and the response stays the committed one."""
    assert done.ctx is not None
    session = done.ctx.session
    try:
        operations.commit_and_settle(done.ctx)
        if done.render is None:
            return body
        body = done.render()
        if key:
            row = _key_row(session, merchant_id, key)
            if row is not None:
                row.result = redact_secrets(body)
        session.commit()
    except Exception:  # the reconciler finishes what is open; the work itself is done
        session.rollback()
        log.exception("settling the gateway operations of %s failed", done.target)
    return body


MAX_IDEMPOTENCY_KEY = 128
# The audit column's width: a target naming two 100-character codes would not fit (on
# PostgreSQL a 500 after the work was done).
_TARGET_LENGTH = cast(String, table(AuditLogRow).c.target.type).length


def _scoped_key(who: Principal, key: str | None) -> str | None:
    """The stored form of an ``Idempotency-Key``. Keys are the merchant's, except a portal
    token's: those are its customer's own, so that another customer of the merchant who
    sends the same key (and the same request) is not replayed this customer's response."""
    if not key:
        return None
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise Problem(
            422,
            "validation_error",
            "Validation error",
            "invalid field: Idempotency-Key",
            errors=[
                {
                    "field": "Idempotency-Key",
                    "message": f"at most {MAX_IDEMPOTENCY_KEY} characters",
                }
            ],
        )
    return f"portal:{who.customer_id}:{key}" if who.kind == "portal" else key


def _key_row(session: Session, merchant_id: int, key: str) -> IdempotencyKeyRow | None:
    return session.scalar(
        select(IdempotencyKeyRow).where(
            IdempotencyKeyRow.merchant_id == merchant_id, IdempotencyKeyRow.key == key
        )
    )


def _claim(
    rt: Runtime, merchant_id: int, key: str, digest: str, action: str, shown: str
) -> JSONResponse | None:
    """Claim ``key`` for this request (None: run the work) or answer from the key's row:
    its stored response, or 409. While the request runs, no other request of this process
    claims the key (``_RUNNING``); another process's may once the claim is abandoned."""
    if not _RUNNING.enter(merchant_id, key):
        raise _in_progress(shown)
    try:
        answer = _claim_row(rt, merchant_id, key, digest, action, shown)
    except BaseException:
        _RUNNING.leave(merchant_id, key)
        raise
    if answer is not None:
        _RUNNING.leave(merchant_id, key)
    return answer


def _claim_row(
    rt: Runtime, merchant_id: int, key: str, digest: str, action: str, shown: str
) -> JSONResponse | None:
    now = wall_now()  # leases run on the wall clock (services.idempotency)
    with rt.sessions() as session:
        session.add(
            IdempotencyKeyRow(
                merchant_id=merchant_id,
                key=key,
                operation=action,
                fingerprint=digest,
                result={},
                created_at=now,
                owner=process_owner(),
                locked_until=now + LEASE,
            )
        )
        try:
            session.commit()
            return None
        except IntegrityError:
            session.rollback()
        seen = _key_row(session, merchant_id, key)
        if seen is None:  # pragma: no cover - the row vanished between two statements
            raise conflict("idempotency_key_in_progress", "retry the request")
        return _answer(session, seen, digest, shown, now)


def _answer(
    session: Session, seen: IdempotencyKeyRow, digest: str, shown: str, now: datetime
) -> JSONResponse | None:
    """The answer to a key already claimed: 409 for another request, None (run it) when an
    abandoned claim was taken over, the stored response, or 409 while it still runs."""
    if seen.fingerprint != digest:
        raise conflict(
            "idempotency_key_reused",
            f"Idempotency-Key {shown!r} was used with a different request",
        )
    now_seen: IdempotencyKeyRow | None = seen
    if seen.status_code is None and _abandoned(seen, now):
        if _take_over(session, seen, now):
            return None
        # Another request took it over, finished it or released it first.
        now_seen = session.scalar(
            select(IdempotencyKeyRow)
            .where(IdempotencyKeyRow.id == seen.id)
            .execution_options(populate_existing=True)
        )
    if now_seen is None or now_seen.status_code is None:
        raise _in_progress(shown)
    response = JSONResponse(now_seen.result, status_code=now_seen.status_code)
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _abandoned(seen: IdempotencyKeyRow, now: datetime) -> bool:
    """An unfinished claim that no request runs any more: one from before leases (no
    owner), one past its lease, one whose owner is dead, or this process's own (no request
    here runs it, ``_RUNNING`` says: its release failed)."""
    if seen.owner is None or seen.locked_until is None or seen.owner == process_owner():
        return True
    return seen.locked_until <= now or owner_is_dead(seen.owner)


def _take_over(session: Session, seen: IdempotencyKeyRow, now: datetime) -> bool:
    """Move an abandoned claim to this process and commit; False if another request moved,
    finished or released it since it was read (the update is conditional on that read)."""
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
    taken = cast(CursorResult[Any], session.execute(moved)).rowcount == 1
    session.commit()
    return taken


def _held_key(session: Session, merchant_id: int, key: str) -> IdempotencyKeyRow:
    """The key's row, locked until the work commits, if this process still holds the
    claim; else 409 and the work rolls back: a request that outlived its lease and was
    taken over must not be done twice. The claim is no longer running here after this."""
    _RUNNING.leave(merchant_id, key)
    row = session.scalar(
        select(IdempotencyKeyRow)
        .where(
            IdempotencyKeyRow.merchant_id == merchant_id,
            IdempotencyKeyRow.key == key,
            IdempotencyKeyRow.owner == process_owner(),
            IdempotencyKeyRow.status_code.is_(None),
        )
        .with_for_update()
    )
    if row is None:
        raise conflict(
            "idempotency_key_in_progress",
            "the request outlived its claim on its Idempotency-Key; retry it",
        )
    return row


def _release(rt: Runtime, merchant_id: int, key: str) -> None:
    """Delete this process's unfinished claim, so that a retry runs the request again (a
    claim another process took over is theirs)."""
    _RUNNING.leave(merchant_id, key)
    with rt.sessions() as session:
        session.execute(
            delete(IdempotencyKeyRow).where(
                IdempotencyKeyRow.merchant_id == merchant_id,
                IdempotencyKeyRow.key == key,
                IdempotencyKeyRow.status_code.is_(None),
                IdempotencyKeyRow.owner == process_owner(),
            )
        )
        session.commit()


def _in_progress(shown: str) -> Problem:
    return conflict(
        "idempotency_key_in_progress",
        f"a request with Idempotency-Key {shown!r} is still running",
    )


class _Running:
    """The keys whose work runs in this process now, from the claim to the end of the
    work. Invariant: at most one request of a process runs a key, so the row's ``owner``
    (a process) tells which request holds the claim."""

    def __init__(self) -> None:
        self._keys: set[tuple[int, str]] = set()
        self._lock = threading.Lock()

    def enter(self, merchant_id: int, key: str) -> bool:
        with self._lock:
            if (merchant_id, key) in self._keys:
                return False
            self._keys.add((merchant_id, key))
            return True

    def leave(self, merchant_id: int, key: str) -> None:
        with self._lock:
            self._keys.discard((merchant_id, key))


_RUNNING = _Running()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)
