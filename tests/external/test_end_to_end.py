"""End to end: a real ``fairbill serve`` process on loopback, driven over HTTP (httpx),
for each of the five bundled policies, checked against the simulator.

Each policy has one story, written as a ``fairbill.scenario/1`` file below: a business
customer with a card subscribes, changes plan, cancels, asks for a refund and (when the
policy sends the request to review) a reviewer decides it; every story ends with a data
export. The five stories share one timeline. The test plays every event over HTTP in time
order (advancing the server's test clock to each event's instant first, which runs what
fell due, as the simulator does), then reads the state back through the API's GET
endpoints and compares it with ``simulate(parse_scenario(story))``: subscriptions
(plan, status, periods, cancel and end), invoices (totals, lines, status), payments,
refunds (amounts, fees, destinations, methods), credit notes, credit packs, the wallet,
requests (decision, recommendation, amount, destination, reasons, clauses, deadlines),
every decision (outcome, amount, clauses and explanation), notifications and the
customer's status.

Along the way: every mutation carries an ``Idempotency-Key`` and the subscribe call is
sent twice (the replay must return the same body, and the comparison then proves nothing
was charged twice); each cancel is previewed first, and the preview must announce the
decision the cancel then takes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import yaml

from fairbill.simulator.run import simulate
from fairbill.simulator.scenario import parse_scenario

from .conftest import Server

E2E_START = "2026-03-02T08:00:00+00:00"
E2E_UNTIL = "2026-05-06T12:00:00+00:00"


def _story(policy: str, plans: str, events: str) -> str:
    return f"""\
format: fairbill.scenario/1
name: e2e {policy}
merchant: {{policy: {policy}}}
catalog:
  plans:
{plans}
customer:
  id: cus_{policy}
  type: business
  payment_methods: [{{id: card_1, type: card}}]
start: {E2E_START}
until: {E2E_UNTIL}
events:
{events}
  - at: {E2E_UNTIL}
    export_data: {{}}
