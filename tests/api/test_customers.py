"""Customers' email addresses: validated, shown, exported, and erased with the data."""

from __future__ import annotations

from sqlalchemy import select

from fairbill.store.tables import CustomerRow, NotificationRow

from .helpers import Api


def test_an_email_address_is_checked_kept_and_erased_with_the_data(api: Api) -> None:
    m = api.merchant("conek")
    api.advance("2026-03-01T10:00:00+02:00")
    m.plan("monthly", "499.00")
    m.customer("c_1", email="marie@example.org")
    assert m.ok(m.get("/v1/customers/c_1"))["email"] == "marie@example.org"
    assert m.ok(m.get("/v1/customers/c_1/export"))["customer"]["email"] == "marie@example.org"
    m.customer("c_2")
    assert m.ok(m.get("/v1/customers/c_2"))["email"] is None

    for bad in ("not an address", "a@b@c", "x" * 250 + "@example.org"):
        refused = m.post("/v1/customers", {"id": "c_3", "email": bad})
        assert refused.status_code == 422, bad
        assert refused.json()["errors"][0]["field"] == "email"

    m.subscribe("c_1", "monthly")
    closed = m.ok(m.post("/v1/customers/c_1/close"))["customer"]
    assert closed["data_retained_until"] is not None
    api.advance("2027-06-01T00:00:00+02:00")  # past the retention period
    with api.runtime.sessions() as session:
        customer = session.scalars(select(CustomerRow).where(CustomerRow.code == "c_1")).one()
        assert customer.data_deleted_at is not None and customer.email is None
        notices = session.scalars(
            select(NotificationRow).where(
                NotificationRow.customer_id == customer.id,
                NotificationRow.template == "data_deletion_notice",
            )
        ).all()
    # The last message still reaches the address that was erased.
    assert [n.payload.get("email") for n in notices] == ["marie@example.org"]
