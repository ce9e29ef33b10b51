"""The back office, ``/app/…``: the merchant's staff sign in with an API key and work with
the role of that key, exactly as the API lets it (``services.roles``).

Pages: the dashboard (``dashboard``), the review queue and a request's page where it is
decided (``review``), customers and a customer's timeline (``customers``), outages
(``outages``), the audit log and the API keys (``admin``, the admin role); signing in and
out (``entry``). Shared: ``common`` (the area, the signed-in staff, the page context).

Invariants (the portal's, for staff):
- the session cookie is HttpOnly, SameSite=Lax, scoped to ``/app``, holds the key's
  prefix and never its secret, and ends after ``sessions.IDLE`` idle, ``sessions.ABSOLUTE``
  after sign-in, or as soon as its key is revoked;
- every POST carries the session's CSRF token (the sign-in form: its own short session's)
  and is refused (403) without it, before any work; a role without the permission is
  refused (403) before any work;
- pages only parse, call the services and render; every state change is
  ``actions.act`` (one transaction, its audit row, then the gateway).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from fairbill.web.backoffice import admin, customers, dashboard, entry, outages, review
from fairbill.web.backoffice.common import make_router, unknown

router = APIRouter()
for part in (entry, dashboard, review, customers, outages, admin):
    router.include_router(part.router)

_last = make_router()


@_last.get("/{rest:path}")
def not_a_page(rest: str, request: Request) -> Response:
    return unknown(rest)


router.include_router(_last)  # after every page: it answers any other address
