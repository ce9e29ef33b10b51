"""Benchmark: the pure decision core, and stored decisions re-decided by ``whatif``.

Two figures, both for one process on one core:

* **core**: ``decide_refund`` and ``decide_cancel`` on the five bundled policies, with the
  facts of the worked examples (tests/decisions/test_worked_examples.py) and a few more
  refund kinds, called over and over. Target: >= 50,000 decisions/s.
* **whatif**: a SQLite file of N stored decisions (facts recorded by the real services:
  some scenario files replayed, then their customers and decisions copied in bulk), every
  one decoded from its recorded facts and decided again under a policy
  (``services.audit.redecide`` with ``under=``, facts loaded in batches), then aggregated
  as ``fairbill whatif`` does. Target: >= 20,000 re-decided/s.

Every decision's fields are hashed into a fingerprint: two trees that decide alike print
the same fingerprint (the optimisations must not change a byte of an explanation).

    .venv/bin/python bench/decide.py                         # both, 100,000 stored decisions
    .venv/bin/python bench/decide.py --only core --seconds 5
    .venv/bin/python bench/decide.py --decisions 20000 --profile
    .venv/bin/python bench/decide.py --src /tmp/old/src      # measure another tree
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import resource
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORE_TARGET = 50_000
WHATIF_TARGET = 20_000

# The scenario files replayed to record realistic decisions (every policy, every path:
# cancellations, guarantees, refunds of each kind, reviews, disruptions).
SEED_SCENARIOS = (
    "conek-cooling-off.yaml",
    "conek-outage-credit.yaml",
    "conek-non-delivery-and-outage-credit-capped-at-amount-paid.yaml",
    "conek-unauthorized-day-30-with-documents-reviewed.yaml",
    "emailconsul-money-back.yaml",
    "emailconsul-no-reason.yaml",
    "emailconsul-auto-renewal-used-since-unused-days.yaml",
    "emailconsul-terms-declined-day-10-prorated-from-decline.yaml",
    "kalenner-annual-cancel.yaml",
    "kalenner-guarantee-refund.yaml",
    "kalenner-monthly-cancel-after-guarantee.yaml",
    "kalenner-failed-payments.yaml",
    "qomon-annual-no-refund.yaml",
    "qomon-duplicate-charge-to-wallet.yaml",
    "voip-immediate-cancel.yaml",
    "voip-service-disruption.yaml",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("core", "whatif"), help="one of the two figures")
    p.add_argument("--seconds", type=float, default=3.0, help="per core round (3)")
    p.add_argument("--rounds", type=int, default=3, help="core rounds; the best counts (3)")
    p.add_argument("--decisions", type=int, default=100_000, help="stored decisions (100,000)")
    p.add_argument("--db", type=Path, default=ROOT / "bench" / "whatif.db")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="whatif processes")
    p.add_argument("--profile", action="store_true", help="cProfile one more pass of each")
    p.add_argument("--profile-out", type=Path, help="with --profile: save the pstats here")
    p.add_argument("--src", type=Path, default=ROOT / "src", help="the fairbill tree to measure")
    return p.parse_args(argv)


# -- the core ---------------------------------------------------------------------------------
Case = tuple[str, Callable[[], Any]]


def core_cases() -> list[Case]:
    """(name, call) for each decision: the worked examples' facts, built once."""
    sys.path.insert(0, str(ROOT))
    from tests.decisions.helpers import (
        cash,
        customer,
        local,
        merchant,
        outage,
        payment,
        request,
        subscription,
    )

    from fairbill.decisions.cancellation import decide_cancel
    from fairbill.decisions.refund import decide_refund
    from fairbill.policy.model import ItemKind, RequestKind

    cases: list[Case] = []

    def refund(name: str, m: Any, req: Any, who: Any = None) -> None:
        who = who if who is not None else customer()
        cases.append((name, lambda: decide_refund(m, req, who, req.at)))

    def cancel(name: str, m: Any, sub: Any, now: Any, **kw: Any) -> None:
        cases.append((name, lambda: decide_cancel(m, sub, now, **kw)))

    conek = merchant("conek")
    now = local(conek, 2026, 4, 9, 12)
    sub = subscription(conek, local(conek, 2026, 4, 1, 10), "499.00", now)
    refund(
        "conek cooling-off (business days)",
        conek,
        request(RequestKind.COOLING_OFF, now, payment=sub.payments[0], subscription=sub,
                reason="changed my mind"),
        customer(type="consumer", acquisition="direct_marketing", written_cancel_at=now),
    )  # fmt: skip
    now = local(conek, 2026, 3, 12, 10)
    sub = subscription(conek, local(conek, 2026, 3, 1, 10), "499.00", now)
    credits = payment(conek, 2, local(conek, 2026, 3, 1, 10, 30), "300.00",
                      item=ItemKind.MESSAGE_CREDITS)  # fmt: skip
    refund(
        "conek credits money-back (declined)",
        conek,
        request(RequestKind.MONEY_BACK, now, payment=credits, subscription=sub),
    )
    now = local(conek, 2026, 4, 13, 8)
    sub = subscription(conek, local(conek, 2026, 4, 1), "499.00", now)
    o = outage(local(conek, 2026, 4, 10), now, "internal", local(conek, 2026, 4, 10, 2))
    refund(
        "conek outage credit (review)",
        conek,
        request(RequestKind.SERVICE_DISRUPTION, now, payment=sub.payments[0], subscription=sub,
                reason=None, outage=o),
    )  # fmt: skip
    now = local(conek, 2026, 5, 20, 9)
    sub = subscription(conek, local(conek, 2026, 3, 1), "499.00", now)
    cancel("conek monthly cancel", conek, sub, now)

    emailconsul = merchant("emailconsul")
    now = local(emailconsul, 2026, 3, 20)
    sub = subscription(emailconsul, local(emailconsul, 2026, 3, 1), "30.00", now)
    refund(
        "emailconsul money-back used (review)",
        emailconsul,
        request(RequestKind.MONEY_BACK, now, payment=sub.payments[0], subscription=sub,
                reason="deliverability was poor", order_numbers=("1",),
                used_since_payment=True),
    )  # fmt: skip
    now = local(emailconsul, 2026, 3, 5)
    sub = subscription(emailconsul, local(emailconsul, 2026, 3, 1), "30.00", now)
    refund(
        "emailconsul no reason (declined)",
        emailconsul,
        request(RequestKind.MONEY_BACK, now, payment=sub.payments[0], subscription=sub,
                reason=None),
    )  # fmt: skip
    now = local(emailconsul, 2026, 5, 3, 12)
    sub = subscription(emailconsul, local(emailconsul, 2026, 3, 1), "30.00", now)
    refund(
        "emailconsul unused renewal (billing error)",
        emailconsul,
        request(RequestKind.BILLING_ERROR, now, payment=sub.payments[-1], subscription=sub,
                reason="renewed by mistake", order_numbers=("3",)),
    )  # fmt: skip
    cancel("emailconsul cancel", emailconsul, sub, now)

    kalenner = merchant("kalenner")
    now = local(kalenner, 2026, 4, 20, 10)
    sub = subscription(kalenner, local(kalenner, 2026, 1, 10, 9), "240.00", now, months=12)
    cancel("kalenner annual cancel (months left)", kalenner, sub, now)
    now = local(kalenner, 2026, 3, 12, 15)
    sub = subscription(kalenner, local(kalenner, 2026, 3, 5, 10), "29.00", now)
    cancel("kalenner guarantee cancel", kalenner, sub, now)
    refund(
        "kalenner guarantee money-back",
        kalenner,
        request(RequestKind.MONEY_BACK, now, payment=sub.payments[0], subscription=sub),
    )
    now = local(kalenner, 2026, 3, 12, 15)
    sub = subscription(kalenner, local(kalenner, 2026, 1, 5, 10), "29.00", now)
    cancel("kalenner monthly cancel after guarantee", kalenner, sub, now)

    qomon = merchant("qomon")
    cancel_at = local(qomon, 2026, 6, 1, 12)
    sub = subscription(qomon, local(qomon, 2026, 1, 15, 9), "1200.00", cancel_at, months=12)
    cancel("qomon annual cancel (no refund)", qomon, sub, cancel_at)
    asked = cancel_at + timedelta(days=1)
    refund(
        "qomon unused period (declined)",
        qomon,
        request(RequestKind.UNUSED_PERIOD, asked, payment=sub.payments[0], subscription=sub,
                reason="we stopped campaigning"),
    )  # fmt: skip
    now = local(qomon, 2026, 3, 3, 9)
    sub = subscription(qomon, local(qomon, 2026, 3, 1), "100.00", now)
    dup = payment(qomon, 2, local(qomon, 2026, 3, 1, 0, 5), "100.00", is_duplicate=True)
    refund(
        "qomon duplicate to wallet (review)",
        qomon,
        request(RequestKind.DUPLICATE_CHARGE, now, payment=dup, subscription=sub),
    )

    voip = merchant("voip")
    now = local(voip, 2026, 3, 11, 9)
    sub = subscription(voip, local(voip, 2026, 3, 1), "50.00", now)
    cancel("voip immediate cancel (unused days)", voip, sub, now, immediately=True)
    now = local(voip, 2026, 4, 13)
    sub = subscription(voip, local(voip, 2026, 4, 1), "50.00", now)
    o = outage(local(voip, 2026, 4, 10), now, "internal", local(voip, 2026, 4, 10, 3))
    refund(
        "voip service disruption",
        voip,
        request(RequestKind.SERVICE_DISRUPTION, now, payment=sub.payments[0], subscription=sub,
                reason=None, outage=o),
    )  # fmt: skip
    cash(voip, "0")  # the helpers' money builder, kept imported for edits of this list
    return cases


