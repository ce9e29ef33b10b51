"""Benchmark: one month of the daily billing cycle for one merchant, on a SQLite file or
PostgreSQL, in this process or in worker processes side by side.

Seeds one Kalenner merchant with N monthly subscriptions (Core bulk inserts; anchors
spread over February 2026, so every period ends somewhere in March), marks a share of the
cards as declining in the SandboxGateway, then runs the production path once a day:
advance a TestClock to local midnight, ``scheduler.run_due(ctx)``, commit. Runs at
2026-03-02 … 2026-04-01 00:00 Europe/Paris (31 runs) cover every instant of March.

Prints renewals per second (first charge attempts of renewals, successful + failed, over
the wall time of the cycle), charge attempts per second (retries included), the counts,
SQL statements per renewal, peak memory, and a cProfile summary with ``--profile``.

    .venv/bin/python bench/cycle.py [--subscriptions 100000] [--profile]
    .venv/bin/python bench/cycle.py --subscriptions 2000          # quick run
    .venv/bin/python bench/cycle.py --src /tmp/old-tree/src       # measure another tree
    .venv/bin/python bench/cycle.py --database-url postgresql+psycopg://postgres@127.0.0.1/fairbill_bench
    .venv/bin/python bench/cycle.py --database-url … --workers 2  # as 2 `fairbill worker`s

``--database-url`` drops and creates the bench's own PostgreSQL database (its name must
contain "bench"). ``--workers N`` runs each day's ``background.tick`` (the pass of
``fairbill worker --once``) in N processes together (``bench/cycle_workers.py``) and
reports each one's CPU, its database backends' CPU and its peak RSS.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import resource
import sys
import time
import tracemalloc
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent

PLAN_CODE = "pro-monthly"
PRICE_MINOR = 2900  # EUR 29.00
TZ = ZoneInfo("Europe/Paris")
ANCHOR_FROM = datetime(2026, 2, 1, tzinfo=TZ)  # anchors spread over [Feb 1, Mar 1)
ANCHOR_SPAN = timedelta(days=28)
CYCLE_START = datetime(2026, 3, 1, tzinfo=TZ)
SEED_CHUNK = 10_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subscriptions", type=int, default=100_000)
    p.add_argument("--db", type=Path, default=ROOT / "bench" / "cycle.db")
    p.add_argument("--days", type=int, default=31, help="daily runs after 2026-03-01 (31)")
    p.add_argument("--decline-rate", type=float, default=0.05, help="share of cards (0.05)")
    p.add_argument("--profile", action="store_true", help="cProfile the cycle (top 15)")
    p.add_argument(
        "--profile-out",
        type=Path,
        help="with --profile: save the pstats here (with --workers: one file per worker, "
        "PATH.0, PATH.1 …; default cycle.prof)",
    )
    p.add_argument(
        "--tracemalloc", action="store_true", help="Python heap peak too (slows the cycle)"
    )
    p.add_argument("--statements", type=int, default=12, help="slowest SQL kinds to list")
    p.add_argument(
        "--what-if-index",
        action="store_true",
        help="add an index on invoices.subscription_id to the bench database (not in src)",
    )
    p.add_argument("--src", type=Path, default=ROOT / "src", help="the fairbill tree to measure")
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="run the cycle in N worker processes (background.tick, as `fairbill worker`) "
        "instead of scheduler.run_due in this process",
    )
    p.add_argument(
        "--database-url",
        help="PostgreSQL instead of the SQLite file: the bench's own database (its name must "
        "contain 'bench'), dropped and created again, e.g. "
        "postgresql+psycopg://postgres@127.0.0.1:5432/fairbill_bench",
    )
    return p.parse_args(argv)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class StatementCounter:
    """Counts and times every cursor execution in the driver (an executemany counts once,
    with its rows). Listen with ``before`` and ``after`` on before/after_cursor_execute."""

    def __init__(self) -> None:
        self.on = False
        self.calls: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self._keys: dict[str, tuple[str, int]] = {}
        self._started: tuple[str, float] | None = None

    def after(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool
    ) -> None:
        if self._started is not None:
            key, t = self._started
            self.seconds[key] += time.perf_counter() - t
            self._started = None

    def __call__(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool
    ) -> None:
        if not self.on:
            return
        known = self._keys.get(statement)
        if known is None:
            known = self._keys[statement] = self._normalize(statement)
        key, groups = known
        self.calls[key] += 1
        if executemany and params and isinstance(params[0], (tuple, list, dict)):
            groups = len(params)
        self.rows[key] += groups
        self._started = (key, time.perf_counter())

    @staticmethod
    def _normalize(statement: str) -> tuple[str, int]:
        key = re.sub(r"\s+", " ", statement).strip()
        key = re.sub(r"\(\?(, \?)*\)", "(?…)", key)  # IN (?, ?, …) of any length: one key
        # insertmanyvalues sends one INSERT with k VALUES groups: one key, k rows
        groups = 1
        if key.startswith("INSERT") and "(?…), (?…)" in key:
            groups = key.count("(?…)") - key.split(" VALUES ")[0].count("(?…)")
            key = re.sub(r"\(\?…\)(, \(\?…\))+", "(?…) × k", key)
        return key, groups

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def seed(engine: Any, n: int, decline_every: int, policy: Any) -> tuple[int, list[str]]:
    """Merchant, plan, ``n`` customers with one card each and one monthly subscription.
    Returns the merchant id and the tokens that decline."""
    from sqlalchemy import insert

    from fairbill.calendar.periods import Interval, period_at
    from fairbill.store.tables import (
        CustomerRow,
        MerchantRow,
        PaymentMethodRow,
        PlanRow,
        SubscriptionRow,
    )

    month = Interval(1)
    declining: list[str] = []
    with engine.begin() as conn:
        merchant_id = conn.execute(
            insert(MerchantRow).returning(MerchantRow.id),
            {
                "name": policy.name,
                "policy_ref": policy.id,
                "policy_id": policy.id,
                "policy_version": policy.version,
                "currency": "EUR",
                "timezone": str(TZ),
                "country": "FR",
                "language": policy.language,
            },
        ).scalar_one()
        conn.execute(
            insert(PlanRow),
            {
                "merchant_id": merchant_id,
                "code": PLAN_CODE,
                "interval_months": 1,
                "price_minor": PRICE_MINOR,
                "includes": {},
            },
        )
        step = ANCHOR_SPAN / max(n, 1)
        for lo in range(0, n, SEED_CHUNK):
            ids = range(lo + 1, min(lo + SEED_CHUNK, n) + 1)
            customers, methods, subs = [], [], []
            for i in ids:
                token = f"tok_{i}"
                declines = i % decline_every == 0 if decline_every else False
                if declines:
                    declining.append(token)
                customers.append(
                    {
                        "id": i,
                        "merchant_id": merchant_id,
                        "code": f"cus_{i}",
                        "language": policy.language,
                        "terms_version": policy.version,
                    }
                )
                methods.append(
                    {
                        "id": i,
                        "customer_id": i,
                        "code": "card_1",
                        "currency": "EUR",
                        "token": token,
                        "declines": declines,
                    }
                )
                anchor = ANCHOR_FROM + step * (i - 0.5)  # strictly inside the span
                anchor = anchor.replace(microsecond=0)
                period = period_at(anchor, month, 0)
                subs.append(
                    {
                        "id": i,
                        "customer_id": i,
                        "plan_code": PLAN_CODE,
                        "status": "active",
                        "anchor": anchor,
                        "started_at": anchor,
                        "current_period_start": period.start,
                        "current_period_end": period.end,
                        "payment_method": "card_1",
                        "price_minor": PRICE_MINOR,
                        "is_first": True,
                    }
                )
            conn.execute(insert(CustomerRow), customers)
            conn.execute(insert(PaymentMethodRow), methods)
            conn.execute(insert(SubscriptionRow), subs)
    return merchant_id, declining


class PhaseTimer:
    """Wraps the service functions ``run_due`` calls (module attributes, looked up at call
    time) to split the cycle's wall time without a profiler's distortion."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def wrap(self, module: Any, name: str) -> None:
        inner = getattr(module, name, None)
        if inner is None:
            return
        label = f"{module.__name__.rsplit('.', 1)[-1]}.{name}"

        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - t
                self.calls[label] += 1

        setattr(module, name, timed)


