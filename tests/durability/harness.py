"""The kill -9 crash harness (issue 8, "Crash at every step"): a real ``fairbill serve``
under load, killed with SIGKILL at random moments, restarted on the same database, and
its books checked against the processor's.

One run (``Harness.run``):

1. a server starts on the database with ``--test-clock``; two merchants (kalenner, EUR,
   and voip, USD: both refund on cancellation), plans, a product and ten customers with
   cards are set up through the API, each customer subscribes, some cards start
   declining, and the clock moves to a few days before the first monthly renewals;
2. each round, while the server is up: the writes that got no final answer are sent
   again with the SAME ``Idempotency-Key`` and body (three threads side by side), two
   writer threads send new ones (subscribe, cancel at once, refund requests,
   pay_outstanding, purchases) and a clock thread advances the test clock 12 to 36 hours
   at a time (the daily cycle: renewals, declines, retries, the janitor); at a random
   moment (seeded, 0.2 to 1.5 s into the round) the server's process group gets SIGKILL,
   and a new server starts on the same database. Between kills, faults are written
   straight into ``sandbox_faults`` (the processor's side: timeouts before and after the
   money moved, refused connections, slow answers, refused refunds, cards that start or
   stop declining);
3. at the end: the faults are cleared, the server is killed and restarted once more (its
   start-up reconciles), every write is sent until it is answered, the clock is advanced
   a few hours so ``unknown`` operations are asked again, stored answers are replayed,
   and ``read_books(...).violations()`` compares fairbill's rows with the sandbox's.

Invariants the harness itself keeps: a write is sent by one thread at a time, always with
the key and body it was made with; the clock a server restarts on is the latest instant
any advance asked for (time went on while the server was dead), so a restart never puts
the clock behind rows a killed advance already wrote. Everything random comes from
``seed`` (thread timing aside): the seed is in every failure message.

Servers are forked from a *zygote*: a process that imported fairbill, FastAPI and uvicorn
once and built one app, then forks a child per start that runs the ``fairbill serve``
command itself (``fairbill.cli.main:app``) in a process group of its own. A fresh
interpreter takes 3.5-4 s to import all that on this machine, a forked one starts in
0.2-0.4 s: the difference between 20 kills in 30 s and in 100 s. ``FAIRBILL_CRASH_EXEC=1``
starts every server as ``python -m fairbill.cli.main serve`` instead.
"""

from __future__ import annotations

import faulthandler
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import IO, Any, NoReturn

import httpx
from sqlalchemy import Engine, create_engine, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from fairbill.ids import Ids, Prefix
from fairbill.store.tables import (
    CustomerRow,
    GatewayOperationRow,
    IdempotencyKeyRow,
    InvoiceRow,
    JournalEntryRow,
    MerchantRow,
    PaymentMethodRow,
    PaymentRow,
    RefundRow,
    SandboxFaultRow,
    SandboxOperationRow,
    SubscriptionRow,
)

TESTS = Path(__file__).resolve().parents[1]
ADMIN_TOKEN = "adm_crash_harness"
START = datetime.fromisoformat("2026-03-02T09:00:00+00:00")
# Where the set-up leaves the clock: the monthly plans renew (at START + 1 month) a few
# of the load's advances later.
RENEWALS_AHEAD = timedelta(days=27)
LIVE = ("trialing", "active", "past_due", "suspended")
OPEN_OPERATIONS = ("pending", "unknown")
# After a restart the dead server's claims are released at start-up: a 409
# ``idempotency_key_in_progress`` for longer than this is a violation (and at once, for a
# key sent for the first time: no request of it can be running anywhere).
IN_PROGRESS_LIMIT = 5.0  # float-ok: seconds
# A write answered 5xx (or not at all by a live server) is tried this long at the end.
FINAL_DEADLINE = 60.0  # float-ok: seconds
# Threads that send the unanswered writes again after a restart, side by side.
RESENDERS = 3
# Stored answers replayed at the end besides those of the writes sent more than once.
REPLAY_SAMPLE = 20
HTTP_TIMEOUT = 60.0  # float-ok: seconds; a request only ends early when its server dies
READY_TIMEOUT = 60.0  # float-ok: seconds


# -- the zygote: servers forked from one warm process ------------------------------------
PRELOAD = (
    "fairbill.cli.main",
    "fairbill.api.app",
    "fairbill.store.migrate",
    "fairbill.services.merchants",
    "fairbill.services.scheduler",
    "fairbill.services.background",
    "holidays.countries",
    "psycopg",
    "alembic.command",
    "alembic.runtime.migration",
    "uvicorn",
    "uvicorn.main",
    "uvicorn.config",
    "uvicorn.server",
    "uvicorn.loops.auto",
    "uvicorn.loops.asyncio",
    "uvicorn.loops.uvloop",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.websockets.auto",
    "uvicorn.protocols.websockets.websockets_impl",
    "uvicorn.lifespan.on",
)


def zygote_main() -> None:
    """Import fairbill once, then fork one ``fairbill serve`` per line read from stdin
    (JSON: ``argv``, ``env``, ``log``) and write the child's pid back. On EOF every child
    still running is killed: no server outlives its harness."""
    _warm_up()
    # Children are reaped by the kernel: a killed server's pid is gone at once, so the
    # next server sees its owner dead (``idempotency.owner_is_dead``) and releases its keys.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    children: list[int] = []
    try:
        for line in sys.stdin:
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _serve_child(request)
            children.append(pid)
            sys.stdout.write(f"{pid}\n")
            sys.stdout.flush()
    finally:
        for pid in children:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def _warm_up() -> None:
    """Import what a server needs and build one app on an in-memory database: the first
    ``create_app`` of a process takes half a second (lazy imports, pydantic models)."""
    import importlib

    warnings.simplefilter("ignore")  # uvicorn's deprecation notices, on the zygote's log
    for name in PRELOAD:
        with suppress(ImportError):
            importlib.import_module(name)
    from fairbill.api.app import create_app
    from fairbill.api.settings import Runtime
    from fairbill.store.db import make_engine

    runtime = Runtime(make_engine("sqlite://"))
    create_app(runtime)
    runtime.close()


