"""Due work run item by item: a failing item never stops the others.

``JobRunner.run(job, target, work)`` runs ``work`` inside a SAVEPOINT of the caller's
transaction (``Session.begin_nested``). When it raises, that item's writes alone are
rolled back; the failure is logged and recorded in ``job_failures`` (``JobFailureRow``),
and the caller goes on with the next item. The scheduler runs each due subscription,
retry, usage check, credit pack expiry and data deletion this way, and the background
loop each merchant; anything else that works through a list of due items (a reconciler)
can do the same.

Invariants:

* One ``JobFailureRow`` per (merchant, job, target), the table's unique key. It is *open*
  while ``resolved_at`` is NULL; a failure after it was resolved reopens the same row.
* An item with an open failure is not run before that row's ``next_attempt_at``: after
  the ``attempts``-th failure in a row, ``retry_delay(attempts)`` later (1 minute, ×4
  each time, at most 6 hours).
* An item that then runs cleanly resolves its open failure (``resolved_at`` set); so
  does one that is no longer due at all (``resolve_absent``: nothing is left to retry).
* The merchant's finance address is alerted (``job_failed``) when a failure opens, never
  on a retry: once per failing item, however long it keeps failing.
* Failures and alerts are written in the caller's transaction, so they commit with the
  work that did run; ``run`` never commits, and ``work`` must not either (a commit inside
  would end the savepoint under it). What a failed item noted in ``session.info`` (the
  gateway operations it requested) is dropped with its writes. If the savepoint itself
  cannot be rolled back (the connection is gone), that error propagates: the
  transaction is lost anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from copy import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import cast

from sqlalchemy import String, select
from sqlalchemy.orm import Session

from fairbill.services.alerts import notify_finance
from fairbill.store.tables import JobFailureRow, MerchantRow, table

log = logging.getLogger("fairbill.jobs")

FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=6)
ERROR_LENGTH = cast(String, table(JobFailureRow).c.error.type).length or 500
JOB_LENGTH = cast(String, table(JobFailureRow).c.job.type).length or 32
TARGET_LENGTH = cast(String, table(JobFailureRow).c.target.type).length or 64


class Job(StrEnum):
    """The scheduler's kinds of due work, as stored in ``job_failures.job``."""

    RETRY_BULK = "payment_retries_bulk"  # billing_cycle.retry_due, the whole merchant
    PAYMENT_RETRY = "payment_retry"
    USAGE_CHECK = "usage_check"
    RENEWAL_BULK = "renewals_bulk"  # billing_cycle.renew_due, the whole merchant
    SUBSCRIPTION_BOUNDARY = "subscription_boundary"  # trial end, cancellation, renewal
    CREDIT_EXPIRY = "credit_expiry"
    DATA_DELETION = "data_deletion"
    MERCHANT_RUN = "merchant_run"  # the background loop's run of one merchant


class FailureStatus(StrEnum):
    """A failure row as shown: ``open`` (retried with backoff) until the item runs."""

    OPEN = "open"
    RESOLVED = "resolved"


def status_of(failure: JobFailureRow) -> FailureStatus:
    return FailureStatus.OPEN if failure.resolved_at is None else FailureStatus.RESOLVED


class Outcome(StrEnum):
    RAN = "ran"
    WAITING = "waiting"  # failed before; its next attempt is later
    FAILED = "failed"


