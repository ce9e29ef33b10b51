"""The site's own files at ``/static/`` and the interactive API docs at ``/docs`` and
``/redoc``, both from vendored copies (``static/vendor/README.md``): they work offline.

The app is created with ``docs_url=None, redoc_url=None`` (FastAPI's own pages load
Swagger UI and ReDoc from a CDN and are blank without internet); these replace them.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from fairbill.web.templating import static

STATIC_DIR = Path(__file__).parent / "static"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
# Nothing on the docs pages leaves this server: ReDoc's "by Redocly" logo, the one asset
# its bundle fetches from a CDN, is refused by the browser (ReDoc hides it then). FastAPI's
# pages start Swagger UI with an inline script and both inject styles, hence those.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def _offline(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_POLICY
    return page


def install_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def install_docs(app: FastAPI) -> None:
    title = f"{app.title} API"
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = static("vendor/swagger-ui/favicon-32x32.png")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=static("vendor/swagger-ui/swagger-ui-bundle.js"),
            swagger_css_url=static("vendor/swagger-ui/swagger-ui.css"),
            swagger_favicon_url=favicon,
            oauth2_redirect_url=OAUTH2_REDIRECT,
            # No call to the public validator either: the page must work offline.
            swagger_ui_parameters={"validatorUrl": None},
        )
        return _offline(page)

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=title,
            redoc_js_url=static("vendor/redoc/redoc.standalone.js"),
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )
        return _offline(page)