def decision_fields(result: Any) -> str:
    """The stored fields of a decider's result, canonical (what ``redecide`` compares)."""
    from fairbill.decisions.codec import decision_of

    d = decision_of(result)
    fields = [
        str(d.outcome),
        str(d.amount),
        [str(r) for r in d.reasons],
        list(d.clauses),
        d.explanation,
        str(d.destination),
        repr(d.recommendation),
    ]
    return json.dumps(fields, ensure_ascii=False)


def bench_core(args: argparse.Namespace) -> None:
    cases = core_cases()
    fingerprint = hashlib.sha256()
    for _, call in cases:
        fingerprint.update(decision_fields(call()).encode())
    calls = [call for _, call in cases]
    print(f"core: {len(cases)} decisions (refunds and cancellations, 5 bundled policies)")
    print(f"  fingerprint of their fields: {fingerprint.hexdigest()[:16]}")
    per_case: dict[str, float] = {}
    for name, call in cases:  # warm, then a short timing per case
        n = 0
        t0 = time.process_time()
        while time.process_time() - t0 < args.seconds / len(cases):
            for _ in range(50):
                call()
            n += 50
        per_case[name] = (time.process_time() - t0) / n
    best = 0.0
    print(f"  {'round':>5}  {'decisions':>9}  {'wall':>7}  {'CPU':>7}  {'per CPU second':>14}")
    for r in range(1, args.rounds + 1):
        n = 0
        w0, c0 = time.perf_counter(), time.process_time()
        while time.process_time() - c0 < args.seconds:
            for call in calls:
                call()
            n += len(calls)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        best = max(best, n / cpu)
        print(f"  {r:>5}  {n:>9,}  {wall:>6.2f}s  {cpu:>6.2f}s  {n / cpu:>12,.0f}/s")
    verdict = "OK" if best >= CORE_TARGET else "SHORT"
    print(
        f"  core: {best:,.0f} decisions/s per core (best round) — target {CORE_TARGET:,}: {verdict}"
    )
    print("  per decision (µs of CPU):")
    for name, seconds in per_case.items():
        print(f"    {seconds * 1e6:8.1f}  {name}")
    if args.profile:
        profile(args, lambda: [call() for _ in range(2000) for call in calls], "core")