def tally(session: Any) -> dict[str, int]:
    """What the cycle wrote (the seed writes no invoices, payments or failures)."""
    from sqlalchemy import func, select

    from fairbill.store.tables import (
        FailedPaymentRow,
        InvoiceRow,
        JournalTransactionRow,
        NotificationRow,
        PaymentRow,
        SubscriptionRow,
    )

    def count(q: Any) -> int:
        return int(session.scalar(q) or 0)

    failed_first = count(
        select(func.count()).select_from(FailedPaymentRow).where(FailedPaymentRow.attempt == 1)
    )
    failed_retries = count(
        select(func.count()).select_from(FailedPaymentRow).where(FailedPaymentRow.attempt > 1)
    )
    recovered = count(
        select(func.count(func.distinct(PaymentRow.id))).join(
            FailedPaymentRow, FailedPaymentRow.invoice_id == PaymentRow.invoice_id
        )
    )
    statuses = dict(
        session.execute(
            select(SubscriptionRow.status, func.count()).group_by(SubscriptionRow.status)
        ).all()
    )
    return {
        "invoices": count(
            select(func.count()).select_from(InvoiceRow).where(InvoiceRow.purpose == "subscription")
        ),
        "payments": count(select(func.count()).select_from(PaymentRow)),
        "failed_first": failed_first,
        "failed_retries": failed_retries,
        "recovered": recovered,
        "journal": count(select(func.count()).select_from(JournalTransactionRow)),
        "notifications": count(select(func.count()).select_from(NotificationRow)),
        **{f"status:{k}": int(v) for k, v in statuses.items()},
    }


