"""One log event per request: its id (the response's X-Request-Id), the route template,
the status, the time, the merchant and actor who called (also when the guard refused,
authenticated before the body, or no route matched); probes at DEBUG."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from fairbill.api.observe import route_of

from .helpers import Api
from .test_ops import serve


@pytest.fixture
def api() -> Iterator[Api]:
    yield from serve()


def events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The request events' fields (a record's ``extra`` are its attributes)."""
    return [vars(r) for r in caplog.records if r.name == "fairbill.request"]


def test_each_request_is_one_event_naming_its_merchant(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    m = api.merchant("kalenner")
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="fairbill.request"):
        got = m.get("/v1/plans", role="finance")
        posted = m.post("/v1/plans", {"id": "pro", "price": "19.00"})  # the guard's principal
        refused = api.client.get("/v1/plans")
        api.client.get("/nowhere/at/all")
        api.client.get("/healthz")
    read, made, anonymous, unmatched, probe = events(caplog)
    assert read["request_id"] == got.headers["x-request-id"]
    assert (read["route"], read["status"], read["merchant"]) == ("/v1/plans", 200, m.id)
    assert read["actor"].startswith("key:fb_") and read["duration_ms"] >= 0
    assert read["levelno"] == logging.INFO
    assert (made["method"], made["status"], made["merchant"]) == ("POST", posted.status_code, m.id)
    assert (anonymous["status"], anonymous["merchant"]) == (refused.status_code, None)
    assert (unmatched["route"], unmatched["status"]) == ("unmatched", 404)
    assert (probe["route"], probe["levelno"]) == ("/healthz", logging.DEBUG)


def test_a_mount_is_labelled_by_its_prefix() -> None:
    assert route_of({"root_path": "/static"}, "") == "/static/{path}"
    assert route_of({"root_path": ""}, "") == "unmatched"
