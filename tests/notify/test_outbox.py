"""The outbox over a real SMTP conversation (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from fairbill.notify.outbox import (
    MAX_ATTEMPTS,
    deliver_forever,
    deliver_pending,
    requeue,
    retry_delay,
)
from fairbill.notify.render import Message
from fairbill.notify.smtp import SmtpSettings, message_id_for, send
from fairbill.services.alerts import notify_finance
from fairbill.store.db import create_schema, make_engine, session_factory
from fairbill.store.tables import CustomerRow, MerchantRow, NotificationRow

NOW = datetime(2026, 3, 11, 13, 30, tzinfo=UTC)
LATER = datetime(2026, 3, 11, 13, 40, tzinfo=UTC)


def plain(text: str) -> str:
    return text.replace("\u00a0", " ").replace("\u202f", " ")


class Recorder:
    """An aiosmtpd handler that keeps what it accepts and refuses what it is told to."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.refuse_rcpt: dict[str, str] = {}  # address → reply
        self.refuse_data: dict[str, str] = {}
        self.delay = 0.0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for address in envelope.rcpt_tos:
            if address in self.refuse_data:
                return self.refuse_data[address]
        if self.delay:
            await asyncio.sleep(self.delay)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, port: int) -> None:
        self.port = port
        self.handler = Recorder()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[tuple[list[str], EmailMessage]]:
        return self.handler.messages


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server(free_port())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def settings_for(port: int) -> SmtpSettings:
    return SmtpSettings(
        host="127.0.0.1",
        port=port,
        sender="billing@fairbill.test",
        timeout=5,
        helo_name="fairbill.test",
    )


@pytest.fixture
def sessions() -> sessionmaker[Session]:
    engine = make_engine("sqlite://")
    create_schema(engine)
    return session_factory(engine)


def add_merchant(session: Session, name: str = "Kalenner", language: str = "fr") -> MerchantRow:
    merchant = MerchantRow(
        name=name,
        policy_ref="kalenner",
        policy_id="kalenner",
        policy_version="2025-05-26",
        currency="EUR",
        timezone="Europe/Paris",
        country="FR",
        language=language,
    )
    session.add(merchant)
    session.flush()
    return merchant


def add_customer(
    session: Session,
    merchant: MerchantRow,
    code: str,
    language: str,
    email: str | None = "",
) -> CustomerRow:
    """A customer; its address is ``<code>@example.test`` unless ``email`` says otherwise
    (``None``: no address on file)."""
    address = f"{code}@example.test" if email == "" else email
    customer = CustomerRow(merchant_id=merchant.id, code=code, language=language, email=address)
    session.add(customer)
    session.flush()
    return customer


def add_note(
    session: Session, customer: CustomerRow, template: str, language: str, **payload: Any
) -> int:
    row = NotificationRow(
        customer_id=customer.id, at=NOW, template=template, language=language, payload=payload
    )
    session.add(row)
    session.flush()
    return row.id


def seed(sessions: sessionmaker[Session]) -> list[int]:
    """Three messages: a French receipt, an English welcome, a French refund decision."""
    with sessions.begin() as s:
        merchant = add_merchant(s)
        marie = add_customer(s, merchant, "cus-marie", "fr")
        john = add_customer(s, merchant, "cus-john", "en")
        return [
            add_note(
                s, marie, "receipt", "fr", invoice="3", amount="160.00", email="marie@example.org"
            ),
            add_note(s, john, "welcome", "en", plan="pro-monthly"),
            add_note(
                s,
                marie,
                "refund_decided",
                "fr",
                request="2",
                outcome="approved",
                amount="160.00",
                destination="original_method",
                clauses=["kalenner/guarantee"],
                email="marie@example.org",
            ),
        ]


def unsent(sessions: sessionmaker[Session]) -> list[int]:
    with sessions() as s:
        return list(
            s.scalars(
                select(NotificationRow.id)
                .where(NotificationRow.sent_at.is_(None))
                .order_by(NotificationRow.id)
            )
        )


def sent_at(sessions: sessionmaker[Session], row_id: int) -> datetime | None:
    with sessions() as s:
        return s.get_one(NotificationRow, row_id).sent_at


def parts(message: EmailMessage) -> dict[str, str]:
    """The parts by type, with the wire's CRLF line ends read back as LF."""
    return {
        part.get_content_type(): part.get_content().replace("\r\n", "\n")
        for part in message.iter_parts()
    }


