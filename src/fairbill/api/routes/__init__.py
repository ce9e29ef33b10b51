"""Route modules, one per resource family; each exposes ``router``."""

from __future__ import annotations

from fastapi import FastAPI


def register_routes(app: FastAPI) -> None:
    from fairbill.api.routes import (
        account,
        api_keys,
        billing,
        customers,
        merchants,
        policies,
        refund_requests,
        subscriptions,
    )

    for module in (
        merchants,
        api_keys,
        customers,
        subscriptions,
        refund_requests,
        billing,
        account,
        policies,
    ):
        app.include_router(module.router)
    app.include_router(policies.public)
