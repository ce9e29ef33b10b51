"""Sending a rendered message over SMTP: ``smtplib`` and a multipart text + HTML email.

``send`` opens a connection for one message. ``SmtpConnection`` keeps one connection open
for a batch (the outbox uses it) and connects lazily, on the first message.

Errors are sorted for the caller:

``Rejected``     the server refused this message (4xx: try again later; 5xx: permanent);
                 the connection stays usable for the next message.
``Unreachable``  no usable connection (refused, timeout, TLS or login failure, dropped):
                 nothing more can be sent now.

A rejected or failed send never means "sent": only a normal return does.
"""

from __future__ import annotations

import contextlib
import os
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from types import TracebackType

from fairbill.notify.render import Message

_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str  # the envelope and From address, e.g. "billing@fairbill.example"
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0  # float-ok: seconds
    # Right-hand side of Message-IDs; the sender's domain when not set.
    message_id_domain: str | None = None
    # EHLO name; None asks the OS for the fully qualified host name.
    helo_name: str | None = None

    @property
    def id_domain(self) -> str:
        return self.message_id_domain or self.sender.rpartition("@")[2] or "fairbill.invalid"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SmtpSettings | None:
        """``FAIRBILL_SMTP_HOST`` (required, else None), ``_PORT`` (25), ``_SENDER``,
        ``_STARTTLS`` (1/true/yes), ``_USERNAME``, ``_PASSWORD``, ``_TIMEOUT`` (seconds)."""
        values = os.environ if env is None else env
        host = values.get("FAIRBILL_SMTP_HOST")
        if not host:
            return None
        return cls(
            host=host,
            port=int(values.get("FAIRBILL_SMTP_PORT") or 25),
            sender=values.get("FAIRBILL_SMTP_SENDER") or "billing@localhost",
            starttls=(values.get("FAIRBILL_SMTP_STARTTLS") or "").lower() in ("1", "true", "yes"),
            username=values.get("FAIRBILL_SMTP_USERNAME") or None,
            password=values.get("FAIRBILL_SMTP_PASSWORD") or None,
            timeout=float(values.get("FAIRBILL_SMTP_TIMEOUT") or 10),  # float-ok: seconds
        )


class SendError(Exception):
    """A message was not sent."""


class Rejected(SendError):
    """The server refused this message; ``permanent`` for a 5xx reply."""

    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def permanent(self) -> bool:
        return self.code is None or self.code >= 500


class Unreachable(SendError):
    """No usable connection to the server: nothing can be sent right now."""


class BadAddress(SendError):
    """The recipient address cannot be used; no server was asked."""


def message_id_for(notification_id: int, settings: SmtpSettings) -> str:
    """The Message-ID of an outbox row: the same on every attempt, so a resend is
    recognisable (and deduplicated by receivers that look)."""
    return f"<fairbill.notification.{notification_id}@{settings.id_domain}>"


def check_address(address: str) -> str:
    if not _ADDRESS.match(address or ""):
        raise BadAddress(f"not a usable email address: {address!r}")
    return address


def build_email(
    settings: SmtpSettings,
    to: str,
    message: Message,
    *,
    message_id: str | None = None,
    from_name: str | None = None,
    date: datetime | None = None,
    notification_id: int | None = None,
) -> EmailMessage:
    email = EmailMessage()
    email["Subject"] = message.subject
    email["From"] = formataddr((from_name, settings.sender)) if from_name else settings.sender
    email["To"] = check_address(to)
    email["Date"] = format_datetime((date or datetime.now(UTC)).astimezone(UTC))
    email["Message-ID"] = message_id or make_msgid(domain=settings.id_domain)
    email["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies, please
    if notification_id is not None:
        email["X-Fairbill-Notification"] = str(notification_id)
    email.set_content(message.text)
    email.add_alternative(message.html, subtype="html")
    # After the body: making it multipart moves Content-* headers into the first part.
    email["Content-Language"] = message.language
    return email


class SmtpConnection:
    """One SMTP session for many messages; connects on the first ``send``."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _open(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        s = self.settings
        try:
            smtp = smtplib.SMTP(s.host, s.port, local_hostname=s.helo_name, timeout=s.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise Unreachable(f"cannot connect to {s.host}:{s.port}: {exc}") from exc
        try:
            smtp.ehlo()
            if s.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password or "")
        except (OSError, smtplib.SMTPException) as exc:
            _quietly_close(smtp)
            raise Unreachable(f"SMTP session with {s.host}:{s.port} failed: {exc}") from exc
        self._smtp = smtp
        return smtp

    def send(self, email: EmailMessage) -> None:
        """Hand ``email`` to the server; returns only once the server accepted it."""
        smtp = self._open()
        try:
            smtp.send_message(email, from_addr=self.settings.sender)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (None, b""))
            raise Rejected(f"recipient refused: {code} {_text(reply)}", code) from exc
        except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
            if exc.smtp_code == 421:  # the server is closing the session
                self._drop()
                raise Unreachable(f"server closing: {_text(exc.smtp_error)}") from exc
            answer = f"{exc.smtp_code} {_text(exc.smtp_error)}"
            raise Rejected(f"refused: {answer}", exc.smtp_code) from exc
        except (OSError, smtplib.SMTPException) as exc:
            # Disconnected, timed out, or a reply smtplib did not expect: the session is gone.
            self._drop()
            raise Unreachable(f"SMTP session lost: {exc}") from exc

    def _drop(self) -> None:
        if self._smtp is not None:
            _quietly_close(self._smtp)
            self._smtp = None

    def close(self) -> None:
        if self._smtp is not None:
            smtp, self._smtp = self._smtp, None
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                _quietly_close(smtp)


def send(
    settings: SmtpSettings,
    to: str,
    message: Message,
    *,
    message_id: str | None = None,
    from_name: str | None = None,
    notification_id: int | None = None,
) -> str:
    """Send one message on its own connection; returns its Message-ID."""
    email = build_email(
        settings,
        to,
        message,
        message_id=message_id,
        from_name=from_name,
        notification_id=notification_id,
    )
    with SmtpConnection(settings) as connection:
        connection.send(email)
    return str(email["Message-ID"])


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _quietly_close(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        smtp.close()
