"""What every back-office page shares: its area and cookie, who is signed in (an API key's
role, checked against ``services.roles`` as the API checks it), the page context and the
error page.

Invariants:
- a session stands on its API key: a page checks the key is still live (not revoked) and
  reads its role from the key's row, never from the cookie alone;
- a page or form the role may not use is a 403 page (``need``), before any work;
- every page is rendered with the session refreshed (idle time restarted).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from fairbill.errors import NotFound
from fairbill.services import backoffice
from fairbill.services.context import Ctx
from fairbill.services.roles import Principal
from fairbill.web import sessions
from fairbill.web.actions import context, runtime
from fairbill.web.http import (
    Area,
    Form,
    WebError,
    current,
    form,
    html_route,
    set_session,
    signed_out,
    status_of,
    wall_now,
)
from fairbill.web.templating import language_of, render

APP = Area("app", "fairbill_app", "/app")
# The sign-in form's own short session: it carries the CSRF token of a form posted before
# anyone is signed in, in a cookie sent to the sign-in page only.
SIGN_IN = Area("app-sign-in", "fairbill_app_sign_in", "/app/sign-in")
HOME = "/app/"

# The pages of the navigation, each shown to the roles with its permission.
NAV = (
    ("dashboard", "/app/", "read"),
    ("queue", "/app/queue", "read"),
    ("customers", "/app/customers", "read"),
    ("outages", "/app/outages", "read"),
    ("audit", "/app/audit", "keys"),
    ("keys", "/app/keys", "keys"),
)
# Words of the shared error keys that read differently for staff.
STAFF_WORDS = {"error.signed_out": "app.error.signed_out"}


def error_page(request: Request, exc: Exception) -> Response:
    """An error as a page; "sign in" leads back in when there is no session."""
    status, key = status_of(exc)
    who = current(request, APP)
    detail = exc.detail if isinstance(exc, WebError) else None
    if status in (404, 409, 422):
        detail = str(exc)  # the service's own words say what stands in the way
    back, label = (HOME, "app.back") if who is not None else ("/app/sign-in", "app.sign_in.go")
    return render(
        request,
        "app/message.html",
        {
            "language": language_of(request, who.language if who else None),
            "key": STAFF_WORDS.get(key, key),
            "detail": detail,
            "back": back,
            "back_label": label,
        },
        status=status,
    )


def make_router() -> APIRouter:
    return APIRouter(prefix="/app", route_class=html_route(error_page), include_in_schema=False)


# -- who is signed in ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Staff:
    """A signed-in member of the merchant's staff: the session, and its key as the API
    sees it (``Principal.allows`` decides what the role may do)."""

    session: sessions.WebSession
    principal: Principal

    @property
    def role(self) -> str:
        return self.principal.role or ""

    def allows(self, permission: str) -> bool:
        return self.principal.allows(permission)


def signed_in(request: Request) -> Staff:
    """The request's back-office session while its API key is live; else "sign in
    again" (401)."""
    who = current(request, APP)
    if who is None:
        raise signed_out()
    rt = runtime(request)
    with rt.reads() as session:
        key = backoffice.live_key(session, who.subject)
    if key is None or key.merchant_id != who.merchant_id:
        raise signed_out()
    return Staff(who, Principal("key", who.actor, key.merchant_id, key.role))


def need(staff: Staff, permission: str) -> None:
    """Refuse (403) what the session's role may not do."""
    if not staff.allows(permission):
        detail = f"the {staff.role} role may not {permission.replace('_', ' ')}"
        raise WebError(403, "app.error.forbidden", detail)


Who = Annotated[Staff, Depends(signed_in)]
Posted = Annotated[Form, Depends(form)]


# -- pages ---------------------------------------------------------------------------------
@dataclass
class Visit:
    """One page of a signed-in member of staff: the read-only unit of work, who reads."""

    request: Request
    staff: Staff
    ctx: Ctx
    language: str

    def page(
        self, template: str, section: str | None, status: int = 200, **values: Any
    ) -> Response:
        """The page (``section``: its entry in the navigation), session refreshed."""
        who = self.staff.session
        response = render(
            self.request,
            template,
            {
                "language": self.language,
                "currency": self.ctx.currency,
                "timezone": self.ctx.merchant_row.timezone,
                "merchant_name": self.ctx.merchant_row.name,
                "csrf": who.csrf,
                "role": self.staff.role,
                "key_prefix": who.subject,
                "nav": [(n, href) for n, href, perm in NAV if self.staff.allows(perm)],
                "section": section,
                "can": self.staff.allows,
                **values,
            },
            status=status,
        )
        kept = replace(who, language=self.language)
        set_session(response, self.request, APP, sessions.refreshed(kept, wall_now()))
        return response


@contextmanager
def visiting(request: Request, staff: Staff, permission: str = "read") -> Iterator[Visit]:
    need(staff, permission)
    rt = runtime(request)
    with rt.reads() as session:
        ctx = context(session, rt, staff.session.merchant_id)
        language = language_of(request, staff.session.language, ctx.merchant_row.language)
        yield Visit(request, staff, ctx, language)


def unknown(rest: str) -> Response:
    raise NotFound(f"no page {rest!r}")
