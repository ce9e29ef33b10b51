"""The FastAPI application. ``create_app`` wires a runtime; routes live in ``routes/``."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fairbill.api import problems
from fairbill.api.deps import client_request_id
from fairbill.api.guard import Guard, _replay
from fairbill.api.observe import Observe
from fairbill.api.routes import jobs, ops, register_routes
from fairbill.api.settings import Runtime
from fairbill.services import operations
from fairbill.services.idempotency import release_abandoned, wall_now
from fairbill.web import install as install_web

log = logging.getLogger("fairbill.api")


class RequestId:
    """The request's id (the caller's ``X-Request-Id`` if it fits, else a new one) in its
    state and on its response. A pure ASGI middleware, as every one here: Starlette's
    ``BaseHTTPMiddleware`` costs a task and a stream per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = client_request_id(Headers(scope=scope).get("x-request-id"))
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-Id"] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)


def _nul_field(value: Any) -> str | None:
    """The dotted name of the first string in a JSON value holding a NUL, if any. A loop
    with its own stack, not recursion: a body nested 1,000 deep was a RecursionError (500)."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return path
            continue
        if isinstance(node, dict):
            items: list[tuple[Any, Any]] = list(node.items())
        elif isinstance(node, list):
            items = list(enumerate(node))
        else:
            continue
        for key, item in reversed(items):  # reversed: the first member is looked at first
            name = f"{path}.{key}".lstrip(".")
            if isinstance(key, str) and "\x00" in key:
                return name
            stack.append((name, item))
    return None


class RejectNul:
    """PostgreSQL text cannot hold a NUL character: one in the path is a 404 (no object has
    such an id), in the query or a JSON body a 422 naming the field, instead of a 500 from
    the database (SQLite stored them)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)

        def invalid(field: str) -> Response:
            return problems.Problem(
                422,
                "validation_error",
                "Validation error",
                f"invalid field: {field}",
                errors=[{"field": field, "message": "must not contain NUL characters"}],
            ).response(request)

        refused: Response | None = None
        if "\x00" in scope["path"]:
            refused = problems.not_found("no such resource").response(request)
        else:
            for name, value in request.query_params.multi_items():
                if "\x00" in name + value:
                    refused = invalid(name)
                    break
        if refused is None and _has_body(request.headers):
            body = await _read_all(receive)
            receive = _replay(body, receive)
            if b"\\u0000" in body:  # the JSON escape (a raw NUL is not JSON)
                try:
                    field = _nul_field(json.loads(body))
                except (ValueError, RecursionError):
                    field = None  # not JSON, or nested too deep to parse: the route answers
                if field is not None:
                    refused = invalid(field)
        if refused is not None:
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _has_body(headers: Headers) -> bool:
    return "transfer-encoding" in headers or headers.get("content-length", "0") not in ("", "0")


async def _read_all(receive: Receive) -> bytes:
    """The request's whole body (``Guard``, outside, has bounded its size)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away: the app sees an empty body, then the disconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def release_abandoned_keys(runtime: Runtime) -> int:
    """Delete the idempotency claims of requests that died with their process (a server
    killed before this start): their retries run at once instead of answering 409 until
    the claims' leases end. Returns how many; a database error is logged, not raised (the
    leases end on their own)."""
    try:
        with runtime.sessions() as session:
            released = release_abandoned(session, wall_now())
            session.commit()
    except SQLAlchemyError:
        log.exception("could not release abandoned idempotency keys")
        return 0
    if released:
        log.info("released %d abandoned idempotency keys", released)
    return released


def reconcile_at_start(runtime: Runtime) -> dict[str, int]:
    """Finish the gateway operations a previous process left open (it died between the
    commit and the gateway's answer): asked again under their own keys, with no grace.
    A failure is logged, not raised: the scheduler's janitor runs again soon."""
    try:
        counts = operations.reconcile_all(
            runtime.sessions, runtime.clock, runtime.gateway, grace=timedelta(0)
        )
    except SQLAlchemyError:
        log.exception("could not reconcile gateway operations at start-up")
        return {}
    if counts:
        log.info("reconciled gateway operations at start-up: %s", counts)
    return counts


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Once per server start, before the first request (nothing waits on the loop yet).
    release_abandoned_keys(app.state.runtime)
    reconcile_at_start(app.state.runtime)
    yield


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        lifespan=_lifespan,
        # The docs pages are the web's, served from vendored assets (FastAPI's load a CDN).
        docs_url=None,
        redoc_url=None,
        title="fairbill",
        version="1",
        summary="Subscription billing that runs the merchant's published refund policy.",
        description=(
            "Every decision carries its outcome, amount, destination, stable reason codes, "
            "the policy clauses that fired and the calculation in words. Money is always a "
            "string with the currency's minor digits. Errors are RFC 9457 problem details "
            "with a stable `code`. Every POST accepts an `Idempotency-Key` header."
        ),
    )
    app.state.runtime = runtime
    app.add_middleware(RejectNul)
    app.add_middleware(Guard)  # outside RejectNul: no body is read before it passes here
    app.add_middleware(Observe)  # the request's log line and latency, Guard's refusals too
    app.add_middleware(RequestId)  # the outer one: problems above carry the id too
    problems.install(app)
    register_routes(app)
    app.include_router(jobs.router)
    app.include_router(ops.router)  # /healthz, /readyz, /metrics: outside /v1 and OpenAPI
    install_web(app)  # /static, /docs, /redoc and the pages (/portal)
    return app
