"""``fairbill serve --workers N``: N uvicorn worker processes on one port.

The parent process (``fairbill serve``) migrates, does the start-up work once (releases
the idempotency claims of dead processes, reconciles the gateway operations they left
open), runs the due work and the outbox (unless a worker is expected), then hands the
port to uvicorn, which starts N children. Each child builds its own runtime (engine,
pools, credential cache) from the settings the parent hands down in ``CHILD_ENV``, and
serves requests only: the due work runs in one process, the parent, never in every
worker. A test clock cannot be shared between processes, so ``--test-clock`` needs one
worker.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import SecretStr

from fairbill import logs
from fairbill.api.app import create_app
from fairbill.api.settings import Runtime
from fairbill.config import Settings
from fairbill.services.credential_cache import SERVE_TTL, CredentialCache
from fairbill.store.db import make_engine

CHILD_ENV = "FAIRBILL_SERVE_CHILD"
APP = "fairbill.cli.serve_workers:app"
# What a worker does not need: the outbox (SMTP) runs in the parent.
_NOT_HANDED_DOWN = frozenset({"smtp_password"})


def hand_down(settings: Settings, admin_token: str) -> str:
    """The parent's settings, for its workers (JSON; secrets in clear, as the children
    need them: the variable lives in the environment of this server's processes only)."""
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        if name in _NOT_HANDED_DOWN:
            continue
        value = getattr(settings, name)
        values[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    values["admin_token"] = admin_token
    return json.dumps(values)


def settings_handed_down(text: str) -> Settings:
    # Validated from the parent's values alone (not the environment again).
    return Settings.model_validate(json.loads(text))


@asynccontextmanager
async def _no_start_up(_app: FastAPI) -> AsyncIterator[None]:
    yield  # the parent did the start-up work once, before the workers started


def app() -> FastAPI:
    """The application of one worker (uvicorn's factory)."""
    settings = settings_handed_down(os.environ[CHILD_ENV])
    logs.configure(settings.log_format, settings.log_level)
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    runtime = Runtime(
        make_engine(settings.database_url),
        admin_token=admin,
        settings=settings,
        credentials=CredentialCache(SERVE_TTL),
    )
    served = create_app(runtime)
    served.router.lifespan_context = _no_start_up
    return served
