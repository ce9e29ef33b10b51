"""Signing in to the back office with an API key, and out.

The key is posted once, in a form (never in an address: it would stay in the history and
the logs), and exchanged for a session cookie that holds the key's prefix, never its
secret. Failed sign-ins count against the client like the API's failed authentications
(``api.throttle``, the runtime's own): too many, and the form is refused (429) for a while.
Signing in and out are written to the audit log.
"""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from fairbill.services import merchants as merchant_service
from fairbill.services.context import Ctx
from fairbill.web import sessions
from fairbill.web.actions import act, runtime
from fairbill.web.backoffice.common import (
    APP,
    HOME,
    SIGN_IN,
    Posted,
    Who,
    make_router,
    signed_in,
)
from fairbill.web.http import (
    WebError,
    check_csrf,
    clear_session,
    csrf_refused,
    current,
    secure,
    set_session,
    wall_now,
)
from fairbill.web.templating import language_of, render

router = make_router()
MAX_KEY = 200  # characters: a key is about 50


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def sign_in_page(
    request: Request, form_session: sessions.WebSession, failed: bool = False
) -> Response:
    response = render(
        request,
        "app/sign_in.html",
        {"language": language_of(request), "csrf": form_session.csrf, "failed": failed},
        status=401 if failed else 200,
    )
    set_session(response, request, SIGN_IN, form_session)
    return response


def _still_signed_in(request: Request) -> bool:
    try:
        signed_in(request)
    except WebError:
        return False
    return True


@router.get("/sign-in")
def sign_in_form(request: Request) -> Response:
    if _still_signed_in(request):
        return secure(RedirectResponse(HOME, status_code=303))
    wall = wall_now()
    form_session = current(request, SIGN_IN) or sessions.start(
        SIGN_IN.name, 0, "-", wall, wall + sessions.IDLE
    )
    return sign_in_page(request, form_session)


@router.post("/sign-in")
def sign_in(request: Request, posted: Posted) -> Response:
    form_session = current(request, SIGN_IN)
    if form_session is None:
        raise csrf_refused()
    check_csrf(posted, form_session)
    rt = runtime(request)
    if rt.throttle.retry_after(_client(request)):
        raise WebError(429, "app.error.throttled")
    key = posted.get("key").strip()
    with rt.reads() as session:
        row = None
        if key.startswith("fb_") and len(key) <= MAX_KEY:
            row = merchant_service.authenticate_key(session, key)
    if row is None:
        rt.throttle.failed(_client(request))
        return sign_in_page(request, form_session, failed=True)
    wall = wall_now()
    started = sessions.start(
        APP.name, row.merchant_id, row.prefix, wall, wall + sessions.ABSOLUTE, role=row.role
    )

    def work(ctx: Ctx) -> tuple[str, None]:
        return f"api_key:{started.subject}", None

    act(request, started, "back_office.sign_in", {"role": row.role}, work)
    response = secure(RedirectResponse(HOME, status_code=303))
    clear_session(response, request, SIGN_IN)
    set_session(response, request, APP, started)
    return response


@router.post("/sign-out")
def sign_out(request: Request, staff: Who, posted: Posted) -> Response:
    check_csrf(posted, staff.session)

    def work(ctx: Ctx) -> tuple[str, None]:
        return f"api_key:{staff.session.subject}", None

    act(request, staff.session, "back_office.sign_out", {}, work)
    response = secure(RedirectResponse("/app/signed-out", status_code=303))
    clear_session(response, request, APP)
    return response


@router.get("/signed-out")
def signed_out_page(request: Request) -> Response:
    return render(
        request,
        "app/message.html",
        {
            "language": language_of(request),
            "key": "app.signed_out",
            "detail": None,
            "back": "/app/sign-in",
            "back_label": "app.sign_in.go",
        },
    )
