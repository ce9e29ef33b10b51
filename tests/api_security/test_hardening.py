"""What the API checks before it reads a body (``api.guard``), the throttle of failed
authentications (``api.throttle``) and deeply nested JSON: each found by a probe.

- A body nested 1,000 deep with a ``\\u0000`` was a 500 (``RecursionError`` in the NUL
  check): it is a 401 without credentials and a 4xx with them.
- A 100 MB body was read (and parsed) before anyone was authenticated: a body over
  ``MAX_BODY`` is a 413 before a byte of it is read, and a request without valid
  credentials is a 401 before its body is read at all.
- 280 bad credentials in a row were all answered 401: from the 31st failure in a minute,
  a client is answered 429 with ``Retry-After``, valid credentials or not.

These do not depend on the database: they run on in-memory SQLite only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.helpers import ADMIN_TOKEN, START, Api
from fairbill.api.app import _nul_field, create_app
from fairbill.api.guard import MAX_BODY, Guard
from fairbill.api.problems import PROBLEM_JSON
from fairbill.api.settings import Runtime
from fairbill.api.throttle import FAILURE_LIMIT, WINDOW_SECONDS, Throttle
from fairbill.services.clock import TestClock
from fairbill.store.db import create_schema, make_engine
from fairbill.store.tables import AuditLogRow

JSON = {"Content-Type": "application/json"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def fb() -> Iterator[Api]:
    engine = make_engine("sqlite://")
    create_schema(engine)
    runtime = Runtime(engine, clock=TestClock(START), admin_token=ADMIN_TOKEN)
    try:
        with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
            yield Api(client, runtime)
    finally:
        engine.dispose()


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert (response.status_code, response.headers["content-type"]) == (status, PROBLEM_JSON), (
        response.text[:300]
    )
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


# -- nesting ------------------------------------------------------------------------------
def test_a_body_nested_1000_deep_with_a_nul_is_never_a_500(fb: Api) -> None:
    lists = b"[" * 1000 + b'"\\u0000"' + b"]" * 1000
    objects = b'{"a":' * 990 + b'"\\u0000"' + b"}" * 990
    for body in (lists, objects):
        problem(fb.client.post("/v1/plans", content=body, headers=JSON), 401, "unauthorized")
        answer = fb.client.post("/v1/merchants", content=body, headers=JSON | ADMIN)
        assert 400 <= answer.status_code < 500, answer.text[:300]
        assert answer.headers["content-type"] == PROBLEM_JSON


def test_the_nul_check_walks_any_depth_without_recursion() -> None:
    deep: Any = "\x00"
    for _ in range(50_000):
        deep = {"a": deep}
    assert _nul_field(deep) == ".".join(["a"] * 50_000)
    # The first member holding a NUL is named, in the order of the document.
    assert _nul_field({"x": ["ok", {"y": "\x00"}], "z": "\x00"}) == "x.1.y"
    assert _nul_field({"k\x00": 1}) == "k\x00"
    assert _nul_field([1, True, None, "fine"]) is None


# -- bodies: size, and credentials first -------------------------------------------------
def test_a_body_over_the_limit_is_413_with_or_without_credentials(fb: Api) -> None:
    too_big = b"x" * (MAX_BODY + 1)
    for headers in ({}, ADMIN):
        response = fb.client.post("/v1/merchants", content=too_big, headers=JSON | headers)
        problem(response, 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it comes
        for _ in range(MAX_BODY // 65_536 + 2):
            yield b"x" * 65_536

    response = fb.client.post("/v1/merchants", content=chunks(), headers=JSON | ADMIN)
    problem(response, 413, "payload_too_large")
    # Just under the limit is read and answered by the route (here: not JSON).
    response = fb.client.post("/v1/merchants", content=b" " * MAX_BODY, headers=JSON | ADMIN)
    assert response.status_code == 422, response.text[:300]


class _Unread:
    """An ASGI ``receive`` that fails the test if the body is asked for."""

    asked = False

    async def __call__(self) -> dict[str, Any]:
        self.asked = True
        raise AssertionError("the body was read")


def _call_guard(app: Any, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Send a POST through ``Guard`` in front of ``app``'s own stack; the status and the
    headers of the answer, and whether the application behind was reached."""
    reached: list[bool] = []

    async def behind(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/merchants",
        "raw_path": b"/v1/merchants",
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("203.0.113.9", 5000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "app": app,
    }
    asyncio.run(Guard(behind)(scope, _Unread(), send))
    assert not reached
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}


