"""This process's Prometheus counters: requests, and gateway outcomes by kind.

Counters and histograms live in prometheus_client's default registry: one set per
process. ``fairbill serve`` shows its own on ``/metrics``; a worker shows its own on
``worker_metrics_port`` (``serve_worker_metrics``); Prometheus adds the processes up.
What is *waiting* (the outbox, the review queue) is not counted here: it is read from the
database when scraped (``services.health.backlog``), so every process sees the same.

Gateway outcomes are counted when the transaction that recorded them commits:
``count_outcome(s)`` keeps them on the session until then, a rollback drops them. So an
outcome is counted once even when its first recording failed and the janitor recorded it
again. The bulk path passes its counts at once (``count_outcomes``), not a call per row.

Nothing here raises into the caller: a metric is never worth a failed commit.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Mapping

from prometheus_client import Counter, Histogram, disable_created_metrics, start_http_server
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger("fairbill.metrics")
# No ``*_created`` series beside each counter: Prometheus does not need them, and they
# double what is scraped.
disable_created_metrics()  # type: ignore[no-untyped-call]

HTTP_SECONDS = Histogram(
    "fairbill_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ("method", "route"),
)
HTTP_REQUESTS = Counter(
    "fairbill_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ("method", "route", "status"),
)
CHARGES = Counter(
    "fairbill_charges",
    "Charges the gateway answered (recorded and committed), by outcome: succeeded, "
    "declined, unknown (no answer: asked again later).",
    ("outcome",),
)
RENEWALS = Counter(
    "fairbill_renewals",
    "Renewal charges (a subset of fairbill_charges_total), by outcome.",
    ("outcome",),
)
REFUNDS = Counter(
    "fairbill_refunds",
    "Refunds the gateway answered, by outcome: succeeded, refused (tried again later), "
    "failed (given up), unknown.",
    ("outcome",),
)

# (kind, purpose, outcome) -> how many; kept on the session until it commits.
Key = tuple[str, str, str]
_PENDING = "fairbill.metrics.outcomes"
_OUTCOMES = {
    ("charge", "failed"): "declined",
    ("refund", "pending"): "refused",  # recorded as pending again: a refusal, retried
}


def outcome(kind: str, status: str) -> str:
    """The outcome label of an operation recorded with ``status`` (pure)."""
    return _OUTCOMES.get((kind, status), status)


def count_outcome(session: Session, kind: str, purpose: str, status: str) -> None:
    count_outcomes(session, {(kind, purpose, outcome(kind, status)): 1})


def count_outcomes(session: Session, counts: Mapping[Key, int]) -> None:
    """Count ``counts`` once ``session``'s transaction commits (none if it rolls back)."""
    pending: Tally[Key] = session.info.setdefault(_PENDING, Tally())
    pending.update(counts)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:  # float-ok
    try:
        HTTP_SECONDS.labels(method, route).observe(seconds)
        HTTP_REQUESTS.labels(method, route, str(status)).inc()
    except Exception:  # a metric is never worth a failed request
        log.exception("could not count a request")


def serve_worker_metrics(port: int, host: str) -> None:
    """This process's counters on ``http://host:port/metrics`` (a daemon thread): for a
    worker, which has no API of its own (``worker_metrics_port``, on ``host``)."""
    start_http_server(port, addr=host)


def _publish(counts: Mapping[Key, int]) -> None:
    for (kind, purpose, label), n in counts.items():
        if kind == "charge":
            CHARGES.labels(label).inc(n)
            if purpose == "renewal":
                RENEWALS.labels(label).inc(n)
        elif kind == "refund":
            REFUNDS.labels(label).inc(n)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    counts = session.info.pop(_PENDING, None)
    if counts:
        try:
            _publish(counts)
        except Exception:  # after the commit: nothing to undo, and nothing to raise
            log.exception("could not count gateway outcomes")


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction ended without a commit (a rollback, or a close): what it
    # counted did not happen. After a commit ``_committed`` has taken them already.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
