"""A merchant's own policy through the API: v1 at creation, v2 uploaded and published;
subscriptions keep the version their customer accepted, decisions name theirs, and every
stored decision is taken again identically from its recorded facts."""

from __future__ import annotations

from pathlib import Path

from fairbill.api.settings import Runtime
from fairbill.policy.load import parse_policy
from fairbill.services import audit
from fairbill.store.tables import MerchantRow

from .helpers import ADMIN_TOKEN, Api, Merchant

POLICY = Path(__file__).parents[2] / "examples" / "policies" / "nubeflow.yaml"
V1 = POLICY.read_text(encoding="utf-8")
# v2: the guarantee shrinks from 30 days to 10 (its quoted words with it).
V2 = (
    V1.replace('version: "1"', 'version: "2"')
    .replace("30 days", "10 days")
    .replace("window_days: 30", "window_days: 10")
)


def nubeflow(api: Api) -> Merchant:
    response = api.client.post(
        "/v1/merchants",
        json={"name": "Nubeflow", "policy_text": V1},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["currency"], body["timezone"], body["country"]) == ("EUR", "Europe/Madrid", "ES")
    m = Merchant(api.client, body["id"], body["api_keys"])
    m.plan("team", "20.00")
    return m


def upload(m: Merchant, text: str, role: str = "admin") -> tuple[int, dict[str, object]]:
    response = m.client.post(
        "/v1/policy_versions",
        content=text.encode(),
        headers=m.headers(role) | {"Content-Type": "application/yaml"},
    )
    return response.status_code, response.json()


def cancel_decision(m: Merchant, sub: str) -> dict[str, object]:
    """Cancel ``sub``; the stored decision, as the customer's export shows it."""
    customer = m.ok(m.post(f"/v1/subscriptions/{sub}/cancel", {"channel": "portal"}))["customer"]
    decisions = m.ok(m.get(f"/v1/customers/{customer}/export"))["decisions"]
    decision: dict[str, object] = next(d for d in decisions if d["action"] == "cancel")
    return decision


def test_old_subscriptions_are_decided_by_v1_and_new_ones_by_v2(api: Api) -> None:
    m = nubeflow(api)
    [v1] = m.ok(m.get("/v1/policy_versions"))["data"]
    assert (v1["version"], v1["status"]) == ("1", "published")
    m.customer("ana")
    ana = m.subscribe("ana", "team")  # 2026-01-01: accepts v1 (30-day guarantee)

    api.advance("2026-01-05T00:00:00+00:00")
    status, draft = upload(m, V2)
    assert status == 201, draft
    assert draft["status"] == "draft" and draft["digest"] != v1["digest"]
    assert draft["lint"]["clean"] is True  # linted as ``fairbill policy lint`` does
    assert upload(m, V2)[1]["id"] == draft["id"]  # the same content is the same version
    published = m.ok(m.post(f"/v1/policy_versions/{draft['id']}/publish"))
    assert published["customers_notified"] == 1  # ana is told
    assert m.post(f"/v1/policy_versions/{draft['id']}/publish").status_code == 409

    api.advance("2026-01-06T00:00:00+00:00")
    m.customer("bob")
    bob = m.subscribe("bob", "team")  # accepts v2 (10-day guarantee)

    api.advance("2026-01-20T00:00:00+00:00")  # day 19 for ana, day 14 for bob
    by_v1, by_v2 = cancel_decision(m, ana), cancel_decision(m, bob)
    assert (by_v1["policy_version"], by_v1["policy_version_id"]) == ("1", v1["id"])
    assert by_v1["amount"] == "20.00" and "nubeflow/guarantee" in by_v1["clauses"]
    assert (by_v2["policy_version"], by_v2["policy_version_id"]) == ("2", draft["id"])
    assert by_v2["amount"] == "0.00" and "nubeflow/guarantee" not in by_v2["clauses"]

    diff = m.ok(m.get(f"/v1/policy_versions/{v1['id']}/diff/{draft['id']}"))
    assert diff["material"] is True
    guarantee = next(c for c in diff["changes"] if c["clause"] == "nubeflow/guarantee")
    assert {"field": "window_days", "old": 30, "new": 10} in guarantee["fields"]


