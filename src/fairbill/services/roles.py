"""Who may do what: the permissions of each API-key role, of a portal token, and of the
platform operator. One table for every adapter (the API's ``deps.need``, the back office's
pages): a role is allowed the same things whichever way its key is used.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

# What each role may do. A portal token may only act on its own customer, and only read,
# cancel, preview, ask for a refund and export its own data (data portability):
PORTAL = frozenset({"read", "cancel", "preview", "request_refund", "export"})
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(
        {
            "read",
            "catalog",
            "customers",
            "subscribe",
            "cancel",
            "change_plan",
            "preview",
            "usage",
            "purchase",
            "request_refund",
            "review",
            "refund",
            "outage",
            "dispute",
            "terms",
            "close",
            "export",
            "keys",
            "policy",  # upload and publish policy versions
            "read_policy",  # staff read versions and drafts; customers the public document
        }
    ),
    "finance": frozenset(
        {
            "read",
            "read_policy",
            "preview",
            "review",
            "refund",
            "outage",
            "dispute",
            "request_refund",
            "export",
        }
    ),
    "support": frozenset({"read", "read_policy", "cancel", "preview", "request_refund", "export"}),
    "readonly": frozenset({"read", "read_policy"}),
}


@dataclass(frozen=True)
class Principal:
    kind: str  # "admin" (platform operator) | "key" | "portal"
    actor: str
    merchant_id: int | None = None
    role: str | None = None
    customer_id: int | None = None

    def allows(self, permission: str) -> bool:
        if self.kind == "admin":
            return True
        if self.kind == "portal":
            return permission in PORTAL
        return permission in ROLE_PERMISSIONS.get(self.role or "", frozenset())