"""


STORIES: dict[str, str] = {
    # Upgraded inside the year, cancelled after the 14-day guarantee: the months after the
    # current monthly period are refunded, across both payments; a later money-back
    # request is declined (the guarantee is over).
    "kalenner": _story(
        "kalenner",
        """\
    - {id: basic-annual, interval: year, price: "120.00"}
    - {id: pro-annual, interval: year, price: "240.00"}""",
        """\
  - at: 2026-03-02T08:00:00+00:00
    subscribe: {plan: basic-annual, payment_method: card_1}
  - at: 2026-03-10T11:00:00+00:00
    change_plan: {plan: pro-annual}
  - at: 2026-04-15T08:00:00+00:00
    cancel: {channel: portal}
  - at: 2026-04-16T09:00:00+00:00
    refund_request: {kind: money_back, payment: 1, reason: "changed our mind"}""",
    ),
    # An exceptional request goes to review with nothing recommended; the reviewer grants
    # 55.55 with a 25% fee, capped at Qomon's 18% (10.00): 45.55 to the card.
    "qomon": _story(
        "qomon",
        """\
    - {id: starter, interval: month, price: "100.00"}
    - {id: pro, interval: month, price: "200.00"}""",
        """\
  - at: 2026-03-02T08:00:00+00:00
    subscribe: {plan: starter, payment_method: card_1}
  - at: 2026-03-10T09:00:00+00:00
    change_plan: {plan: pro}
  - at: 2026-03-12T09:00:00+00:00
    refund_request: {kind: exceptional, payment: 1, reason: "the election was cancelled"}
  - at: 2026-03-13T09:00:00+00:00
    review:
      {request: 1, decision: approve, amount: "55.55", fee_percent: 25,
       destination: original_method}
  - at: 2026-03-20T09:00:00+00:00
    cancel: {channel: support}""",
    ),
    # An immediate cancel refunds the unused days of the period; asking for the unused
    # period afterwards refunds nothing more.
    "voip": _story(
        "voip",
        """\
    - {id: line-monthly, interval: month, price: "50.00"}
    - {id: line-plus, interval: month, price: "80.00"}""",
        """\
  - at: 2026-03-02T08:00:00+00:00
    subscribe: {plan: line-monthly, payment_method: card_1}
  - at: 2026-03-10T15:00:00+00:00
    change_plan: {plan: line-plus}
  - at: 2026-04-10T15:00:00+00:00
    cancel: {immediately: true, channel: support}
  - at: 2026-04-11T15:00:00+00:00
    refund_request: {kind: unused_period, payment: last, reason: "we stopped on the 10th"}""",
    ),
    # The reviewer grants account credit (150.00 to the wallet), which pays part of the
    # next invoice; the written cancel runs to the end of the period.
    "conek": _story(
        "conek",
        """\
    - {id: starter-monthly, interval: month, price: "499.00"}
    - {id: pro-monthly, interval: month, price: "999.00"}""",
        """\
  - at: 2026-03-02T08:00:00+00:00
    subscribe: {plan: starter-monthly, payment_method: card_1}
  - at: 2026-03-15T10:00:00+00:00
    change_plan: {plan: pro-monthly}
  - at: 2026-03-20T10:00:00+00:00
    refund_request: {kind: exceptional, payment: 1, reason: "a bug in the template editor"}
  - at: 2026-03-21T10:00:00+00:00
    review: {request: 1, decision: approve, amount: "150.00", destination: wallet}
  - at: 2026-04-20T10:00:00+00:00
    cancel: {channel: written}""",
    ),
    # Used before the upgrade, not after: the money-back request on the upgrade payment is
    # reviewed, accepted in full, and ends the service at once.
    "emailconsul": _story(
        "emailconsul",
        """\
    - {id: pro-monthly, interval: month, price: "30.00"}
    - {id: pro-annual, interval: year, price: "300.00"}""",
        """\
  - at: 2026-03-02T08:00:00+00:00
    subscribe: {plan: pro-monthly, payment_method: card_1}
  - at: 2026-03-05T10:00:00+00:00
    activity: {}
  - at: 2026-03-09T10:00:00+00:00
    change_plan: {plan: pro-annual}
  - at: 2026-03-16T10:00:00+00:00
    cancel: {channel: support}
  - at: 2026-03-20T10:00:00+00:00
    refund_request: {kind: money_back, payment: last, reason: "deliverability was poor"}
  - at: 2026-03-23T10:00:00+00:00
    review: {request: 1, decision: accept}""",
    ),
}

# What each story must come to (from the policies' texts; both sides must agree on them).
EXPECTED: dict[str, dict[str, Any]] = {
    "kalenner": {
        "refunds": [("117.37", "original_method"), ("82.63", "original_method")],
        "requests": [("declined", None)],
        "subscription": ("pro-annual", "canceled", "2026-05-02T09:00:00+02:00"),
    },
    "qomon": {
        "refunds": [("45.55", "original_method")],
        "requests": [("needs_review", "declined")],
        "subscription": ("pro", "canceled", "2026-04-02T09:00:00+02:00"),
    },
    "voip": {
        "refunds": [("58.67", "original_method")],
        "requests": [("declined", None)],
        "subscription": ("line-plus", "canceled", "2026-04-10T11:00:00-04:00"),
    },
    "conek": {
        "refunds": [("150.00", "wallet")],
        "requests": [("needs_review", "declined")],
        "subscription": ("pro-monthly", "canceled", "2026-05-02T10:00:00+02:00"),
    },
    "emailconsul": {
        "refunds": [("209.03", "original_method")],
        "requests": [("needs_review", "approved")],
        "subscription": ("pro-annual", "canceled", "2026-03-23T10:00:00+00:00"),
    },
}


# -- playing the stories over HTTP --------------------------------------------------------
@dataclass
class Tenant:
    """One story's merchant on the server: its keys and its customer."""

    policy: str
    keys: dict[str, str]
    customer: str
    subscription: str | None = None
    previews: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    export: dict[str, Any] | None = None


