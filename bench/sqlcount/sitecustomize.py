"""The bench's counter of SQL per request (``bench/api.py``); not part of fairbill.

``bench/api.py`` puts this folder first on the server's ``PYTHONPATH`` with
``FAIRBILL_BENCH_SQL_DIR`` set, so every process of the server (each uvicorn worker too)
imports this module at start-up. It counts, for each HTTP request that carries the header
``x-bench-count``, the SQL statements its threads sent (``BEGIN`` excluded) and the
transactions they began, under the route's template; at exit each process writes its
counts to ``FAIRBILL_BENCH_SQL_DIR/<pid>.json``. Only the server's own work is counted:
a statement belongs to the request whose context (a ``contextvars`` value, which
Starlette copies into its thread pool) it ran in; the background tick has none.

It patches ``FastAPI.__call__`` and listens on every SQLAlchemy engine, so it works for
any source tree the bench runs (``--src``), old or new.
"""

from __future__ import annotations

import atexit
import contextvars
import json
import os
import signal
import threading
from collections import defaultdict
from typing import Any

_DIR = os.environ.get("FAIRBILL_BENCH_SQL_DIR")


def _install(folder: str) -> None:
    from multiprocessing import util

    from fastapi import FastAPI
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    current: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
        "bench_sql", default=None
    )
    # route -> [requests, statements, transactions, selects, writes]
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    lock = threading.Lock()

    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counts = current.get()
        if counts is None:
            return
        word = statement.lstrip()[:6].upper()
        if word.startswith("BEGIN"):
            return
        counts[0] += 1
        if word.startswith(("SELECT", "WITH")):
            counts[2] += 1
        else:
            counts[3] += 1

    @event.listens_for(Engine, "begin")
    def _begin(conn: Any) -> None:
        counts = current.get()
        if counts is not None:
            counts[1] += 1

    original = FastAPI.__call__

    async def counted(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not any(
            name == b"x-bench-count" for name, _ in scope.get("headers", ())
        ):
            await original(self, scope, receive, send)
            return
        counts = [0, 0, 0, 0]
        token = current.set(counts)
        try:
            await original(self, scope, receive, send)
        finally:
            current.reset(token)
            route = getattr(scope.get("route"), "path", None) or scope.get("path", "?")
            name = f"{scope['method']} {route}"
            with lock:
                total = totals[name]
                total[0] += 1
                for i in range(4):
                    total[i + 1] += counts[i]

    FastAPI.__call__ = counted  # type: ignore[method-assign]
    written = False

    def dump() -> None:
        nonlocal written
        if written:
            return
        written = True
        with lock:
            data = {k: v for k, v in totals.items()}
        path = os.path.join(folder, f"{os.getpid()}.json")
        with open(path, "w") as out:
            json.dump(data, out)

    def on_term(signum: int, frame: Any) -> None:
        # uvicorn catches SIGTERM, shuts down, puts back the handler it found (this one)
        # and raises the signal again: count, then die of it as before.
        dump()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    atexit.register(dump)
    # A uvicorn worker is a multiprocessing child: it ends with os._exit after running
    # multiprocessing's finalizers, not atexit's.
    util.Finalize(None, dump, exitpriority=100)


if _DIR:
    _install(_DIR)
