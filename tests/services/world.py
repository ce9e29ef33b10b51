"""A small billing world driven through the real services, for invariant tests.

``World`` builds a merchant (one of the bundled policies), a catalog and one customer on an
in-memory SQLite database with a ``TestClock`` and a ``SandboxGateway`` -- the way
``fairbill.simulator.run.simulate`` does -- and then applies scenario actions one at a
time through the simulator's own handlers. Every action that went through is recorded as
a scenario event, so the whole history can be written back out as a scenario file
(``scenario_text``) and replayed on a fresh database with ``simulate``.

Time runs as on a started server: at every instant something is due, the janitor
(``operations.reconcile``) asks the gateway again about the operations it did not answer
or a dead process left, then the scheduler runs. ``act_then_crash`` and ``restart`` stand
for a process that dies after its commit, and the one that starts after it.

``check_invariants`` states what must hold after every step, whatever happened.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fairbill.errors import Conflict, FairbillError, NotFound
from fairbill.gateway.sandbox import SandboxGateway
from fairbill.ledger.accounts import Account
from fairbill.services import merchants, operations, policies, scheduler
from fairbill.services.clock import TestClock
from fairbill.services.context import Ctx
from fairbill.simulator import run
from fairbill.simulator.result import build_result, ledger_balanced
from fairbill.simulator.scenario import ACTIONS, Scenario, parse_scenario
from fairbill.store.db import create_schema, make_engine, session_factory
from fairbill.store.tables import (
    CreditNoteRow,
    CreditPackRow,
    CustomerRow,
    GatewayOperationRow,
    InvoiceRow,
    JournalEntryRow,
    JournalTransactionRow,
    MerchantRow,
    PaymentRow,
    RefundRow,
    RequestRow,
    SubscriptionRow,
    WalletEntryRow,
)

POLICY_IDS = ("conek", "emailconsul", "kalenner", "qomon", "voip")
ENDED = ("canceled", "expired", "terminated")
METHODS = ("card_1", "card_2")
PLANS = ("basic-monthly", "pro-monthly", "pro-annual", "tiered")
START = "2026-03-02T09:00"

CATALOG = """\
catalog:
  plans:
    - {id: basic-monthly, interval: month, price: "29.00"}
    - {id: pro-monthly, interval: month, price: "49.00", includes: {sms_credits: 100}}
    - {id: pro-annual, interval: year, price: "490.00"}
    - id: tiered
      interval: month
      tiers:
        metric: contacts
        levels:
          - {up_to: 5000, price: "100.00"}
          - {up_to: 10000, price: "160.00"}
          - {up_to: null, price: "250.00"}
  products:
    - {id: sms-1000, kind: message_credits, quantity: 1000, credit_kind: sms, price: "50.00"}
    - {id: setup, kind: setup_fee, price: "15.00"}
  promotions:
    - {id: WELCOME20, percent_off: 20, duration_periods: 1}
