"""Web sessions in a signed cookie: no table, nothing to clean up.

The cookie holds the session itself (who, for which merchant, its CSRF token, when it
ends) as compact JSON, base64url-encoded, followed by an HMAC-SHA256 of that text under
the server's secret. Pure: the caller passes the time (wall-clock seconds) and the secret.

Invariants:
- ``unseal`` returns a session only for text this secret sealed, not past ``expires``;
  anything else (tampered, truncated, another secret, expired) is None, never an error;
- ``expires`` never passes ``limit`` (the credential's own end: a portal token's expiry)
  nor ``issued + ABSOLUTE``; each page refreshes it to ``now + IDLE`` within those;
- the CSRF token is random per session and changes only with a new session.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass, replace

IDLE = 30 * 60  # seconds without a request before a session ends
ABSOLUTE = 12 * 60 * 60  # a session ends this long after sign-in, however busy


@dataclass(frozen=True, slots=True)
class WebSession:
    kind: str  # "portal" (a customer); the back office adds its own kinds
    merchant_id: int
    subject: str  # the credential's public prefix (``cpt_…``): never the secret
    csrf: str
    issued: int  # wall-clock seconds
    expires: int
    limit: int  # the credential's own end; the session never outlives it
    customer_id: int | None = None
    role: str | None = None
    language: str | None = None  # chosen on a page (``?lang=``), else the account's

    @property
    def actor(self) -> str:
        """As the audit log names the caller (the API's ``portal:<prefix>``)."""
        return f"{self.kind}:{self.subject}"


def start(
    kind: str,
    merchant_id: int,
    subject: str,
    now: int,
    limit: int,
    *,
    customer_id: int | None = None,
    role: str | None = None,
) -> WebSession:
    """A new session, with a new CSRF token."""
    fresh = WebSession(
        kind=kind,
        merchant_id=merchant_id,
        subject=subject,
        csrf=secrets.token_urlsafe(32),
        issued=now,
        expires=now,
        limit=limit,
        customer_id=customer_id,
        role=role,
    )
    return refreshed(fresh, now)


def refreshed(session: WebSession, now: int) -> WebSession:
    """The session with its idle time restarted (within its absolute end and limit)."""
    return replace(session, expires=min(now + IDLE, session.issued + ABSOLUTE, session.limit))


def seal(session: WebSession, secret: bytes) -> str:
    body = _b64(json.dumps(asdict(session), separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_b64(_mac(body, secret))}"


def unseal(text: str | None, secret: bytes, now: int) -> WebSession | None:
    if not text or text.count(".") != 1:
        return None
    body, mac = text.split(".")
    try:
        given = _unb64(mac)
        if not hmac.compare_digest(given, _mac(body, secret)):
            return None
        session = WebSession(**json.loads(_unb64(body)))
    except (binascii.Error, ValueError, TypeError):
        return None
    return session if now < session.expires else None


def _mac(body: str, secret: bytes) -> bytes:
    return hmac.new(secret, body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
