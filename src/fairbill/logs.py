"""Log lines: one JSON object per event for machines, readable lines in a terminal.

``configure`` sends every stdlib log record (fairbill's ``logging.getLogger(...)``
loggers, uvicorn's, alembic's) through one structlog pipeline to one handler on stderr:
the level, the logger, a UTC timestamp, the record's ``extra`` fields as keys, and the
fields bound to the context (the API binds ``request_id`` while a request runs, so every
line logged on its behalf carries it). ``auto`` renders JSON unless stderr is a terminal.

Why structlog rather than a stdlib JSON formatter: the same event dict renders as JSON or
as a coloured ``key=value`` line (the terminal shows the same fields), records of
libraries we do not control are rendered the same way, and its contextvars give every
line of a request its id without passing it around. The application keeps logging
through the stdlib (``logging.getLogger``), so nothing depends on this being configured:
tests and library use log as before.

Secrets never reach a line: messages go through ``services.redaction.redact_text`` (a
portal link's token, an API key).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from fairbill.services.redaction import redact_text

HANDLER_NAME = "fairbill"


def wants_json(fmt: str, stream: TextIO) -> bool:
    """``json`` and ``console`` are what they say; ``auto`` is JSON unless ``stream`` is a
    terminal (a person is reading)."""
    if fmt == "auto":
        return not _isatty(stream)
    return fmt == "json"


def configure(fmt: str = "auto", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route the root logger to one handler on ``stream`` (stderr), rendering JSON or
    console lines (``wants_json``), at ``level``. Calling it again replaces that handler."""
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(formatter(wants_json(fmt, out), colors=_isatty(out)))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def formatter(as_json: bool, colors: bool = False) -> structlog.stdlib.ProcessorFormatter:
    """The formatter of stdlib records: JSON, or a console line."""
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=colors)
    )
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if as_json:
        final.append(structlog.processors.format_exc_info)  # the traceback as one string
    final.append(renderer)
    return structlog.stdlib.ProcessorFormatter(foreign_pre_chain=_shared(), processors=final)


def _shared() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]


def _redact(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    event.pop("color_message", None)  # uvicorn's message again, with terminal colours
    message: Any = event.get("event")
    if isinstance(message, str):
        event["event"] = redact_text(message)
    return event


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or an odd stream: not a terminal
        return False