def test_stored_decisions_are_taken_again_identically_and_a_what_if_differs(
    api: Api, runtime: Runtime
) -> None:
    m = nubeflow(api)
    m.customer("ana")
    ana = m.subscribe("ana", "team")
    api.advance("2026-01-20T00:00:00+00:00")
    cancel_decision(m, ana)
    with runtime.sessions() as session:
        merchant = session.get_one(MerchantRow, m.id)
        again = list(audit.redecide(session, merchant))
        assert again and all(r.same for r in again), [r for r in again if not r.same]
        stricter = parse_policy(V2, "v2")
        changed = [r for r in audit.redecide(session, merchant, under=stricter) if not r.same]
    assert [(r.action, r.amount_minor, r.again_minor) for r in changed] == [("cancel", 2000, 0)]


def test_continued_use_accepts_the_new_version_at_the_next_renewal(api: Api) -> None:
    """Nubeflow's terms: "if you keep using Nubeflow after the change, the new policy
    applies from your next renewal" (its terms_change clause)."""
    m = nubeflow(api)
    m.customer("ana")
    ana = m.subscribe("ana", "team")
    [v1] = m.ok(m.get("/v1/policy_versions"))["data"]
    api.advance("2026-01-05T00:00:00+00:00")
    v2 = upload(m, V2)[1]
    m.ok(m.post(f"/v1/policy_versions/{v2['id']}/publish"))
    assert m.ok(m.get(f"/v1/subscriptions/{ana}"))["policy_version_id"] == v1["id"]
    api.advance("2026-02-02T00:00:00+00:00")  # renewed on February 1st
    assert m.ok(m.get(f"/v1/subscriptions/{ana}"))["policy_version_id"] == v2["id"]


def test_a_draft_that_does_not_load_is_a_problem_with_its_line(api: Api) -> None:
    m = nubeflow(api)
    broken = V1.replace("window_days: 30", "window_days: -3")
    status, problem = upload(m, broken)
    assert status == 422 and problem["code"] == "invalid_policy"
    [error] = problem["errors"]  # type: ignore[misc]
    assert error["line"] == V1.splitlines().index("    window_days: 30") + 1
    assert "window_days" in error["field"]


def test_a_draft_is_linted_with_codes_clauses_and_lines(api: Api) -> None:
    m = nubeflow(api)
    # Sold to consumers, its first-subscription-only guarantee misses the EU floor.
    consumer = V1.replace("customer_types: [business]", "customer_types: [consumer]")
    status, draft = upload(m, consumer)
    assert status == 201
    lint = draft["lint"]
    assert lint["clean"] is False
    [floor] = [f for f in lint["findings"] if f["code"] == "legal_floor"]
    assert floor["clause"] == "nubeflow/guarantee"
    assert floor["line"] == consumer.splitlines().index("  - id: nubeflow/guarantee") + 1


def test_only_admin_keys_upload_and_publish(api: Api) -> None:
    m = nubeflow(api)
    for role in ("finance", "support", "readonly"):
        assert upload(m, V2, role)[0] == 403
        assert m.get("/v1/policy_versions", role).status_code == 200
    [v1] = m.ok(m.get("/v1/policy_versions"))["data"]
    assert m.post(f"/v1/policy_versions/{v1['id']}/publish", role="finance").status_code == 403


def test_a_policy_file_edited_on_disk_changes_no_live_decision(
    api: Api, tmp_path: Path, monkeypatch: object
) -> None:
    """Created from a file, the merchant's policy is stored: editing the file later
    changes nothing (it was re-read at every decision before)."""
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text(V1, encoding="utf-8")
    m = api.merchant("mine.yaml")
    m.plan("team", "20.00")
    m.customer("ana")
    ana = m.subscribe("ana", "team")
    (tmp_path / "mine.yaml").write_text(V2, encoding="utf-8")  # edited behind our back
    api.advance("2026-01-20T00:00:00+00:00")
    decision = cancel_decision(m, ana)
    assert (decision["policy_version"], decision["amount"]) == ("1", "20.00")


def test_the_published_document_is_public_and_names_its_version(api: Api) -> None:
    m = nubeflow(api)
    page = api.client.get(f"/v1/public/merchants/{m.id}/policy")  # no key
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "30" in page.text and 'lang="en"' in page.text
    [v1] = m.ok(m.get("/v1/policy_versions"))["data"]
    assert page.headers["x-policy-version"] == v1["id"]
    french = api.client.get(
        f"/v1/public/merchants/{m.id}/policy", params={"lang": "fr", "format": "md"}
    )
    assert french.status_code == 200 and french.headers["content-type"].startswith("text/markdown")
    draft = upload(m, V2)[1]
    hidden = api.client.get(f"/v1/public/merchants/{m.id}/policy", params={"version": draft["id"]})
    assert hidden.status_code == 404  # a draft is not published
    assert api.client.get("/v1/public/merchants/999/policy").status_code == 404
