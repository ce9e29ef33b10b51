"""The web: server-rendered pages on the API's FastAPI app.

``install(app)`` adds the site's own static files (``/static/``, vendored: no CDN), the
interactive API docs served from them (``/docs``, ``/redoc``), and the areas: the
customer portal (``/portal/``) and the merchant's back office (``/app/``, ``backoffice``).
Shared by every area: ``templating`` (Jinja with the emails' Babel filters, the words of
``words``), ``http`` (session cookie, CSRF, forms, security headers, HTML errors),
``sessions`` (signed cookies) and ``actions`` (a state change: one transaction, its audit
row, then the gateway). An area is a router built on those; it parses, calls services and
renders, and never writes a table itself.
"""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    from fairbill.web import assets, backoffice, portal
    from fairbill.web.http import install_secret

    install_secret(app)
    assets.install_static(app)
    assets.install_docs(app)
    app.include_router(portal.router)
    app.include_router(backoffice.router)
