"""/healthz, /readyz and /metrics: no credentials, outside /v1 and the OpenAPI document;
readiness with its checks' codes; the counters and gauges Prometheus scrapes; /metrics
off or behind its token by setting. SQLite only: what they read is the same on both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from fairbill.api.app import create_app
from fairbill.api.settings import Runtime
from fairbill.config import Settings
from fairbill.services import heartbeat
from fairbill.services.clock import TestClock
from fairbill.store.db import create_schema, make_engine
from fairbill.store.migrate import head_revision

from .helpers import ADMIN_TOKEN, START, Api

PROBES = {"/healthz", "/readyz", "/metrics"}


def serve(**settings: Any) -> Iterator[Api]:
    engine = make_engine("sqlite://")
    create_schema(engine)
    runtime = Runtime(
        engine,
        clock=TestClock(START),
        admin_token=ADMIN_TOKEN,
        settings=Settings.model_construct(**settings),
    )
    try:
        with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
            yield Api(client, runtime)
    finally:
        engine.dispose()


@pytest.fixture
def api() -> Iterator[Api]:
    yield from serve()


def stamp(api: Api) -> None:
    """Mark the schema (made from the models) as migrated to the head."""
    with api.runtime.engine.begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
        connection.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": head_revision()})


def samples(api: Api, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = api.client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_the_probes_are_outside_v1_and_the_openapi_document(api: Api) -> None:
    # Outside /v1: the security tests, which enumerate every /v1 operation, skip them.
    assert not any(p.startswith("/v1") for p in PROBES)
    documented = set(api.client.get("/openapi.json").json()["paths"])
    assert documented and not PROBES & documented
    for path in PROBES:  # and no credentials asked
        assert api.client.get(path).status_code in (200, 503), path


def test_healthz_answers_without_reading_anything(api: Api) -> None:
    response = api.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response.headers["cache-control"] == "no-store"


def test_readyz_names_what_is_not_ready() -> None:
    for api in serve(expect_worker=True):
        response = api.client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "not_ready"
        assert body["checks"]["database"] == {"ok": True, "code": "ok", "detail": "reachable"}
        assert body["checks"]["migrations"]["code"] == "migrations_missing"
        stamp(api)
        assert api.client.get("/readyz").json()["checks"]["worker"]["code"] == "worker_missing"
        heartbeat.beat_once(api.runtime.sessions, "worker@test:1")
        response = api.client.get("/readyz")
        assert (response.status_code, response.json()["status"]) == (200, "ready")


def test_readyz_without_a_worker_expected(api: Api) -> None:
    stamp(api)
    body = api.client.get("/readyz").json()
    assert body["checks"]["worker"] == {
        "ok": True,
        "code": "worker_not_expected",
        "detail": "no worker configured",
    }


def test_metrics_count_requests_charges_renewals_and_show_the_backlog(api: Api) -> None:
    def charges(found: dict[Any, float], name: str = "fairbill_charges_total") -> float:
        return found.get((name, frozenset({("outcome", "succeeded")})), 0.0)

    before = samples(api)
    m = api.merchant("kalenner")
    m.plan("pro", "19.00")
    m.customer("c1")
    m.subscribe("c1", "pro")  # the first charge, answered and committed
    api.advance("2026-02-02T09:00:00+00:00")  # a renewal, by the due work
    m.ok(m.get("/v1/plans"))
    after = samples(api)
    assert charges(after) == charges(before) + 2
    assert (
        charges(after, "fairbill_renewals_total") == charges(before, "fairbill_renewals_total") + 1
    )
    route = frozenset({("method", "GET"), ("route", "/v1/plans")})
    assert after["fairbill_http_request_duration_seconds_count", route] >= 1
    assert after["fairbill_http_requests_total", route | {("status", "200")}] >= 1
    for gauge in (
        "fairbill_outbox_depth",
        "fairbill_outbox_parked",
        "fairbill_review_queue_depth",
        "fairbill_review_queue_overdue",
    ):
        assert (gauge, frozenset()) in after
    assert after["fairbill_database_up", frozenset()] == 1
    assert after["fairbill_outbox_depth", frozenset()] >= 1  # the receipts: no SMTP here


def test_metrics_can_be_turned_off_or_need_a_token() -> None:
    for api in serve(metrics_enabled=False):
        assert api.client.get("/metrics").status_code == 404
    from pydantic import SecretStr

    for api in serve(metrics_token=SecretStr("scrape-me")):
        assert api.client.get("/metrics").status_code == 401
        bad = {"Authorization": "Bearer wrong"}
        assert api.client.get("/metrics", headers=bad).status_code == 401
        assert samples(api, Authorization="Bearer scrape-me")
