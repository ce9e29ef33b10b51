"""A merchant's policy versions: stored whole, content-addressed, drafted then published.

Invariants:
- A version's content never changes: its ``digest`` is the SHA-256 of the policy's
  canonical JSON, and uploading the same content again returns the same version.
- Decisions never read a policy file: they read a stored version (``policy_of``), so
  editing a file on disk changes nothing that is live.
- The merchant's current version is its newest published one; a subscription keeps the
  version its customer accepted (``accepted``), and a decision names the version that
  took it.
- Publishing follows the accepted terms' ``terms_change`` clause: customers with a live
  subscription are notified (``terms_changed`` email); where continued use is acceptance,
  their subscriptions move to the new version at their next renewal unless they declined
  (``moving_on_renewal``, written with the renewal).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, exists, func, select, update
from sqlalchemy.orm import Session

from fairbill.errors import Conflict, NotFound, PolicyError
from fairbill.ids import Ids, Prefix
from fairbill.lifecycle import LIVE, PolicyVersionStatus, advance
from fairbill.policy.diff import diff_policies
from fairbill.policy.floors import bundled_floors
from fairbill.policy.lint import LintContext, LintReport, lint
from fairbill.policy.load import (
    BUNDLED_IDS,
    bundled_policy_text,
    parse_policy,
    parse_policy_located,
)
from fairbill.policy.model import Policy, TermsChange
from fairbill.store.sets import one_of
from fairbill.store.tables import (
    CustomerRow,
    DecisionRow,
    MerchantRow,
    NotificationRow,
    PolicyVersionRow,
    SubscriptionRow,
)

__all__ = [
    "Published",
    "accepted",
    "add_draft",
    "canonical",
    "canonical_form",
    "current",
    "lint_text",
    "policy_of",
    "publish",
    "source_text",
    "versions",
]

_POLICIES: dict[str, Policy] = {}  # by digest: a version never changes


def canonical(policy: Policy) -> str:
    """The policy as canonical JSON: sorted keys, no spaces, exact decimals as text."""
    data = policy.model_dump(mode="json")
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def source_text(ref: str, base_dir: Path | None = None) -> tuple[str, str]:
    """The YAML of a bundled id or a file, and the name problems are reported under."""
    if ref in BUNDLED_IDS:
        return bundled_policy_text(ref), f"policies/{ref}.yaml"
    path = Path(ref) if base_dir is None or Path(ref).is_absolute() else base_dir / ref
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except OSError as exc:
        from fairbill.errors import Location

        known = ", ".join(BUNDLED_IDS)
        raise PolicyError(
            [
                (
                    Location(ref, None, "policy"),
                    f"unknown policy {ref!r}: not a bundled policy ({known}) and no policy "
                    f"file at {path} ({exc.strerror})",
                )
            ]
        ) from exc


def canonical_form(ref: str) -> tuple[str, str, str, Policy] | None:
    """(YAML, canonical JSON, digest, policy) of a reference, None when it cannot be read
    or is invalid (the upgrade of an old database leaves such a merchant without one)."""
    try:
        text, name = source_text(ref)
        policy = parse_policy(text, name)
    except PolicyError:
        return None
    form = canonical(policy)
    return text, form, digest_of(form), policy


def lint_text(text: str, name: str = "policy") -> LintReport:
    """The lint findings of a policy file's text, lines included (no published text is
    at hand here: the sentence checks report that they were skipped)."""
    policy, lines = parse_policy_located(text, name)
    return lint(policy, LintContext(lines=lines, floors=bundled_floors()))


def policy_of(session: Session, version_id: int) -> Policy:
    """The policy of a stored version (parsed once per process: versions never change)."""
    row = session.execute(
        select(PolicyVersionRow.digest, PolicyVersionRow.canonical).where(
            PolicyVersionRow.id == version_id
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no policy version {version_id} stored")
    found = _POLICIES.get(row.digest)
    if found is None:
        found = _POLICIES[row.digest] = Policy.model_validate(json.loads(row.canonical))
    return found


def current(session: Session, merchant: MerchantRow) -> tuple[int, Policy]:
    """The merchant's current version: its newest published one. One statement when its
    policy was parsed before (by digest: the version's text is read only the first time)."""
    newest = session.execute(
        _newest_published(merchant, PolicyVersionRow.id, PolicyVersionRow.digest)
    ).one_or_none()
    if newest is None:
        version_id = _adopt(session, merchant)
        return version_id, policy_of(session, version_id)
    known = _POLICIES.get(newest.digest)
    return newest.id, known if known is not None else policy_of(session, newest.id)


def _newest_published(merchant: MerchantRow, *columns: Any) -> Select[Any]:
    return (
        select(*columns)
        .where(
            PolicyVersionRow.merchant_id == merchant.id,
            PolicyVersionRow.status == PolicyVersionStatus.PUBLISHED,
        )
        .order_by(PolicyVersionRow.published_at.desc(), PolicyVersionRow.id.desc())
        .limit(1)
    )


def _current_id(session: Session, merchant: MerchantRow) -> int | None:
    found: int | None = session.scalar(_newest_published(merchant, PolicyVersionRow.id))
    return found


def _adopt(session: Session, merchant: MerchantRow) -> int:
    """A merchant from before stored versions (migration 0006): its policy file, read
    one last time, becomes its first published version, and what it decided so far is
    marked as taken under it (it was: under that file)."""
    found = canonical_form(merchant.policy_ref)
    if found is None:
        raise NotFound(
            f"merchant {merchant.name!r} has no published policy and its policy file "
            f"{merchant.policy_ref!r} cannot be read: publish one"
        )
    text, _, _, _ = found
    at = datetime.now(UTC)
    row, _ = add_draft(session, merchant, text, at=at, by="adopted", name=merchant.policy_ref)
    if row.status == PolicyVersionStatus.DRAFT:
        row.status = advance(row.status, PolicyVersionStatus.PUBLISHED)
        row.published_at = at
    customers = select(CustomerRow.id).where(CustomerRow.merchant_id == merchant.id)
    for model in (SubscriptionRow, DecisionRow):
        session.execute(
            update(model)
            .where(model.customer_id.in_(customers), model.policy_version_id.is_(None))
            .values(policy_version_id=row.id)
            .execution_options(synchronize_session=False)
        )
    session.flush()
    return row.id


def accepted(session: Session, customer_id: int) -> int | None:
    """The version the customer's newest subscription accepted (None: none yet)."""
    return session.scalar(
        select(SubscriptionRow.policy_version_id)
        .where(SubscriptionRow.customer_id == customer_id)
        .order_by(SubscriptionRow.id.desc())
        .limit(1)
    )


def accepted_many(session: Session, customer_ids: Collection[int]) -> dict[int, int | None]:
    """``accepted`` for each of ``customer_ids``, in one query."""
    if not customer_ids:
        return {}
    sub = SubscriptionRow
    newest = (
        select(func.max(sub.id))
        .where(one_of(session, sub.customer_id, customer_ids))
        .group_by(sub.customer_id)
    )
    found: dict[int, int | None] = dict.fromkeys(customer_ids)
    rows = session.execute(
        select(sub.customer_id, sub.policy_version_id).where(sub.id.in_(newest.scalar_subquery()))
    )
    found.update(rows.tuples().all())
    return found


def versions(session: Session, merchant: MerchantRow) -> list[PolicyVersionRow]:
    return list(
        session.scalars(
            select(PolicyVersionRow)
            .where(PolicyVersionRow.merchant_id == merchant.id)
            .order_by(PolicyVersionRow.id)
        )
    )


def find(session: Session, merchant: MerchantRow, version_id: int) -> PolicyVersionRow:
    row = session.get(PolicyVersionRow, version_id)
    if row is None or row.merchant_id != merchant.id:
        raise NotFound("no such policy version")
    return row


def add_draft(
    session: Session, merchant: MerchantRow, text: str, *, at: datetime, by: str, name: str
) -> tuple[PolicyVersionRow, bool]:
    """Store ``text`` as a draft (``PolicyError`` with file:line problems when invalid);
    the same content again is the version already stored. Returns (row, created).

    A policy's currency, time zone and country must be the merchant's: money already
    taken and deadlines already counted are not re-based by a new version."""
    policy = parse_policy(text, name)
    _same_ground(merchant, policy, name)
    form = canonical(policy)
    digest = digest_of(form)
    existing = session.scalar(
        select(PolicyVersionRow).where(
            PolicyVersionRow.merchant_id == merchant.id, PolicyVersionRow.digest == digest
        )
    )
    if existing is not None:
        return existing, False
    row = PolicyVersionRow(
        merchant_id=merchant.id,
        digest=digest,
        policy_id=policy.id,
        label=policy.version,
        status=PolicyVersionStatus.DRAFT,
        text=text,
        canonical=form,
        created_at=at,
        created_by=by[:100],
    )
    session.add(row)
    session.flush()
    return row, True


def _same_ground(merchant: MerchantRow, policy: Policy, name: str) -> None:
    if policy.currency != merchant.currency:
        from fairbill.errors import Location

        message = f"is {policy.currency!r}; the merchant's is {merchant.currency!r}"
        raise PolicyError([(Location(name, None, "currency"), message)])


@dataclass(frozen=True)
class Published:
    version: PolicyVersionRow
    notified: int  # customers told of the change


def store_published(
    session: Session, merchant: MerchantRow, policy: Policy, *, at: datetime, by: str
) -> int:
    """A policy given as a value (a scenario's, a test world's) as the merchant's current
    version; its canonical JSON, which is YAML too, stands for the text."""
    form = canonical(policy)
    row, _ = add_draft(session, merchant, form, at=at, by=by, name=f"{policy.id}.json")
    if row.status == PolicyVersionStatus.DRAFT:
        publish(session, merchant, row, at=at)
    return row.id


def publish(
    session: Session, merchant: MerchantRow, row: PolicyVersionRow, *, at: datetime
) -> Published:
    """Make a draft the merchant's current version. Customers with a live subscription
    under an older version are told (their terms' ``terms_change`` clause permitting);
    new subscriptions accept this version from now on."""
    if row.status == PolicyVersionStatus.PUBLISHED:
        raise Conflict(f"policy version {_public(merchant, row.id)} is already published")
    before = _current_id(session, merchant)
    material = before is None or any(
        c.material for c in diff_policies(policy_of(session, before), policy_of(session, row.id))
    )
    row.status = advance(row.status, PolicyVersionStatus.PUBLISHED)
    row.published_at = at
    merchant.policy_id = row.policy_id
    merchant.policy_version = row.label
    session.flush()
    # Only a change of what is decided is a material change (new quoted words are not).
    return Published(row, _notify(session, merchant, row, at) if material else 0)


def _notify(session: Session, merchant: MerchantRow, row: PolicyVersionRow, at: datetime) -> int:
    older = (
        select(SubscriptionRow.customer_id)
        .join(CustomerRow, CustomerRow.id == SubscriptionRow.customer_id)
        .where(
            CustomerRow.merchant_id == merchant.id,
            SubscriptionRow.status.in_(LIVE),
            SubscriptionRow.policy_version_id != row.id,
        )
        .distinct()
    )
    customers = list(session.scalars(select(CustomerRow).where(CustomerRow.id.in_(older))))
    told = 0
    for customer in customers:
        rule = _terms_change(session, customer.id)
        if rule is not None and not rule.notify_material_changes:
            continue
        customer.terms_notice_at = at
        customer.terms_declined_at = None
        session.add(
            NotificationRow(
                customer_id=customer.id,
                merchant_id=merchant.id,
                at=at,
                template="terms_changed",
                language=customer.language or merchant.language,
                payload=_payload(merchant, row, rule),
            )
        )
        told += 1
    return told


def named(session: Session, text: str) -> int | None:
    """The stored version a public id names, whichever merchant's it is (for operators'
    tools, which have no merchant): decoded under each merchant's key, kept where the
    version is that merchant's."""
    for merchant in session.scalars(select(MerchantRow)):
        version_id = Ids(merchant.id_key).private(Prefix.POLICY_VERSION, text)
        row = session.get(PolicyVersionRow, version_id) if version_id is not None else None
        if row is not None and row.merchant_id == merchant.id:
            return row.id
    return None


def _public(merchant: MerchantRow, version_id: int) -> str:
    return Ids(merchant.id_key).public(Prefix.POLICY_VERSION, version_id)


def _payload(
    merchant: MerchantRow, row: PolicyVersionRow, rule: TermsChange | None
) -> dict[str, Any]:
    return {
        "version": row.label,
        "version_id": _public(merchant, row.id),
        "continued_use_is_acceptance": "yes"
        if rule is None or rule.continued_use_is_acceptance
        else "no",
    }


def _terms_change(session: Session, customer_id: int) -> TermsChange | None:
    version_id = accepted(session, customer_id)
    if version_id is None:
        return None
    return policy_of(session, version_id).first(TermsChange)


def moving_on_renewal(
    session: Session, version_id: int | None, subscription_ids: list[int]
) -> set[int]:
    """Continued use is acceptance: of ``subscription_ids`` (renewing now), those whose
    customer was told of a newer version and did not decline it, under terms that say
    continued use accepts; each moves to ``version_id``, the current one, with its renewal
    (``plans.billing.Renewal.accepts``). Read once per chunk, for the daily cycle and a
    single renewal alike."""
    if not subscription_ids or version_id is None:
        return set()
    held = session.scalars(
        select(SubscriptionRow.policy_version_id)
        .where(one_of(session, SubscriptionRow.id, subscription_ids))
        .distinct()
    )
    # The terms the customer accepted say how they change: no clause, no silent move.
    movable = [
        v
        for v in held
        if v is not None
        and v != version_id
        and (rule := policy_of(session, v).first(TermsChange)) is not None
        and rule.continued_use_is_acceptance
    ]
    if not movable:
        return set()
    told = exists().where(
        CustomerRow.id == SubscriptionRow.customer_id,
        CustomerRow.terms_notice_at.is_not(None),
        CustomerRow.terms_declined_at.is_(None),
    )
    return set(
        session.scalars(
            select(SubscriptionRow.id).where(
                one_of(session, SubscriptionRow.id, subscription_ids),
                SubscriptionRow.policy_version_id.in_(movable),
                told,
            )
        )
    )