"""


def base_text(
    policy: str,
    *,
    customer_type: str = "consumer",
    acquisition: str = "self_serve",
    name: str = "invariants",
    start: str = START,
) -> str:
    return (
        "format: fairbill.scenario/1\n"
        f"name: {name}\n"
        f"merchant: {{policy: {policy}}}\n"
        f"{CATALOG}"
        "customer:\n"
        "  id: cus_1\n"
        f"  type: {customer_type}\n"
        f"  acquisition: {acquisition}\n"
        "  payment_methods: [{id: card_1, type: card}, {id: card_2, type: card}]\n"
        f"start: {start}\n"
    )


@lru_cache(maxsize=32)
def base_scenario(header: str) -> Scenario:
    """The parsed header (no events); parsing is the slow part of making a world."""
    return parse_scenario(header + "events: []\n", "<world>")


class _Caught(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# The services log, and go on after, an exception in one scheduled item (``jobs``) or in
# recording one gateway answer (``operations``, ``outcomes``): right for a server, a bug
# here, where nothing fails on purpose but the gateway (whose failures are values).
WATCHED_LOGGERS = ("fairbill.jobs", "fairbill.operations")


class LoggedError(AssertionError):
    """An error a service logged and went on after; its cause is the exception logged.
    Never a ``Conflict``: a refused action is rolled back, this is a bug."""


@contextmanager
def raising_logged_errors() -> Iterator[None]:
    """Raise ``LoggedError`` for the first error logged meanwhile by ``WATCHED_LOGGERS``
    (caused by the exception logged with it, and its traceback)."""
    handler = _Caught()
    loggers = [logging.getLogger(name) for name in WATCHED_LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    for record in handler.records:
        cause = record.exc_info[1] if record.exc_info else None
        raise LoggedError(f"{record.name}: {record.getMessage()}") from cause


def stamp(instant: datetime) -> str:
    """An instant as scenario text, with its offset (no microseconds: the clock never has)."""
    return instant.isoformat()


class World:
    """One customer of one merchant, on a fresh in-memory database."""

    def __init__(self, header: str | Scenario, gateway: SandboxGateway | None = None) -> None:
        """``header`` is scenario text without ``events`` (see ``base_text``), or a parsed
        scenario whose merchant, catalog and customer to use (its events are not applied:
        see ``play``)."""
        if isinstance(header, Scenario):
            self.header = ""
            self.scenario = header
        else:
            self.header = header
            self.scenario = base_scenario(header)
        self.engine = make_engine("sqlite://")
        create_schema(self.engine)
        self.sessions = session_factory(self.engine)
        self.session = self.sessions()
        self.clock = TestClock(self.scenario.start)
        self.gateway = gateway if gateway is not None else SandboxGateway()
        merchant = run._merchant(self.session, self.scenario)
        version_id = policies.store_published(
            self.session, merchant, self.scenario.policy, at=self.scenario.start, by="world"
        )
        self.ctx = Ctx(
            self.session, self.clock, self.gateway, merchant, self.scenario.policy, version_id
        )
        self.customer = run._customer(self.ctx, self.scenario)
        self.session.commit()
        self.events: list[dict[str, Any]] = []
        self.refused: list[tuple[str, dict[str, Any], str]] = []
        # Operations a crash left pending since the last restart (no one is sending them).
        self.crashed: set[int] = set()

    def close(self) -> None:
        self.session.close()
        self.engine.dispose()

    # -- driving -------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        return self.ctx.now

    def advance(self, delta: timedelta) -> None:
        """Let ``delta`` of real time pass, running every job at its own instant (as
        ``simulate`` does), the janitor first at each, and once more at the end. Added in
        UTC: on a zoned datetime ``+`` moves the wall clock, which across a DST change is
        an hour off or a local time that does not exist (02:30 on a spring-forward day)."""
        target = (self.clock.now().astimezone(UTC) + delta).astimezone(self.ctx.merchant.tz)
        self.run_until(target)
        self.clock.advance_to(target)
        self.janitor()

    def settle(self) -> None:
        """Run what the last action made due at this very instant (``simulate`` does so
        before it reads the result at ``until``)."""
        self.run_until(self.clock.now())

    def run_until(self, target: datetime) -> None:
        """``simulate``'s loop (``run._run_until``) with the janitor before each run of the
        scheduler, as ``POST /v1/test_clock/advance`` does: an operation waiting to be
        asked again is due for the scheduler (``next_due``) but only the janitor asks. A
        job that fails is raised, not recorded (``raising_logged_errors``)."""
        for _ in range(run.MAX_STEPS):
            due = scheduler.next_due(self.ctx)
            if due is None or due > target:
                return
            self.clock.advance_to(max(due, self.clock.now()))
            self.janitor()
            with raising_logged_errors():
                scheduler.run_due(self.ctx)
                operations.commit_and_settle(self.ctx)
            if scheduler.next_due(self.ctx) == due:
                raise FairbillError(f"the scheduler made no progress at {due.isoformat()}")
        raise FairbillError("the scheduler did not settle")

    def janitor(self, grace: timedelta = operations.GRACE) -> dict[str, int]:
        """``operations.reconcile`` now (an operation that fails to settle is raised)."""
        with raising_logged_errors():
            return operations.reconcile(self.session, self._ctx_of, self.clock.now(), grace)

    def _ctx_of(self, session: Session, merchant_id: int) -> Ctx:
        assert session is self.session and merchant_id == self.ctx.merchant_row.id
        return self.ctx

    def act(self, action: str, params: dict[str, Any]) -> bool:
        """Apply one scenario action now; True when it went through (and was recorded).

        As in ``simulate``: everything due up to now runs first, the action commits whole
        or not at all. ``NotFound``/``Conflict`` (an impossible reference or state) roll the
        action back and are not recorded; any other exception is a bug and propagates."""
        return self._apply(action, params, operations.commit_and_settle)

    def act_then_crash(self, action: str, params: dict[str, Any]) -> bool:
        """``act``, but the process dies right after its commit, before it sends what the
        action requested: those operations stay ``pending``, for the janitor (after its
        grace, or at the next ``restart``); the list of them in the session is lost."""
        return self._apply(action, params, self._commit_and_die)

    def _commit_and_die(self, ctx: Ctx) -> None:
        self.crashed.update(ctx.session.info.pop(operations.PENDING, []))
        ctx.session.commit()

    def _apply(self, action: str, params: dict[str, Any], finish: Callable[[Ctx], None]) -> bool:
        self.run_until(self.clock.now())
        model = ACTIONS[action].model_validate(
            params, context={"tz": self.scenario.timezone, "currency": self.scenario.currency}
        )
        try:
            with raising_logged_errors():
                run._HANDLERS[action](self.ctx, self.customer, model)
                finish(self.ctx)
        except (NotFound, Conflict) as exc:
            self.session.rollback()
            self.refused.append((action, params, str(exc)))
            return False
        self.events.append({"at": stamp(self.now), action: params})
        return True

    def restart(self) -> dict[str, int]:
        """The process dies and another starts on the same database (and gateway, and
        clock): a new session, the merchant and customer read again, and the janitor run
        with no grace, as ``fairbill serve`` does at start-up. Returns what it settled."""
        merchant_id, customer_id = self.ctx.merchant_row.id, self.customer.id
        self.session.close()  # what it did not commit is gone, and its list of requests
        self.session = self.sessions()
        merchant = self.session.get_one(MerchantRow, merchant_id)
        self.ctx = merchants.context(self.session, self.clock, self.gateway, merchant)
        self.customer = self.session.get_one(CustomerRow, customer_id)
        counts = self.janitor(grace=timedelta(0))
        self.crashed.clear()
        return counts

    def play(self, scenario: Scenario) -> None:
        """Apply a parsed scenario's events and run to its ``until``, as ``simulate`` does."""
        for event in scenario.events:
            run._run_until(self.ctx, self.clock, event.at)
            self.clock.advance_to(event.at)
            run._HANDLERS[event.action](self.ctx, self.customer, event.params)
            operations.commit_and_settle(self.ctx)
        run._run_until(self.ctx, self.clock, scenario.until)
        self.clock.advance_to(max(scenario.until, self.clock.now()))

    # -- reading state ---------------------------------------------------------------------
    def result(self) -> dict[str, Any]:
        return build_result(self.ctx, self.customer, self.scenario)

    def scenario_text(self) -> str:
        """The recorded history as a scenario file that ends at the world's ``now``
        (``settle`` first to compare with what ``simulate`` makes of it)."""
        return (
            self.header
            + f"until: {stamp(self.now)}\n"
            + yaml.safe_dump({"events": self.events}, sort_keys=False, allow_unicode=True)
        )

    def count(self, model: type[PaymentRow] | type[InvoiceRow] | type[RequestRow]) -> int:
        return int(
            self.session.scalar(
                select(func.count()).select_from(model).where(model.customer_id == self.customer.id)
            )
            or 0
        )

    def count_payments(self) -> int:
        return self.count(PaymentRow)

    def count_invoices(self) -> int:
        return self.count(InvoiceRow)

    def payments(self) -> list[PaymentRow]:
        return list(
            self.session.scalars(
                select(PaymentRow)
                .where(PaymentRow.customer_id == self.customer.id)
                .order_by(PaymentRow.number)
            ).all()
        )

    def requests(self, status: str | None = None) -> list[RequestRow]:
        query = select(RequestRow).where(RequestRow.customer_id == self.customer.id)
        if status is not None:
            query = query.where(RequestRow.status == status)
        return list(self.session.scalars(query.order_by(RequestRow.number)).all())

    def live_subscriptions(self) -> list[SubscriptionRow]:
        return list(
            self.session.scalars(
                select(SubscriptionRow).where(
                    SubscriptionRow.customer_id == self.customer.id,
                    SubscriptionRow.status.in_(("trialing", "active", "past_due", "suspended")),
                )
            ).all()
        )

    def balances(self) -> dict[str, int]:
        """The customer's journal balance per account, in minor units (debit > 0)."""
        rows = self.session.execute(
            select(JournalEntryRow.account, func.sum(JournalEntryRow.amount_minor))
            .where(JournalEntryRow.customer_id == self.customer.id)
            .group_by(JournalEntryRow.account)
        ).all()
        return {account: int(total) for account, total in rows if total}

    def expected_balances(self) -> dict[str, int]:
        """What the journal must say, computed from the billing tables alone."""
        s = self.session
        cid = self.customer.id
        invoices = s.scalars(select(InvoiceRow).where(InvoiceRow.customer_id == cid)).all()
        payments = self.payments()
        refunds = s.scalars(select(RefundRow).where(RefundRow.customer_id == cid)).all()
        notes = s.scalars(select(CreditNoteRow).where(CreditNoteRow.customer_id == cid)).all()
        duplicate = {p.id for p in payments if p.is_duplicate}
        refunded_rows: dict[int, int] = defaultdict(int)
        for r in refunds:
            if r.payment_id is not None and r.status != "failed":  # reserved on the payment
                refunded_rows[r.payment_id] += r.amount_minor
        lost = sum(p.refunded_minor - refunded_rows[p.id] for p in payments)
        # Only a paid refund is in the journal: one the gateway has not paid yet, or never
        # did, is not (its amount stays reserved on the payment until it fails).
        refunds = [r for r in refunds if r.status == "succeeded"]
        to_card = sum(r.amount_minor for r in refunds if r.destination == "original_method")
        of_duplicates = sum(r.amount_minor for r in refunds if r.payment_id in duplicate)
        due = sum(
            i.total_minor - i.amount_paid_minor - i.wallet_applied_minor - i.credit_applied_minor
            for i in invoices
        )
        unapplied_notes = sum(n.amount_minor for n in notes if n.applied_to_invoice_id is None)
        expected = {
            str(Account.REVENUE): -sum(i.total_minor for i in invoices),
            str(Account.CASH): sum(p.amount_minor for p in payments) - to_card - lost,
            str(Account.WALLET): -self.customer.wallet_minor,
            str(Account.CREDIT_NOTES): sum(n.amount_minor for n in notes),
            str(Account.CHARGEBACKS): lost,
            # Money given back for service (refunds and outage compensation together).
            "refunds+compensation": sum(r.amount_minor for r in refunds) - of_duplicates,
            # What the customer owes on invoices, less credit notes waiting for an invoice,
            # less duplicate charges not yet given back.
            str(Account.RECEIVABLE): due
            - unapplied_notes
            - sum(p.amount_minor for p in payments if p.is_duplicate)
            + of_duplicates,
        }
        return {k: v for k, v in expected.items() if v}

    def check_reconciliation(self) -> None:
        """The journal and the billing tables tell the same story, account by account."""
        actual = self.balances()
        known = {str(a) for a in Account}
        assert set(actual) <= known, set(actual) - known
        given_back = actual.pop(str(Account.REFUNDS), 0) + actual.pop(str(Account.COMPENSATION), 0)
        if given_back:
            actual["refunds+compensation"] = given_back
        assert actual == self.expected_balances()

    # -- invariants ------------------------------------------------------------------------
    def check_invariants(self) -> None:
        s = self.session
        cid = self.customer.id
        assert ledger_balanced(self.ctx), "a stored journal transaction does not sum to zero"

        # Journal transactions each have at least two legs.
        legs = s.execute(
            select(JournalEntryRow.transaction_id, func.count()).group_by(
                JournalEntryRow.transaction_id
            )
        ).all()
        assert all(n >= 2 for _, n in legs), legs
        txn_count = s.scalar(select(func.count()).select_from(JournalTransactionRow))
        assert len(legs) == txn_count

        # Refunds never exceed the payment; refunded_minor is the sum of its refunds (paid,
        # or reserved while the gateway has not paid them) plus what a lost chargeback took
        # back (posted to the chargebacks account, no refund row).
        refunds: dict[int, int] = defaultdict(int)
        # A failed refund's reservation was released: it counts no more.
        for payment_id, amount in s.execute(
            select(RefundRow.payment_id, RefundRow.amount_minor).where(
                RefundRow.customer_id == cid,
                RefundRow.payment_id.is_not(None),
                RefundRow.status != "failed",
            )
        ).all():
            assert amount > 0, (payment_id, amount)
            refunds[payment_id] += amount
        lost: dict[str, int] = defaultdict(int)
        for key, amount in s.execute(
            select(JournalTransactionRow.key, JournalEntryRow.amount_minor)
            .join(JournalEntryRow, JournalEntryRow.transaction_id == JournalTransactionRow.id)
            .where(
                JournalTransactionRow.key.like(f"chargeback:{cid}:%"),
                JournalEntryRow.account == str(Account.CHARGEBACKS),
            )
        ).all():
            lost[key] += amount
        for p in self.payments():
            taken = lost.get(f"chargeback:{cid}:{p.number}", 0)
            assert 0 <= p.refunded_minor <= p.amount_minor, (p.number, p.refunded_minor)
            assert p.refunded_minor == refunds.get(p.id, 0) + taken, (
                f"payment {p.number}: refunded {p.refunded_minor}, refund rows "
                f"{refunds.get(p.id, 0)}, chargeback {taken}"
            )

        # The wallet: never negative, and exactly the sum of its entries.
        wallet_entries = s.scalar(
            select(func.coalesce(func.sum(WalletEntryRow.amount_minor), 0)).where(
                WalletEntryRow.customer_id == cid
            )
        )
        assert self.customer.wallet_minor >= 0, self.customer.wallet_minor
        assert self.customer.wallet_minor == int(wallet_entries or 0)

        # The wallet liability in the journal matches the customer's balance.
        liability = s.scalar(
            select(func.coalesce(func.sum(JournalEntryRow.amount_minor), 0)).where(
                JournalEntryRow.customer_id == cid,
                JournalEntryRow.account == str(Account.WALLET),
            )
        )
        assert -int(liability or 0) == self.customer.wallet_minor

        # No invoice for a subscription after it ended; invoices never over-settled.
        for inv in s.scalars(select(InvoiceRow).where(InvoiceRow.customer_id == cid)).all():
            settled = inv.credit_applied_minor + inv.wallet_applied_minor + inv.amount_paid_minor
            assert settled <= inv.total_minor, (inv.number, settled, inv.total_minor)
            if inv.status == "paid":
                assert settled == inv.total_minor, (inv.number, settled, inv.total_minor)
            if inv.status == "open":
                assert settled < inv.total_minor, (inv.number, settled, inv.total_minor)
            if inv.subscription_id is None:
                continue
            sub = s.get_one(SubscriptionRow, inv.subscription_id)
            if sub.status in ENDED:
                assert sub.ended_at is not None
                assert inv.issued_at <= sub.ended_at, (
                    f"invoice {inv.number} issued {inv.issued_at} after subscription "
                    f"{sub.id} ended {sub.ended_at}"
                )

        self.check_reconciliation()
        self.check_operations()

        # Credit packs: remaining within [0, quantity]; a pack that is not active is empty.
        for pack in s.scalars(select(CreditPackRow).where(CreditPackRow.customer_id == cid)):
            assert 0 <= pack.remaining <= pack.quantity, (pack.id, pack.remaining)
            assert pack.forfeited + pack.remaining <= pack.quantity
            if pack.status != "active":
                assert pack.remaining == 0, (pack.id, pack.status, pack.remaining)

        # Subscriptions: well-formed periods; an ended one has ended by now and retries no more.
        for sub in s.scalars(select(SubscriptionRow).where(SubscriptionRow.customer_id == cid)):
            assert sub.current_period_start < sub.current_period_end, sub.id
            assert sub.started_at <= self.clock.now()
            if sub.status in ENDED:
                assert sub.ended_at is not None and sub.ended_at <= self.clock.now()
                assert sub.next_retry_at is None

    # -- durability: fairbill's books and the gateway's ---------------------------------------
    def gateway_operations(self) -> list[GatewayOperationRow]:
        return list(
            self.session.scalars(
                select(GatewayOperationRow)
                .where(GatewayOperationRow.customer_id == self.customer.id)
                .order_by(GatewayOperationRow.id)
            )
        )

    def open_operations(self) -> list[GatewayOperationRow]:
        return [op for op in self.gateway_operations() if op.status in operations.OPEN]

    def check_operations(self) -> None:
        """What the sandbox did (its books, by idempotency key) is what fairbill recorded,
        once, except for an operation still open (its answer is not recorded yet); and no
        open operation is forgotten."""
        ops = self.gateway_operations()
        self.check_open(ops)
        by_key = {op.key: op for op in ops}
        self.check_charges(by_key)
        self.check_refunds(by_key)

    def check_open(self, ops: list[GatewayOperationRow]) -> None:
        """A ``pending`` operation without a next attempt is being sent by the process that
        requested it: between steps, only one a crash left, and none after a restart. One
        waiting for its next attempt is not overdue: the janitor runs with every step."""
        now = self.clock.now()
        for op in ops:
            if op.status == "pending" and op.next_attempt_at is None:
                assert op.id in self.crashed, f"operation {op.key} is pending: no one sends it"
            if op.status in operations.OPEN:
                assert op.status == "pending" or op.next_attempt_at is not None, op.key
                overdue = op.next_attempt_at is not None and op.next_attempt_at <= now
                assert not overdue, f"operation {op.key} was not asked again at {now}"

    def check_charges(self, by_key: dict[str, GatewayOperationRow]) -> None:
        """Every charge the gateway took has exactly one payment (with its reference) once
        its operation is answered, and none before; every payment is a charge it took."""
        payments: Counter[str | None] = Counter(p.gateway_ref for p in self.payments())
        taken: set[str | None] = set()
        for key, result in self.gateway.charges.items():
            op = by_key.get(key)
            assert op is not None and op.kind == "charge", f"the gateway charged {key}"
            if not result.ok:
                assert op.status != "succeeded", key
                continue
            taken.add(result.reference)
            if op.status in operations.OPEN:
                assert payments[result.reference] == 0, (key, op.status)
                continue
            assert op.status == "succeeded", (key, op.status)
            assert op.reference == result.reference, (key, op.reference, result.reference)
            assert payments[result.reference] == 1, (key, result.reference)
        assert set(payments) <= taken, set(payments) - taken
        for op in by_key.values():
            if op.kind == "charge" and op.status == "succeeded":
                assert op.payment_id is not None and op.reference in taken, op.key

    def check_refunds(self, by_key: dict[str, GatewayOperationRow]) -> None:
        """Every refund the gateway paid has exactly one refund row ``succeeded`` (with its
        reference) once its operation is answered; a refund row to the card is as far as
        its operation: ``pending`` while it is open, then ``succeeded`` or ``failed``."""
        rows = self.session.scalars(
            select(RefundRow).where(RefundRow.customer_id == self.customer.id)
        ).all()
        paid_rows: Counter[str | None] = Counter(
            r.gateway_ref for r in rows if r.status == "succeeded"
        )
        paid: set[str | None] = set()
        for key, result in self.gateway.refunds.items():
            if not result.ok:
                continue  # a refused try: its operation went on under a key of its own
            op = by_key.get(key)
            assert op is not None and op.kind == "refund", f"the gateway refunded {key}"
            paid.add(result.reference)
            if op.status in operations.OPEN:
                assert paid_rows[result.reference] == 0, (key, op.status)
                continue
            assert op.status == "succeeded", (key, op.status)
            assert op.reference == result.reference, (key, op.reference, result.reference)
            assert paid_rows[result.reference] == 1, (key, result.reference)
        of_refund = {op.refund_id: op for op in by_key.values() if op.kind == "refund"}
        for r in rows:
            if r.destination == "wallet":
                assert r.status == "succeeded" and r.id not in of_refund, r.id
                continue
            op = of_refund[r.id]
            expected = "pending" if op.status in operations.OPEN else op.status
            assert r.status == expected, (r.id, r.status, op.status)
            if r.status == "succeeded":
                assert r.gateway_ref in paid, (r.id, r.gateway_ref)
