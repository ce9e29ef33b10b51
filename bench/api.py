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

With ``--kind preview`` (or any one kind) only that kind runs; ``--kind get`` runs
``GET /v1/subscriptions/{id}`` on seeded subscriptions instead (reads only).

Every POST carries a fresh ``Idempotency-Key``. Prints requests/s, p50/p90/p99 latency
and errors (status codes; a transport error counts as 0) per kind and overall; the CPU
the server (all its processes) and this client used during the load, and the machine's
busy share; and the SQL each route sent per request (statements without ``BEGIN``,
transactions begun), counted inside the server (``bench/sqlcount``) for the load's
requests only. Then it stops the server (SIGTERM) and removes what it created. Only
127.0.0.1 is ever contacted.

``--src DIR`` serves another source tree (its ``src/`` first on the server's
``PYTHONPATH``); ``--src REV`` extracts a git revision of this repository into a
temporary folder first (``git archive``), so a change is measured back to back against
the commit it started from. ``--workers N`` passes ``--workers N`` to ``fairbill serve``
(a tree that has it).

    .venv/bin/python bench/api.py                                  # SQLite, 20 clients, 20 s
    .venv/bin/python bench/api.py --clients 20 --seconds 20 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/fairbill
    .venv/bin/python bench/api.py --requests 2000                  # a fixed amount of work
    .venv/bin/python bench/api.py --src 22481fb                    # an older commit