class Player:
    def __init__(self, server: Server, client: httpx.Client) -> None:
        self.server = server
        self.http = client

    # plumbing
    def call(
        self,
        method: str,
        path: str,
        token: str,
        body: dict[str, Any] | None = None,
        status: int = 200,
        key: str | None = None,
        **params: Any,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        if method == "POST":
            headers["Idempotency-Key"] = key or uuid.uuid4().hex
        response = self.http.request(
            method, path, json=body if method == "POST" else None, params=params, headers=headers
        )
        assert response.status_code == status, f"{method} {path}: {response.text}"
        return response

    def admin(self) -> str:
        return self.server.admin_token

    def advance(self, to: str) -> None:
        self.call("POST", "/v1/test_clock/advance", self.admin(), to=to)

    def rows(self, t: Tenant, path: str) -> list[dict[str, Any]]:
        """Every row of a list endpoint for the tenant's customer (all pages)."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"customer": t.customer, "limit": 2} | ({"cursor": cursor} if cursor else {})
            body = self.call("GET", path, t.keys["readonly"], **params).json()
            out.extend(body["data"])
            cursor = body["next_cursor"]
            if cursor is None:
                return out

    # set-up
    def tenant(self, policy: str, story: dict[str, Any]) -> Tenant:
        merchant = self.call(
            "POST",
            "/v1/merchants",
            self.admin(),
            {"name": f"e2e {policy}", "policy": policy},
            status=201,
        ).json()
        t = Tenant(policy, merchant["api_keys"], story["customer"]["id"])
        for plan in story["catalog"]["plans"]:
            months = {"month": 1, "year": 12}[plan["interval"]]
            body = {"id": plan["id"], "interval_months": months, "price": plan["price"]}
            self.call("POST", "/v1/plans", t.keys["admin"], body, status=201)
        customer = {
            "id": t.customer,
            "type": story["customer"]["type"],
            "payment_methods": story["customer"]["payment_methods"],
        }
        self.call("POST", "/v1/customers", t.keys["admin"], customer, status=201)
        return t

    # events
    def play(self, t: Tenant, action: str, params: dict[str, Any]) -> None:
        admin = t.keys["admin"]
        if action == "subscribe":
            body = {"customer": t.customer} | params
            key = uuid.uuid4().hex
            first = self.call("POST", "/v1/subscriptions", admin, body, status=201, key=key)
            again = self.call("POST", "/v1/subscriptions", admin, body, status=201, key=key)
            assert again.headers.get("Idempotent-Replayed") == "true"
            assert again.json() == first.json()
            t.subscription = first.json()["id"]
        elif action == "change_plan":
            self.call("POST", f"/v1/subscriptions/{t.subscription}/change_plan", admin, params)
        elif action == "cancel":
            immediately = bool(params.get("immediately", False))
            preview = self.call(
                "POST",
                f"/v1/subscriptions/{t.subscription}/preview",
                t.keys["support"],
                {"action": "cancel", "immediately": immediately},
            ).json()
            done = self.call(
                "POST", f"/v1/subscriptions/{t.subscription}/cancel", t.keys["support"], params
            ).json()
            t.previews.append((preview, done))
        elif action == "activity":
            self.call("POST", f"/v1/customers/{t.customer}/activity", admin)
        elif action == "refund_request":
            payments = self.rows(t, "/v1/payments")
            number = params["payment"]
            payment = payments[-1] if number == "last" else payments[number - 1]
            assert number == "last" or payment["number"] == number
            body = {"customer": t.customer, **params, "payment": payment["id"]}
            self.call("POST", "/v1/refund_requests", t.keys["support"], body, status=201)
        elif action == "review":
            requests = self.rows(t, "/v1/refund_requests")
            request = next(r for r in requests if r["number"] == params["request"])
            body = {k: v for k, v in params.items() if k != "request"}
            if "fee_percent" in body:
                body["fee_percent"] = str(body["fee_percent"])
            path = f"/v1/refund_requests/{request['id']}/review"
            self.call("POST", path, t.keys["finance"], body)
        elif action == "export_data":
            path = f"/v1/customers/{t.customer}/export"
            t.export = self.call("GET", path, t.keys["support"]).json()
        else:  # pragma: no cover - the stories use only the actions above
            raise AssertionError(f"no HTTP mapping for {action!r}")

    # reading back, in the simulator's shapes
    def state(self, t: Tenant) -> dict[str, Any]:
        assert t.export is not None
        wallet = self.call("GET", f"/v1/customers/{t.customer}/wallet", t.keys["readonly"]).json()
        packs = self.call(
            "GET", f"/v1/customers/{t.customer}/credit_packs", t.keys["readonly"]
        ).json()
        return {
            "customer": t.export["customer"],
            "subscriptions": self.rows(t, "/v1/subscriptions"),
            "invoices": self.rows(t, "/v1/invoices"),
            "payments": self.rows(t, "/v1/payments"),
            "refunds": self.rows(t, "/v1/refunds"),
            "credit_notes": self.rows(t, "/v1/credit_notes"),
            "wallet": {"balance": wallet["balance"], "entries": wallet["entries"]},
            "credit_packs": packs["data"],
            "requests": self.rows(t, "/v1/refund_requests"),
            "decisions": t.export["decisions"],
            "notifications": t.export["notifications"],
        }


def _events(stories: dict[str, dict[str, Any]]) -> list[tuple[str, int, str, str, Any]]:
    """Every story's events on one timeline: (at, order, policy, action, params)."""
    timeline = []
    for policy, story in stories.items():
        for order, event in enumerate(story["events"]):
            [(action, params)] = [(k, v) for k, v in event.items() if k != "at"]
            at = event["at"]  # YAML reads an ISO time as a datetime
            at = at.isoformat() if hasattr(at, "isoformat") else str(at)
            timeline.append((at, order, policy, action, params or {}))
    return sorted(timeline)


@pytest.fixture(scope="module")
def played(e2e_server: Server) -> dict[str, dict[str, Any]]:
    """The five stories played over HTTP; each tenant's state read back at the end."""
    stories = {policy: yaml.safe_load(text) for policy, text in STORIES.items()}
    with httpx.Client(base_url=e2e_server.url, trust_env=False, timeout=60.0) as client:
        player = Player(e2e_server, client)
        tenants = {policy: player.tenant(policy, story) for policy, story in stories.items()}
        for at, _, policy, action, params in _events(stories):
            player.advance(at)
            player.play(tenants[policy], action, params)
        player.advance(E2E_UNTIL)
        return {p: player.state(t) | {"previews": t.previews} for p, t in tenants.items()}


# -- comparing ------------------------------------------------------------------------------
def _like(api_rows: list[dict[str, Any]], sim_rows: list[dict[str, Any]]) -> list[Any]:
    """The API's rows cut down to the simulator's fields (the API adds ids and links)."""
    keys = [list(row) for row in sim_rows]
    return [
        {k: row.get(k, "<missing>") for k in ks} for row, ks in zip(api_rows, keys, strict=False)
    ]


@pytest.mark.parametrize("policy", list(STORIES))
def test_the_api_reaches_the_state_the_simulator_computes(
    played: dict[str, dict[str, Any]], policy: str
) -> None:
    api = played[policy]
    sim = simulate(parse_scenario(STORIES[policy], f"e2e-{policy}.yaml"))
    assert sim["ledger"]["balanced"] is True

    # The stories are not empty: the figures the policies give.
    expected = EXPECTED[policy]
    assert [(r["amount"], r["destination"]) for r in sim["refunds"]] == expected["refunds"]
    assert [
        (r["decision"], (r["recommendation"] or {}).get("decision")) for r in sim["requests"]
    ] == expected["requests"]
    [sub] = sim["subscriptions"]
    assert (sub["plan"], sub["status"], sub["ended_at"]) == expected["subscription"]

    for name in (
        "subscriptions",
        "invoices",
        "payments",
        "refunds",
        "credit_notes",
        "credit_packs",
        "requests",
        "decisions",
        "notifications",
    ):
        sim_rows = [
            {k: v for k, v in row.items() if not (name == "subscriptions" and k == "id")}
            for row in sim[name]
        ]
        assert len(api[name]) == len(sim_rows), (name, api[name], sim_rows)
        assert _like(api[name], sim_rows) == sim_rows, name
    assert api["wallet"] == sim["wallet"]
    assert _like([api["customer"]], [sim["customer"]]) == [sim["customer"]]


@pytest.mark.parametrize("policy", list(STORIES))
def test_a_cancel_does_what_its_preview_announced(
    played: dict[str, dict[str, Any]], policy: str
) -> None:
    [(preview, done)] = played[policy]["previews"]
    assert preview["action"] == "cancel"
    for key in ("outcome", "amount", "reasons", "clauses", "explanation", "service_ends_at"):
        assert preview["decision"][key] == done["decision"][key], key
    assert preview["ends_at"] == (done["cancel_at"] or done["ended_at"])
