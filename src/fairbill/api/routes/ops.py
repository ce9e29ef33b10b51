"""What a load balancer, an orchestrator and Prometheus ask: ``/healthz``, ``/readyz``,
``/metrics``.

Outside ``/v1`` and out of the OpenAPI document: they take no API credentials, no
idempotency key and no body. ``/healthz`` answers 200 while the process serves (it reads
nothing). ``/readyz`` answers 200 or 503 with each check of ``services.health`` and its
stable code. ``/metrics`` is the Prometheus text format: this process's counters
(``services.metrics``) and, read when scraped, what is waiting (``health.backlog``); it is
off when ``metrics_enabled`` is false (404) and needs ``Authorization: Bearer
<metrics_token>`` when that is set (401 otherwise).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from fairbill.api.deps import runtime
from fairbill.api.problems import not_found, unauthorized
from fairbill.api.settings import Runtime
from fairbill.services import health

log = logging.getLogger("fairbill.api")

router = APIRouter(include_in_schema=False)
Rt = Annotated[Runtime, Depends(runtime)]


@router.get("/healthz")
def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


@router.get("/readyz")
def readyz(rt: Rt) -> JSONResponse:
    settings = rt.settings
    found = health.readiness(
        rt.reads.kw["bind"],  # the reading engine: a probe never queues behind writers
        settings.expect_worker,
        timedelta(seconds=settings.worker_stale_seconds),
    )
    body = {
        "status": "ready" if found.ok else "not_ready",
        "checks": {c.name: {"ok": c.ok, "code": c.code, "detail": c.detail} for c in found.checks},
    }
    status = 200 if found.ok else 503
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


@router.get("/metrics")
def metrics(rt: Rt, authorization: Annotated[str | None, Header()] = None) -> Response:
    settings = rt.settings
    if not settings.metrics_enabled:
        raise not_found("metrics are turned off (FAIRBILL_METRICS_ENABLED)")
    if settings.metrics_token is not None:
        expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
        if not hmac.compare_digest((authorization or "").encode(), expected):
            raise unauthorized("metrics need the metrics token (FAIRBILL_METRICS_TOKEN)")
    text = generate_latest(REGISTRY) + generate_latest(Backlog(rt))
    return Response(text, media_type=CONTENT_TYPE_LATEST)


class Backlog(Collector):
    """The gauges of what is waiting, read from the database at each scrape."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        try:
            found = health.backlog(self.rt.reads, self.rt.clock.now)
        except SQLAlchemyError:
            log.warning("metrics: the backlog could not be read", exc_info=True)
            yield _gauge("fairbill_database_up", "Whether the database answered.", 0)
            return
        yield _gauge("fairbill_database_up", "Whether the database answered.", 1)
        yield _gauge("fairbill_outbox_depth", "Messages waiting to be sent.", found.outbox_pending)
        yield _gauge(
            "fairbill_outbox_parked",
            "Messages given up on (no address, refused, too many attempts).",
            found.outbox_parked,
        )
        yield _gauge(
            "fairbill_review_queue_depth",
            "Refund requests waiting for a reviewer, every merchant.",
            found.review_in_review,
        )
        yield _gauge(
            "fairbill_review_queue_overdue",
            "Refund requests in review past their review deadline.",
            found.review_overdue,
        )
        if found.last_heartbeat is not None:
            yield _gauge(
                "fairbill_worker_last_heartbeat_timestamp_seconds",
                "When a worker last said it was alive (Unix time).",
                found.last_heartbeat.timestamp(),
            )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:  # float-ok
    return GaugeMetricFamily(name, documentation, value=value)
