"""The web UI in headless Chromium from Debian's packages, driven by
Playwright for Python. Never a downloaded browser: Playwright only drives
/usr/bin/chromium (or $CHROMIUM)."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import ingest
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
        # The page polls for as long as it is open: it must stay far below
        # the default rate limit the live server runs with.
        page.on("response", self._response)

    def _response(self, r: Any) -> None:
        if r.status == 429:
            self.errors.append(f"rate limited: {r.request.method} {r.url}")

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


def post_batch(live_server: ServerProcess, batch: list[dict[str, Any]]) -> None:
    with requests.post(live_server.base + "/api/events", json=batch, timeout=10) as r:
        assert r.status_code == 200, r.text
        assert r.json()["counts"]["accepted"] == len(batch), r.text


def show_aggregate(pg: Page, client: str, group: str, split: str = "") -> Any:
    """Aggregate `client`'s events by `group` (and `split`); the chart's plot."""
    pg.get_by_test_id("agg-client").fill(client)
    pg.get_by_test_id("agg-split").select_option(split)
    pg.get_by_test_id("agg-group").select_option(group)
    pg.get_by_test_id("agg-apply").click()
    plot = pg.get_by_test_id("chart-plot")
    expect(plot).to_have_attribute("data-bucket", group)
    return plot


# What the chart drew, from its uPlot instance: each series' points as
# [instant in ms, value, x in CSS pixels], and the gaps (null) between them.
DRAWN = """el => {
  const u = el.uplot;
  return u.data.slice(1).map((ys, s) => ({
    label: u.series[s + 1].label,
    points: ys.flatMap((v, i) => {
      const t = u.data[0][i];
      return v == null ? [] : [[t * 1000, v, u.valToPos(t, "x")]];
    }),
    gaps: ys.filter((v) => v === null).length,
  }));
}"""


def drawn(plot: Any) -> list[dict[str, Any]]:
    return plot.evaluate(DRAWN)


def ms(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000


def assert_on_a_time_axis(points: list[list[float]]) -> None:
    """x is a linear function of time: pixels per millisecond the same
    between every two consecutive points."""
    assert len(points) >= 3, points
    rates = [(b[2] - a[2]) / (b[0] - a[0]) for a, b in zip(points, points[1:])]
    assert all(r > 0 for r in rates), points
    assert max(rates) / min(rates) < 1.01, (rates, points)


def test_the_chart_draws_for_grouped_aggregates(
    page: tuple[Page, Watch], live_server: ServerProcess
) -> None:
    pg, _ = page
    client = uid()
    days = {"2024-03-01": [10, 20], "2024-03-02": [5], "2024-03-04": [40]}
    post_batch(
        live_server,
        [
            {"client": client, "metric": "sales", "amount": v, "ts": f"{d}T{10 + i}:00:00Z"}
            for d, values in days.items()
            for i, v in enumerate(values)
        ],
    )

    plot = show_aggregate(pg, client, "day")
    expect(pg.get_by_test_id("agg-count")).to_have_text("4")
    expect(pg.get_by_test_id("agg-sum")).to_have_text("75")
    # Three days with events: three points; 3 March is a gap, not a zero.
    expect(plot).to_have_attribute("data-series", "1")
    expect(plot).to_have_attribute("data-points", "3")
    [series] = drawn(plot)
    assert [p[:2] for p in series["points"]] == [
        [ms("2024-03-01T00:00:00Z"), 30],
        [ms("2024-03-02T00:00:00Z"), 5],
        [ms("2024-03-04T00:00:00Z"), 40],
    ]
    assert series["gaps"] == 1
    assert_on_a_time_axis(series["points"])
    assert series["label"] == "sum"
    pg.get_by_test_id("chart").scroll_into_view_if_needed()
    shot(pg, "07-chart")

    pg.get_by_test_id("agg-measure").select_option("count")
    expect(plot).to_have_attribute("data-points", "3")
    assert [p[1] for p in drawn(plot)[0]["points"]] == [2, 1, 1]
    pg.get_by_test_id("agg-group").select_option("")
    expect(pg.get_by_test_id("chart-empty")).to_contain_text("Group by")
    expect(pg.get_by_test_id("chart-plot")).to_have_count(0)
    pg.get_by_test_id("agg-group").select_option("month")
    expect(plot).to_have_attribute("data-points", "1")

    # The groups as a table, the bucket in UTC.
    groups = pg.get_by_test_id("agg-groups")
    groups.locator("summary").click()
    expect(groups.get_by_test_id("group-row")).to_have_count(1)
    expect(groups.get_by_test_id("group-row")).to_contain_text("2024-03-01 00:00:00Z")
    expect(groups.locator("th").first).to_have_text("Bucket (UTC)")


@pytest.mark.parametrize(
    ("group", "stamps", "label"),
    [
        # Uneven steps: equal-width slots would put these at equal distances.
        (
            "hour",
            [
                "2024-05-01T09:00:00Z",
                "2024-05-01T10:00:00Z",
                "2024-05-01T17:00:00Z",
                "2024-05-02T02:00:00Z",
            ],
            "2024-05-01 09:00",
        ),
        (
            "day",
            [
                "2024-05-01T12:00:00Z",
                "2024-05-02T12:00:00Z",
                "2024-05-20T12:00:00Z",
                "2024-07-01T12:00:00Z",
            ],
            "2024-05-01",
        ),
        (
            "month",
            [
                "2014-01-15T00:00:00Z",
                "2014-02-15T00:00:00Z",
                "2019-06-15T00:00:00Z",
                "2024-12-15T00:00:00Z",
            ],
            "2014-01",
        ),
    ],
)
def test_the_chart_puts_buckets_at_their_time(
    page: tuple[Page, Watch], live_server: ServerProcess, group: str, stamps: list[str], label: str
) -> None:
    pg, _ = page
    client = uid()
    post_batch(
        live_server,
        [{"client": client, "metric": "m", "amount": i + 1, "ts": t} for i, t in enumerate(stamps)],
    )
    plot = show_aggregate(pg, client, group)
    expect(plot).to_have_attribute("data-points", "4")
    [series] = drawn(plot)
    assert_on_a_time_axis(series["points"])
    # Two gaps: between the second and third buckets, and the third and fourth.
    assert series["gaps"] == 2
    # The legend names a bucket as the bucket's own text, in UTC.
    first = plot.evaluate("el => el.uplot.series[0].value(el.uplot, el.uplot.data[0][0], 0, 0)")
    assert first == label
    # uPlot's labels: as many as fit, none twice (none overlap: uPlot keeps
    # them at least 64 px apart), and the first names the year.
    expect(plot).to_have_attribute("data-ticks", re.compile(r'^\["'))  # drawn
    ticks = json.loads(plot.get_attribute("data-ticks") or "[]")
    width = plot.evaluate("el => el.uplot.bbox.width / devicePixelRatio")
    assert 2 <= len(ticks) <= width / 64 + 1, ticks
    assert len(set(ticks)) == len(ticks), ticks
    assert re.search(r"\b(19|20)\d\d\b", ticks[0]), ticks
    pg.get_by_test_id("chart").scroll_into_view_if_needed()
    shot(pg, f"11-time-axis-{group}", full=False)


def test_a_gap_between_two_days_is_drawn_as_one(
    page: tuple[Page, Watch], live_server: ServerProcess
) -> None:
    pg, _ = page
    client = uid()
    post_batch(
        live_server,
        [
            {"client": client, "metric": "m", "amount": 3, "ts": "2024-01-01T08:00:00Z"},
            {"client": client, "metric": "m", "amount": 4, "ts": "2024-01-10T08:00:00Z"},
        ],
    )
    plot = show_aggregate(pg, client, "day")
    expect(plot).to_have_attribute("data-points", "2")
    [series] = drawn(plot)
    (t1, _, x1), (t10, _, x10) = series["points"]
    assert series["gaps"] == 1, "no line across the eight empty days"
    one_day = plot.evaluate(
        "(el, t) => el.uplot.valToPos(t / 1000 + 86400, 'x') - el.uplot.valToPos(t / 1000, 'x')",
        t1,
    )
    # Nine days apart on the axis, not adjacent slots.
    assert (t10 - t1) == 9 * 86_400_000
    assert abs((x10 - x1) - 9 * one_day) < 1, (x1, x10, one_day)
    assert x10 - x1 > 0.8 * plot.evaluate("el => el.uplot.bbox.width / devicePixelRatio")
    pg.get_by_test_id("chart").scroll_into_view_if_needed()
    shot(pg, "12-chart-gap", full=False)


def test_one_series_per_client_and_per_metric(
    page: tuple[Page, Watch], live_server: ServerProcess
) -> None:
    pg, watch = page
    base = uid()
    a, b = base + "-a", base + "-b" + XSS
    sales, views = base + "-sales", base + "-views"
    post_batch(
        live_server,
        [
            {"client": a, "metric": sales, "amount": 1, "ts": "2024-02-01"},
            {"client": a, "metric": sales, "amount": 2, "ts": "2024-02-02"},
            {"client": a, "metric": views, "amount": 7, "ts": "2024-02-03"},
            {"client": b, "metric": sales, "amount": 5, "ts": "2024-02-02"},
            {"client": b, "metric": sales, "amount": 6, "ts": "2024-02-04"},
        ],
    )
    pg.get_by_test_id("agg-metric").fill(sales)
    plot = show_aggregate(pg, "", "day", "client_id")
    expect(plot).to_have_attribute("data-series", "2")
    expect(plot).to_have_attribute("data-points", "4")
    first, second = drawn(plot)
    assert (first["label"], [p[1] for p in first["points"]]) == (a, [1, 2])
    assert (second["label"], [p[1] for p in second["points"]]) == (b, [5, 6])
    # One time axis for both: 2 February is at one place.
    assert first["points"][1][::2] == second["points"][0][::2]
    assert_on_a_time_axis([*first["points"], second["points"][1]])
    legend = pg.get_by_test_id("chart").locator(".u-legend")
    expect(legend).to_contain_text(a)
    expect(legend).to_contain_text(b)  # as text: no element made of it
    assert pg.locator("main img").count() == 0

    pg.get_by_test_id("agg-metric").fill("")
    plot = show_aggregate(pg, a, "day", "metric")
    expect(plot).to_have_attribute("data-series", "2")
    expect(plot).to_have_attribute("data-points", "3")
    assert [s["label"] for s in drawn(plot)] == [sales, views]

    plot = show_aggregate(pg, a, "day", "client_id,metric")
    expect(plot).to_have_attribute("data-series", "2")
    assert [s["label"] for s in drawn(plot)] == [f"{a} \u00b7 {sales}", f"{a} \u00b7 {views}"]
    groups = pg.get_by_test_id("agg-groups")
    groups.locator("summary").click()
    expect(groups.get_by_test_id("group-row")).to_have_count(3)
    expect(groups.locator("th")).to_have_text(
        ["Bucket (UTC)", "Client", "Metric", "count", "sum", "avg", "min", "max"]
    )
    pg.get_by_test_id("chart").scroll_into_view_if_needed()
    shot(pg, "13-chart-series", full=False)
    assert watch.dialogs == []


def test_the_time_zone_selector_sends_tz(page: tuple[Page, Watch]) -> None:
    pg, _ = page
    select = pg.get_by_test_id("tz-select")
    expect(select).to_have_value("UTC")
    zones = select.locator("option")
    assert zones.count() > 100, "every zone the browser knows"
    assert zones.first.get_attribute("value") == "UTC"
    values = zones.evaluate_all("os => os.map(o => o.value)")
    assert len(values) == len(set(values))
    assert {"Europe/Paris", "Asia/Tokyo", "America/New_York"} <= set(values)

    # UTC, the API's default, is not sent; another zone is.
    with pg.expect_request(lambda r: "/api/aggregate" in r.url) as first:
        pg.get_by_test_id("agg-apply").click()
    assert "tz" not in parse_qs(urlsplit(first.value.url).query)
    with pg.expect_request(lambda r: "/api/aggregate" in r.url) as chosen:
        select.select_option("Asia/Tokyo")
    assert parse_qs(urlsplit(chosen.value.url).query)["tz"] == ["Asia/Tokyo"]


def test_the_chart_labels_time_in_the_zone_it_is_given(page: tuple[Page, Watch]) -> None:
    """The chart module alone, on groups as the API gives them: the same
    instants labelled in UTC and in Tokyo (+09:00)."""
    pg, _ = page
    labels = pg.evaluate(
        """async () => {
          const { chartData, drawChart } = await import("/static/js/chart.js");
          const groups = ["2024-03-30T14:00:00.000Z", "2024-03-30T15:00:00.000Z",
                          "2024-03-30T18:00:00.000Z"].map((bucket, i) => ({ bucket, sum: i + 1 }));
          const out = {};
          for (const tz of ["UTC", "Asia/Tokyo"]) {
            const fig = document.createElement("figure");
            fig.style.width = "600px";
            document.body.append(fig);
            drawChart(fig, chartData(groups, "hour", "sum"),
                      { bucket: "hour", measure: "sum", caption: "sum per hour", tz });
            const plot = fig.querySelector("[data-testid=chart-plot]");
            const u = plot.uplot;
            // uPlot draws in a microtask after it is made.
            while (!plot.dataset.ticks) await new Promise((r) => setTimeout(r, 10));
            out[tz] = { first: u.series[0].value(u, u.data[0][0], 0, 0),
                        ticks: JSON.parse(plot.dataset.ticks), tz: plot.dataset.tz };
            fig.remove();
          }
          return out;
        }"""
    )
    assert labels["UTC"]["first"] == "2024-03-30 14:00"
    assert labels["Asia/Tokyo"]["first"] == "2024-03-30 23:00"
    assert labels["Asia/Tokyo"]["tz"] == "Asia/Tokyo"
    # Tokyo's day changes at 15:00 UTC: its ticks name 31 March, UTC's do not.
    assert any("Mar 31" in t for t in labels["Asia/Tokyo"]["ticks"]), labels
    assert not any("Mar 31" in t for t in labels["UTC"]["ticks"]), labels


def test_a_chosen_zone_buckets_and_labels_the_aggregate(
    page: tuple[Page, Watch], live_server: ServerProcess
) -> None:
    pg, _ = page
    client = uid()
    # 00:30 on 31 March in Paris, still 30 March in UTC.
    post_batch(
        live_server,
        [{"client": client, "metric": "m", "amount": 2, "ts": "2024-03-30T23:30:00Z"}],
    )
    plot = show_aggregate(pg, client, "day")
    expect(plot).to_have_attribute("data-tz", "UTC")
    pg.get_by_test_id("tz-select").select_option("Europe/Paris")
    expect(plot).to_have_attribute("data-tz", "Europe/Paris")
    [series] = drawn(plot)
    assert [p[0] for p in series["points"]] == [ms("2024-03-30T23:00:00Z")]
    first = plot.evaluate("el => el.uplot.series[0].value(el.uplot, el.uplot.data[0][0], 0, 0)")
    assert first == "2024-03-31"
    groups = pg.get_by_test_id("agg-groups")
    groups.locator("summary").click()
    expect(groups.locator("th").first).to_have_text("Bucket (Europe/Paris)")
    expect(groups.get_by_test_id("group-row")).to_contain_text("2024-03-31 00:00:00+01:00")
    pg.get_by_test_id("chart").scroll_into_view_if_needed()
    shot(pg, "14-chart-paris", full=False)


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
        expect(pg.get_by_test_id("chart-plot")).to_have_attribute(
            "data-points", re.compile(r"^[1-9]")
        )
        width = pg.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"scrollWidth {width} at a 390 px viewport"
        pg.get_by_test_id("tab-raw").click()
        pg.get_by_test_id("failure-toggle").scroll_into_view_if_needed()
        assert pg.evaluate("document.documentElement.scrollWidth") <= 390
        shot(pg, "08-phone-390")
        assert watch.errors == [] and watch.dialogs == []
    finally:
        context.close()


# ---- an API key, under make serve (issue 20) ----


def test_the_page_asks_for_a_key_and_keeps_it_for_the_tab(
    browser: Browser, serve_server: ServerProcess
) -> None:
    client = uid()
    token = serve_server.add_key(client)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    watch = Watch(pg)
    try:
        pg.goto(serve_server.base + "/")
        dialog = pg.get_by_test_id("key-dialog")
        expect(dialog).to_be_visible()
        expect(pg.get_by_test_id("connection")).to_have_text("key needed")
        shot(pg, "30-key-asked", full=False)

        # A key that is no key: the server's reason, and the page still asks.
        pg.get_by_test_id("key-input").fill("ik_0000000000000000_" + "0" * 64)
        pg.get_by_test_id("key-submit").click()
        expect(pg.get_by_test_id("key-error")).to_contain_text("not valid")
        expect(dialog).to_be_visible()

        pg.get_by_test_id("key-input").fill(token)
        pg.get_by_test_id("key-submit").click()
        expect(dialog).to_be_hidden()
        expect(pg.get_by_test_id("connection")).to_have_text("live")
        expect(pg.get_by_test_id("who-name")).to_have_text(f"client {client}")
        # A client key cannot drive the failure switch, and the process's
        # counters count every client's requests: neither is shown.
        expect(pg.locator("#failure")).to_be_hidden()
        expect(pg.get_by_test_id("stat-accepted")).to_be_hidden()
        expect(pg.get_by_test_id("stat-stored_events")).to_be_visible()

        # No client typed: the key's client is filled in.
        fill_event(pg, "", "sales", "7", "2024-01-02")
        pg.get_by_test_id("submit-fields").click()
        expect(pg.get_by_test_id("result-status")).to_have_text("accepted")
        expect(pg.get_by_test_id("result-event")).to_contain_text(client)
        expect(pg.get_by_test_id("stat-stored_events")).to_have_text("1")
        # Another client's event: refused, with the server's words.
        fill_event(pg, uid(), "sales", "7", "2024-01-02")
        pg.get_by_test_id("submit-fields").click()
        expect(pg.get_by_test_id("result")).to_contain_text("HTTP 403")
        expect(pg.get_by_test_id("result-message")).to_contain_text("nothing of this call")
        shot(pg, "31-client-key")

        # A reload keeps the key (the same tab); another tab must ask again.
        pg.reload()
        expect(pg.get_by_test_id("who-name")).to_have_text(f"client {client}")
        expect(dialog).to_be_hidden()
        other = context.new_page()
        other.goto(serve_server.base + "/")
        expect(other.get_by_test_id("key-dialog")).to_be_visible()
        other.close()
        assert "ik_" not in json.dumps(context.storage_state()), "the key reached storage"

        # Revoked while the page is open: the next poll asks for a key again.
        with ingest.Ingestor(str(serve_server.db)) as ing:
            assert ing.revoke_key(token.split("_")[1])
        expect(dialog).to_be_visible()
        expect(pg.get_by_test_id("key-error")).to_contain_text("not valid")

        # An admin key sees the switch; "Forget key" drops it.
        assert serve_server.admin_token is not None
        pg.get_by_test_id("key-input").fill(serve_server.admin_token)
        pg.get_by_test_id("key-submit").click()
        expect(pg.get_by_test_id("who-name")).to_have_text("admin key")
        expect(pg.locator("#failure")).to_be_visible()
        pg.get_by_test_id("key-forget").click()
        expect(dialog).to_be_visible()
    finally:
        context.close()
    assert watch.dialogs == [], watch.dialogs
    assert watch.errors == [], watch.errors