def _serve_child(request: dict[str, Any]) -> NoReturn:
    """The forked child: its own session (so one killpg reaches anything it starts), its
    log on stdout and stderr, then the ``fairbill serve`` command itself."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        warnings.resetwarnings()  # the zygote's silence is not the server's
        _redirect(request["log"])
        # SIGUSR1 writes every thread's stack to the log: how to see where a request hangs.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        for name in [k for k in os.environ if k.startswith("FAIRBILL_SMTP")]:
            del os.environ[name]
        os.environ.update(request["env"])
        from fairbill.cli.main import app

        app(args=request["argv"], prog_name="fairbill")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _redirect(log: str) -> None:
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # the zygote's pipe is not the server's to read
    os.close(null)


@dataclass
class Proc:
    """A server process: its pid (also its process group) and, when exec'd, its Popen."""

    pid: int
    popen: subprocess.Popen[bytes] | None = None

    def gone(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is not None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        return False

    def signal_group(self, sig: signal.Signals) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def wait_gone(self, timeout: float = 10.0) -> None:  # float-ok: seconds
        deadline = time.monotonic() + timeout
        while not self.gone():
            if time.monotonic() > deadline:
                raise RuntimeError(f"server process {self.pid} did not end")
            time.sleep(0.005)


class Launcher:
    """Starts ``fairbill serve`` processes: forked from a zygote (default) or exec'd
    afresh (``fresh=True``). One launcher serves every harness of a test session."""

    def __init__(self, folder: Path, fresh: bool = False) -> None:
        self.fresh = fresh
        self._lock = threading.Lock()
        self._zygote: subprocess.Popen[str] | None = None
        self._zygote_log: IO[bytes] | None = None
        if not fresh:
            self._zygote_log = (folder / "zygote.log").open("wb")
            code = (
                f"import sys; sys.path.insert(0, {str(TESTS)!r}); "
                "from durability.harness import zygote_main; zygote_main()"
            )
            self._zygote = subprocess.Popen(
                [sys.executable, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._zygote_log,
                text=True,
            )

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> Proc:
        if self._zygote is None:
            return self._exec(argv, env, log)
        request = json.dumps({"argv": argv, "env": env, "log": str(log)})
        with self._lock:
            assert self._zygote.stdin is not None and self._zygote.stdout is not None
            self._zygote.stdin.write(request + "\n")
            self._zygote.stdin.flush()
            line = self._zygote.stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote died (exit {self._zygote.poll()})")
        return Proc(int(line))

    def _exec(self, argv: list[str], env: dict[str, str], log: Path) -> Proc:
        full = {k: v for k, v in os.environ.items() if not k.startswith("FAIRBILL_SMTP")}
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "fairbill.cli.main", *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full | env,
                start_new_session=True,
            )
        return Proc(popen.pid, popen)

    def close(self) -> None:
        if self._zygote is not None:
            assert self._zygote.stdin is not None
            self._zygote.stdin.close()  # EOF: the zygote kills what is left and exits
            try:
                self._zygote.wait(10)
            except subprocess.TimeoutExpired:
                self._zygote.kill()
                self._zygote.wait(10)
            assert self._zygote.stdout is not None
            self._zygote.stdout.close()
            self._zygote = None
        if self._zygote_log is not None:
            self._zygote_log.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    proc: Proc
    url: str
    log: Path
    ready_at: float = 0.0  # monotonic


# -- writes -------------------------------------------------------------------------------
class Sent(Enum):
    FINAL = "final"  # a non-5xx answer other than 409 in progress
    IN_PROGRESS = "in_progress"  # 409 idempotency_key_in_progress
    SERVER_ERROR = "server_error"  # 5xx
    NO_ANSWER = "no_answer"  # the connection failed: the server died (or was dead)


@dataclass
class Write:
    """One API write: sent with the same key and body until it gets a final answer."""

    label: str
    path: str
    token: str
    body: dict[str, Any] | None
    key: str | None  # None: the test clock's advance (not an idempotent mutation)
    params: dict[str, str] | None = None
    replay: bool = True  # compare a replay with the answer (not: secrets shown once)
    sent: list[int] = field(default_factory=list)  # each attempt's status, 0: no answer
    took: list[float] = field(default_factory=list)  # each attempt's seconds
    status: int | None = None
    response: Any = None

    @property
    def final(self) -> bool:
        return self.status is not None


@dataclass
class Customer:
    policy: str
    code: str
    token: str
    keys: dict[str, str]
    id: int = 0
    id_key: str = ""  # its merchant's key for public ids (``fairbill.ids``)

    def public(self, prefix: Prefix, row_id: int) -> str:
        return Ids(self.id_key).public(prefix, row_id)


@dataclass
class Stats:
    kills: int = 0
    restarts: list[float] = field(default_factory=list)  # seconds to answer
    loads: list[float] = field(default_factory=list)  # seconds from the round's start
    in_progress: Counter[str] = field(default_factory=Counter)
    longest_in_progress: float = 0.0
    server_errors: Counter[str] = field(default_factory=Counter)  # "500 cancel": how many
    faults: Counter[str] = field(default_factory=Counter)
    declines_toggled: int = 0
    # What the kills left behind (before each restart) and what was left once the new
    # server answered: its start-up finished the rest.
    left_by_kills: Counter[str] = field(default_factory=Counter)
    left_after_start: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # by phase


# -- the harness ----------------------------------------------------------------------------
class Harness:
    """One database, one server at a time, killed ``kills`` times (see the module doc)."""

    def __init__(
        self,
        database_url: str,
        folder: Path,
        launcher: Launcher,
        seed: int,
        customers: int = 10,
        writers: int = 2,
        kill_after: tuple[float, float] = (0.2, 1.5),  # float-ok: seconds after ready
        tick_seconds: float = 1.0,  # float-ok: the server's background loop
    ) -> None:
        self.database_url = database_url
        self.folder = folder
        self.launcher = launcher
        self.seed = seed
        self.rng = random.Random(seed)
        self.customer_count = customers
        self.writers = writers
        self.kill_after = kill_after
        self.tick_seconds = tick_seconds
        self.clock = START
        self.server: Server | None = None
        self.starts = 0
        self.writes: list[Write] = []
        self.customers: list[Customer] = []
        self.declining: set[str] = set()  # tokens with a decline fault
        self.stats = Stats()
        self.violations: list[str] = []
        self.replayed = 0
        self.thread_errors: list[str] = []  # the harness's own failures, in its threads
        self._lock = threading.Lock()
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self.engine = _harness_engine(database_url)
        self.sessions = sessionmaker(self.engine)
        self.started = time.monotonic()

    # -- the run ------------------------------------------------------------------------
    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def run(self, kills: int) -> None:
        """Set up, ``kills`` rounds each ended by a SIGKILL, the end (``finish``); the
        server is stopped afterwards, the database left for ``read_books``."""
        try:
            with self.timed("set-up"):
                self.start_server()
                self.set_up()
            for number in range(kills):
                self.round(number)
            with self.timed("end"):
                self.finish()
        finally:
            self.stop_server()

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.stats.seconds[phase] += time.monotonic() - began

    def close(self) -> None:
        if self.server is not None and not self.server.proc.gone():
            self.server.proc.signal_group(signal.SIGKILL)
            with suppress(RuntimeError):
                self.server.proc.wait_gone()
        self.server = None
        for client in self._clients:
            client.close()
        self.engine.dispose()

    def round(self, number: int) -> None:
        """Faults; the unfinished writes again beside new load; SIGKILL at a random moment
        (counted from the restart, or from the end of the set-up); restart."""
        rng = random.Random(f"{self.seed}:{number}")
        with self.timed("faults"):
            self.shake_the_processor(rng)
        server = self.live_server()
        began = max(server.ready_at, time.monotonic())
        at = began + rng.uniform(*self.kill_after)
        dead = threading.Event()
        killer = threading.Thread(target=self._kill_at, args=(server, began, at, dead), daemon=True)
        killer.start()
        with self.timed("load"):
            self.load(rng, dead)
        killer.join()
        self.stats.kills += 1
        self.stats.left_by_kills.update(self.half_done())
        with self.timed("restart"):
            self.start_server()
        self.stats.left_after_start.update(self.half_done())

    def half_done(self) -> Counter[str]:
        """Gateway operations still open and idempotency claims still unfinished."""
        with self.sessions() as session:
            ops = session.execute(
                select(GatewayOperationRow.kind, GatewayOperationRow.status).where(
                    GatewayOperationRow.status.in_(OPEN_OPERATIONS)
                )
            )
            found = Counter(f"{status} {kind}s" for kind, status in ops)
            found["unfinished claims"] = (
                session.scalar(
                    select(func.count())
                    .select_from(IdempotencyKeyRow)
                    .where(IdempotencyKeyRow.status_code.is_(None))
                )
                or 0
            )
        return found

    def finish(self) -> None:
        """Faults cleared, one more SIGKILL and restart, every write answered, the clock a
        few hours on (``unknown`` operations are asked again), the answers replayed."""
        self.clear_faults()
        self.kill_server()
        self.start_server()
        self.resend_until_answered()
        for hours in (7, 24, 24, 24):
            if not self.open_operations():
                break
            self.advance_by(timedelta(hours=hours))
        self.replay_all()

    # -- servers ------------------------------------------------------------------------
    def start_server(self) -> Server:
        self.starts += 1
        port = free_port()
        log = self.folder / f"server-{self.starts:03d}.log"
        argv = [
            "serve",
            "--database-url",
            self.database_url,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--test-clock",
            self.clock.isoformat(),
            # The background loop runs due work too, beside the advances.
            "--tick-seconds",
            str(self.tick_seconds),
        ]
        began = time.monotonic()
        proc = self.launcher.start(argv, {"FAIRBILL_ADMIN_TOKEN": ADMIN_TOKEN}, log)
        server = Server(proc, f"http://127.0.0.1:{port}", log)
        self._wait_ready(server, began)
        self.stats.restarts.append(server.ready_at - began)
        self.server = server
        return server

    def _wait_ready(self, server: Server, began: float) -> None:
        """Until the server answers (uvicorn listens once its start-up, which releases
        dead claims and reconciles, is done)."""
        client = self.client()
        while time.monotonic() - began < READY_TIMEOUT:
            if server.proc.gone():
                raise RuntimeError(f"fairbill serve exited:\n{tail(server.log)}")
            try:
                client.get(f"{server.url}/v1/merchant", timeout=5.0)
            except httpx.TransportError:
                time.sleep(0.02)
                continue
            server.ready_at = time.monotonic()
            return
        server.proc.signal_group(signal.SIGKILL)
        raise RuntimeError(f"fairbill serve did not answer:\n{tail(server.log)}")

    def live_server(self) -> Server:
        assert self.server is not None
        return self.server

    def kill_server(self) -> None:
        server = self.live_server()
        server.proc.signal_group(signal.SIGKILL)
        server.proc.wait_gone()

    def _kill_at(self, server: Server, began: float, at: float, dead: threading.Event) -> None:
        time.sleep(max(at - time.monotonic(), 0.0))
        self.stats.loads.append(time.monotonic() - began)
        if server.proc.gone():  # nobody killed it yet: it died by itself
            self.violations.append(f"the server died by itself:\n{tail(server.log)}")
        server.proc.signal_group(signal.SIGKILL)
        server.proc.wait_gone()
        dead.set()

    def stop_server(self) -> None:
        """SIGTERM: uvicorn shuts down cleanly (and then re-raises the signal)."""
        server = self.server
        if server is None or server.proc.gone():
            return
        server.proc.signal_group(signal.SIGTERM)
        try:
            server.proc.wait_gone(15.0)
        except RuntimeError:
            server.proc.signal_group(signal.SIGKILL)
            server.proc.wait_gone()

    # -- HTTP -----------------------------------------------------------------------------
    def client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(trust_env=False, timeout=HTTP_TIMEOUT)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def send(self, write: Write) -> Sent:
        """One attempt at ``write`` on the current server; a final answer is kept."""
        url = self.live_server().url + write.path
        headers = {"Authorization": f"Bearer {write.token}"}
        if write.key is not None:
            headers["Idempotency-Key"] = write.key
        began = time.monotonic()
        try:
            response = self.client().post(
                url, json=write.body, params=write.params, headers=headers
            )
        except httpx.TransportError:
            write.sent.append(0)
            write.took.append(time.monotonic() - began)
            return Sent.NO_ANSWER
        write.took.append(time.monotonic() - began)
        write.sent.append(response.status_code)
        if response.status_code >= 500:
            with self._lock:
                self.stats.server_errors[f"{response.status_code} {kind_of(write)}"] += 1
            return Sent.SERVER_ERROR
        body = _json(response)
        if response.status_code == 409 and body.get("code") == "idempotency_key_in_progress":
            self._in_progress(write, body)
            return Sent.IN_PROGRESS
        write.status, write.response = response.status_code, body
        return Sent.FINAL

    def remember(self, write: Write) -> Write:
        with self._lock:
            self.writes.append(write)
        return write

    def call(self, write: Write, expect: int) -> Any:
        """A set-up write: no kill is due, so it must be answered ``expect`` at once."""
        self.remember(write)
        outcome = self.send(write)
        assert outcome is Sent.FINAL and write.status == expect, (
            f"seed {self.seed}: {write.label}: {write.sent} {write.response}"
        )
        return write.response

    # -- set-up ---------------------------------------------------------------------------
    def set_up(self) -> None:
        """Two merchants that refund on cancellation, their catalogs and customers (one
        card each), one subscription per customer; then some cards start declining and
        the clock moves to a few days before the first monthly renewals (nothing is due
        before them: a cheap advance), so the load's daily cycle renews, declines and
        retries."""
        plans = {
            "kalenner": [("monthly", 1, "29.00"), ("annual", 12, "240.00")],
            "voip": [("line", 1, "50.00")],
        }
        for index, policy in enumerate(plans):
            keys = self.merchant(policy)
            for plan, months, price in plans[policy]:
                body = {"id": plan, "interval_months": months, "price": price}
                self.call(
                    self.write(f"plan {policy}/{plan}", "/v1/plans", keys["admin"], body), 201
                )
            body = {"id": "addon", "kind": "add_on", "price": "5.00"}
            self.call(self.write(f"product {policy}", "/v1/products", keys["admin"], body), 201)
            count = self.customer_count // 2 + (self.customer_count % 2 if index == 0 else 0)
            for number in range(1, count + 1):
                self.customers.append(self.customer(policy, keys, number))
        self._customer_ids()
        for customer in self.customers:
            plan = self.rng.choice(plans[customer.policy])[0]
            self.call(self.subscribe(customer, plan), 201)
        for customer in self.customers:
            if self.rng.random() < 0.3:
                self.set_declining(customer.token, True)
        self.call(self.advance_write(RENEWALS_AHEAD), 200)

    def merchant(self, policy: str) -> dict[str, str]:
        body = {"name": f"crash {policy}", "policy": policy}
        write = self.write(f"merchant {policy}", "/v1/merchants", ADMIN_TOKEN, body)
        write.replay = False  # a replay shows the keys by prefix only
        keys: dict[str, str] = self.call(write, 201)["api_keys"]
        return keys

    def customer(self, policy: str, keys: dict[str, str], number: int) -> Customer:
        code = f"{policy[:3]}-{number}"
        token = f"tok_{policy}_{number}"
        body = {"id": code, "payment_methods": [{"id": "card_1", "token": token}]}
        self.call(self.write(f"customer {code}", "/v1/customers", keys["admin"], body), 201)
        return Customer(policy, code, token, keys)

    def _customer_ids(self) -> None:
        with self.sessions() as session:
            for customer in self.customers:
                customer.id, customer.id_key = session.execute(
                    select(CustomerRow.id, MerchantRow.id_key)
                    .join(PaymentMethodRow, PaymentMethodRow.customer_id == CustomerRow.id)
                    .join(MerchantRow, MerchantRow.id == CustomerRow.merchant_id)
                    .where(PaymentMethodRow.token == customer.token)
                ).one()

    @staticmethod
    def write(label: str, path: str, token: str, body: dict[str, Any]) -> Write:
        return Write(label, path, token, body, uuid.uuid4().hex)

    # -- the processor's side: faults and declining cards ---------------------------------
    def shake_the_processor(self, rng: random.Random) -> None:
        """Between kills: sometimes a few faults for the next charges or refunds, and now
        and then a card that starts or stops declining."""
        for _ in range(rng.choice((0, 0, 1, 1, 2))):
            self.add_fault(rng)
        if rng.random() < 0.25:
            token = rng.choice(self.customers).token
            self.set_declining(token, token not in self.declining)
            self.stats.declines_toggled += 1

    def add_fault(self, rng: random.Random) -> None:
        """A fault for the next few charges or refunds (of one card, or any). ``slow``
        holds a gateway call open a while: a kill then often strikes between the commit of
        an operation and its answer. A refund may also be refused, up to five times: the
        fifth refusal fails it for good (``operations.REFUND_TRIES``)."""
        operation = rng.choice(("charge", "refund", "any"))
        faults = ["timeout_after", "timeout_before", "connection_error", "slow"]
        fault = rng.choice(faults + ["decline"] * (operation == "refund"))
        token = rng.choice([None, None, rng.choice(self.customers).token])
        row = SandboxFaultRow(
            operation=operation,
            token=token,
            fault=fault,
            remaining=rng.randint(1, 5 if fault == "decline" else 3),
            delay_ms=rng.randint(50, 300) if fault == "slow" else 0,
        )
        with self.sessions() as session:
            session.add(row)
            session.commit()
        self.stats.faults[f"{fault}/{operation}"] += 1

    def set_declining(self, token: str, declining: bool) -> None:
        """A card the processor declines (a permanent ``decline`` fault for its charges)."""
        with self.sessions() as session:
            if declining:
                session.add(SandboxFaultRow(operation="charge", token=token, fault="decline"))
            else:
                session.execute(
                    delete(SandboxFaultRow).where(
                        SandboxFaultRow.token == token, SandboxFaultRow.fault == "decline"
                    )
                )
            session.commit()
        (self.declining.add if declining else self.declining.discard)(token)

    def clear_faults(self) -> None:
        with self.sessions() as session:
            session.execute(delete(SandboxFaultRow))
            session.commit()
        self.declining.clear()

    # -- sending again ----------------------------------------------------------------------
    def unfinished(self) -> list[Write]:
        with self._lock:
            return [w for w in self.writes if not w.final]

    def _resender(self, backlog: list[Write], dead: threading.Event) -> None:
        """Send each write of ``backlog`` again (same key, same body) until it is answered,
        or the server died (what is left goes to the next round)."""
        for write in backlog:
            self._resend(write, dead)

    def _resend(self, write: Write, dead: threading.Event) -> bool:
        """Send ``write`` until it is answered; False when the server did not answer (it
        died: the next round sends it again). A 409 in progress is waited out (and
        noted); after a few 5xx it is left for the next round or the end."""
        errors = 0
        while not dead.is_set():
            outcome = self.send(write)
            if outcome is Sent.FINAL:
                return True
            if outcome is Sent.NO_ANSWER:
                return False
            if outcome is Sent.IN_PROGRESS:
                self._in_progress_too_long(write)
            else:
                errors += 1
                if errors > 3:  # the next round (or the end) tries again
                    return True
            time.sleep(0.05)
        return False

    def _in_progress(self, write: Write, body: Any) -> None:
        """A 409 in progress: counted; on the first attempt of a key, a violation (a key
        never sent before cannot be running: the server lost its own claim)."""
        waited = time.monotonic() - self.live_server().ready_at
        with self._lock:
            self.stats.in_progress[kind_of(write)] += 1
            self.stats.longest_in_progress = max(self.stats.longest_in_progress, waited)
            if len(write.sent) == 1:
                self.violations.append(
                    f"{write.label} (key {write.key}): 409 idempotency_key_in_progress on the "
                    f"key's first request, {waited:.2f} s after the server answered: "
                    f"{body.get('detail')!r}"
                )

    def _in_progress_too_long(self, write: Write) -> None:
        """A 409 in progress for longer than the limit after a restart: the dead server's
        claim was not released."""
        waited = time.monotonic() - self.live_server().ready_at
        if waited > IN_PROGRESS_LIMIT:
            self.violations.append(
                f"{write.label} (key {write.key}): still 409 idempotency_key_in_progress "
                f"{waited:.1f} s after the restart; answers so far {write.sent}"
            )
            write.status, write.response = 409, {"code": "idempotency_key_in_progress"}

    def resend_until_answered(self) -> None:
        """At the end, with no kill due: every write answered, or a violation."""
        deadline = time.monotonic() + FINAL_DEADLINE
        never = threading.Event()
        while self.unfinished() and time.monotonic() < deadline:
            for write in self.unfinished():
                self._resend(write, never)
            time.sleep(0.1)  # what is left answered 5xx (or not at all) just now
        for write in self.unfinished():
            self.violations.append(
                f"{write.label} (key {write.key}) never answered: attempts {write.sent}"
            )

    # -- load -------------------------------------------------------------------------------
    def load(self, rng: random.Random, dead: threading.Event) -> None:
        """Until the killer struck: the writes left unanswered sent again, by a few threads
        at once (clients retry together after an outage), while writers send new ones and
        the clock moves. The clock's own unanswered advances go first on its thread: two
        advances at once would race for the one test clock, which no real clock does."""
        backlog = self.unfinished()
        advances = [w for w in backlog if w.key is None]
        seeds = [rng.randrange(2**32) for _ in range(self.writers + 1)]
        jobs: list[tuple[Any, tuple[Any, ...]]] = [
            (self._writer, (random.Random(s), dead)) for s in seeds[:-1]
        ]
        keyed = [w for w in backlog if w.key]
        jobs.append((self._clock, (advances, random.Random(seeds[-1]), dead)))
        jobs += [(self._resender, (keyed[n::RESENDERS], dead)) for n in range(RESENDERS)]
        threads = [threading.Thread(target=self._thread, args=job) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if self.thread_errors:
            raise RuntimeError(f"seed {self.seed}: the harness failed:\n{self.thread_errors[0]}")

    def _thread(self, target: Any, args: tuple[Any, ...]) -> None:
        """A load thread: its failure is the harness's (raised after the round), and its
        HTTP client is closed with it."""
        try:
            target(*args)
        except Exception:
            self.thread_errors.append(traceback.format_exc())
        finally:
            client = getattr(self._local, "client", None)
            if client is not None:
                client.close()
                with self._lock:
                    self._clients.remove(client)

    def _writer(self, rng: random.Random, dead: threading.Event) -> None:
        while not dead.is_set():
            write = self.next_write(rng)
            if self.send(self.remember(write)) is Sent.NO_ANSWER:
                dead.wait(0.05)

    def _clock(self, backlog: list[Write], rng: random.Random, dead: threading.Event) -> None:
        """The daily cycle: the test clock moves 12 to 36 hours at a time."""
        for write in backlog:
            if not self._resend(write, dead):
                return
        while not dead.is_set():
            write = self.advance_write(timedelta(hours=rng.randint(12, 36)))
            if self.send(self.remember(write)) is Sent.NO_ANSWER:
                return
            dead.wait(0.05)

    def advance_write(self, step: timedelta) -> Write:
        with self._lock:
            self.clock += step  # a restart starts here: the latest instant asked for
            to = self.clock
        return Write(
            f"advance {to.isoformat()}",
            "/v1/test_clock/advance",
            ADMIN_TOKEN,
            None,
            None,
            params={"to": to.isoformat()},
            replay=False,
        )

    def advance_by(self, step: timedelta) -> None:
        write = self.remember(self.advance_write(step))
        self._resend(write, threading.Event())
        if not write.final:
            self.violations.append(f"{write.label} never answered: {write.sent}")

    def next_write(self, rng: random.Random) -> Write:
        """A write for a random customer, from what the database says it has now."""
        customer = rng.choice(self.customers)
        sub, payment, open_invoices = self.customer_state(customer)
        choices: list[tuple[float, str]] = [(0.15, "purchase")]  # float-ok: weights
        if open_invoices:
            choices.append((0.2, "pay_outstanding"))
        if sub is None:
            choices.append((0.7, "subscribe"))
        else:
            choices.append((0.3, "cancel"))
        if payment is not None:
            choices.append((0.3, "refund_request"))
        action = rng.choices([c for _, c in choices], [w for w, _ in choices])[0]
        return self.make_write(action, customer, sub, payment, rng)

    def make_write(
        self,
        action: str,
        customer: Customer,
        sub: int | None,
        payment: int | None,
        rng: random.Random,
    ) -> Write:
        keys, code = customer.keys, customer.code
        if action == "subscribe":
            plan = rng.choice(("monthly", "annual") if customer.policy == "kalenner" else ("line",))
            return self.subscribe(customer, plan)
        if action == "cancel":
            body = {"immediately": True, "channel": "support"}
            public = customer.public(Prefix.SUBSCRIPTION, sub)
            path = f"/v1/subscriptions/{public}/cancel"
            return self.write(f"cancel {code} {public}", path, keys["support"], body)
        if action == "refund_request":
            kind = "money_back" if customer.policy == "kalenner" else "unused_period"
            paid = customer.public(Prefix.PAYMENT, payment)
            body = {"customer": code, "kind": kind, "payment": paid, "reason": "crash"}
            return self.write(
                f"refund_request {code}", "/v1/refund_requests", keys["support"], body
            )
        if action == "pay_outstanding":
            path = f"/v1/customers/{code}/pay_outstanding"
            return self.write(f"pay_outstanding {code}", path, keys["admin"], {})
        body = {"product": "addon", "payment_method": "card_1"}
        path = f"/v1/customers/{code}/purchases"
        return self.write(f"purchase {code}", path, keys["admin"], body)

    def subscribe(self, customer: Customer, plan: str) -> Write:
        body = {"customer": customer.code, "plan": plan, "payment_method": "card_1"}
        label = f"subscribe {customer.code} {plan}"
        return self.write(label, "/v1/subscriptions", customer.keys["admin"], body)

    def customer_state(self, customer: Customer) -> tuple[int | None, int | None, int]:
        """Its newest live subscription, newest payment with something left to refund, and
        how many invoices are open."""
        with self.sessions() as session:
            sub = session.scalar(
                select(SubscriptionRow.id)
                .where(SubscriptionRow.customer_id == customer.id, SubscriptionRow.status.in_(LIVE))
                .order_by(SubscriptionRow.id.desc())
                .limit(1)
            )
            payment = session.scalar(
                select(PaymentRow.id)
                .where(
                    PaymentRow.customer_id == customer.id,
                    PaymentRow.refunded_minor < PaymentRow.amount_minor,
                )
                .order_by(PaymentRow.id.desc())
                .limit(1)
            )
            open_invoices = session.scalar(
                select(func.count())
                .select_from(InvoiceRow)
                .where(InvoiceRow.customer_id == customer.id, InvoiceRow.status == "open")
            )
        return sub, payment, int(open_invoices or 0)

    # -- the end ----------------------------------------------------------------------------
    def open_operations(self) -> list[tuple[int, str, str]]:
        with self.sessions() as session:
            return [
                (row.id, row.key, row.status)
                for row in session.scalars(
                    select(GatewayOperationRow).where(
                        GatewayOperationRow.status.in_(OPEN_OPERATIONS)
                    )
                )
            ]

    def replay_all(self, others: int = REPLAY_SAMPLE) -> None:
        """Stored answers asked for again with their keys and bodies: the same status and
        body, marked replayed. Every write sent more than once (its answer came after a
        kill) and a seeded sample of ``others`` of the rest. (A 4xx is not stored: its key
        is released and a retry runs it again, so it is not compared.)"""
        stored = [w for w in self.writes if w.replay and w.key and w.status and w.status < 300]
        again = [w for w in stored if len(w.sent) > 1]
        rest = [w for w in stored if len(w.sent) == 1]
        chosen = again + random.Random(self.seed).sample(rest, min(others, len(rest)))
        self.replayed = len(chosen)
        with ThreadPoolExecutor(4) as pool:
            for problem in pool.map(self._replay, chosen):
                if problem:
                    self.violations.append(problem)

    def _replay(self, write: Write) -> str | None:
        assert write.key is not None
        headers = {"Authorization": f"Bearer {write.token}", "Idempotency-Key": write.key}
        url = self.live_server().url + write.path
        response = self.client().post(url, json=write.body, headers=headers)
        if (
            response.status_code == write.status
            and _json(response) == write.response
            and response.headers.get("Idempotent-Replayed") == "true"
        ):
            return None
        return (
            f"replay of {write.label} (key {write.key}) differs: first {write.status} "
            f"{write.response}, replay {response.status_code} {response.text[:500]} "
            f"(replayed header {response.headers.get('Idempotent-Replayed')!r})"
        )

    def summary(self) -> str:
        s = self.stats
        writes = Counter(kind_of(w) for w in self.writes)
        again = [w for w in self.writes if len(w.sent) > 1]
        restarts = s.restarts or [0.0]
        loads = s.loads or [0.0]
        return (
            f"seed {self.seed}: {s.kills} kills in {time.monotonic() - self.started:.1f} s "
            f"({self.starts} server starts, ready after {min(restarts):.2f}-"
            f"{max(restarts):.2f} s, killed {min(loads):.2f}-{max(loads):.2f} s into a round); "
            f"{len(self.writes)} writes {dict(writes)}, {len(again)} sent again "
            f"({sum(len(w.sent) - 1 for w in again)} attempts more), "
            f"{sum(len(w.sent) for w in self.writes if w.key is None)} advances sent "
            f"({sum(1 for w in self.writes if w.key is None and w.status == 200)} done); "
            f"{self.replayed} answers replayed; 409 in progress {dict(s.in_progress)} (longest "
            f"{s.longest_in_progress:.2f} s after a restart); 5xx {dict(s.server_errors)}; "
            f"faults {dict(s.faults)}, declining cards toggled {s.declines_toggled} times; "
            f"summed over the kills, they left {dict(s.left_by_kills)} and the restarted "
            f"servers answered with {dict(s.left_after_start)}; "
            f"clock at {self.clock.isoformat()}; seconds by phase "
            f"{ {k: round(v, 1) for k, v in s.seconds.items()} }; answered in "
            f"{self.latencies()}; {server_errors_logged(self.folder)}"
        )

    def latencies(self) -> str:
        """Median and longest seconds of the answered attempts, by kind of write."""
        took: dict[str, list[float]] = defaultdict(list)
        for w in self.writes:
            took[kind_of(w)] += [t for t, c in zip(w.took, w.sent, strict=True) if c]
        return ", ".join(
            f"{kind} {sorted(ts)[len(ts) // 2]:.3f}/{max(ts):.3f}"
            for kind, ts in sorted(took.items())
            if ts
        )


# -- the checks -----------------------------------------------------------------------------
def read_books(engine: Engine) -> Books:
    """fairbill's rows and the sandbox's (the processor's books), read in one session."""
    with sessionmaker(engine)() as session:
        return Books.read(session)


@dataclass
class Books:
    """The rows the checks compare, read in one session after the last server stopped."""

    sandbox: list[SandboxOperationRow]
    operations: list[GatewayOperationRow]
    invoices: dict[int, InvoiceRow]
    payments: list[PaymentRow]
    refund_rows: list[RefundRow]
    entries: list[tuple[int, str, str, int]]  # transaction, account, currency, amount
    unfinished_keys: list[IdempotencyKeyRow]

    @classmethod
    def read(cls, session: Session) -> Books:
        def everything(model: Any) -> list[Any]:
            return list(session.scalars(select(model).order_by(model.id)))

        entries = [
            (t, a, c, int(m))
            for t, a, c, m in session.execute(
                select(
                    JournalEntryRow.transaction_id,
                    JournalEntryRow.account,
                    JournalEntryRow.currency,
                    JournalEntryRow.amount_minor,
                )
            )
        ]
        return cls(
            sandbox=everything(SandboxOperationRow),
            operations=everything(GatewayOperationRow),
            invoices={i.id: i for i in everything(InvoiceRow)},
            payments=everything(PaymentRow),
            refund_rows=everything(RefundRow),
            entries=entries,
            unfinished_keys=list(
                session.scalars(
                    select(IdempotencyKeyRow).where(IdempotencyKeyRow.status_code.is_(None))
                )
            ),
        )

    def violations(self) -> list[str]:
        """Every violation of the money's invariants: charges, refunds, the ledger, what
        is left open."""
        return [
            *self.charges(),
            *self.paid_in(),
            *self.refunds(),
            *self.refunded_amounts(),
            *self.ledger(),
            *self.leftovers(),
        ]

    def figures(self) -> str:
        """What the run left in the books: how much the checks had to look at."""
        sandbox = Counter(f"{r.kind} {'ok' if r.ok else 'refused'}" for r in self.sandbox)
        ops = Counter(f"{op.kind} {op.status}" for op in self.operations)
        refunds = Counter(f"{r.destination} {r.status}" for r in self.refund_rows)
        invoices = Counter(i.status for i in self.invoices.values())
        return (
            f"sandbox {dict(sandbox)}; operations {dict(ops)}; invoices {dict(invoices)}; "
            f"{len(self.payments)} payments; refunds {dict(refunds)}; "
            f"{len({t for t, *_ in self.entries})} journal transactions"
        )

    def ok(self, kind: str) -> list[SandboxOperationRow]:
        return [row for row in self.sandbox if row.kind == kind and row.ok]

    def op_by_key(self) -> dict[str, GatewayOperationRow]:
        return {op.key: op for op in self.operations}

    # 1. every invoice charged once at the gateway, and each charge paid in once
    def charges(self) -> list[str]:
        problems: list[str] = []
        mistakes = {op.invoice_id for op in self.operations if op.purpose == "mistake"}
        per_invoice: dict[int, list[SandboxOperationRow]] = defaultdict(list)
        for row in self.ok("charge"):
            per_invoice[invoice_of(row)].append(row)
        for invoice_id, rows in sorted(per_invoice.items()):
            if len(rows) > 1 and invoice_id not in mistakes:
                problems.append(
                    f"invoice inv_{invoice_id} charged {len(rows)} times at the gateway: "
                    + ", ".join(f"{r.key} {r.reference} {r.amount_minor}" for r in rows)
                )
        ops = self.op_by_key()
        for row in self.sandbox:
            op = ops.get(row.key)
            if row.kind == "charge" and (op is None or _disagree(op, row)):
                shown = f"{op.status} {op.reference}" if op else "no operation"
                problems.append(
                    f"sandbox charge {row.key} (ok={row.ok}, {row.reference}, "
                    f"{row.amount_minor} {row.currency}) vs fairbill: {shown}"
                )
        return problems

    def paid_in(self) -> list[str]:
        """Each charge the sandbox took has one payment row, and each payment row is a
        charge the sandbox took: of its amount, on its invoice."""
        problems: list[str] = []
        by_ref = Counter(p.gateway_ref for p in self.payments)
        charged = {row.reference or "": row for row in self.ok("charge")}
        for ref, row in charged.items():
            if by_ref[ref] != 1:
                problems.append(f"sandbox charge {row.key} {ref}: {by_ref[ref]} payment rows")
        for p in self.payments:
            found = charged.get(p.gateway_ref)
            if found is None:
                problems.append(f"payment pay_{p.id} ({p.gateway_ref}) has no sandbox charge")
            elif (found.amount_minor, invoice_of(found)) != (p.amount_minor, p.invoice_id):
                problems.append(
                    f"payment pay_{p.id} {p.amount_minor} on inv_{p.invoice_id} vs sandbox "
                    f"{found.key} {found.amount_minor}"
                )
        return problems + self.invoices_paid()

    def invoices_paid(self) -> list[str]:
        """A paid invoice's payments sum to what was charged for it, and to what it shows
        paid; an open one has nothing charged for it that it does not show."""
        problems: list[str] = []
        own: dict[int, list[PaymentRow]] = defaultdict(list)
        for p in self.payments:
            if not p.is_duplicate:
                own[p.invoice_id].append(p)
        charged: Counter[int] = Counter()
        for row in self.ok("charge"):
            op = self.op_by_key().get(row.key)
            if op is None or not op.details.get("duplicate"):
                charged[invoice_of(row)] += row.amount_minor
        for invoice in self.invoices.values():
            paid = [p for p in own[invoice.id]]
            settled = sum(p.settled_minor for p in paid)
            amount = sum(p.amount_minor for p in paid)
            due = (
                invoice.total_minor
                - invoice.credit_applied_minor
                - invoice.wallet_applied_minor
                - invoice.amount_paid_minor
            )
            if settled != invoice.amount_paid_minor or amount != charged[invoice.id]:
                problems.append(
                    f"invoice inv_{invoice.id} ({invoice.status}): shows "
                    f"{invoice.amount_paid_minor} paid, payments {settled} "
                    f"({[f'pay_{p.id}' for p in paid]}), charged at the gateway "
                    f"{charged[invoice.id]}"
                )
            if invoice.status == "paid" and due > 0:
                problems.append(f"invoice inv_{invoice.id} is paid with {due} still due")
        return problems

    # 2. no refund paid twice or lost
    def refunds(self) -> list[str]:
        problems: list[str] = []
        by_ref: dict[str | None, list[RefundRow]] = defaultdict(list)
        for r in self.refund_rows:
            by_ref[r.gateway_ref].append(r)
        paid_back = {row.reference: row for row in self.ok("refund")}
        payments = {p.id: p for p in self.payments}
        for ref, row in paid_back.items():
            rows = by_ref.get(ref, [])
            good = [
                r
                for r in rows
                if r.status == "succeeded"
                and r.amount_minor == row.amount_minor
                and r.payment_id in payments
                and payments[r.payment_id].gateway_ref == row.charge_reference
            ]
            if len(rows) != 1 or len(good) != 1:
                shown = [(f"ref_{r.id}", r.status, r.amount_minor) for r in rows]
                problems.append(
                    f"sandbox refund {row.key} {ref} ({row.amount_minor} of "
                    f"{row.charge_reference}): refund rows {shown}"
                )
        for r in self.refund_rows:
            if r.gateway_ref is not None and r.gateway_ref not in paid_back:
                problems.append(f"refund ref_{r.id} ({r.gateway_ref}) has no sandbox refund")
            problems.extend(self._refund_state(r))
        return problems

    def _refund_state(self, r: RefundRow) -> list[str]:
        """What a refund's status says, against its gateway operation."""
        ops = [op for op in self.operations if op.refund_id == r.id]
        statuses = [op.status for op in ops]
        if r.destination == "wallet":
            ok = r.status == "succeeded" and not ops and r.gateway_ref is None
        elif r.status == "succeeded":
            ok = statuses == ["succeeded"] and r.gateway_ref == ops[0].reference
        elif r.status == "pending":
            ok = len(ops) == 1 and statuses[0] in OPEN_OPERATIONS
        else:
            ok = statuses == ["failed"] and r.gateway_ref is None
        if ok:
            return []
        return [
            f"refund ref_{r.id} ({r.destination}, {r.status}, {r.gateway_ref}) with "
            f"operations {[(op.key, op.status, op.reference) for op in ops]}"
        ]

    def refunded_amounts(self) -> list[str]:
        """A payment's ``refunded_minor`` is its refunds that did not fail, never more
        than it; at the sandbox, never more was refunded of a charge than it took."""
        problems: list[str] = []
        refunded: Counter[int] = Counter()
        for r in self.refund_rows:
            if r.payment_id is not None and r.status != "failed":
                refunded[r.payment_id] += r.amount_minor
        at_gateway: Counter[str] = Counter()
        for row in self.ok("refund"):
            at_gateway[row.charge_reference or ""] += row.amount_minor
        for p in self.payments:
            if p.refunded_minor != refunded[p.id] or p.refunded_minor > p.amount_minor:
                problems.append(
                    f"payment pay_{p.id} ({p.amount_minor}): refunded_minor "
                    f"{p.refunded_minor}, its refunds that did not fail {refunded[p.id]}"
                )
            if at_gateway[p.gateway_ref] > p.amount_minor:
                problems.append(
                    f"payment pay_{p.id} ({p.amount_minor}, {p.gateway_ref}): the gateway "
                    f"refunded {at_gateway[p.gateway_ref]}"
                )
        return problems

    # 3. the ledger balanced, and its cash is the processor's
    def ledger(self) -> list[str]:
        problems: list[str] = []
        per_txn: Counter[tuple[int, str]] = Counter()
        per_currency: Counter[str] = Counter()
        cash: Counter[str] = Counter()
        for txn, account, currency, amount in self.entries:
            per_txn[(txn, currency)] += amount
            per_currency[currency] += amount
            if account == "cash":
                cash[currency] += amount
        problems += [
            f"journal transaction {t} {c} sums to {s}" for (t, c), s in per_txn.items() if s
        ]
        problems += [f"the ledger's {c} entries sum to {s}" for c, s in per_currency.items() if s]
        moved: Counter[str] = Counter()
        for row in self.ok("charge"):
            moved[row.currency] += row.amount_minor
        for row in self.ok("refund"):
            moved[row.currency] -= row.amount_minor
        for currency in sorted(set(moved) | set(cash)):
            if moved[currency] != cash[currency]:
                problems.append(
                    f"cash in the ledger {cash[currency]} {currency}, moved at the gateway "
                    f"{moved[currency]} {currency}"
                )
        return problems

    # 4. nothing left half done
    def leftovers(self) -> list[str]:
        problems = [
            f"idempotency key {k.key} ({k.operation}) unfinished, owner {k.owner}"
            for k in self.unfinished_keys
        ]
        problems += [
            f"gateway operation {op.key} ({op.kind}, {op.purpose}) left {op.status}: "
            f"tries {op.tries}, next {op.next_attempt_at}, error {op.error}"
            for op in self.operations
            if op.status in OPEN_OPERATIONS
        ]
        return problems


def _disagree(op: GatewayOperationRow, row: SandboxOperationRow) -> bool:
    """Whether fairbill's operation contradicts the sandbox's row of its key: money taken
    that fairbill calls declined (or still open), or a decline it calls paid."""
    if row.ok:
        return bool(op.status != "succeeded" or op.reference != row.reference)
    return bool(op.status != "failed")


def invoice_of(charge: SandboxOperationRow) -> int:
    """The invoice a charge was for: its key is ``charge:<invoice id>:<attempt>``."""
    return int(charge.key.split(":")[1])


# -- helpers --------------------------------------------------------------------------------
def _harness_engine(url: str) -> Engine:
    """The harness's own engine: SQLite's default deferred transactions (a read takes no
    lock, so the harness does not queue the server's writers), a generous busy timeout."""
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    return create_engine(url, pool_size=8)


def kind_of(write: Write) -> str:
    """The kind of a write, its label's first word: subscribe, cancel, advance …"""
    return write.label.split(" ")[0]


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"text": response.text}


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def server_errors_logged(folder: Path) -> str:
    """The exceptions the servers logged (a 500's, a settlement's that failed …), counted
    by their last line."""
    found: Counter[str] = Counter()
    for log in sorted(folder.glob("server-*.log")):
        text = log.read_text(errors="replace")
        for chunk in text.split("Traceback (most recent call last):")[1:]:
            lines = [line for line in chunk.splitlines() if line and not line[0].isspace()]
            found[lines[0][:160] if lines else "?"] += 1
    if not found:
        return "no tracebacks in the servers' logs"
    return f"tracebacks in the servers' logs: {dict(found)}"