def test_no_body_is_read_before_its_size_and_its_credentials_are_checked(fb: Api) -> None:
    app = fb.client.app
    huge = {"content-length": str(100 * 1024 * 1024), "content-type": "application/json"}
    assert _call_guard(app, huge)[0] == 413  # without credentials
    assert _call_guard(app, huge | ADMIN)[0] == 413  # and with them
    small = {"content-length": "20", "content-type": "application/json"}
    for authorization in ({}, {"authorization": "Bearer fb_000000000000.nope"}):
        status, headers = _call_guard(app, small | authorization)
        assert status == 401 and headers["content-type"] == PROBLEM_JSON


# -- throttling failed authentications -----------------------------------------------------
class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_repeated_failures_are_throttled_with_retry_after(fb: Api) -> None:
    time = FakeTime()
    fb.runtime.throttle = Throttle(now=time)
    m = fb.merchant("conek")
    bad = {"Authorization": "Bearer fb_000000000000.guess"}
    for _ in range(FAILURE_LIMIT):
        problem(fb.client.get("/v1/plans", headers=bad), 401, "unauthorized")
    refused = fb.client.get("/v1/plans", headers=bad)
    problem(refused, 429, "too_many_failures")
    assert refused.headers["Retry-After"] == str(int(WINDOW_SECONDS))
    # The client is refused whatever it sends meanwhile, bodies unread: valid keys too.
    problem(m.get("/v1/plans"), 429, "too_many_failures")
    problem(m.post("/v1/customers", {"id": "c_1"}), 429, "too_many_failures")
    time.now += WINDOW_SECONDS / 2
    assert fb.client.get("/v1/plans", headers=bad).headers["Retry-After"] == "30"
    time.now += WINDOW_SECONDS / 2  # the first failures have left the window
    assert m.get("/v1/plans").status_code == 200
    problem(fb.client.get("/v1/plans", headers=bad), 401, "unauthorized")


def test_the_throttle_counts_per_client_within_its_window_and_stays_bounded() -> None:
    time = FakeTime()
    throttle = Throttle(limit=3, window=60.0, now=time, max_clients=2)
    for _ in range(3):
        assert throttle.retry_after("a") == 0
        throttle.failed("a")
    assert throttle.retry_after("a") == 60
    assert throttle.retry_after("b") == 0  # another client is not concerned
    time.now += 59.5
    assert throttle.retry_after("a") == 1  # rounded up
    time.now += 0.5
    assert throttle.retry_after("a") == 0
    for _ in range(10):
        throttle.failed("a")
    assert len(throttle._failures["a"]) == 3  # only the newest ``limit`` ever matter
    throttle.failed("b")
    throttle.failed("c")  # a third client: the oldest is forgotten
    assert set(throttle._failures) == {"b", "c"}


# -- secrets -------------------------------------------------------------------------------
def test_gateway_tokens_never_reach_the_audit_log(fb: Api) -> None:
    m = fb.merchant("conek")
    methods = [{"id": "card_1", "token": "tok_first_secret"}]
    m.ok(m.post("/v1/customers", {"id": "c_1", "payment_methods": methods}), 201)
    card = {"id": "card_2", "token": "tok_second_secret"}
    m.ok(m.post("/v1/customers/c_1/payment_methods", card), 201)
    with fb.runtime.sessions() as session:
        rows = session.scalars(select(AuditLogRow).order_by(AuditLogRow.id)).all()
        kept = {r.action: r.details for r in rows}
    assert "secret" not in repr(kept)
    assert kept["customer.create"]["payload"]["payment_methods"][0]["token"] == "redacted"
    assert kept["payment_method.create"]["payload"] == card | {"token": "redacted"} | {
        "type": "card"
    }