def test_each_pending_notification_is_sent_exactly_once(
    server: Server, sessions: sessionmaker[Session]
) -> None:
    ids = seed(sessions)
    settings = settings_for(server.port)

    first = deliver_pending(sessions, settings, NOW)
    second = deliver_pending(sessions, settings, LATER)

    assert first.sent == ids and first.failed == [] and first.stopped is None
    assert second.attempted == 0 and second.sent == []
    assert len(server.messages) == 3  # not 6
    assert unsent(sessions) == []
    assert [sent_at(sessions, i) for i in ids] == [NOW, NOW, NOW]

    (rcpt, receipt), (rcpt2, welcome), (_, decided) = server.messages
    assert rcpt == ["marie@example.org"] and receipt["To"] == "marie@example.org"
    assert plain(str(receipt["Subject"])) == "Votre reçu pour la facture n° 3 : 160,00 €"
    assert receipt["Content-Language"] == "fr"
    assert receipt["From"] == "Kalenner <billing@fairbill.test>"
    assert receipt["Message-ID"] == f"<fairbill.notification.{ids[0]}@fairbill.test>"
    assert receipt["X-Fairbill-Notification"] == str(ids[0])
    assert receipt.get_content_type() == "multipart/alternative"
    body = parts(receipt)
    assert set(body) == {"text/plain", "text/html"}
    assert "Nous avons bien reçu votre paiement de 160,00 €" in plain(body["text/plain"])
    assert '<html lang="fr">' in body["text/html"]
    assert "<strong>160,00 €</strong>" in plain(body["text/html"])

    # No address in the payload: the customer's own.
    assert rcpt2 == ["cus-john@example.test"]
    assert welcome["Subject"] == "Welcome to Kalenner"
    assert welcome["Content-Language"] == "en"
    assert "pro-monthly plan is now active" in parts(welcome)["text/plain"]

    # Clause ids are shown with the merchant's published words, verbatim.
    decided_text = plain(parts(decided)["text/plain"])
    assert "Votre demande n° 2 a été acceptée." in decided_text
    assert "Montant : 160,00 €, versé sur votre moyen de paiement d'origine." in decided_text
    assert (
        "« Vous pouvez annuler votre abonnement pour toute raison dans les 14 jours suivant "
        "votre date d'abonnement initial et recevoir un remboursement à 100%." in decided_text
    )


def test_server_down_leaves_rows_unsent_until_it_is_up(sessions: sessionmaker[Session]) -> None:
    ids = seed(sessions)
    down = Server(free_port())  # nothing listens on this port yet
    settings = settings_for(down.port)

    report = deliver_pending(sessions, settings, NOW)

    assert report.sent == [] and report.failed == []
    assert report.stopped is not None and "cannot connect" in report.stopped
    assert unsent(sessions) == ids

    down.start()
    try:
        again = deliver_pending(sessions, settings, LATER)
    finally:
        down.stop()
    assert again.sent == ids and again.stopped is None
    assert len(down.messages) == 3
    assert unsent(sessions) == []
    assert sent_at(sessions, ids[0]) == LATER


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_rejected_message_is_parked_while_the_others_go(
    server: Server, sessions: sessionmaker[Session], stage: str
) -> None:
    with sessions.begin() as s:
        merchant = add_merchant(s)
        customers = [add_customer(s, merchant, f"cus-{n}", "fr") for n in "abc"]
        ids = [
            add_note(
                s, c, "receipt", "fr", invoice=str(n), amount="10.00", email=f"{c.code}@x.test"
            )
            for n, c in enumerate(customers, start=1)
        ]
    refusals = server.handler.refuse_rcpt if stage == "rcpt" else server.handler.refuse_data
    refusals["cus-b@x.test"] = "550 5.7.1 Delivery not authorized, message refused"
    settings = settings_for(server.port)

    report = deliver_pending(sessions, settings, NOW)

    assert report.sent == [ids[0], ids[2]]
    assert [f.notification_id for f in report.failed] == [ids[1]]
    assert (report.failed[0].permanent, report.failed[0].parked) == (True, True)
    assert "550" in report.failed[0].error
    assert report.stopped is None
    assert unsent(sessions) == [ids[1]]
    assert [rcpt for rcpt, _ in server.messages] == [["cus-a@x.test"], ["cus-c@x.test"]]
    assert delivery(sessions, ids[1]) == (1, None, NOW)
    assert "550" in (last_error(sessions, ids[1]) or "")

    # Parked: a 5xx will not pass by itself, so no later run tries it again ...
    refusals.clear()
    assert deliver_pending(sessions, settings, LATER).attempted == 0
    assert len(server.messages) == 2

    # ... until someone requeues it (the address was fixed); then it goes, once.
    with sessions.begin() as s:
        assert requeue(s, [ids[0], ids[1]]) == 1  # ids[0] was sent: not parked
    last = deliver_pending(sessions, settings, LATER)
    assert last.sent == [ids[1]]
    assert len(server.messages) == 3
    assert unsent(sessions) == []


