"""What a running API holds: the engine, the clock, the gateway, the admin token, the
operator's settings and the throttle of failed authentications."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from fairbill.api.throttle import Throttle
from fairbill.config import Settings, defaults
from fairbill.gateway.port import PaymentGateway
from fairbill.gateway.sandbox_db import DatabaseSandbox
from fairbill.services.clock import Clock, SystemClock
from fairbill.services.credential_cache import CredentialCache
from fairbill.store.db import reader_engine, session_factory

# Stands for "the database sandbox of this runtime's engine", made in ``__post_init__``.
_DATABASE_SANDBOX = cast(PaymentGateway, object())


@dataclass
class Runtime:
    engine: Engine
    clock: Clock = field(default_factory=SystemClock)
    # Unless given: the sandbox, with its books in this database (a restart changes nothing).
    gateway: PaymentGateway = _DATABASE_SANDBOX
    admin_token: str | None = None
    # What the operator set (``fairbill.config``); the defaults for a runtime built in code.
    settings: Settings = field(default_factory=defaults)
    # Failed authentications per client (``api.throttle``): this runtime's own.
    throttle: Throttle = field(default_factory=Throttle)
    # API keys authenticated lately (``services.credential_cache``): off unless given
    # (``fairbill serve`` keeps them a second).
    credentials: CredentialCache = field(default_factory=CredentialCache)
    sessions: sessionmaker[Session] = field(init=False)
    # Sessions that only read (GET routes, authentication, previews): they never write,
    # so on a SQLite file they do not queue behind writers (``store.db.reader_engine``).
    reads: sessionmaker[Session] = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = session_factory(self.engine)
        self.reads = session_factory(reader_engine(self.engine))
        if self.gateway is _DATABASE_SANDBOX:
            self.gateway = DatabaseSandbox(self.sessions)

    def close(self) -> None:
        """Close the pooled connections of both engines."""
        reader = self.reads.kw["bind"]
        if reader is not self.engine:
            reader.dispose()
        self.engine.dispose()