"""

from __future__ import annotations

import argparse
import json
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
    p.add_argument("--src", help="serve this source tree (a folder) or git revision instead")
    p.add_argument("--workers", type=int, help="fairbill serve --workers N")
    p.add_argument(
        "--kind",
        choices=[k for k, _ in MIX] + ["get"],
        help="run only this kind (get: GET /v1/subscriptions/{id})",
    )
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


class Source:
    """The tree the server runs: this one, a folder, or a git revision of this repository
    extracted (``git archive``) into a temporary folder, removed after."""

    def __init__(self, given: str | None) -> None:
        self.temporary: Path | None = None
        if given is None:
            self.root, self.name = ROOT, "this tree"
            return
        folder = Path(given)
        if folder.is_dir():
            self.root, self.name = folder.resolve(), str(folder)
            return
        rev = subprocess.run(
            ["git", "rev-parse", "--short", given], cwd=ROOT, capture_output=True, text=True
        )
        if rev.returncode != 0:
            raise SystemExit(f"--src {given!r}: neither a folder nor a git revision")
        self.temporary = Path(tempfile.mkdtemp(prefix="fairbill-bench-src-"))
        archive = subprocess.run(
            ["git", "archive", rev.stdout.strip()], cwd=ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(self.temporary)], input=archive.stdout, check=True)
        self.root, self.name = self.temporary, f"commit {rev.stdout.strip()}"

    def remove(self) -> None:
        if self.temporary is not None:
            shutil.rmtree(self.temporary, ignore_errors=True)


class Server:
    def __init__(
        self, database_url: str, log: Path, source: Source, workers: int | None, sql: Path
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAIRBILL_")}
        env["FAIRBILL_ADMIN_TOKEN"] = ADMIN_TOKEN
        # The SQL counter (bench/sqlcount/sitecustomize.py), then the tree to serve.
        paths = [str(ROOT / "bench" / "sqlcount"), str(source.root / "src")]
        env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["FAIRBILL_BENCH_SQL_DIR"] = str(sql)
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
        if workers is not None:
            command += ["--workers", str(workers)]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=source.root
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


def post(
    client: httpx.Client, path: str, token: str, body: dict[str, Any], counted: bool = False
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
    if counted:  # the load's requests: the server counts their SQL (bench/sqlcount)
        headers["x-bench-count"] = "1"
    return client.post(path, json=body, headers=headers)


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
    if args.kind is not None:
        kinds, weights = (args.kind,), (1.0,)
    reading = {"Authorization": f"Bearer {world.key}", "x-bench-count": "1"}

    def timed(
        client: httpx.Client, kind: str, path: str, body: dict[str, Any] | None, want: int
    ) -> Any:
        start = time.perf_counter()
        try:
            if body is None:
                r = client.get(path, headers=reading)
            else:
                r = post(client, path, world.key, body, counted=True)
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
                elif kind == "get":
                    sub = rng.choice(world.subscriptions)
                    timed(client, "get", f"/v1/subscriptions/{sub}", None, 200)
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
    for kind in ("customer", "subscribe", "preview", "refund", "get"):
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


# -- CPU and SQL -------------------------------------------------------------------------------
TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of ``root`` and its descendants now alive (Linux /proc);
    0.0 where /proc is not there."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / TICK
    mine = {root}
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in mine} - mine
        grew = bool(more)
        mine |= more
    return sum(cpu.get(pid, 0.0) for pid in mine)


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of every CPU since boot (/proc/stat); (0, 0) without it."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def sql_report(folder: Path) -> None:
    """SQL per request per route, summed over the server's processes."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for path in folder.glob("*.json"):
        for route, counts in json.loads(path.read_text()).items():
            for i, c in enumerate(counts):
                totals[route][i] += c
    if not totals:
        print("SQL: no counts (the server wrote none)")
        return
    print(f"{'SQL per request':<44}{'requests':>9}{'stmts':>7}{'select':>7}{'write':>7}{'tx':>6}")
    for route, (n, statements, transactions, selects, writes) in sorted(totals.items()):
        print(
            f"{route:<44}{n:>9}{statements / n:>7.1f}{selects / n:>7.1f}{writes / n:>7.1f}"
            f"{transactions / n:>6.1f}"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    source = Source(args.src)
    db = Database(args.database_url)
    log = args.server_log or Path(tempfile.mkstemp(prefix="fairbill-bench-", suffix=".log")[1])
    sql = Path(tempfile.mkdtemp(prefix="fairbill-bench-sql-"))
    server: Server | None = None
    errors = 0
    try:
        server = Server(db.url, log, source, args.workers, sql)
        t0 = time.perf_counter()
        server.wait_ready()
        print(f"source: {source.name} ({source.root})")
        print(f"database: {db.kind}")
        shape = f"--workers {args.workers}" if args.workers else "one uvicorn process"
        print(f"server: {server.url} ({shape}), up in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        world = seed(server.url, args.customers, args.clients)
        print(
            f"seeded: 1 merchant (emailconsul), 2 plans, {args.customers} subscribers "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        limit = f", at most {args.requests} requests" if args.requests else ""
        mix = f"only {args.kind}" if args.kind else ", ".join(f"{k} {w:.0%}" for k, w in MIX)
        print(f"load: {args.clients} clients for {args.seconds:g} s{limit}, mix {mix}")
        load_before = os.getloadavg()[0]
        server_cpu, client_cpu = tree_cpu(server.process.pid), time.process_time()
        busy, total = machine_busy()
        stats, wall = run_load(server.url, world, args)
        server_cpu = tree_cpu(server.process.pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
        busy_after, total_after = machine_busy()
        cpus = os.cpu_count() or 1
        share = (busy_after - busy) / (total_after - total) if total_after > total else 0.0
        print(
            f"ran {wall:.1f} s; load average {load_before:.2f} before, "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} after, on {cpus} CPUs"
        )
        want = {"customer": 201, "subscribe": 201, "preview": 200, "refund": 201, "get": 200}
        errors = report(stats, wall, want)
        done = sum(len(v) for v in stats.latencies.values())
        if done and server_cpu:
            print(
                f"CPU: server {server_cpu:.1f} s ({server_cpu / done * 1000:.2f} ms a request, "
                f"{done / server_cpu:.0f} requests per server CPU second), client "
                f"{client_cpu:.1f} s ({client_cpu / done * 1000:.2f} ms a request); "
                f"machine {share:.0%} busy (all processes, the database's too)"
            )
    finally:
        if server is not None:
            server.stop()
        db.drop()
        source.remove()
        if args.server_log is None:
            log.unlink(missing_ok=True)
    sql_report(sql)
    shutil.rmtree(sql, ignore_errors=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