def delivery(sessions: sessionmaker[Session], row_id: int) -> tuple[int, Any, Any]:
    """(attempts, next_attempt_at, failed_at) of one row."""
    with sessions() as s:
        row = s.get_one(NotificationRow, row_id)
        return row.attempts, row.next_attempt_at, row.failed_at


def last_error(sessions: sessionmaker[Session], row_id: int) -> str | None:
    with sessions() as s:
        return s.get_one(NotificationRow, row_id).last_error


def test_a_temporary_refusal_waits_longer_each_time_then_parks(
    server: Server, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as s:
        customer = add_customer(s, add_merchant(s), "cus-a", "en")
        row = add_note(s, customer, "suspended", "en")
    server.handler.refuse_data["cus-a@example.test"] = "451 4.3.0 Try again later"
    settings = settings_for(server.port)
    at = NOW
    waits = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        report = deliver_pending(sessions, settings, at)
        [failure] = report.failed
        assert (failure.notification_id, failure.permanent) == (row, False)
        attempts, next_at, failed_at = delivery(sessions, row)
        assert attempts == attempt
        if attempt == MAX_ATTEMPTS:
            assert failure.parked and failed_at == at
            break
        assert not failure.parked and failed_at is None
        waits.append(next_at - at)
        # Not before its time: a run a second early leaves it alone.
        assert deliver_pending(sessions, settings, next_at - timedelta(seconds=1)).attempted == 0
        at = next_at
    minutes = [int(w.total_seconds() // 60) for w in waits]
    assert minutes == [1, 4, 16, 64, 256, 360, 360, 360, 360]
    assert [retry_delay(n) for n in (1, 2, 6, 50)] == [
        timedelta(minutes=1),
        timedelta(minutes=4),
        timedelta(hours=6),
        timedelta(hours=6),
    ]
    # Parked after the last attempt, even though the server would now take it.
    server.handler.refuse_data.clear()
    assert deliver_pending(sessions, settings, at + timedelta(days=1)).attempted == 0
    assert unsent(sessions) == [row]


def test_a_customer_without_an_address_is_parked_not_mailed_to_nobody(
    server: Server, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as s:
        merchant = add_merchant(s)
        nobody = add_customer(s, merchant, "cus-nobody", "en", email=None)
        somebody = add_customer(s, merchant, "cus-somebody", "en")
        silent = add_note(s, nobody, "reactivated", "en")
        told = add_note(s, nobody, "data_deletion_notice", "en", email="last@x.test")
        heard = add_note(s, somebody, "reactivated", "en")
    report = deliver_pending(sessions, settings_for(server.port), NOW)
    assert report.sent == [told, heard]
    [failure] = report.failed
    assert (failure.notification_id, failure.permanent, failure.parked) == (silent, True, True)
    assert failure.error == "customer cus-nobody has no email address on file"
    assert [rcpt for rcpt, _ in server.messages] == [["last@x.test"], ["cus-somebody@example.test"]]


def alert(session: Session, merchant: MerchantRow, target: str = "subscription:42") -> int:
    row = notify_finance(
        session,
        merchant,
        "job_failed",
        at=NOW,
        job="subscription_boundary",
        target=target,
        error="Conflict: customer cus-7 is closed: it takes no new purchases",
        failed_at=NOW.isoformat(),
        next_attempt_at=(NOW + timedelta(minutes=1)).isoformat(),
    )
    session.flush()
    return row.id


def test_a_finance_alert_goes_to_the_merchants_finance_address(
    server: Server, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as s:
        kalenner = add_merchant(s, "Kalenner", language="fr")
        kalenner.finance_email = "compta@kalenner.test"
        conek = add_merchant(s, "Conek", language="en")  # no finance address on file
        told = alert(s, kalenner)
        silent = alert(s, conek)
    settings = settings_for(server.port)
    report = deliver_pending(sessions, settings, NOW)
    assert report.sent == [told]
    [failure] = report.failed
    assert (failure.notification_id, failure.permanent, failure.parked) == (silent, True, True)
    assert failure.error == "merchant Conek has no finance email address on file"
    [(rcpt, message)] = server.messages
    assert rcpt == ["compta@kalenner.test"] and message["To"] == "compta@kalenner.test"
    # From the platform, in the merchant's language, naming no customer account.
    assert message["From"] == "fairbill <billing@fairbill.test>"
    assert message["Content-Language"] == "fr"
    assert plain(str(message["Subject"])) == (
        "Échec d'une tâche planifiée : subscription_boundary pour subscription:42"
    )
    text = plain(parts(message)["text/plain"])
    assert "a échoué pour subscription:42 le 11 mars 2026, 14:30 (Europe/Paris)" in text
    assert "prochain essai le 11 mars 2026, 14:31 (Europe/Paris)" in text
    assert "contact financier de Kalenner" in text

    # Once the merchant has an address, the parked alert is put back and goes out.
    with sessions.begin() as s:
        s.get_one(MerchantRow, conek.id).finance_email = "finance@conek.test"
        assert requeue(s, [silent]) == 1
    assert deliver_pending(sessions, settings, LATER).sent == [silent]
    assert server.messages[-1][0] == ["finance@conek.test"]
    assert server.messages[-1][1]["Subject"] == (
        "Scheduled job failed: subscription_boundary for subscription:42"
    )


def test_a_row_naming_nobody_is_parked(server: Server, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        nobody = NotificationRow(at=NOW, template="job_failed", language="en", payload={})
        s.add(nobody)
        s.flush()
        row = nobody.id
    report = deliver_pending(sessions, settings_for(server.port), NOW)
    assert [(f.notification_id, f.parked) for f in report.failed] == [(row, True)]
    assert report.failed[0].error == f"notification {row} names neither a customer nor a merchant"
    assert server.messages == []


def test_notify_finance_refuses_an_unknown_template(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, pytest.raises(ValueError, match="unknown notification template"):
        notify_finance(s, add_merchant(s), "no_such_alert", at=NOW)


def test_unrenderable_rows_and_bad_addresses_do_not_block_the_rest(
    server: Server, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as s:
        customer = add_customer(s, add_merchant(s), "cus-a", "en")
        broken = add_note(s, customer, "no_such_template", "en")
        missing = add_note(s, customer, "receipt", "en", invoice="1")  # no amount
        bad_to = add_note(s, customer, "suspended", "en", email="not an address")
        odd = add_note(s, customer, "refund_decided", "en", request="1", outcome="x", clauses=5)
        good = add_note(s, customer, "receipt", "en", invoice="2", amount="5.00")
    report = deliver_pending(sessions, settings_for(server.port), NOW)
    assert report.sent == [good]
    failed = {f.notification_id: f for f in report.failed}
    assert set(failed) == {broken, missing, bad_to, odd}
    assert all(f.permanent for f in failed.values())
    assert "unknown notification template" in failed[broken].error
    assert "amount" in failed[missing].error
    assert "not a usable email address" in failed[bad_to].error
    assert failed[odd].error.startswith("TypeError")
    assert unsent(sessions) == [broken, missing, bad_to, odd]
    assert len(server.messages) == 1 and server.messages[0][1]["Subject"] == (
        "Your receipt for invoice 2: €5.00"
    )


def test_batch_limits_one_run(server: Server, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        customer = add_customer(s, add_merchant(s), "cus-a", "en")
        ids = [add_note(s, customer, "reactivated", "en") for _ in range(5)]
    settings = settings_for(server.port)
    runs = [deliver_pending(sessions, settings, NOW, batch=2).sent for _ in range(4)]
    assert runs == [ids[0:2], ids[2:4], ids[4:5], []]
    assert len(server.messages) == 5


def test_crash_window_resends_with_the_same_message_id(
    server: Server, sessions: sessionmaker[Session]
) -> None:
    """The documented window: the server accepted the message, then recording sent_at
    failed. The row stays unsent, is sent again, and the copy has the same Message-ID."""
    with sessions.begin() as s:
        customer = add_customer(s, add_merchant(s), "cus-a", "en")
        row = add_note(s, customer, "reactivated", "en", email="a@x.test")

    failing: list[Session] = []

    def factory() -> Session:
        session = sessions()

        def refuse(sess: Session) -> None:
            if any(isinstance(o, NotificationRow) and o.sent_at for o in sess.dirty):
                raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

        event.listen(session, "before_commit", refuse)
        failing.append(session)
        return session

    report = deliver_pending(factory, settings_for(server.port), NOW)
    assert report.sent == [] and report.stopped is not None
    assert report.stopped.startswith("database error")
    assert unsent(sessions) == [row]
    assert len(server.messages) == 1

    again = deliver_pending(sessions, settings_for(server.port), LATER)
    assert again.sent == [row]
    assert len(server.messages) == 2
    first, second = (m for _, m in server.messages)
    assert (
        first["Message-ID"]
        == second["Message-ID"]
        == f"<fairbill.notification.{row}@fairbill.test>"
    )


def test_background_loop_delivers_until_stopped(server: Server, tmp_path: Path) -> None:
    # A database file, not the shared in-memory connection: the loop's thread and this one
    # each need a connection of their own, or one's rollback ends the other's transaction.
    engine = make_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    create_schema(engine)
    sessions = session_factory(engine)
    ids = seed(sessions)
    stop = threading.Event()
    loop = threading.Thread(
        target=deliver_forever,
        args=(sessions, settings_for(server.port), lambda: NOW, stop, 0.02, 2),
    )
    loop.start()
    try:
        for _ in range(250):
            if not unsent(sessions):
                break
            stop.wait(0.02)
    finally:
        stop.set()
        loop.join(timeout=10)
    assert not loop.is_alive()
    assert unsent(sessions) == []
    assert len(server.messages) == len(ids) == 3
    engine.dispose()


def test_send_one_message(server: Server) -> None:
    message = Message(subject="Objet é", text="Texte\n", html="<p>Texte</p>", language="fr")
    settings = settings_for(server.port)
    message_id = send(
        settings, "dest@example.org", message, message_id=message_id_for(42, settings)
    )
    assert message_id == "<fairbill.notification.42@fairbill.test>"
    [(rcpt, got)] = server.messages
    assert rcpt == ["dest@example.org"]
    assert got["Subject"] == "Objet é" and got["Message-ID"] == message_id
    assert parts(got) == {"text/plain": "Texte\n", "text/html": "<p>Texte</p>\n"}


def test_settings_from_environment() -> None:
    assert SmtpSettings.from_env({}) is None
    settings = SmtpSettings.from_env(
        {
            "FAIRBILL_SMTP_HOST": "smtp.example.org",
            "FAIRBILL_SMTP_PORT": "587",
            "FAIRBILL_SMTP_SENDER": "billing@example.org",
            "FAIRBILL_SMTP_STARTTLS": "true",
            "FAIRBILL_SMTP_USERNAME": "u",
            "FAIRBILL_SMTP_PASSWORD": "secret",
        }
    )
    assert settings == SmtpSettings(
        "smtp.example.org", 587, "billing@example.org", True, "u", "secret", 10.0
    )
    assert "secret" not in repr(settings)
    assert message_id_for(7, settings) == "<fairbill.notification.7@example.org>"


def test_concurrent_workers_on_postgresql_send_each_row_once(
    server: Server, postgres_url: str
) -> None:
    """Two workers drain the same outbox at once: FOR UPDATE SKIP LOCKED keeps them apart."""
    engine = make_engine(postgres_url)
    try:
        create_schema(engine)
        sessions = session_factory(engine)
        with sessions.begin() as s:
            customer = add_customer(s, add_merchant(s), "cus-a", "fr")
            ids = [
                add_note(s, customer, "receipt", "fr", invoice=str(n), amount="1.00")
                for n in range(1, 21)
            ]
        server.handler.delay = 0.01  # keep each send in flight long enough to overlap
        settings = settings_for(server.port)
        reports: list[Any] = []
        start = threading.Barrier(2)

        def work() -> None:
            start.wait()
            reports.append(deliver_pending(sessions, settings, NOW))

        workers = [threading.Thread(target=work) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=30)
        sent = [i for r in reports for i in r.sent]
        assert sorted(sent) == ids  # every row once, none twice
        assert len(server.messages) == 20
        assert len({str(m["Message-ID"]) for _, m in server.messages}) == 20
        assert unsent(sessions) == []
    finally:
        engine.dispose()