# -- whatif -----------------------------------------------------------------------------------
def build_db(path: Path, total: int) -> dict[str, int]:
    """Replay SEED_SCENARIOS into ``path`` with the real services (one merchant and one
    customer each), then copy each merchant's customer with its decisions in bulk until
    ``total`` decisions with facts are stored. Returns counts."""
    from sqlalchemy import func, insert, select

    import fairbill.simulator.run as run
    from fairbill.simulator.scenario import load_scenario
    from fairbill.store.db import make_engine
    from fairbill.store.tables import CustomerRow, DecisionRow

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    real = run.make_engine
    run.make_engine = lambda _url, **kw: real(url, **kw)  # type: ignore[assignment]
    try:
        for name in SEED_SCENARIOS:
            run.simulate(load_scenario(ROOT / "examples" / "scenarios" / name))
    finally:
        run.make_engine = real  # type: ignore[assignment]
    engine = make_engine(url)
    with engine.begin() as conn:
        customers = [dict(r._mapping) for r in conn.execute(select(CustomerRow.__table__))]
        decisions = [
            dict(r._mapping)
            for r in conn.execute(
                select(DecisionRow.__table__).where(DecisionRow.facts.is_not(None))
            )
        ]
        seeded = len(decisions)
        by_customer: dict[int, list[dict[str, Any]]] = {}
        for d in decisions:
            by_customer.setdefault(d["customer_id"], []).append(d)
        next_customer = conn.scalar(select(func.max(CustomerRow.id))) + 1
        copies = 0
        stored = seeded
        while stored < total:
            copies += 1
            new_customers, new_decisions = [], []
            for c in customers:
                rows = by_customer.get(c["id"], [])
                if not rows:
                    continue
                cid = next_customer
                next_customer += 1
                new_customers.append({**c, "id": cid, "code": f"{c['code']}-{copies}"})
                for d in rows:
                    if stored >= total:
                        break
                    new_decisions.append({**d, "id": None, "customer_id": cid})
                    stored += 1
            conn.execute(insert(CustomerRow.__table__), new_customers)
            for i in range(0, len(new_decisions), 10_000):
                conn.execute(insert(DecisionRow.__table__), new_decisions[i : i + 10_000])
    engine.dispose()
    return {"seeded": seeded, "stored": stored, "merchants": len(SEED_SCENARIOS)}


