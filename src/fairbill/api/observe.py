"""One log event and one latency observation per HTTP request (a pure ASGI middleware).

The event (logger ``fairbill.request``, message ``request``) has the request's id, the
method, the route template (``/v1/customers/{customer_id}``: bounded, and free of what
callers put in URLs), the path without its query, the status, the time taken in
milliseconds, and who called: ``merchant`` (its id) and ``actor`` (``key:<prefix>``,
``portal:<prefix>``, ``admin``; never a secret). The probes (``/healthz``, ``/readyz``,
``/metrics``) log at DEBUG, a 5xx at ERROR, the rest at INFO.

It runs inside ``RequestId`` (the id is in the request's state) and outside ``Guard``
(the requests Guard refuses are counted too). While the request runs, its id is bound to
the logging context (``logs``): every line logged for it carries the id.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bound_contextvars

from fairbill.api.deps import GUARDED_PRINCIPAL
from fairbill.services import metrics
from fairbill.services.redaction import redact_text
from fairbill.services.roles import Principal

log = logging.getLogger("fairbill.request")

PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
UNMATCHED = "unmatched"  # the route label of a path no route serves (scanners: unbounded)
# Where ``deps.principal`` leaves the caller it authenticated, for this middleware.
PRINCIPAL = "principal"


class Observe:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        root_path = scope.get("root_path", "")
        status = 500  # unless a response starts: an exception went past every handler

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        state = scope.setdefault("state", {})
        try:
            with bound_contextvars(request_id=state.get("request_id")):
                await self.app(scope, receive, watch)
        finally:
            seconds = time.perf_counter() - started
            route = route_of(scope, root_path)
            metrics.observe_request(scope["method"], route, status, seconds)
            fields = request_fields(scope, route, status, seconds)
            log.log(level_of(route, status), "request", extra=fields)


def route_of(scope: Scope, root_path: str = "") -> str:
    """The template of the route that served ``scope`` (set by the router once matched);
    a mount's prefix with ``{path}`` (``/static/{path}``); else ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    mounted = scope.get("root_path", "")
    if isinstance(mounted, str) and mounted != root_path:
        return f"{mounted.removeprefix(root_path)}/{{path}}"
    return UNMATCHED


def level_of(route: str, status: int) -> int:
    if status >= 500:
        return logging.ERROR
    return logging.DEBUG if route in PROBES else logging.INFO


def request_fields(
    scope: Scope,
    route: str,
    status: int,
    seconds: float,  # float-ok: a duration
) -> dict[str, Any]:
    """What the request event says (pure: from the ASGI scope after the request)."""
    state: dict[str, Any] = scope.get("state", {})
    who = state.get(PRINCIPAL) or state.get(GUARDED_PRINCIPAL)
    caller = who if isinstance(who, Principal) else None
    return {
        "request_id": state.get("request_id"),
        "method": scope["method"],
        "route": route,
        "path": redact_text(scope.get("path", "")),
        "status": status,
        "duration_ms": round(seconds * 1000, 1),
        "merchant": caller.merchant_id if caller else None,
        "actor": caller.actor if caller else None,
    }
