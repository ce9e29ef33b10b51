"""A what-if over a database: one merchant's stored decisions decided again under another
policy (``audit.redecide``) and summed up (``whatif.summarize``), on several cores.

Re-deciding is CPU work (decoding each call's facts, deciding): given ``Workers``, a
merchant's decision ids are cut into ranges and each range runs in a worker process with
its own read-only connection; the parent combines the ranges' reports in id order, so the
result is the one a single pass gives. Read-only.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fairbill.policy.model import Policy
from fairbill.services import audit
from fairbill.services.whatif import Report, combine, relabel, summarize
from fairbill.store.db import make_engine, reader_engine, session_factory
from fairbill.store.tables import CustomerRow, DecisionRow, MerchantRow

__all__ = ["CHUNK", "SMALL", "Scope", "Workers", "redecide_merchant", "scope"]

CHUNK = 20_000  # decisions per worker task at most
SMALL = 2_000  # a merchant with no more decisions than this: one pass in this process


@dataclass(frozen=True, slots=True)
class Scope:
    """The stored decisions with facts of one merchant: how many, and their id span."""

    merchant_id: int
    count: int
    first_id: int
    last_id: int


def scope(session: Session, merchant: MerchantRow) -> Scope:
    d = DecisionRow
    count, first, last = session.execute(
        select(func.count(d.id), func.min(d.id), func.max(d.id))
        .join(CustomerRow, CustomerRow.id == d.customer_id)
        .where(CustomerRow.merchant_id == merchant.id, d.facts.is_not(None))
    ).one()
    return Scope(merchant.id, count or 0, first or 0, last or 0)


class Workers:
    """``jobs`` worker processes for ``redecide_merchant``, shared by every merchant of a
    run; none for one job. All are started (forked) on entering, before the caller starts
    threads of its own (a progress bar): a process forked later would copy their locks."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Workers:
        if self.jobs > 1:
            context = multiprocessing.get_context("fork")
            self.pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=context)
            # A fork-context pool starts all its processes on the first task.
            self.pool.submit(int).result()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None


def redecide_merchant(
    url: str,
    session: Session,
    merchant: MerchantRow,
    under: Policy,
    *,
    workers: Workers | None = None,
    chunk: int = CHUNK,
    small: int = SMALL,
    on_progress: Callable[[int], None] | None = None,
) -> Report:
    """The what-if report of ``merchant``'s decisions under ``under``. ``session`` reads
    the scope and the customers' codes; workers open ``url`` themselves. More than
    ``small`` decisions go to the workers in id ranges (at least one per worker, at most
    ``chunk`` decisions each). ``on_progress`` is told how many decisions were re-decided,
    as they are."""
    source = f"merchant {merchant.id}"
    span = scope(session, merchant)
    codes = {
        str(cid): f"{source}/{code}"
        for cid, code in session.execute(
            select(CustomerRow.id, CustomerRow.code).where(CustomerRow.merchant_id == merchant.id)
        ).tuples()
    }
    pool = workers.pool if workers is not None else None
    if pool is None or workers is None or span.count <= small:
        rows = audit.redecide(session, merchant, under=under)
        report = summarize(_counted(rows, on_progress), currency=merchant.currency)
        return relabel(report, codes, source=source)
    parts = max(workers.jobs, -(-span.count // chunk))
    futures: list[Future[Report]] = [
        pool.submit(_range_report, url, merchant.id, under, lo, hi)
        for lo, hi in _ranges(span, parts)
    ]
    if on_progress is not None:
        tell = on_progress
        for future in futures:
            future.add_done_callback(lambda f: tell(0 if f.exception() else f.result().compared))
    reports = [f.result() for f in futures]  # in id order
    return relabel(combine(reports), codes, source=source)


def _ranges(span: Scope, parts: int) -> list[tuple[int, int]]:
    """``parts`` id ranges ``[lo, hi)`` over the span (ids spread evenly)."""
    width = max(1, -(-(span.last_id - span.first_id + 1) // parts))
    return [
        (lo, min(lo + width, span.last_id + 1))
        for lo in range(span.first_id, span.last_id + 1, width)
    ]


def _range_report(url: str, merchant_id: int, under: Policy, lo: int, hi: int) -> Report:
    """In a worker: one id range, on the worker's own connection."""
    engine = reader_engine(make_engine(url))
    try:
        with session_factory(engine)() as session:
            merchant = session.get_one(MerchantRow, merchant_id)
            rows = audit.redecide(session, merchant, under=under, ids=(lo, hi))
            return summarize(rows, currency=merchant.currency)
    finally:
        engine.dispose()


def _counted(
    rows: Iterator[audit.Redecided], on_progress: Callable[[int], None] | None
) -> Iterator[audit.Redecided]:
    if on_progress is None:
        yield from rows
        return
    n = 0
    for row in rows:
        yield row
        n += 1
        if n == 1000:
            on_progress(n)
            n = 0
    if n:
        on_progress(n)