def shown_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def open_database(args: argparse.Namespace, make_engine: Any) -> Any:
    """The bench's own empty database: the SQLite file removed, or the PostgreSQL database
    of ``--database-url`` dropped and created again (only one whose name says 'bench')."""
    if not args.database_url:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        args.db.parent.mkdir(parents=True, exist_ok=True)
        return make_engine(f"sqlite:///{args.db}")
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    url = make_url(args.database_url)
    name = url.database or ""
    if url.get_backend_name() != "postgresql" or "bench" not in name:
        raise SystemExit(f"--database-url: a PostgreSQL database named *bench*, not {name!r}")
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return make_engine(args.database_url)


def after_seed(engine: Any) -> None:
    """PostgreSQL after the seed: each id sequence moved past the explicit ids, and the
    planner's statistics gathered (as autovacuum does on a live database; without them it
    plans for empty tables, and the retry select alone took 0.6 s a day at 20,000)."""
    from fairbill.store.tables import Base

    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
        for name, t in Base.metadata.tables.items():
            if "id" in t.c and t.c.id.autoincrement is not False and t.c.id.primary_key:
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f'GREATEST((SELECT max(id) FROM "{name}"), 1))'
                )


def database_mib(engine: Any, db: Path) -> float:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
        return int(size or 0) / 2**20
    engine.dispose()  # checkpoints the WAL, if any, into the file
    files = (f"{db}{suffix}" for suffix in ("", "-wal"))
    return sum(os.path.getsize(f) for f in files if os.path.exists(f)) / 2**20


