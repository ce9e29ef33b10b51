"""What a running API holds: the engine, the clock, the gateway and the admin token."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from fairbill.gateway.port import PaymentGateway
from fairbill.gateway.sandbox import SandboxGateway
from fairbill.services.clock import Clock, SystemClock
from fairbill.store.db import reader_engine, session_factory


@dataclass
class Runtime:
    engine: Engine
    clock: Clock = field(default_factory=SystemClock)
    gateway: PaymentGateway = field(default_factory=SandboxGateway)
    admin_token: str | None = None
    sessions: sessionmaker[Session] = field(init=False)
    # Sessions that only read (GET routes, authentication, previews): they never write,
    # so on a SQLite file they do not queue behind writers (``store.db.reader_engine``).
    reads: sessionmaker[Session] = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = session_factory(self.engine)
        self.reads = session_factory(reader_engine(self.engine))

    def close(self) -> None:
        """Close the pooled connections of both engines."""
        reader = self.reads.kw["bind"]
        if reader is not self.engine:
            reader.dispose()
        self.engine.dispose()
