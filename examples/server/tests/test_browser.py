"""The web UI in headless Chromium from Debian's packages, driven by
Playwright for Python. Never a downloaded browser: Playwright only drives
/usr/bin/chromium (or $CHROMIUM)."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from conftest import REPO, ServerProcess

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("INGEST_ARTIFACTS", REPO / "artifacts")) / "browser"
# Chromium's own traffic (updates, sync, safe browsing) has nowhere to go on
# a closed network; these keep it from trying.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]
TIMEOUT_MS = 15_000
# The machine is shared with compilers: give the page time.
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        # Never skipped: a missing browser is a failure, with the fix.
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium "
            "(apt-get install chromium) or set CHROMIUM to a Chromium binary"
        )
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def launch(p: Playwright) -> Browser:
    return p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)


class Watch:
    """What a page did that it should not: dialogs, script errors, console errors."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("console", self._console)

    def _dialog(self, d: Any) -> None:
        self.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    def _console(self, msg: Any) -> None:
        # A failed request is logged as an error by Chromium; the 500 and 422
        # answers the tests provoke on purpose are not faults of the page.
        if msg.type == "error" and "Failed to load resource" not in msg.text:
            self.errors.append(f"console: {msg.text}")


@pytest.fixture
def page(browser: Browser, live_server: ServerProcess) -> Iterator[tuple[Page, Watch]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    watch = Watch(pg)
    pg.goto(live_server.base + "/")
    expect(pg.get_by_test_id("connection")).to_have_text("live")
    yield pg, watch
    context.close()
    assert watch.dialogs == [], watch.dialogs
    assert watch.errors == [], watch.errors


def uid() -> str:
    return "ui-" + uuid.uuid4().hex[:10]


def fill_event(pg: Page, client: str, metric: str, amount: str, ts: str) -> None:
    pg.get_by_test_id("tab-fields").click()
    pg.get_by_test_id("f-client").fill(client)
    pg.get_by_test_id("f-metric").fill(metric)
    pg.get_by_test_id("f-amount").fill(amount)
    pg.get_by_test_id("f-timestamp").fill(ts)


def rows_of(pg: Page, client: str) -> Any:
    pg.get_by_test_id("ev-client").fill(client)
    pg.get_by_test_id("ev-client").press("Enter")
    return pg.get_by_test_id("event-row").filter(has_text=client)


def shot(pg: Page, name: str, *, full: bool = True) -> None:
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)


def test_submit_through_the_form_and_see_it_listed(page: tuple[Page, Watch]) -> None:
    pg, _ = page
    client = uid()
    fill_event(pg, client, "sales", "1200", "2024-01-01")
    pg.get_by_test_id("submit-fields").click()
    expect(pg.get_by_test_id("result-status")).to_have_text("accepted")
    expect(pg.get_by_test_id("result-message")).to_contain_text("accepted and stored as event")
    expect(pg.get_by_test_id("result-event")).to_contain_text('"amount": 1200')
    row = pg.locator("#processed-body tr", has_text=client)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("2024-01-01 00:00:00Z")
    # The same again: a duplicate, and still one row.
    pg.get_by_test_id("submit-fields").click()
    expect(pg.get_by_test_id("result-status")).to_have_text("duplicate")
    expect(rows_of(pg, client)).to_have_count(1)
    shot(pg, "01-submitted")