def redecide_all(url: str, jobs: int, fingerprint: Any = None) -> tuple[int, int, int]:
    """Every merchant's stored decisions decided again under its current policy, given as
    ``under`` (a what-if whose new version is the same text), and summed up: what
    ``fairbill whatif --database-url`` does but for printing (``jobs`` processes)."""
    from sqlalchemy import select

    from fairbill.services import audit, policies
    from fairbill.store.db import make_engine, reader_engine, session_factory
    from fairbill.store.tables import MerchantRow

    try:
        from fairbill.services.whatif_db import Workers, redecide_merchant
    except ImportError:  # an older tree: audit.redecide alone, in this process
        redecide_merchant = None
        Workers = None

    workers = Workers(jobs) if Workers is not None else nullcontext()
    n = changed = money = 0
    with workers:
        engine = reader_engine(make_engine(url))
        with session_factory(engine)() as session:
            for merchant in session.scalars(select(MerchantRow).order_by(MerchantRow.id)):
                _, policy = policies.current(session, merchant)
                if fingerprint is not None or redecide_merchant is None:
                    for row in audit.redecide(session, merchant, under=policy):
                        if fingerprint is not None:
                            fingerprint.update(row.again.encode())
                        n += 1
                        changed += not row.same
                        money += row.delta_minor
                    continue
                report = redecide_merchant(url, session, merchant, policy, workers=workers)
                n += report.compared
                changed += report.changed
                money += report.delta_minor
        engine.dispose()
    return n, changed, money


def bench_whatif(args: argparse.Namespace) -> None:
    path = args.db.resolve()
    t0 = time.perf_counter()
    counts = build_db(path, args.decisions)
    print(
        f"whatif: {counts['stored']:,} stored decisions ({counts['seeded']} recorded by "
        f"{counts['merchants']} replayed scenarios, copied in bulk) in {path.name}, "
        f"built in {time.perf_counter() - t0:.1f} s"
    )
    url = f"sqlite:///{path}"
    fingerprint = hashlib.sha256()
    redecide_all(url, 1, fingerprint)  # outside the timings: what they decide, hashed
    print(f"  fingerprint of the decisions taken again: {fingerprint.hexdigest()[:16]}")
    try:
        import fairbill.services.whatif_db  # noqa: F401
    except ImportError:  # an older tree: one process only
        args.jobs = 1
    for jobs in sorted({1, args.jobs}):
        w0, c0 = time.perf_counter(), time.process_time()
        n, changed, money = redecide_all(url, jobs)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        if jobs > 1:
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu += children.ru_utime + children.ru_stime - args.children_cpu
            args.children_cpu = children.ru_utime + children.ru_stime
        verdict = "OK" if n / wall >= WHATIF_TARGET else "SHORT"
        print(
            f"  {jobs} process{'es' if jobs > 1 else ''}: re-decided {n:,} (changed {changed}, "
            f"delta {money} minor units) in {wall:.2f} s wall, {cpu:.2f} s CPU: "
            f"{n / wall:,.0f}/s ({n / cpu:,.0f} per CPU second) — target {WHATIF_TARGET:,}: "
            f"{verdict}"
        )
    if args.profile:
        profile(args, lambda: redecide_all(url, 1), "whatif")


def profile(args: argparse.Namespace, work: Callable[[], Any], name: str) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    work()
    profiler.disable()
    if args.profile_out:
        profiler.dump_stats(f"{args.profile_out}.{name}")
    print(f"\n  cProfile ({name}), top 25 by own time:")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.children_cpu = 0.0
    sys.path.insert(0, str(args.src.resolve()))
    import fairbill

    print(f"fairbill decide benchmark — code under test: {Path(fairbill.__file__).parent.parent}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"  load average: {load} on {os.cpu_count()} CPUs")
    if args.only in (None, "core"):
        bench_core(args)
    if args.only in (None, "whatif"):
        bench_whatif(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
