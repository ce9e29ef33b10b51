"""Fixtures for the web tests.

In process (fast): ``world`` seeds the demo merchants (``services.demo``, as ``make run``
does) on in-memory SQLite with a test clock; ``client`` is a ``TestClient`` on the app
that does not follow redirects; ``enter(client, token)`` signs in through a portal link.

In a real browser (``test_browser.py``): ``live`` serves the real app with uvicorn on a
free loopback port, in a thread, from a SQLite file in a temporary folder, seeded the same
way; ``browser`` is Debian's Chromium (``/usr/bin/chromium``, or ``FAIRBILL_CHROMIUM``)
driven by Playwright, launched once per session (per xdist worker). Chromium missing: the
browser tests skip with the reason, except under ``CI=true``, where they fail (``make
unit`` installs it). ``check_page`` injects the vendored axe-core and fails on any serious
or critical violation, then writes a screenshot under ``test-output/screenshots/``
(``FAIRBILL_TEST_OUTPUT`` moves the folder).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fairbill.api.app import create_app
from fairbill.api.settings import Runtime
from fairbill.ids import Ids, Prefix
from fairbill.services.clock import TestClock
from fairbill.services.demo import seed
from fairbill.store.db import create_schema, make_engine
from fairbill.store.tables import CustomerRow, MerchantRow, PaymentRow, SubscriptionRow

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
OUTPUT = Path(os.environ.get("FAIRBILL_TEST_OUTPUT") or ROOT / "test-output")
CHROMIUM = os.environ.get("FAIRBILL_CHROMIUM", "/usr/bin/chromium")


# -- the demo world ----------------------------------------------------------------------
@dataclass
class World:
    runtime: Runtime
    tokens: dict[str, str]  # policy id → the portal token of its "<policy>-active" customer

    def ids(self, code: str, under: str | None = None) -> dict[str, str]:
        """The public ids (``sub_…``, ``pay_…``) of a customer's first subscription and
        payment, under its merchant's key (``under``: the key of the demo merchant of that
        policy instead, as if that merchant had issued them)."""
        with self.runtime.reads() as session:
            customer = session.scalar(select(CustomerRow).where(CustomerRow.code == code))
            assert customer is not None, code
            first_sub = select(func.min(SubscriptionRow.id))
            sub = session.scalar(first_sub.where(SubscriptionRow.customer_id == customer.id))
            first_pay = select(func.min(PaymentRow.id))
            pay = session.scalar(first_pay.where(PaymentRow.customer_id == customer.id))
            assert sub is not None and pay is not None, code
            ids = Ids(session.get_one(MerchantRow, customer.merchant_id).id_key)
        if under is not None:
            ids = self.keyed(under)
        return {"sub": ids.public(Prefix.SUBSCRIPTION, sub), "pay": ids.public(Prefix.PAYMENT, pay)}

    def keyed(self, policy: str) -> Ids:
        """The public ids of the demo merchant of ``policy`` (under its ``id_key``)."""
        with self.runtime.reads() as session:
            merchant = session.scalar(select(MerchantRow).where(MerchantRow.policy_id == policy))
            assert merchant is not None, policy
            return Ids(merchant.id_key)

    def row_id(self, policy: str, prefix: Prefix, public: str) -> int:
        """The row id a public id of the demo merchant of ``policy`` names."""
        found = self.keyed(policy).private(prefix, public)
        assert found is not None, public
        return found


def seeded(url: str) -> World:
    engine = make_engine(url)
    create_schema(engine)
    runtime = Runtime(engine, clock=TestClock(START), admin_token="adm_web_tests")
    with runtime.sessions() as session:
        made = seed(session, runtime.clock, runtime.gateway)
    return World(runtime, {m.policy: m.portal_token for m in made})


@pytest.fixture(scope="session")
def seeded_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The demo world seeded once per session, in a SQLite file each test copies."""
    path = tmp_path_factory.mktemp("seed") / "fairbill.db"
    found = seeded(f"sqlite:///{path}")
    found.runtime.close()
    return path, found.tokens


@pytest.fixture
def world(seeded_file: tuple[Path, dict[str, str]], tmp_path: Path) -> Iterator[World]:
    source, tokens = seeded_file
    shutil.copyfile(source, tmp_path / "fairbill.db")
    engine = make_engine(f"sqlite:///{tmp_path / 'fairbill.db'}")
    found = World(Runtime(engine, clock=TestClock(START), admin_token="adm_web_tests"), tokens)
    try:
        yield found
    finally:
        found.runtime.close()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.runtime), follow_redirects=False) as c:
        yield c


def enter(client: TestClient, token: str) -> None:
    response = client.get("/portal/enter", params={"token": token})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/portal/"


# -- a real server and a real browser ----------------------------------------------------
@dataclass
class Live:
    url: str
    world: World


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    import uvicorn

    folder = tmp_path_factory.mktemp("live")
    found = seeded(f"sqlite:///{folder / 'fairbill.db'}")
    port = free_port()
    config = uvicorn.Config(
        create_app(found.runtime),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="none",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fairbill-live", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live server did not start")
        time.sleep(0.02)
    try:
        yield Live(f"http://127.0.0.1:{port}", found)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        found.runtime.close()


def chromium_or_skip() -> str:
    path = CHROMIUM if os.path.isabs(CHROMIUM) else shutil.which(CHROMIUM)
    if path and os.access(path, os.X_OK):
        return path
    reason = f"Chromium not found at {CHROMIUM} (apt-get install chromium; make unit does)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: under CI=true a missing browser is a failure", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = chromium_or_skip()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("playwright is not installed (make test installs it)")
    # As root (CI, containers) Chromium runs only without its sandbox.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=args)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, live: Live) -> Iterator[Any]:
    """A fresh browser context (no cookies) on the live server, offline: any request
    that leaves the machine is refused, so a page that needs a CDN fails its test."""
    context = browser.new_context(base_url=live.url, viewport={"width": 1100, "height": 900})

    refused: list[str] = []

    def offline(route: Any) -> None:
        url = route.request.url
        if url.startswith((live.url, "data:")):
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    context.route("**/*", offline)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: errors.append(str(e)))
    opened.errors = errors
    opened.refused = refused  # what the page asked of the internet: nothing, offline
    try:
        yield opened
    finally:
        context.close()


SERIOUS = ("serious", "critical")


def check_page(page: Any, name: str) -> Path:
    """axe-core finds no serious or critical violation on the page; a screenshot of it is
    written (returned). Also: no script error or refused resource on the page."""
    if page.evaluate("typeof window.axe") == "undefined":
        page.evaluate(AXE.read_text())  # through the devtools protocol: the page's CSP stays on
    found = page.evaluate(
        "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map("
        "v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)})))"
    )
    bad = [v for v in found if v["impact"] in SERIOUS]
    shot = OUTPUT / "screenshots" / f"{name}.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert not bad, f"{name}: accessibility violations: {bad}"
    assert not page.errors, f"{name}: errors in the page: {page.errors}"
    assert not page.refused, f"{name}: requests that left the machine: {page.refused}"
    return shot


def tab_to(page: Any, text: str, limit: int = 60) -> None:
    """Press Tab until the focused element's text contains ``text`` (``#name``: until the
    element with that id has the focus): what a keyboard user does; fails if it is not
    reachable."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "(() => { const e = document.activeElement; if (!e) return '';"
            " return '#' + e.id + ' ' + (e.innerText || e.value || ''); })()"
        )
        if (focused.split(" ", 1)[0] == text) if text.startswith("#") else text in focused:
            return
    raise AssertionError(f"{text!r} is not reachable with the Tab key")
