"""Log lines: JSON with the record's extra fields and the bound request id, or a console
line with the same fields; secrets in messages redacted; configuring twice keeps one
handler."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from structlog.contextvars import bound_contextvars

from fairbill import logs


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger, given back as it was."""
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    try:
        yield logger
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)


def test_json_lines_carry_extras_and_the_bound_request_id(root: logging.Logger) -> None:
    out = io.StringIO()
    logs.configure("json", "INFO", out)
    logs.configure("json", "INFO", out)  # again: still one handler
    assert [h.get_name() for h in root.handlers].count(logs.HANDLER_NAME) == 1
    log = logging.getLogger("fairbill.test")
    with bound_contextvars(request_id="req_1"):
        log.info("portal link /portal/enter?token=cpt_0123456789ab.s3cr3t", extra={"status": 200})
    log.debug("not at INFO")
    [line] = out.getvalue().splitlines()
    event = json.loads(line)
    assert event["event"] == "portal link /portal/enter?token=redacted"
    assert (event["request_id"], event["status"], event["level"]) == ("req_1", 200, "info")
    assert event["logger"] == "fairbill.test"
    assert event["timestamp"].endswith("Z")


def test_a_console_line_shows_the_same_fields(root: logging.Logger) -> None:
    out = io.StringIO()
    logs.configure("console", "DEBUG", out)
    logging.getLogger("fairbill.test").debug("request", extra={"route": "/v1/plans"})
    line = out.getvalue()
    assert "request" in line and "route=/v1/plans" in line
    assert not line.startswith("{")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_json_unless_a_terminal_reads() -> None:
    assert logs.wants_json("auto", io.StringIO())
    assert not logs.wants_json("auto", _Terminal())
    assert logs.wants_json("json", _Terminal())
    assert not logs.wants_json("console", io.StringIO())
