"""Secrets are never kept beside a record: what the audit log stores of a request.

A request may carry a payment method's gateway token (``token``), and any text a person
typed may hold a key or a portal token. ``redact`` returns the value with each such
secret replaced: a member named in ``SECRET_FIELDS`` by ``REDACTED``, a fairbill key or
portal token by its prefix (``fb_0a1b2c3d4e5f.redacted``, as idempotent replays show it).
Everything else is kept as it was, so the audit row still says what was asked.

``RedactingFilter`` does the same for log lines: the server's access log has each URL,
and a portal link carries its token (``/portal/enter?token=cpt_…``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fairbill.services.merchants import redact_secrets

# Members whose value is a credential: a gateway's payment token, or anything named so.
SECRET_FIELDS = frozenset({"token", "secret", "password", "api_key", "authorization"})
REDACTED = "redacted"


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if _secret_field(k, v) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return redact_secrets(value)


def _secret_field(name: Any, value: Any) -> bool:
    return isinstance(name, str) and name.lower() in SECRET_FIELDS and value is not None


# A key or a portal token anywhere in a text; a credential in a URL's query string.
_SECRET_IN_TEXT = re.compile(r"\b((?:fb|cpt)_[0-9a-f]{12})\.[A-Za-z0-9_-]+")
_SECRET_IN_QUERY = re.compile(r"([?&](?:token|secret|password|api_key)=)[^&\s\"]*", re.I)


def redact_text(text: str) -> str:
    text = _SECRET_IN_TEXT.sub(r"\1.redacted", text)
    return _SECRET_IN_QUERY.sub(rf"\g<1>{REDACTED}", text)


class RedactingFilter(logging.Filter):
    """A logging filter that takes secrets out of a record's message and its arguments
    (uvicorn's access log passes the URL as an argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_text(a) if isinstance(a, str) else a for a in record.args)
        return True
