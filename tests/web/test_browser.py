"""The portal and the API docs in a real browser (Debian's Chromium through Playwright),
offline: a request that leaves the machine is refused (``conftest.page``).

Every page visited is checked by axe-core (no serious or critical violation) and
photographed under ``test-output/screenshots/``; the actions are taken with the keyboard
alone (Tab to reach, Enter to activate, typing to fill). ``FAIRBILL_UPDATE_DOCS=1``
also refreshes ``docs/portal-cancel-preview.png`` from the run.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from .conftest import ROOT, Live, check_page, tab_to


def enter(page: Any, live: Live, policy: str) -> None:
    page.goto(f"/portal/enter?token={live.world.tokens[policy]}")
    assert page.url == f"{live.url}/portal/", "the token must not stay in the address bar"


def test_a_kalenner_customer_cancels_in_the_guarantee_in_french_with_the_keyboard(
    page: Any, live: Live
) -> None:
    enter(page, live, "kalenner")
    assert page.get_attribute("html", "lang") == "fr"
    cookie = next(c for c in page.context.cookies() if c["name"] == "fairbill_portal")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == ""  # no script can read the session
    check_page(page, "portal-home")

    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    tab_to(page, "Détails et résiliation")
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal/subscriptions/sub_*")
    check_page(page, "portal-subscription")

    # The preview is on the page; the confirmation comes in place (htmx), with the focus.
    tab_to(page, "Résilier cet abonnement")
    page.keyboard.press("Enter")
    page.wait_for_selector("#cancel-panel #cancel-confirm")
    # The focus moves once htmx has settled the swap (``htmx:afterSettle``), a moment
    # after the panel is in the page: waited for, and then it must be on the heading.
    # ``expect`` polls with Playwright's own matcher; ``wait_for_function`` would evaluate
    # a string in the page, which its Content-Security-Policy (no 'unsafe-eval') refuses
    # whenever the first check comes before the focus moved.
    from playwright.sync_api import expect  # installed wherever ``page`` is

    expect(page.locator("#confirm-title")).to_be_focused(timeout=5000)
    assert page.evaluate("document.activeElement.id") == "confirm-title"
    assert "Vous êtes remboursé de 29,00\xa0€" in page.inner_text("main")
    shot = check_page(page, "portal-cancel-preview")
    if os.environ.get("FAIRBILL_UPDATE_DOCS") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "portal-cancel-preview.png")

    tab_to(page, "#reason")
    page.keyboard.type("Trop cher pour mon usage.")
    tab_to(page, "Résilier mon abonnement")
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal/decisions/dec_*")
    main = page.inner_text("main")
    assert "29,00\xa0€" in main and "Explication" in main
    assert "within the 14-day guarantee" in main  # the engine's words, marked lang="en"
    assert "kalenner/guarantee" in main
    check_page(page, "portal-decision")

    for path, name in (
        ("/portal/billing", "portal-billing"),
        ("/portal/decisions", "portal-decisions"),
        ("/portal/requests", "portal-requests"),
        ("/portal/policy", "portal-policy"),
    ):
        page.goto(path)
        check_page(page, name)
    page.goto("/portal/billing")
    tab_to(page, "Reçu 1")
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal/payments/pay_*")
    assert "29,00\xa0€" in page.inner_text("main")
    check_page(page, "portal-receipt")
    tab_to(page, "Facture 1")
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal/invoices/inv_*")
    check_page(page, "portal-invoice")

    tab_to(page, "Se déconnecter")
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal/signed-out")
    check_page(page, "portal-signed-out")
    assert page.goto("/portal/").status == 401


def test_a_refund_request_with_the_keyboard_and_the_portals_defences(page: Any, live: Live) -> None:
    enter(page, live, "emailconsul")
    ids = live.world.ids("emailconsul-active")
    page.goto(f"/portal/payments/{ids['pay']}/refund")
    check_page(page, "portal-refund-kinds")
    tab_to(page, "Ask for this: Money-back guarantee")
    page.keyboard.press("Enter")
    page.wait_for_url("**/refund?kind=money_back")
    check_page(page, "portal-refund-form")
    tab_to(page, "#reason")
    page.keyboard.type("We never sent a campaign.")
    tab_to(page, "#order_numbers")
    page.keyboard.type("1")
    tab_to(page, "Send the request")
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal/requests/req_*")
    assert "In review: the answer is due by March 16, 2026." in page.inner_text("main")
    check_page(page, "portal-request")

    # Another customer's pages do not exist for this session.
    other = live.world.ids("kalenner-active")
    for path in (f"/portal/subscriptions/{other['sub']}", f"/portal/payments/{other['pay']}"):
        response = page.goto(path)
        assert response.status == 404, path
    page.errors.clear()  # the browser logs each 404 document: those were the point
    check_page(page, "portal-not-found")
    # A form posted without the session's CSRF token is refused (the cookie goes along).
    refused = page.request.post(
        f"/portal/subscriptions/{ids['sub']}/cancel", form={"reason": "forged"}
    )
    assert refused.status == 403


def test_the_api_docs_work_offline(page: Any, live: Live) -> None:
    page.goto("/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "fairbill" in page.inner_text(".swagger-ui .info .title")
    page.screenshot(path=str(check_dir() / "docs-swagger.png"))
    page.goto("/redoc")
    page.wait_for_selector("h1")
    assert "fairbill" in page.inner_text("h1")
    page.screenshot(path=str(check_dir() / "docs-redoc.png"))
    assert not page.refused, f"requests that left the machine: {page.refused}"
    # ReDoc's bundle asks a CDN for its logo; the page's policy refuses it (and ReDoc then
    # hides the logo): that refusal is the only error allowed.
    others = [e for e in page.errors if "cdn.redoc.ly" not in e]
    assert not others, others


def check_dir() -> Any:
    from .conftest import OUTPUT

    folder = OUTPUT / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