def test_failure_then_retry_stores_once(
    page: tuple[Page, Watch], live_server: ServerProcess
) -> None:
    pg, _ = page
    client = uid()
    toggle = pg.get_by_test_id("failure-toggle")
    expect(toggle).to_have_attribute("aria-checked", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-checked", "true")
    expect(pg.get_by_test_id("failure-state")).to_have_text("Armed: after_insert \u00d7 1")
    shot(pg, "02-failure-armed", full=False)

    fill_event(pg, client, "sales", "50", "2024-01-03T10:00:00Z")
    pg.get_by_test_id("submit-fields").click()
    expect(pg.get_by_test_id("result-status")).to_have_text("error")
    expect(pg.get_by_test_id("result-message")).to_contain_text("nothing was stored")
    expect(pg.get_by_test_id("result")).to_contain_text("HTTP 500")
    # The one strike is spent: the switch shows off again.
    expect(toggle).to_have_attribute("aria-checked", "false")
    expect(rows_of(pg, client)).to_have_count(0)
    shot(pg, "03-failure-error")

    pg.get_by_test_id("retry").click()
    expect(pg.get_by_test_id("result-status")).to_have_text("accepted")
    pg.get_by_test_id("submit-fields").click()
    expect(pg.get_by_test_id("result-status")).to_have_text("duplicate")
    expect(rows_of(pg, client)).to_have_count(1)
    with requests.get(
        live_server.base + "/api/aggregate", params={"clientId": client}, timeout=10
    ) as r:
        assert r.json()["count"] == 1
    shot(pg, "04-retried-once")


def test_a_rejection_shows_its_reasons(page: tuple[Page, Watch]) -> None:
    pg, _ = page
    client = uid()
    pg.get_by_test_id("tab-raw").click()
    pg.get_by_test_id("raw-json").fill(
        json.dumps({"source": client, "payload": {"metric": "views"}})
    )
    pg.get_by_test_id("submit-raw").click()
    expect(pg.get_by_test_id("result-status")).to_have_text("rejected")
    reasons = pg.get_by_test_id("result").get_by_test_id("reasons")
    expect(reasons).to_contain_text("missing_field")
    expect(reasons.locator("li")).to_have_count(2)
    expect(reasons).to_contain_text("amount")
    expect(reasons).to_contain_text("timestamp")
    item = pg.get_by_test_id("rejected-item").filter(has_text=client)
    expect(item).to_have_count(1)
    expect(item.get_by_test_id("reasons").locator("li")).to_have_count(2)
    expect(item.get_by_test_id("rejected-raw")).to_contain_text(f'"source": "{client}"')
    shot(pg, "05-rejected")


def test_a_conflict_shows_the_stored_event_and_what_differs(
    page: tuple[Page, Watch], live_server: ServerProcess
) -> None:
    pg, _ = page
    client = uid()
    first = {"client": client, "metric": "sales", "amount": 8, "ts": "2024-08-01", "event_id": "e1"}
    with requests.post(live_server.base + "/api/events", json=first, timeout=10) as r:
        assert r.status_code == 201, r.text
        stored_id = r.json()["id"]
    counter = pg.get_by_test_id("stat-conflict")
    expect(counter).to_have_text(re.compile(r"^\d+$"))
    before = int(counter.inner_text())
    expect(pg.get_by_test_id("stat-evicted_rejected")).to_have_text(re.compile(r"^\d+$"))

    # The same client, metric, timestamp and amount: the built-in key; another event_id.
    pg.get_by_test_id("tab-raw").click()
    pg.get_by_test_id("raw-json").fill(json.dumps({**first, "event_id": "e2"}))
    pg.get_by_test_id("submit-raw").click()
    status = pg.get_by_test_id("result-status")
    expect(status).to_have_text("conflict")
    expect(status).to_have_class(re.compile(r"\bconflict\b"))
    expect(pg.get_by_test_id("result")).to_contain_text("HTTP 409")
    expect(pg.get_by_test_id("result-message")).to_contain_text(f"event #{stored_id}")
    reasons = pg.get_by_test_id("result").get_by_test_id("reasons")
    expect(reasons.locator("li")).to_have_count(1)
    expect(reasons).to_contain_text("event_id")
    expect(reasons).to_contain_text('stored "e1", sent "e2"')
    expect(pg.get_by_test_id("result-event")).to_contain_text('"event_id": "e1"')
    expect(counter).to_have_text(str(before + 1))
    expect(rows_of(pg, client)).to_have_count(1)
    shot(pg, "10-conflict")


def test_malformed_json_shows_the_servers_message(page: tuple[Page, Watch]) -> None:
    pg, _ = page
    pg.get_by_test_id("tab-raw").click()
    pg.get_by_test_id("raw-json").fill('{"source": "x", ')
    pg.get_by_test_id("submit-raw").click()
    expect(pg.get_by_test_id("result-status")).to_have_text("error")
    expect(pg.get_by_test_id("result-message")).to_contain_text("malformed JSON")
    expect(pg.get_by_test_id("retry")).to_have_count(0)


XSS = "<img src=x onerror=alert(1)>"


def test_hostile_event_text_is_shown_as_text(page: tuple[Page, Watch]) -> None:
    pg, watch = page
    client = uid() + XSS
    hostile = {
        "source": client,
        "payload": {
            "metric": XSS,
            "value": 3,
            "timestamp": "2024-01-05",
            "note": "<script>alert(2)</script>",
            XSS: "<b onmouseover=alert(3)>bold</b>",
        },
    }
    rejected = {"source": client, "payload": {"metric": XSS, "why": "<svg onload=alert(4)>"}}
    pg.get_by_test_id("tab-raw").click()
    pg.get_by_test_id("raw-json").fill(json.dumps(hostile))
    pg.get_by_test_id("submit-raw").click()
    expect(pg.get_by_test_id("result-status")).to_have_text("accepted")
    expect(pg.get_by_test_id("result-event")).to_contain_text(XSS)
    pg.get_by_test_id("raw-json").fill(json.dumps(rejected))
    pg.get_by_test_id("submit-raw").click()
    expect(pg.get_by_test_id("result-status")).to_have_text("rejected")

    row = pg.get_by_test_id("event-row").filter(has_text=client)
    expect(row).to_have_count(1)
    expect(row).to_contain_text(XSS)
    expect(row).to_contain_text("<script>alert(2)</script>")
    expect(pg.get_by_test_id("rejected-item").filter(has_text=client)).to_contain_text(
        "<svg onload=alert(4)>"
    )
    # Nothing of the data became an element.
    assert pg.locator("main img, main script, main b, main svg[onload]").count() == 0
    pg.get_by_test_id("event-row").filter(has_text=client).hover()
    pg.wait_for_timeout(500)
    assert watch.dialogs == []
    shot(pg, "06-hostile-text")


def test_the_chart_draws_for_grouped_aggregates(
    page: tuple[Page, Watch], live_server: ServerProcess
) -> None:
    pg, _ = page
    client = uid()
    days = {"2024-03-01": [10, 20], "2024-03-02": [5], "2024-03-04": [40]}
    batch = [
        {"client": client, "metric": "sales", "amount": v, "ts": f"{d}T{10 + i}:00:00Z"}
        for d, values in days.items()
        for i, v in enumerate(values)
    ]
    with requests.post(live_server.base + "/api/events", json=batch, timeout=10) as r:
        assert r.status_code == 200

    pg.get_by_test_id("agg-client").fill(client)
    pg.get_by_test_id("agg-group").select_option("day")
    pg.get_by_test_id("agg-apply").click()
    expect(pg.get_by_test_id("agg-count")).to_have_text("4")
    expect(pg.get_by_test_id("agg-sum")).to_have_text("75")
    bars = pg.get_by_test_id("chart-svg").get_by_test_id("chart-bar")
    # Four days from the first to the last, the empty one drawn as zero.
    expect(bars).to_have_count(4)
    heights = [float(b.get_attribute("height") or 0) for b in bars.all()]
    assert heights[3] > heights[0] > heights[1] > heights[2] == 0, heights
    assert "30" in (bars.nth(0).text_content() or "")
    pg.get_by_test_id("chart").scroll_into_view_if_needed()
    shot(pg, "07-chart")

    pg.get_by_test_id("agg-measure").select_option("count")
    expect(bars).to_have_count(4)
    pg.get_by_test_id("agg-group").select_option("")
    expect(pg.get_by_test_id("chart-empty")).to_contain_text("Group by")
    pg.get_by_test_id("agg-group").select_option("month")
    expect(bars).to_have_count(1)


def test_aggregates_go_stale_then_unavailable_then_recover(
    page: tuple[Page, Watch], live_server: ServerProcess
) -> None:
    pg, _ = page
    client = uid()
    # Through the form, so the page's counters already know of the event: a
    # change seen later by the poll would reload the aggregate and spend the
    # armed failure before the test's own request.
    fill_event(pg, client, "sales", "9", "2024-04-01")
    pg.get_by_test_id("submit-fields").click()
    expect(pg.get_by_test_id("result-status")).to_have_text("accepted")
    expect(rows_of(pg, client)).to_have_count(1)
    pg.get_by_test_id("agg-client").fill(client)
    pg.get_by_test_id("agg-apply").click()
    expect(pg.get_by_test_id("agg-count")).to_have_text("1")
    expect(pg.get_by_test_id("agg-stale")).to_be_hidden()

    arm = {"point": "aggregate", "times": 1}
    with requests.post(live_server.base + "/api/simulate-failure", json=arm, timeout=10) as r:
        assert r.json()["enabled"] is True
    pg.get_by_test_id("agg-apply").click()
    expect(pg.get_by_test_id("agg-stale")).to_be_visible()
    expect(pg.get_by_test_id("agg-stale")).to_contain_text("stale")
    expect(pg.get_by_test_id("agg-count")).to_have_text("1")

    # A query never answered before: no cache, so 503, and the page retries
    # by itself after Retry-After.
    with requests.post(live_server.base + "/api/simulate-failure", json=arm, timeout=10) as r:
        assert r.json()["enabled"] is True
    pg.get_by_test_id("agg-client").fill(client + "-new")
    pg.get_by_test_id("agg-apply").click()
    expect(pg.get_by_test_id("agg-error")).to_contain_text("cannot be read")
    expect(pg.get_by_test_id("agg-error")).to_contain_text("retrying in 5 s")
    expect(pg.get_by_test_id("agg-stale")).to_be_hidden()
    expect(pg.get_by_test_id("agg-count")).to_have_text("\u2013")
    expect(pg.get_by_test_id("failure-toggle")).to_have_attribute("aria-checked", "false")
    pg.locator("#aggregates").scroll_into_view_if_needed()
    shot(pg, "09-aggregate-unavailable", full=False)
    expect(pg.get_by_test_id("agg-error")).to_be_hidden(timeout=12_000)
    expect(pg.get_by_test_id("agg-count")).to_have_text("0")
    expect(pg.get_by_test_id("agg-stale")).to_be_hidden()


def test_processed_events_page(page: tuple[Page, Watch], live_server: ServerProcess) -> None:
    pg, _ = page
    client = uid()
    batch = [
        {"client": client, "metric": "sales", "amount": i, "ts": f"2024-06-{i:02d}"}
        for i in range(1, 13)
    ]
    with requests.post(live_server.base + "/api/events", json=batch, timeout=10) as r:
        assert r.json()["counts"]["accepted"] == 12
    rows = rows_of(pg, client)
    expect(rows).to_have_count(10)
    expect(rows.first).to_contain_text("2024-06-12")  # newest first
    expect(pg.get_by_test_id("processed-prev")).to_be_disabled()
    pg.get_by_test_id("processed-next").click()
    expect(pg.get_by_test_id("processed-page")).to_have_text("Page 2")
    expect(rows).to_have_count(2)
    expect(rows.last).to_contain_text("2024-06-01")
    expect(pg.get_by_test_id("processed-next")).to_be_disabled()
    pg.get_by_test_id("processed-prev").click()
    expect(pg.get_by_test_id("processed-page")).to_have_text("Page 1")
    expect(rows).to_have_count(10)


def test_a_batch_and_a_chosen_failure_point(page: tuple[Page, Watch]) -> None:
    pg, _ = page
    client = uid()
    batch = [
        {"client": client, "metric": "sales", "amount": 5, "ts": "2024-07-01"},
        {"client": client, "metric": "sales", "amount": "5", "ts": "2024-07-01T00:00:00Z"},
        {"client": client, "value": True},
    ]
    pg.get_by_test_id("tab-raw").click()
    pg.get_by_test_id("raw-json").fill(json.dumps(batch))
    pg.get_by_test_id("submit-raw").click()
    expect(pg.get_by_test_id("result-message")).to_have_text(
        "1 accepted \u00b7 1 duplicate \u00b7 0 conflict \u00b7 1 rejected"
    )

    # after_commit: the event is kept but the answer is lost; the retry says
    # duplicate.
    pg.locator("#failure summary").click()
    pg.get_by_test_id("failure-point").select_option("after_commit")
    pg.get_by_test_id("failure-times").fill("1")
    pg.locator("#failure-form button[type=submit]").click()
    expect(pg.get_by_test_id("failure-state")).to_have_text("Armed: after_commit \u00d7 1")
    one = {"client": client, "metric": "sales", "amount": 6, "ts": "2024-07-02"}
    pg.get_by_test_id("raw-json").fill(json.dumps(one))
    pg.get_by_test_id("submit-raw").click()
    expect(pg.get_by_test_id("result-message")).to_contain_text("the event was stored")
    pg.get_by_test_id("retry").click()
    expect(pg.get_by_test_id("result-status")).to_have_text("duplicate")
    expect(rows_of(pg, client)).to_have_count(2)


def test_no_horizontal_scroll_at_390px(browser: Browser, live_server: ServerProcess) -> None:
    long_word = "x" * 200  # under the rules' max_text_len of 256
    body = {"source": uid() + long_word, "metric": long_word, "amount": 1, "ts": "2024-01-09"}
    with requests.post(live_server.base + "/api/events", json=body, timeout=10) as r:
        assert r.status_code == 201
    with requests.post(
        live_server.base + "/api/events", json={"source": long_word, "payload": {}}, timeout=10
    ) as r:
        assert r.status_code == 422

    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    try:
        pg = context.new_page()
        pg.set_default_timeout(TIMEOUT_MS)
        watch = Watch(pg)
        pg.goto(live_server.base + "/")
        expect(pg.get_by_test_id("connection")).to_have_text("live")
        expect(pg.get_by_test_id("event-row").first).to_be_visible()
        expect(pg.get_by_test_id("rejected-item").first).to_be_visible()
        expect(pg.get_by_test_id("chart-bar").first).to_be_attached()
        width = pg.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"scrollWidth {width} at a 390 px viewport"
        pg.get_by_test_id("tab-raw").click()
        pg.get_by_test_id("failure-toggle").scroll_into_view_if_needed()
        assert pg.evaluate("document.documentElement.scrollWidth") <= 390
        shot(pg, "08-phone-390")
        assert watch.errors == [] and watch.dialogs == []
    finally:
        context.close()
