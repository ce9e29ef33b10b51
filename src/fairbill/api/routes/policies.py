"""Policy versions: upload a draft (YAML), check it, publish it, list, show and compare.

A version is immutable and named by the hash of its content (``digest``); uploading the
same content again returns the version already stored. Only a merchant's ``admin`` keys
upload and publish; every role reads. The published document is public (``public.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from fairbill.api.deps import Caller, Db, merchant_ctx, need, runtime
from fairbill.api.mutation import merchant_work, mutate
from fairbill.api.problems import RESPONSES, Problem, not_found
from fairbill.api.routes.billing import number_of
from fairbill.api.settings import Runtime
from fairbill.ids import Ids, Prefix
from fairbill.lifecycle import PolicyVersionStatus
from fairbill.policy.diff import diff_policies
from fairbill.policy.render import MEDIA_TYPES, default_language, render_policy
from fairbill.services import policies
from fairbill.services.context import Ctx
from fairbill.store.tables import MerchantRow, PolicyVersionRow

router = APIRouter(prefix="/v1", tags=["policies"], responses=RESPONSES)
Rt = Annotated[Runtime, Depends(runtime)]

MAX_POLICY_BYTES = 256 * 1024
_YAML_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The policy file, YAML (see docs/policy-language.md).",
        "content": {"application/yaml": {"schema": {"type": "string"}}},
    }
}


async def yaml_text(request: Request) -> str:
    """The request body as UTF-8 text (a policy file), at most 256 KiB."""
    data = await request.body()
    if len(data) > MAX_POLICY_BYTES:
        raise Problem(413, "payload_too_large", "Payload too large", "a policy is 256 KiB at most")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(
            422, "invalid_policy", "Invalid policy", "a policy file is UTF-8 text"
        ) from exc


YamlText = Annotated[str, Depends(yaml_text)]


def lint_view(text: str) -> dict[str, Any]:
    """``fairbill policy lint`` on a stored text: findings with code, clause and line."""
    report = policies.lint_text(text)
    return {
        "clean": not report.failed,
        "findings": [
            {
                "code": str(f.code),
                "severity": str(f.severity),
                "clause": f.clause,
                "line": f.line,
                "message": f.message,
            }
            for f in report.findings
        ],
        "suppressed": len(report.suppressed),
    }


def version_view(ids: Ids, row: PolicyVersionRow, *, text: bool = False) -> dict[str, Any]:
    view = {
        "id": ids.public(Prefix.POLICY_VERSION, row.id),
        "policy": row.policy_id,
        "version": row.label,
        "digest": row.digest,
        "status": row.status,
        "created_at": row.created_at.isoformat(),
        "created_by": row.created_by,
        "published_at": row.published_at.isoformat() if row.published_at else None,
    }
    return view | {"text": row.text} if text else view


def _version(ctx: Ctx, version_id: str) -> PolicyVersionRow:
    return policies.find(
        ctx.session,
        ctx.merchant_row,
        number_of(ctx.ids, Prefix.POLICY_VERSION, version_id, "policy version"),
    )


@router.get("/policy_versions")
def list_versions(session: Db, rt: Rt, who: Caller) -> dict[str, Any]:
    """Every version of the merchant's policy, oldest first; ``current`` names the one
    new subscriptions accept."""
    need(who, "read_policy")
    ctx = merchant_ctx(session, rt, who)
    rows = policies.versions(session, ctx.merchant_row)
    current = ctx.ids.public(Prefix.POLICY_VERSION, ctx.version_id) if ctx.version_id else None
    return {"data": [version_view(ctx.ids, r) for r in rows], "current": current}


@router.get("/policy_versions/{version_id}")
def show_version(version_id: str, session: Db, rt: Rt, who: Caller) -> dict[str, Any]:
    """One version, with its YAML text."""
    need(who, "read_policy")
    ctx = merchant_ctx(session, rt, who)
    row = _version(ctx, version_id)
    return version_view(ctx.ids, row, text=True) | {"lint": lint_view(row.text)}


@router.get("/policy_versions/{version_id}/diff/{other_id}")
def diff_versions(
    version_id: str, other_id: str, session: Db, rt: Rt, who: Caller
) -> dict[str, Any]:
    """What changed from ``version_id`` to ``other_id``, clause by clause, in words;
    ``material`` is false when only the quoted words changed."""
    need(who, "read_policy")
    ctx = merchant_ctx(session, rt, who)
    old, new = _version(ctx, version_id), _version(ctx, other_id)
    changes = diff_policies(
        policies.policy_of(session, old.id), policies.policy_of(session, new.id)
    )
    return {
        "from": ctx.ids.public(Prefix.POLICY_VERSION, old.id),
        "to": ctx.ids.public(Prefix.POLICY_VERSION, new.id),
        "material": any(c.material for c in changes),
        "changes": [
            {
                "kind": str(c.kind),
                "clause": c.clause,
                "material": c.material,
                "words": c.words,
                "fields": [{"field": f.field, "old": f.old, "new": f.new} for f in c.fields],
            }
            for c in changes
        ],
    }


@router.post("/policy_versions", status_code=201, openapi_extra=_YAML_BODY)
def upload_version(text: YamlText, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    """A draft from a policy file (YAML body): validated (422 ``invalid_policy`` with the
    line and field of each problem); the same content again is the same version."""
    need(who, "policy")

    def work(ctx: Ctx) -> tuple[str, dict[str, Any]]:
        # A file that does not load is 422 ``invalid_policy``, with lines (problems.py).
        row, _ = policies.add_draft(
            ctx.session, ctx.merchant_row, text, at=ctx.now, by=who.actor, name="policy"
        )
        view = version_view(ctx.ids, row)
        return f"policy_version:{view['id']}", view | {"lint": lint_view(text)}

    return mutate(
        request, rt, who, "policy_version.create", {"text": text}, merchant_work(rt, who, work), 201
    )


@router.post("/policy_versions/{version_id}/publish")
def publish_version(version_id: str, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    """Make a draft the current version. Customers with a live subscription are told by
    email; their subscriptions keep the version they accepted until their terms let the
    new one apply (continued use at the next renewal, unless they decline)."""
    need(who, "policy")

    def work(ctx: Ctx) -> tuple[str, dict[str, Any]]:
        row = _version(ctx, version_id)
        done = policies.publish(ctx.session, ctx.merchant_row, row, at=ctx.now)
        view = version_view(ctx.ids, row)
        return f"policy_version:{view['id']}", view | {"customers_notified": done.notified}

    return mutate(request, rt, who, "policy_version.publish", {}, merchant_work(rt, who, work))


# -- the published document: public, no key (customers must be able to read it) ----------
public = APIRouter(prefix="/v1/public", tags=["policies"], responses=RESPONSES)


@public.get(
    "/merchants/{merchant_id}/policy",
    response_class=Response,
    responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}}},
)
def published_document(
    merchant_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: Db,
    version: Annotated[str | None, Query(pattern=r"^pv_[0-9a-z]{13}$")] = None,
    lang: Annotated[Literal["en", "fr"] | None, Query()] = None,
    format: Annotated[Literal["md", "html"], Query()] = "html",
) -> Response:
    """The merchant's refund policy as its customers read it, rendered from the version
    the engine runs: the current one, or any published ``version``. In the policy's own
    language unless ``lang`` says otherwise. Drafts are not public (404)."""
    merchant = session.get(MerchantRow, merchant_id)
    if merchant is None:
        raise not_found(f"no merchant {merchant_id}")
    if version is None:
        version_id, policy = policies.current(session, merchant)
    else:
        ids = Ids(merchant.id_key)
        number = number_of(ids, Prefix.POLICY_VERSION, version, "policy version")
        row = policies.find(session, merchant, number)
        if row.status != PolicyVersionStatus.PUBLISHED:
            raise not_found(f"no published policy version {version}")
        version_id, policy = row.id, policies.policy_of(session, row.id)
    text = render_policy(policy, lang or default_language(policy), format)
    shown = Ids(merchant.id_key).public(Prefix.POLICY_VERSION, version_id) if version_id else ""
    headers = {"Cache-Control": "public, max-age=60", "X-Policy-Version": shown}
    return Response(text, media_type=MEDIA_TYPES[format], headers=headers)
