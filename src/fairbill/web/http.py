"""HTTP plumbing shared by the web areas (the customer portal, the back office): the
session cookie, form bodies, CSRF, security headers, and HTML error pages.

Each area has its own cookie, scoped to its path, so a browser may hold a portal session
and a back-office session at once and neither is sent to the other's pages.

Invariants:
- the session cookie is HttpOnly, SameSite=Lax (Strict would drop it on the first page
  after an emailed link: that navigation started on another site), Secure over https;
- every POST handled here carries the session's CSRF token in its form, or is refused
  with 403 before any work (``check_csrf``);
- an error in a page route is an HTML page with the error's status (``HtmlRoute``), never
  the API's JSON problem.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute

from fairbill.errors import Conflict, FairbillError, GatewayError, InputError, NotFound
from fairbill.web.sessions import WebSession, seal, unseal

SECRET_ENV = "FAIRBILL_SESSION_SECRET"
MAX_FORM = 64 * 1024  # bytes: the largest form any page posts is a few kilobytes


@dataclass(frozen=True, slots=True)
class Area:
    """A part of the site with its own sessions: ``name`` is the session kind it admits."""

    name: str
    cookie: str
    path: str


PORTAL = Area("portal", "fairbill_portal", "/portal")


class WebError(Exception):
    """A page that cannot be shown: its status, and the catalogue key of its message."""

    def __init__(self, status: int, key: str, detail: str | None = None) -> None:
        super().__init__(detail or key)
        self.status, self.key, self.detail = status, key, detail


def signed_out() -> WebError:
    return WebError(401, "error.signed_out")


def csrf_refused() -> WebError:
    return WebError(403, "error.csrf")


# -- the secret and the clock ------------------------------------------------------------
def install_secret(app: FastAPI) -> None:
    """The key sessions are signed with: ``FAIRBILL_SESSION_SECRET`` when set (needed when
    several processes serve one site, and to keep sessions across restarts), else a new
    random one per process (a restart signs everyone out). The runtime's settings
    (``fairbill.config``: the environment or the config file) come first; the variable
    itself still counts for a runtime built in code."""
    configured = app.state.runtime.settings.session_secret
    given = configured.get_secret_value() if configured else os.environ.get(SECRET_ENV)
    app.state.web_secret = given.encode() if given else secrets.token_bytes(32)


def secret(request: Request) -> bytes:
    key: bytes = request.app.state.web_secret
    return key


def wall_now() -> int:
    """Sessions run on the wall clock, like idempotency leases: a test clock that moves
    billing time forward must not sign anyone out."""
    return int(time.time())


# -- the session cookie ------------------------------------------------------------------
def current(request: Request, area: Area) -> WebSession | None:
    found = unseal(request.cookies.get(area.cookie), secret(request), wall_now())
    return found if found is not None and found.kind == area.name else None


def set_session(response: Response, request: Request, area: Area, session: WebSession) -> None:
    response.set_cookie(
        area.cookie,
        seal(session, secret(request)),
        max_age=max(session.expires - wall_now(), 0),
        path=area.path,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def clear_session(response: Response, request: Request, area: Area) -> None:
    response.delete_cookie(
        area.cookie,
        path=area.path,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


# -- forms -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Form:
    """An ``application/x-www-form-urlencoded`` body (the only kind the pages post)."""

    fields: dict[str, list[str]]

    def get(self, name: str) -> str:
        values = self.fields.get(name)
        return values[0] if values else ""

    def all(self, name: str) -> list[str]:
        return list(self.fields.get(name, []))


async def form(request: Request) -> Form:
    """The request's form (a FastAPI dependency). A body over ``MAX_FORM``, one that is
    not a form, or a value with a NUL character (PostgreSQL text cannot hold one) is a
    400 page; no multipart parser is needed for that."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if len(body) > MAX_FORM or (body and kind != "application/x-www-form-urlencoded"):
        raise WebError(400, "error.bad_form")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise WebError(400, "error.bad_form") from exc
    if any("\x00" in k or any("\x00" in v for v in vs) for k, vs in fields.items()):
        raise WebError(400, "error.bad_form")
    return Form(fields)


def check_csrf(posted: Form, session: WebSession) -> None:
    """Refuse (403) a form that does not carry the session's CSRF token."""
    token = posted.get("csrf")
    if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise csrf_refused()


# -- responses ---------------------------------------------------------------------------
# Every asset is the site's own (no CDN, no inline script or style), so the policy can
# be strict; htmx is told not to inject its indicator style (``base.html``).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages show account data: never from a shared cache
}


R = TypeVar("R", bound=Response)


def secure(response: R) -> R:
    response.headers.update(SECURITY_HEADERS)
    return response


def status_of(exc: Exception) -> tuple[int, str]:
    """The status and catalogue key of an error met while making a page."""
    if isinstance(exc, WebError):
        return exc.status, exc.key
    if isinstance(exc, NotFound):
        return 404, "error.not_found"
    if isinstance(exc, Conflict):
        return 409, "error.conflict"
    if isinstance(exc, InputError):
        return 422, "error.invalid"
    if isinstance(exc, GatewayError):
        return 502, "error.gateway"
    return 409, "error.conflict"


ErrorPage = Callable[[Request, Exception], Response]


def html_route(error_page: ErrorPage) -> type[APIRoute]:
    """A route class whose errors (``WebError``, ``FairbillError``) become the area's
    HTML error page; anything else is a bug and propagates (a 500)."""

    class HtmlRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def run(request: Request) -> Response:
                try:
                    return await handler(request)
                except (WebError, FairbillError) as exc:
                    return error_page(request, exc)

            return run

    return HtmlRoute