@dataclass
class RunReport:
    """What one run did: items that ran cleanly, waited, or failed (job, target)."""

    ran: int = 0
    waiting: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def retry_delay(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failure in a row: 1 minute, ×4 each time, ≤ 6 h."""
    steps = min(max(attempts - 1, 0), 10)  # 4**10 minutes is far past the cap already
    return min(FIRST_RETRY * (1 << 2 * steps), LONGEST_RETRY)


def open_failures(session: Session, merchant_id: int) -> list[JobFailureRow]:
    return list(
        session.scalars(
            select(JobFailureRow).where(
                JobFailureRow.merchant_id == merchant_id, JobFailureRow.resolved_at.is_(None)
            )
        )
    )


def waiting(session: Session, merchant_id: int, now: datetime) -> list[JobFailureRow]:
    """Open failures of the merchant whose next attempt is after ``now``."""
    return [
        row
        for row in open_failures(session, merchant_id)
        if row.next_attempt_at is not None and row.next_attempt_at > now
    ]


@dataclass
class JobRunner:
    """Runs one merchant's due items in isolation; see the module docstring.

    ``open`` holds the merchant's open failures by (job, target), read once by ``load``
    so that a run over thousands of items costs no query per item for them.
    """

    session: Session
    merchant: MerchantRow
    now: datetime
    open: dict[tuple[str, str], JobFailureRow] = field(default_factory=dict)
    report: RunReport = field(default_factory=RunReport)
    seen: set[tuple[str, str]] = field(default_factory=set)  # asked to run in this run

    @classmethod
    def load(cls, session: Session, merchant: MerchantRow, now: datetime) -> JobRunner:
        found = open_failures(session, merchant.id)
        return cls(session, merchant, now, {(row.job, row.target): row for row in found})

    def run(self, job: str, target: str, work: Callable[[], object]) -> Outcome:
        """Run ``work`` for ``target`` unless its last failure says to wait; on an
        exception roll back its writes and record the failure instead of raising."""
        if len(job) > JOB_LENGTH or len(target) > TARGET_LENGTH:
            raise ValueError(f"job {job!r} / target {target!r} do not fit job_failures")
        key = (job, target)
        self.seen.add(key)
        failure = self.open.get(key)
        if failure is not None and _later(failure.next_attempt_at, self.now):
            self.report.waiting.append(key)
            return Outcome.WAITING
        info = {name: copy(value) for name, value in self.session.info.items()}
        try:
            with self.session.begin_nested():
                work()
        except Exception as exc:  # the point: one item's bug must not stop the rest
            # The savepoint rolled the item back, but rows the item read (or wrote with
            # Core statements) may still hold its values: read everything afresh. What it
            # noted in ``session.info`` for after the commit (gateway operations it
            # requested) goes with it.
            self.session.expire_all()
            self.session.info.clear()
            self.session.info.update(info)
            self._failed(job, target, exc)
            return Outcome.FAILED
        if failure is not None:
            self._resolved(key, failure)
        self.report.ran += 1
        return Outcome.RAN

    def resolve_absent(self, jobs: Collection[str]) -> None:
        """Resolve the open failures of ``jobs`` whose item this run did not meet: it is
        no longer due (paid, canceled, deleted meanwhile), so nothing is left to retry.
        Call it after a run that offered every due item of those jobs."""
        for key, failure in list(self.open.items()):
            if key[0] in jobs and key not in self.seen:
                self._resolved(key, failure)

    def _resolved(self, key: tuple[str, str], failure: JobFailureRow) -> None:
        failure.resolved_at, failure.next_attempt_at = self.now, None
        del self.open[key]
        log.info("job %s for %s ran again after %d failures", *key, failure.attempts)

    def _failed(self, job: str, target: str, exc: Exception) -> None:
        # PostgreSQL text holds no NUL: a message quoting one must not fail the record.
        error = f"{type(exc).__name__}: {exc}".replace("\x00", "\\x00")[:ERROR_LENGTH]
        failure = self.open.get((job, target))
        opened = failure is None
        if failure is None:
            failure = self._open(job, target)
        else:
            failure.attempts += 1
        failure.error, failure.last_failed_at = error, self.now
        failure.next_attempt_at = self.now + retry_delay(failure.attempts)
        self.open[(job, target)] = failure
        self.report.failed.append((job, target))
        log.error(
            "job %s failed for %s (merchant %s, attempt %d, next at %s): %s",
            job,
            target,
            self.merchant.id,
            failure.attempts,
            failure.next_attempt_at.isoformat(),
            error,
            exc_info=exc,
        )
        if opened:
            self._alert(failure)

    def _open(self, job: str, target: str) -> JobFailureRow:
        """A new failure row, or the resolved one of an earlier episode reopened."""
        row = self.session.scalar(
            select(JobFailureRow).where(
                JobFailureRow.merchant_id == self.merchant.id,
                JobFailureRow.job == job,
                JobFailureRow.target == target,
            )
        )
        if row is None:
            row = JobFailureRow(merchant_id=self.merchant.id, job=job, target=target)
            self.session.add(row)
        row.attempts, row.first_failed_at, row.resolved_at = 1, self.now, None
        return row

    def _alert(self, failure: JobFailureRow) -> None:
        assert failure.next_attempt_at is not None
        notify_finance(
            self.session,
            self.merchant,
            "job_failed",
            at=self.now,
            job=failure.job,
            target=failure.target,
            error=failure.error,
            failed_at=self.now.isoformat(),
            next_attempt_at=failure.next_attempt_at.isoformat(),
        )


def _later(instant: datetime | None, now: datetime) -> bool:
    return instant is not None and instant > now
