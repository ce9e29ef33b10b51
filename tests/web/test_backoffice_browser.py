"""The back office in a real browser (Debian's Chromium through Playwright), offline, with
the keyboard alone (Tab to reach, Enter to activate, typing to fill); every page visited
is checked by axe-core and photographed under ``test-output/screenshots/``.
``FAIRBILL_UPDATE_DOCS=1`` also refreshes ``docs/back-office-review-queue.png``.

The live server is shared with ``test_browser.py``: these tests make their own customers
and keys (``staff``), so they find the same pages whichever runs first.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from .conftest import ROOT, Live, check_page, tab_to
from .staff import new_customer, new_key


def sign_in(page: Any, key: str, name: str | None = None) -> None:
    """Sign in with the keyboard: the key typed into the form, Enter to send it."""
    page.goto("/app/sign-in")
    if name:
        check_page(page, name)
    tab_to(page, "#key")
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    page.wait_for_url("**/app/")


def test_a_refund_asked_in_the_portal_is_accepted_in_the_back_office_by_finance(
    page: Any, live: Live
) -> None:
    runtime = live.world.runtime
    token, pay = new_customer(runtime, "emailconsul", "emailconsul-browser")
    page.goto(f"/portal/enter?token={token}")
    page.goto(f"/portal/payments/{pay}/refund?kind=money_back")
    tab_to(page, "#reason")
    page.keyboard.type("We never sent a campaign.")
    tab_to(page, "#order_numbers")
    page.keyboard.type("1")
    tab_to(page, "Send the request")
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal/requests/req_*")
    portal_request = page.url
    request_id = portal_request.rsplit("/", 1)[1]

    sign_in(page, new_key(runtime, "emailconsul", "finance"), "app-sign-in")
    cookie = next(c for c in page.context.cookies() if c["name"] == "fairbill_app")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/app"
    assert page.evaluate("document.cookie") == ""  # no script can read either session
    check_page(page, "app-dashboard")
    tab_to(page, "Review queue")
    page.keyboard.press("Enter")
    page.wait_for_url("**/app/queue")
    assert "10 business day(s) left" in page.inner_text("main")
    shot = check_page(page, "app-review-queue")
    if os.environ.get("FAIRBILL_UPDATE_DOCS") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "back-office-review-queue.png")

    tab_to(page, "of emailconsul-browser")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/app/requests/{request_id}")
    main = page.inner_text("main")
    assert "We never sent a campaign." in main and "EmailConsul offers a 30-day" in main
    check_page(page, "app-request")
    tab_to(page, "Accept the recommendation")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/app/requests/{request_id}?decided=dec_*")
    assert "Decided: approved $30.00" in page.inner_text("main")
    check_page(page, "app-request-decided")

    tab_to(page, "emailconsul-browser")  # the facts link to the customer's timeline
    page.keyboard.press("Enter")
    page.wait_for_url("**/app/customers/emailconsul-browser")
    assert "Refund request decided" in page.inner_text("main")  # the email, in the timeline
    check_page(page, "app-customer")
    page.goto("/app/customers")
    tab_to(page, "#q")
    page.keyboard.type("browser")
    page.keyboard.press("Enter")
    page.wait_for_url("**/app/customers?q=browser")
    check_page(page, "app-customers")

    page.goto(portal_request)  # the customer's portal shows the refund
    main = page.inner_text("main")
    assert "paid" in main and "$30.00" in main


def test_roles_defences_and_the_admin_pages(page: Any, live: Live) -> None:
    runtime = live.world.runtime
    sign_in(page, new_key(runtime, "emailconsul", "support"))
    nav = page.inner_text("header nav")
    assert "Review queue" in nav and "API keys" not in nav and "Audit log" not in nav
    response = page.goto("/app/keys")
    assert response.status == 403
    page.errors.clear()  # the browser logs the 403 document: it was the point
    check_page(page, "app-forbidden")
    page.goto("/app/queue")
    tab_to(page, "Request 1 of emailconsul-asking")
    page.keyboard.press("Enter")
    page.wait_for_url("**/app/requests/req_*")
    assert "may read this request but not decide it" in page.inner_text("main")
    assert page.locator("text=Accept the recommendation").count() == 0
    csrf = page.get_attribute("input[name=csrf]", "value")
    url = page.url.split("?")[0] + "/review"
    assert page.request.post(url, form={"csrf": csrf, "decision": "accept"}).status == 403
    assert page.request.post(url, form={"decision": "accept"}).status == 403  # no token
    tab_to(page, "Sign out")
    page.keyboard.press("Enter")
    page.wait_for_url("**/app/signed-out")
    check_page(page, "app-signed-out")

    sign_in(page, new_key(runtime, "voip", "admin"))
    page.goto("/app/outages")
    check_page(page, "app-outages")
    tab_to(page, "#start")
    page.keyboard.type("030120260800P")  # 03/01/2026 08:00 PM, the merchant's time
    tab_to(page, "#end")
    page.keyboard.type("030120261100P")
    tab_to(page, "Declare the outage")
    page.keyboard.press("Enter")
    page.wait_for_url("**/app/outages/out_*")
    assert page.locator("a[href^='/app/requests/req_']").count() >= 4
    check_page(page, "app-outage")
    page.goto("/app/keys")
    tab_to(page, "#role")
    tab_to(page, "Issue the key")
    page.keyboard.press("Enter")
    page.wait_for_selector("#new-key")
    check_page(page, "app-keys")
    page.goto("/app/audit")
    assert "api_key.create" in page.inner_text("main")
    check_page(page, "app-audit")
