"""Benchmark: the HTTP API under a bounded concurrent load, on loopback.

Starts ``fairbill serve`` in a subprocess (a fresh SQLite file by default; with
``--database-url postgresql+psycopg://USER@HOST:PORT/DB`` a fresh database named
``DB_bench_<random>`` is created on that server for the run and dropped after), seeds one
EmailConsul merchant over HTTP (two plans; ``--customers`` customers with a card and a
monthly subscription), then this process drives the load: ``--clients`` threads, each
with its own keep-alive connection, for ``--seconds`` seconds (or until ``--requests``
requests in all), each picking at random:

* ``subscribe`` (40%): ``POST /v1/customers`` (a new customer with a card, timed as
  ``customer``) then ``POST /v1/subscriptions`` (``subscribe``): invoice + charge;
* ``preview``   (35%): ``POST /v1/subscriptions/{id}/preview`` a cancel (decided, not
  applied) on a seeded subscription;
* ``refund``    (25%): ``POST /v1/refund_requests`` money back on a seeded customer's
  payment (EmailConsul sends it to review: the request, its decision, the audit row).

Every POST carries a fresh ``Idempotency-Key``. Prints requests/s, p50/p90/p99 latency
and errors (status codes; a transport error counts as 0) per kind and overall, then stops
the server (SIGTERM) and removes what it created. Only 127.0.0.1 is ever contacted.

    .venv/bin/python bench/api.py                                  # SQLite, 20 clients, 20 s
    .venv/bin/python bench/api.py --clients 20 --seconds 20 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/fairbill
    .venv/bin/python bench/api.py --requests 2000                  # a fixed amount of work
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = f"adm_bench_{uuid.uuid4().hex[:12]}"
MIX = (("subscribe", 0.40), ("preview", 0.35), ("refund", 0.25))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    p.add_argument("--clients", type=int, default=20, help="concurrent clients (20)")
    p.add_argument("--seconds", type=float, default=20.0, help="how long the load runs (20)")
    p.add_argument("--requests", type=int, help="stop after this many requests in all")
    p.add_argument("--customers", type=int, default=100, help="seeded subscribers (100)")
    p.add_argument("--seed", type=int, default=1, help="random seed for the mix (1)")
    p.add_argument("--server-log", type=Path, help="keep the server's output in this file")
    args = p.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.customers < 1:
        p.error("--clients, --seconds and --customers must be positive")
    return args


# -- the database ----------------------------------------------------------------------------
class Database:
    """A fresh database for one run: a SQLite file in a temporary folder, or a new
    PostgreSQL database on the server of the given URL (created here, dropped after)."""

    def __init__(self, url: str | None) -> None:
        self.folder: Path | None = None
        self.admin: Any = None
        self.name = ""
        if url is None or url.startswith("sqlite"):
            if url is not None:
                raise SystemExit("give no --database-url for SQLite: the bench makes its own file")
            self.folder = Path(tempfile.mkdtemp(prefix="fairbill-bench-"))
            self.url = f"sqlite:///{self.folder / 'bench.db'}"
            self.kind = "SQLite file (WAL)"
            return
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool

        given = make_url(url)
        if given.get_backend_name() != "postgresql":
            raise SystemExit(f"unsupported database URL {url!r}: SQLite (default) or PostgreSQL")
        self.name = f"{given.database or 'fairbill'}_bench_{uuid.uuid4().hex[:8]}"
        maintenance = given.set(database="postgres")
        self.admin = create_engine(maintenance, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
            version = conn.exec_driver_sql("SHOW server_version").scalar()
        self.url = given.set(database=self.name).render_as_string(hide_password=False)
        self.kind = f"PostgreSQL {version} (database {self.name}, dropped after)"

    def drop(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        if self.admin is not None:
            with self.admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.admin.dispose()


# -- the server ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    def __init__(self, database_url: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAIRBILL_SMTP")}
        env["FAIRBILL_ADMIN_TOKEN"] = ADMIN_TOKEN
        command = [
            sys.executable,
            "-m",
            "fairbill.cli.main",
            "serve",
            "--database-url",
            database_url,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--tick-seconds",
            "3600",
        ]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise SystemExit(f"the server exited:\n{self.log.read_text()[-3000:]}")
                try:
                    if client.get(f"{self.url}/openapi.json").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        raise SystemExit(f"the server did not answer in {timeout:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)


# -- seeding -----------------------------------------------------------------------------------
@dataclass
class World:
    key: str
    subscriptions: list[str] = field(default_factory=list)
    payments: list[tuple[str, str]] = field(default_factory=list)  # (customer, pay_N)


def post(client: httpx.Client, path: str, token: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(
        path,
        json=body,
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex},
    )


def seed(url: str, customers: int, clients: int) -> World:
    with httpx.Client(base_url=url, trust_env=False, timeout=60.0) as client:
        r = post(client, "/v1/merchants", ADMIN_TOKEN, {"name": "Bench", "policy": "emailconsul"})
        r.raise_for_status()
        world = World(r.json()["api_keys"]["admin"])
        for plan in (
            {"id": "pro-monthly", "interval_months": 1, "price": "30.00"},
            {"id": "pro-annual", "interval_months": 12, "price": "300.00"},
        ):
            post(client, "/v1/plans", world.key, plan).raise_for_status()
    lock = threading.Lock()

    def one(i: int, client: httpx.Client) -> None:
        code = f"seed_{i}"
        customer = {"id": code, "payment_methods": [{"id": "card_1"}]}
        post(client, "/v1/customers", world.key, customer).raise_for_status()
        sub = {"customer": code, "plan": "pro-monthly", "payment_method": "card_1"}
        r = post(client, "/v1/subscriptions", world.key, sub)
        r.raise_for_status()
        pays = client.get(
            "/v1/payments",
            params={"customer": code},
            headers={"Authorization": f"Bearer {world.key}"},
        )
        pays.raise_for_status()
        with lock:
            world.subscriptions.append(r.json()["id"])
            world.payments.append((code, pays.json()["data"][0]["id"]))

    def worker(ids: list[int]) -> None:
        with httpx.Client(base_url=url, trust_env=False, timeout=60.0) as client:
            for i in ids:
                one(i, client)

    threads = [
        threading.Thread(target=worker, args=(list(range(k, customers, clients)),))
        for k in range(min(clients, customers))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(world.subscriptions) != customers:
        raise SystemExit(f"seeding failed: {len(world.subscriptions)} of {customers} subscribers")
    return world


# -- the load ----------------------------------------------------------------------------------
@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    samples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, status: int, ok: bool, text: str) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            self.statuses[kind][status] += 1
            if not ok and len(self.samples[kind]) < 3:
                self.samples[kind].append(f"{status}: {text[:200]}")


class Budget:
    """Stops every client at the deadline or after ``limit`` requests in all."""

    def __init__(self, seconds: float, limit: int | None) -> None:
        self.deadline = time.monotonic() + seconds
        self.limit = limit
        self.used = 0
        self.lock = threading.Lock()

    def take(self) -> bool:
        if time.monotonic() >= self.deadline:
            return False
        with self.lock:
            if self.limit is not None and self.used >= self.limit:
                return False
            self.used += 1
            return True


def run_load(url: str, world: World, args: argparse.Namespace) -> tuple[Stats, float]:
    stats = Stats()
    budget = Budget(args.seconds, args.requests)
    counter = iter(range(10**9))
    counter_lock = threading.Lock()
    kinds, weights = zip(*MIX, strict=True)

    def timed(client: httpx.Client, kind: str, path: str, body: dict[str, Any], want: int) -> Any:
        start = time.perf_counter()
        try:
            r = post(client, path, world.key, body)
            status, text = r.status_code, r.text
        except httpx.HTTPError as exc:
            status, text = 0, repr(exc)
        stats.add(kind, time.perf_counter() - start, status, status == want, text)
        return r.json() if status == want else None

    def client_loop(n: int) -> None:
        rng = random.Random(args.seed * 1000 + n)
        with httpx.Client(base_url=url, trust_env=False, timeout=60.0) as client:
            while budget.take():
                kind = rng.choices(kinds, weights)[0]
                if kind == "subscribe":
                    with counter_lock:
                        code = f"load_{next(counter)}"
                    customer = {"id": code, "payment_methods": [{"id": "card_1"}]}
                    if timed(client, "customer", "/v1/customers", customer, 201) is None:
                        continue
                    if not budget.take():
                        return
                    plan = rng.choice(["pro-monthly", "pro-annual"])
                    body = {"customer": code, "plan": plan, "payment_method": "card_1"}
                    timed(client, "subscribe", "/v1/subscriptions", body, 201)
                elif kind == "preview":
                    sub = rng.choice(world.subscriptions)
                    body = {"action": "cancel", "immediately": rng.random() < 0.5}
                    timed(client, "preview", f"/v1/subscriptions/{sub}/preview", body, 200)
                else:
                    code, pay = rng.choice(world.payments)
                    body = {
                        "customer": code,
                        "kind": "money_back",
                        "payment": pay,
                        "reason": "bench",
                    }
                    timed(client, "refund", "/v1/refund_requests", body, 201)

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(args.clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return stats, time.perf_counter() - started


def quantile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def report(stats: Stats, wall: float, want: dict[str, int]) -> int:
    print(
        f"{'kind':<10}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}  errors"
    )
    all_latencies: list[float] = []
    errors_total = 0
    for kind in ("customer", "subscribe", "preview", "refund"):
        lat = stats.latencies.get(kind, [])
        if not lat:
            continue
        all_latencies += lat
        statuses = stats.statuses[kind]
        errors = {s: c for s, c in statuses.items() if s != want[kind]}
        errors_total += sum(errors.values())
        shown = ", ".join(f"{c}×{s}" for s, c in sorted(errors.items())) or "0"
        print(
            f"{kind:<10}{len(lat):>9}{len(lat) / wall:>9.1f}{quantile(lat, 0.5) * 1000:>9.1f}"
            f"{quantile(lat, 0.9) * 1000:>9.1f}{quantile(lat, 0.99) * 1000:>9.1f}"
            f"{max(lat) * 1000:>9.1f}  {shown}"
        )
    if all_latencies:
        print(
            f"{'all':<10}{len(all_latencies):>9}{len(all_latencies) / wall:>9.1f}"
            f"{quantile(all_latencies, 0.5) * 1000:>9.1f}"
            f"{quantile(all_latencies, 0.9) * 1000:>9.1f}"
            f"{quantile(all_latencies, 0.99) * 1000:>9.1f}{max(all_latencies) * 1000:>9.1f}"
            f"  {errors_total}"
        )
    for kind, samples in stats.samples.items():
        for sample in samples:
            print(f"  {kind} error {sample}")
    return errors_total


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    db = Database(args.database_url)
    log = args.server_log or Path(tempfile.mkstemp(prefix="fairbill-bench-", suffix=".log")[1])
    server: Server | None = None
    try:
        server = Server(db.url, log)
        t0 = time.perf_counter()
        server.wait_ready()
        print(f"database: {db.kind}")
        print(f"server: {server.url} (one uvicorn process), up in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        world = seed(server.url, args.customers, args.clients)
        print(
            f"seeded: 1 merchant (emailconsul), 2 plans, {args.customers} subscribers "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        limit = f", at most {args.requests} requests" if args.requests else ""
        print(
            f"load: {args.clients} clients for {args.seconds:g} s{limit}, mix "
            + ", ".join(f"{k} {w:.0%}" for k, w in MIX)
        )
        stats, wall = run_load(server.url, world, args)
        print(
            f"ran {wall:.1f} s; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
            f"on {os.cpu_count()} CPUs"
        )
        want = {"customer": 201, "subscribe": 201, "preview": 200, "refund": 201}
        errors = report(stats, wall, want)
        return 1 if errors else 0
    finally:
        if server is not None:
            server.stop()
        db.drop()
        if args.server_log is None:
            log.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