def run_workers(
    args: argparse.Namespace, engine: Any, merchant_id: int, days: list[datetime], every: int
) -> Any:
    """The cycle by ``args.workers`` processes (``bench/cycle_workers.py``). The merchant's
    policy file becomes its stored version first, here, not in racing workers."""
    from cycle_workers import run

    from fairbill.gateway.sandbox import SandboxGateway
    from fairbill.services import merchants
    from fairbill.services.clock import TestClock
    from fairbill.store.db import session_factory
    from fairbill.store.tables import MerchantRow

    with session_factory(engine)() as session:
        merchant = session.get_one(MerchantRow, merchant_id)
        merchants.context(session, TestClock(CYCLE_START), SandboxGateway(), merchant)
        session.commit()
    url = args.database_url or f"sqlite:///{args.db}"
    engine.dispose()  # no pooled connection is shared with the worker processes
    profile_out = (args.profile_out or Path("cycle.prof")) if args.profile else None
    return run(args.src.resolve(), url, days, args.workers, every, profile_out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(args.src.resolve()))

    from sqlalchemy import event

    import fairbill
    from fairbill.gateway.sandbox import SandboxGateway
    from fairbill.policy.load import bundled_policy
    from fairbill.services import accounts, credits, scheduler, subscriptions
    from fairbill.services.clock import TestClock
    from fairbill.services.context import Ctx
    from fairbill.store.db import create_schema, make_engine, session_factory
    from fairbill.store.tables import MerchantRow

    n = args.subscriptions
    decline_every = round(1 / args.decline_rate) if args.decline_rate > 0 else 0
    policy = bundled_policy("kalenner")
    engine = open_database(args, make_engine)
    create_schema(engine)
    if args.what_if_index:
        from sqlalchemy import inspect, text

        indexed = any(
            ix["column_names"] == ["subscription_id"]
            for ix in inspect(engine).get_indexes("invoices")
        )
        if indexed:
            print("  (--what-if-index: invoices.subscription_id is indexed already, no change)")
        else:
            with engine.begin() as conn:
                conn.execute(
                    text("CREATE INDEX ix_bench_invoices_sub ON invoices (subscription_id)")
                )

    t0 = time.perf_counter()
    merchant_id, declining = seed(engine, n, decline_every, policy)
    if engine.dialect.name == "postgresql":
        after_seed(engine)
    seed_s = time.perf_counter() - t0
    rss_seeded = rss_mib()

    phases = PhaseTimer()
    for module, name in (
        (accounts, "retry_due"),
        (subscriptions, "usage_check"),
        (getattr(scheduler, "billing_cycle", None), "renew_due"),
        (subscriptions, "advance"),
        (credits, "expire"),
        (accounts, "delete_data_if_due"),
        (scheduler, "_customer"),
    ):
        if module is not None:
            phases.wrap(module, name)
    counter = StatementCounter()
    event.listen(engine, "before_cursor_execute", counter)
    event.listen(engine, "after_cursor_execute", counter.after)
    try:
        from fairbill.services.operations import commit_and_settle as settle
    except ImportError:  # an older tree: its charges were made inside the transaction
        settle = None
    gateway = SandboxGateway()
    for token in declining:
        gateway.set_declines(token, True)
    clock = TestClock(CYCLE_START)
    days = [CYCLE_START + timedelta(days=d) for d in range(1, args.days + 1)]
    day_times: list[tuple[float, datetime]] = []
    profiler = cProfile.Profile() if args.profile else None

    if args.workers:
        result = run_workers(args, engine, merchant_id, days, decline_every)
        cycle_s, day_times, workers = result.cycle_s, result.day_times, result.workers
        cycle_cpu = sum(w.cpu_s for w in workers)
        heap_peak = None
        with session_factory(engine)() as session:
            t = tally(session)
    else:
        with session_factory(engine)() as session:
            ctx = Ctx(session, clock, gateway, session.get_one(MerchantRow, merchant_id), policy)
            session.commit()
            if args.tracemalloc:
                tracemalloc.start()
            counter.on = True
            if profiler:
                profiler.enable()
            t0, cpu0 = time.perf_counter(), time.process_time()
            for day in days:
                clock.advance_to(day)  # local midnight: aware + timedelta: wall-clock arithmetic
                t_day = time.perf_counter()
                scheduler.run_due(ctx)
                t_commit = time.perf_counter()
                # Commit, then (trees with durable gateway operations) send the charges and
                # record their outcomes: the money moves after the commit, as in production.
                settle(ctx) if settle else session.commit()
                phases.seconds["session.commit"] += time.perf_counter() - t_commit
                phases.calls["session.commit"] += 1
                day_times.append((time.perf_counter() - t_day, day))
            cycle_s = time.perf_counter() - t0
            cycle_cpu = time.process_time() - cpu0
            if profiler:
                profiler.disable()
            counter.on = False
            heap_peak = tracemalloc.get_traced_memory()[1] if args.tracemalloc else None
            if args.tracemalloc:
                tracemalloc.stop()
            t = tally(session)

    renewals = t["invoices"]
    failures = t["failed_first"]
    successful = t["payments"] - t["recovered"]
    retries = t["failed_retries"] + t["recovered"]
    attempts = renewals + retries
    statements = counter.total
    slowest = max(day_times)
    src = Path(fairbill.__file__).resolve().parent.parent
    db_mib = database_mib(engine, args.db)
    engine.dispose()  # checkpoints the WAL, if any, into the file
    where = shown_url(args.database_url) if args.database_url else f"SQLite file {args.db}"

    print(f"fairbill cycle benchmark — {n:,} monthly subscriptions, {where}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"  load average at the end: {load} on {os.cpu_count()} CPUs (wall time suffers above 1)")
    print(f"  code under test: {src}" + (" + what-if index" if args.what_if_index else ""))
    print(
        f"  seed (Core bulk inserts, chunks of {SEED_CHUNK:,}): {seed_s:.2f} s "
        f"({3 * n / seed_s:,.0f} rows/s); {len(declining):,} declining cards"
    )
    runner = (
        f"background.tick in {args.workers} worker processes, a transaction per chunk"
        if args.workers
        else "scheduler.run_due, commit per day"
    )
    print(
        f"  cycle: {len(days)} daily runs of {runner}, "
        f"{days[0].date()} … {days[-1].date()} 00:00 {TZ.key}"
    )
    print()
    print(
        f"  wall time of the cycle:   {cycle_s:10.2f} s  (CPU {cycle_cpu:.2f} s)"
        + ("  — under cProfile" if profiler else "")
    )
    print(f"  RENEWALS PER SECOND:      {renewals / cycle_s:10,.0f}  (target ≥ 5,000)")
    whose = "the workers'" if args.workers else "this process's"
    print(f"  renewals per CPU second:  {renewals / cycle_cpu:10,.0f}  ({whose} CPU time)")
    print(f"  charge attempts / second: {attempts / cycle_s:10,.0f}  (renewals + retries)")
    print(f"  renewals (invoices):      {renewals:10,}  ({successful:,} paid, {failures:,} failed)")
    print(f"  retries:                  {retries:10,}  ({t['recovered']:,} recovered)")
    print(
        "  subscriptions by status:  "
        + ", ".join(f"{k[7:]} {v:,}" for k, v in sorted(t.items()) if k.startswith("status:"))
    )
    print(
        f"  rows written: {t['journal']:,} journal transactions, "
        f"{t['notifications']:,} notifications; database {db_mib:,.1f} MiB"
    )
    print(
        f"  slowest day: {slowest[1].date()} {slowest[0]:.2f} s; "
        f"mean day {cycle_s / len(days):.2f} s"
    )
    if args.workers:
        for w in workers:
            db = (
                ""
                if w.backend_cpu_s is None
                else f" (its database backends {w.backend_cpu_s:.2f} s)"
            )
            print(
                f"  worker {w.index}: {w.renewed:,} renewals by its chunks, "
                f"CPU {w.cpu_s:.2f} s{db}, "
                f"peak RSS {w.peak_rss_mib:,.0f} MiB" + (f"; FAILED {w.error}" if w.error else "")
            )
        backend = [w.backend_cpu_s for w in workers]
        if None not in backend:
            both = cycle_cpu + sum(b for b in backend if b is not None)
            print(
                f"  renewals per CPU second, workers and their database backends together: "
                f"{renewals / both:,.0f} ({both:.2f} s)"
            )
        return 1 if any(w.error for w in workers) else 0
    per = f"{statements / renewals:.1f}" if renewals else "n/a"
    print(f"  SQL statements in the cycle: {statements:,} ({per} per renewal)")
    print(f"  peak RSS: {rss_mib():,.0f} MiB (after seeding {rss_seeded:,.0f} MiB)")
    if heap_peak is not None:
        print(f"  peak Python heap during the cycle (tracemalloc): {heap_peak / 2**20:,.0f} MiB")
    print()
    print("  where the wall time goes (seconds, calls, µs per call; nested: _customer is")
    print("  inside the scheduler loops, not inside the services):")
    for label, secs in phases.seconds.most_common():
        calls = phases.calls[label]
        print(f"    {secs:7.2f} {calls:8,} {secs / calls * 1e6:9,.0f}  {label}")
    rest = cycle_s - sum(v for k, v in phases.seconds.items())
    print(f"    {rest:7.2f}                    the rest: run_due's own selects, flush, loop")
    if args.statements:
        print()
        in_driver = sum(counter.seconds.values())
        print(
            f"  SQL by time inside the driver ({in_driver:.2f} s of {cycle_s:.2f} s in all; "
            "seconds, calls, rows, statement):"
        )
        for key, secs in counter.seconds.most_common(args.statements):
            text = key if len(key) <= 100 else key[:97] + "..."
            print(f"    {secs:6.2f} {counter.calls[key]:8,} {counter.rows[key]:8,}  {text}")
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative")
        stats.print_stats(15)
        if args.profile_out:
            profiler.dump_stats(args.profile_out)
        stats.sort_stats("tottime").print_stats(10)
        print()
        print("  cProfile, top 15 by cumulative time, then top 10 by own time:")
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
