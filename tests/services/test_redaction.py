"""What the audit log keeps of a request: everything but its secrets."""

from __future__ import annotations

import logging

from fairbill.services.redaction import REDACTED, RedactingFilter, redact, redact_text


def test_gateway_tokens_and_keys_are_redacted_and_the_rest_kept() -> None:
    key = "fb_0123456789ab.SECRETSECRETSECRET"
    payload = {
        "id": "c_1",
        "payment_methods": [{"id": "card_1", "token": "tok_visa_4242"}, {"id": "card_2"}],
        "reason": key,
        "nested": {"Password": "hunter2", "token": None},
        "count": 3,
    }
    assert redact(payload) == {
        "id": "c_1",
        "payment_methods": [{"id": "card_1", "token": REDACTED}, {"id": "card_2"}],
        "reason": "fb_0123456789ab.redacted",
        "nested": {"Password": REDACTED, "token": None},
        "count": 3,
    }
    assert redact(redact(payload)) == redact(payload)


def test_log_lines_lose_the_secrets_in_their_urls() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:5000",
            "GET",
            "/portal/enter?token=cpt_0123456789ab.SeCrEt-_x&lang=fr",
            "1.1",
            303,
        ),
        None,
    )
    assert RedactingFilter().filter(record)
    line = record.getMessage()
    assert "SeCrEt" not in line
    assert "/portal/enter?token=redacted&lang=fr" in line
    assert redact_text("Bearer fb_0123456789ab.abcDEF") == "Bearer fb_0123456789ab.redacted"
