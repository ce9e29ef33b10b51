"""What the API checks before it reads a request's body.

- A body is at most ``MAX_BODY`` bytes: a larger ``Content-Length`` is a 413 before a
  byte of the body is read, and a body sent without one (chunked) is a 413 as soon as it
  passes the limit. (A 100 MB body was read whole, and parsed, by anyone.)
- A request to ``/v1/`` that carries a body is authenticated first (``deps.authenticate``,
  throttled by ``api.throttle``): without valid credentials it is a 401 (or 429) and its
  body is neither read nor parsed. The principal found is handed to the route
  (``deps.principal`` does not look again).

Paths outside ``/v1/`` (web pages, docs) authenticate their own way; the size limit
holds for them too. Everything here is a pure ASGI middleware: it reads the body itself,
at most ``MAX_BODY`` bytes, and hands it on to the application unchanged.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fairbill.api.deps import (
    GUARDED_PRINCIPAL,
    Principal,
    authenticate,
    client_address,
    known_caller,
)
from fairbill.api.problems import Problem, payload_too_large
from fairbill.api.settings import Runtime

# Room for the largest body the API takes: a merchant's ``policy_text`` (256 KiB of text)
# even with every character JSON-escaped (\\uXXXX: 6 bytes each) would be 1.5 MiB.
MAX_BODY = 2 * 1024 * 1024
API_PREFIX = "/v1/"


class Guard:
    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            if not _has_body(request.headers, self.max_body):
                await self.app(scope, receive, send)
                return
            if scope["path"].startswith(API_PREFIX):
                who = _known(request) or await run_in_threadpool(_authenticate, request)
                scope.setdefault("state", {})[GUARDED_PRINCIPAL] = who
            body = await _read_body(receive, self.max_body)
        except Problem as problem:
            await problem.response(request)(scope, receive, send)
            return
        except _Disconnected:
            return  # the client went away: nobody to answer
        await self.app(scope, _replay(body, receive), send)


def _has_body(headers: Headers, limit: int) -> bool:
    """Whether the request announces a body; 413 if it announces more than ``limit``."""
    if "transfer-encoding" in headers:
        return True
    declared = headers.get("content-length")
    if declared is None:
        return False
    # The server (h11, httptools) has refused a malformed Content-Length already.
    size = int(declared) if declared.isdigit() else 0
    if size > limit:
        raise payload_too_large(limit)
    return size > 0


def _known(request: Request) -> Principal | None:
    rt: Runtime = request.app.state.runtime
    return known_caller(rt, request.headers.get("authorization"), client_address(request))


def _authenticate(request: Request) -> Principal:
    rt: Runtime = request.app.state.runtime
    with rt.reads() as session:
        return authenticate(
            session, rt, request.headers.get("authorization"), client_address(request)
        )


class _Disconnected(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, or 413 as soon as it is longer than ``limit`` (what the client
    still sends is left unread: the server closes the connection)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise payload_too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read here once, then waits on the client's own
    (for the disconnect that a streaming response listens for)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
