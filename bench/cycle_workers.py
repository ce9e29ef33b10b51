"""``bench/cycle.py --workers N``: the daily cycle run by N worker processes side by side.

Each worker is a process of its own (multiprocessing, spawned) with its own engine and
runs, at each day's local midnight, what ``fairbill worker --once --at DAY`` runs:
``background.tick`` (the janitors, then the merchant's renewals claimed chunk by chunk
with ``SKIP LOCKED``, then its other due work under its advisory lock). The days go in
lock-step: every worker starts a day together (a barrier) and the next day starts when
the last one is done, so the wall time of a day is its slowest worker's.

The gateway is a stateless stand-in for the processor: it declines the bench's declining
tokens (``tok_<i>`` with ``i`` a multiple of ``decline_every``) and answers a key the same
way every time (the reference is the key's), so it keeps no books that would grow with the
number of subscriptions: a worker's peak memory is fairbill's own.

Each worker reports its CPU time, its peak RSS and the renewals its chunks claimed.
"""

from __future__ import annotations

import cProfile
import multiprocessing
import os
import resource
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class WorkerReport:
    index: int
    renewed: int  # by its chunks (the merchant's one-by-one run is not counted here)
    cpu_s: float
    peak_rss_mib: float
    error: str | None = None
    backend_cpu_s: float | None = None  # its PostgreSQL backends', when on this machine


@dataclass(frozen=True)
class Run:
    cycle_s: float
    day_times: list[tuple[float, datetime]]
    workers: list[WorkerReport]


class StatelessGateway:
    """A processor that remembers nothing and answers each key the same way every time."""

    def __init__(self, decline_every: int) -> None:
        self.decline_every = decline_every

    def charge(self, token: str, amount: Any, idempotency_key: str) -> Any:
        from fairbill.gateway.port import ChargeResult

        number = token.removeprefix("tok_")
        if self.decline_every and number.isdigit() and int(number) % self.decline_every == 0:
            return ChargeResult(False, None, "card_declined")
        return ChargeResult(True, f"ch_{idempotency_key}")

    def refund(self, charge_reference: str, amount: Any, idempotency_key: str) -> Any:
        from fairbill.gateway.port import RefundResult

        return RefundResult(True, f"re_{idempotency_key}")


def run(
    src: Path,
    url: str,
    days: list[datetime],
    workers: int,
    decline_every: int,
    profile_out: Path | None = None,
) -> Run:
    """The cycle over ``days`` by ``workers`` processes; the wall time from the first
    day's start to the last day's end. ``profile_out``: each worker's cProfile of its
    ticks is saved as ``<profile_out>.<index>``."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers + 1)
    results = context.Queue()
    procs = [
        context.Process(
            target=_worker,
            args=(str(src), url, days, decline_every, barrier, results, index, profile_out),
            name=f"bench-worker-{index}",
        )
        for index in range(workers)
    ]
    for proc in procs:
        proc.start()
    day_times: list[tuple[float, datetime]] = []
    barrier.wait()  # every worker has imported fairbill and opened its engine
    t0 = time.perf_counter()
    for day in days:
        t_day = time.perf_counter()
        barrier.wait()  # the day starts
        barrier.wait()  # the last worker is done with it
        day_times.append((time.perf_counter() - t_day, day))
    cycle_s = time.perf_counter() - t0
    reports = sorted((results.get() for _ in procs), key=lambda r: r.index)
    for proc in procs:
        proc.join()
    return Run(cycle_s, day_times, reports)


def _worker(
    src: str,
    url: str,
    days: list[datetime],
    decline_every: int,
    barrier: Any,
    results: Any,
    index: int,
    profile_out: Path | None,
) -> None:
    sys.path.insert(0, src)
    from fairbill.services import background
    from fairbill.services.clock import TestClock
    from fairbill.store.db import make_engine, session_factory

    name = f"fairbill-bench-worker-{index}"
    postgres = url.startswith("postgresql")
    engine = make_engine(url, connect_args={"application_name": name} if postgres else {})
    sessions = session_factory(engine)
    gateway = StatelessGateway(decline_every)
    renewed, cpu, error = 0, 0.0, None
    backends0 = _backend_cpu(engine, name) if postgres else None
    profiler = cProfile.Profile() if profile_out is not None else None
    barrier.wait()
    for day in days:
        barrier.wait()
        cpu0 = time.process_time()
        if profiler is not None:
            profiler.enable()
        try:
            renewed += background.tick(sessions, TestClock(day), gateway) or 0
        except Exception as exc:  # reported, and the barrier still kept
            error = f"{type(exc).__name__}: {exc}"
        if profiler is not None:
            profiler.disable()
        cpu += time.process_time() - cpu0
        barrier.wait()
    if profiler is not None:
        profiler.dump_stats(f"{profile_out}.{index}")
    backends = _backend_cpu(engine, name) if postgres else None
    engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    used = backends - backends0 if backends is not None and backends0 is not None else None
    results.put(WorkerReport(index, renewed, cpu, peak, error, used))


def _backend_cpu(engine: Any, name: str) -> float | None:
    """CPU seconds of this worker's PostgreSQL backends so far (user + system, from
    /proc): None when the server is not on this machine or /proc is not readable."""
    from sqlalchemy import text

    with engine.connect() as conn:
        pids = conn.scalars(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"), {"n": name}
        ).all()
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")
