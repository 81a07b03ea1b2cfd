"""The fleet page: served without a key, no traversal, and rendered by real headless Chromium
against a real daemon fed with a simulated fleet (rows, a forecast band, a non-blank
screenshot), and its live accuracy panel: the empty state before any score, then the
daemon's own scores once a replay has been scored."""

from __future__ import annotations

import http.client
import re
import shutil
import struct
import subprocess
import time
import zlib
from collections import Counter
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import falcon.testing
import pytest

from nordiqd.api.app import Deps, create_app
from tests.fleetdata import TINY_MODEL, backfill
from tests.harness import FAST_SUPERVISION, wait_for

CHROMIUM = "/usr/bin/chromium"
KEY = "k" * 43
SERVERS = 6
BROWSER_TRIES = 3
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",  # root in a container: the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

needs_chromium = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"{CHROMIUM} is absent: install Debian's chromium package (.ci/run does)",
)


# --- the page's files through create_app, no daemon ----------------------------------


@pytest.fixture
def client() -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(Deps(api_key=KEY, backends=None)))


def test_page_and_its_files_need_no_key(client: falcon.testing.TestClient) -> None:
    page = client.simulate_get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert 'src="/static/app.js"' in page.text
    for name, ctype in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("chart.js", "text/javascript; charset=utf-8"),
        ("format.js", "text/javascript; charset=utf-8"),
        ("accuracy.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ]:
        r = client.simulate_get(f"/static/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-type"] == ctype
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["x-content-type-options"] == "nosniff"


def test_etag_revalidation_answers_304(client: falcon.testing.TestClient) -> None:
    first = client.simulate_get("/static/app.js")
    again = client.simulate_get("/static/app.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize(
    "path",
    ["/static/../setup.cfg", "/static/..%2Fsetup.cfg", "/static/%2e%2e/setup.cfg", "/static/nope.js"],
)
def test_no_file_outside_the_page_is_served(client: falcon.testing.TestClient, path: str) -> None:
    for headers in ({}, {"X-API-Key": KEY}):
        r = client.simulate_get(path, headers=headers)
        assert r.status_code in (401, 404), (path, headers, r.status_code)
        assert "[options" not in r.text


def test_data_still_needs_the_key(client: falcon.testing.TestClient) -> None:
    assert client.simulate_get("/predictions/current").status_code == 401


def test_openapi_lists_the_page_as_public(client: falcon.testing.TestClient) -> None:
    paths = client.simulate_get("/openapi.json", headers={"X-API-Key": KEY}).json["paths"]
    assert paths["/"]["get"]["security"] == []
    assert paths["/static/{name}"]["get"]["security"] == []


def test_page_makes_no_external_requests() -> None:
    """No CDN, no web fonts: the only absolute URL in the page's files is the SVG namespace."""
    static = resources.files("nordiqd").joinpath("static")
    for entry in static.iterdir():
        if entry.name.endswith((".html", ".js", ".css", ".svg")):
            urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"')]*", entry.read_text()))
            assert urls <= {"http://www.w3.org/2000/svg"}, (entry.name, urls)


# --- headless Chromium against a real daemon -----------------------------------------


class DomSummary(HTMLParser):
    """What the dumped DOM shows: the table's server rows and the SVG shapes' classes."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.svg_classes: Counter[str] = Counter()
        self.texts: dict[str, str] = {}
        self._svg_depth = 0
        self._capture: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "svg":
            self._svg_depth += 1
        if tag == "tr" and a.get("data-server"):
            self.rows.append(a["data-server"] or "")
        if self._svg_depth and a.get("class"):
            self.svg_classes.update((a["class"] or "").split())
        if a.get("id") in ("model-kind", "n-ok", "n-warning", "n-critical", "detail-name"):
            self._capture = a["id"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._capture:
            self.texts[self._capture] = data.strip()
            self._capture = None


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and the pixels (as bytes per pixel) of an 8-bit RGB/RGBA PNG, stdlib only."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, bytearray()
    width = height = bpp = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, "unexpected PNG format"
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    prev = bytearray(stride)
    pixels: list[bytes] = []
    for r in range(height):
        ftype = raw[r * (stride + 1)]
        line = bytearray(raw[r * (stride + 1) + 1 : (r + 1) * (stride + 1)])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            line = bytearray((x + y) & 0xFF for x, y in zip(line, prev, strict=True))
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        pixels += [bytes(line[i : i + 3]) for i in range(0, stride, bpp)]
        prev = line
    return width, height, pixels


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    tmp.mkdir(parents=True, exist_ok=True)
    profile = tmp / "chromium-profile"
    return subprocess.run(
        [CHROMIUM, *BROWSER_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={"HOME": str(tmp), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )


def wait_for_forecasts(d, servers: int, timeout: float = 90.0) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        r = d.get("/predictions/current")
        if r.status_code == 200:
            body = r.json()
            if body["summary"]["forecast"] >= servers:
                return body
        time.sleep(0.5)
    raise AssertionError(f"no forecasts for {servers} servers after {timeout} s: {body.get('summary')}")


def render(tmp: Path, url: str, done, *args: str) -> tuple[subprocess.CompletedProcess[str], object]:  # type: ignore[no-untyped-def]
    """Run Chromium on ``url`` until ``done(run)`` gives a result (at most BROWSER_TRIES runs).

    On a loaded, shared machine a browser run now and then ends its virtual-time budget
    before the page's first answers arrive; a page that is really broken fails every run.
    """
    failures = []
    for attempt in range(BROWSER_TRIES):
        run = chromium(tmp / f"run{attempt}", "--virtual-time-budget=15000", *args, url)
        result = done(run) if run.returncode == 0 else None
        if result:
            return run, result
        failures.append(f"run {attempt}: rc {run.returncode}\n{run.stderr[-1500:]}\n{run.stdout[-1500:]}")
    raise AssertionError("\n---\n".join(failures))


@needs_chromium
def test_headless_chromium_renders_the_fleet(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(predictor={"refresh_s": 2.0})
    d.start()
    d.wait_ready()
    backfill(d.endpoint("ingest"), servers=SERVERS, days=1.0)
    fleet = wait_for_forecasts(d, SERVERS)

    page = d.get("/", key=None)
    assert page.status_code == 200 and 'src="/static/app.js"' in page.text
    # The raw path, not normalised by a client: nothing outside static/ comes back.
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    conn.request("GET", "/static/../setup.cfg")
    resp = conn.getresponse()
    assert resp.status in (401, 404) and b"[options" not in resp.read()
    conn.close()

    url = f"{d.url}/#key={d.key}"

    def rendered(run: subprocess.CompletedProcess[str]) -> DomSummary | None:
        dom = DomSummary()
        dom.feed(run.stdout)
        return dom if dom.rows and dom.svg_classes["band"] else None

    dump, dom = render(tmp_path, url, rendered, "--dump-dom")
    assert isinstance(dom, DomSummary)
    assert sorted(dom.rows) == sorted(fleet["servers"])
    assert dom.svg_classes["band"] >= 1 and dom.svg_classes["hist"] >= 1 and dom.svg_classes["p50"] >= 1
    assert dom.texts.get("model-kind") == "BASELINE"
    counts = {k: int(dom.texts[f"n-{k}"]) for k in ("ok", "warning", "critical")}
    # A pass runs every 2 s and levels move with the clock: the page shows the pass it
    # fetched, which is the one read before the render or one read after it.
    after = d.get("/predictions/current").json()
    assert counts in [{k: body["summary"][k] for k in counts} for body in (fleet, after)]
    assert dom.texts.get("detail-name") in fleet["servers"]
    assert d.key not in dump.stdout, "the key leaked into the page"

    shot = tmp_path / "fleet.png"

    def painted(run: subprocess.CompletedProcess[str]) -> str | None:
        if not shot.exists():
            return None
        width, height, pixels = png_pixels(shot)
        assert (width, height) == (1400, 1000)
        colours = Counter(pixels)
        background, most = colours.most_common(1)[0]
        # A blank or unstyled page is one colour, or nearly; the fleet page is many.
        ok = len(colours) > 100 and 1 - most / len(pixels) > 0.2
        return f"{len(colours)} colours, {most / len(pixels):.0%} {background.hex()}" if ok else None

    render(tmp_path, url, painted, f"--screenshot={shot}", "--window-size=1400,1000")


# --- the accuracy panel, against a real daemon that scores a replay ---------------------

ACC_STEP = 3600  # hourly steps: the tiny model's 24-step window is the day the naive reference needs
ACC_SERVERS = 4
NO_SCORE = "no forecast scored yet: scores appear one issue interval after the first forecast"


class AccuracyDom(HTMLParser):
    """The accuracy panel in a dumped DOM: texts and ``hidden`` of elements by id, the
    bucket table's cells, and the classes and versions of the skill chart's shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: dict[str, str] = {}
        self.hidden: set[str] = set()
        self.cells: dict[tuple[str, str], str] = {}
        self.chart_classes: Counter[str] = Counter()
        self.changes: list[str] = []
        self._capture: str | tuple[str, str] | None = None
        self._in_chart = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        ident = a.get("id")
        if ident and "hidden" in a:
            self.hidden.add(ident)
        if ident in ("accuracy-empty", "accuracy-version", "detail-skill", "detail-name", *PROMOTION_IDS):
            self._capture = ident
        if tag == "td" and a.get("data-bucket") and a.get("data-field"):
            self._capture = (a["data-bucket"] or "", a["data-field"] or "")
        if tag == "svg":
            self._in_chart = ident == "accuracy-chart"
        if self._in_chart and a.get("class"):
            self.chart_classes.update((a["class"] or "").split())
        if self._in_chart and a.get("data-version"):
            self.changes.append(a["data-version"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._in_chart = False
        if self._capture is not None and tag in ("p", "span", "h2", "td"):
            if isinstance(self._capture, str):
                self.texts.setdefault(self._capture, "")
            else:
                self.cells.setdefault(self._capture, "")
            self._capture = None

    def handle_data(self, data: str) -> None:
        if isinstance(self._capture, str):
            self.texts[self._capture] = self.texts.get(self._capture, "") + data
        elif self._capture is not None:
            self.cells[self._capture] = self.cells.get(self._capture, "") + data


def scored(d) -> dict:  # type: ignore[no-untyped-def]
    """The accuracy body once it has points in every bucket and two reads a second apart agree."""
    last: list[dict] = []

    def same() -> dict | None:
        body: dict = d.get("/admin/accuracy").json()
        versions = body["versions"]
        full = bool(versions) and all(versions[-1]["buckets"][b]["points"] for b in ("0-1h", "1-4h", "4-8h"))
        agreed = full and bool(last) and last[-1] == body
        last.append(body)
        time.sleep(1.0)
        return body if agreed else None

    result: dict = wait_for(same, 60, step=0.0)
    return result


PROMOTION_IDS = ("promotion-champion", "promotion-decision", "promotion-reasons", "promotion-next")


def dom_when(ready):  # type: ignore[no-untyped-def]
    """A ``render`` check: the accuracy DOM once ``ready(dom)``."""

    def done(run: subprocess.CompletedProcess[str]) -> AccuracyDom | None:
        dom = AccuracyDom()
        dom.feed(run.stdout)
        return dom if ready(dom) else None

    return done


def panel_shows(d, tmp: Path, url: str, server: str) -> tuple[dict, AccuracyDom]:  # type: ignore[no-untyped-def]
    """Render the page once the daemon's scores settle; check the panel shows exactly them.

    Returns:
        The accuracy body and the rendered panel.
    """
    body = scored(d)
    model = d.get("/predictions/current").json()["model"]
    name = str(model["version"]) if model["kind"] == "tft" else "baseline"
    short = name.removeprefix("tft_model_")  # as the page shows it
    (served,) = [v for v in body["versions"] if v["version"] == name]
    mine = [
        v
        for v in d.get("/admin/accuracy", params={"server": server}).json()["versions"]
        if v["version"] == name
    ]
    _, dom = render(
        tmp,
        url,
        dom_when(
            lambda dom: "accuracy-body" not in dom.hidden and short in dom.texts.get("detail-skill", "")
        ),
        "--dump-dom",
    )
    assert isinstance(dom, AccuracyDom)
    assert "accuracy-empty" in dom.hidden
    label = (
        f"TFT {name.removeprefix('tft_model_')}" if model["kind"] == "tft" else "baseline (seasonal naive)"
    )
    assert dom.texts["accuracy-version"].strip() == label
    for bucket in ("0-1h", "1-4h", "4-8h", "all"):
        want = served["buckets"][bucket]
        assert want["points"] > 0
        assert dom.cells[(bucket, "skill")] == f"{want['skill']:.2f}", bucket
        assert dom.cells[(bucket, "coverage")] == f"{want['coverage'] * 100:.0f} %", bucket
        assert dom.cells[(bucket, "points")] == str(want["points"]), bucket
    # One line per version scored, the naive reference, and a mark per model change in serving order.
    assert dom.chart_classes["skill"] == len([v for v in body["versions"] if v["hours"]]) >= 1
    assert dom.chart_classes["naive"] == 1
    assert dom.changes == [v["version"] for v in body["versions"]]
    assert dom.texts["detail-name"].strip() == server
    (own,) = mine
    assert dom.texts["detail-skill"].startswith(f"skill {own['skill']:.2f} · p10–p90 coverage ")
    assert f"{own['points']} points" in dom.texts["detail-skill"]
    return body, dom


@needs_chromium
def test_headless_chromium_renders_live_accuracy(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(
        supervisor=dict(FAST_SUPERVISION),
        model={**TINY_MODEL, "step_seconds": ACC_STEP},
        predictor={"min_history_steps": 6, "refresh_s": 2.0},
        accuracy={"issue_every_s": ACC_STEP},
        training={"min_records": 500},
        # One horizon of holdout, and the first candidate serves whatever naive scores.
        promotion={"holdout_hours": TINY_MODEL["horizon_steps"], "must_beat_baseline": False},
    )
    d.start()
    d.wait_ready()
    assert d.get("/admin/accuracy").json()["versions"] == []

    # Before any score: the panel says what is missing, not a blank box.
    _, empty = render(
        tmp_path / "empty",
        f"{d.url}/#key={d.key}",
        dom_when(lambda dom: dom.texts.get("accuracy-empty")),
        "--dump-dom",
    )
    assert isinstance(empty, AccuracyDom)
    assert empty.texts["accuracy-empty"].strip() == NO_SCORE
    assert "accuracy-empty" not in empty.hidden and "accuracy-body" in empty.hidden

    # History (more than the day the naive reference needs), then 6 h replayed in seconds:
    # the baseline serves and is scored.
    end = (int(time.time()) // ACC_STEP) * ACC_STEP
    # 38 h: with the replay, 36 steps before the gate's holdout to train on.
    for hours, until in ((38, end - 14 * ACC_STEP), (6, end - 8 * ACC_STEP)):
        backfill(d.endpoint("ingest"), servers=ACC_SERVERS, days=hours / 24, interval_s=600.0, end=until)
    fleet = wait_for_forecasts(d, ACC_SERVERS)
    server = sorted(fleet["servers"])[0]
    url = f"{d.url}/#key={d.key}&server={server}"
    body, dom = panel_shows(d, tmp_path / "baseline", url, server)
    assert [v["version"] for v in body["versions"]] == ["baseline"]
    # The served baseline is seasonal naive itself: skill 1, which checks the arithmetic.
    assert dom.cells[("all", "skill")] == "1.00"

    # A trained model takes over; 8 h more are replayed and scored under it.
    job = d.post("/admin/trigger-training?epochs=2").json()
    assert job["status"] == "queued", job
    wait_for(lambda: d.get("/predictions/current").json()["model"]["kind"] == "tft", 180, step=0.5)
    backfill(d.endpoint("ingest"), servers=ACC_SERVERS, days=8 / 24, interval_s=600.0, end=end)
    body, dom = panel_shows(d, tmp_path / "tft", url, server)
    assert [v["kind"] for v in body["versions"]] == ["baseline", "tft"]
    # The header names the champion, the gate's last decision with its reasons, the schedule.
    version = d.get("/predictions/current").json()["model"]["version"].removeprefix("tft_model_")
    _, header = render(
        tmp_path / "promotion",
        url,
        dom_when(lambda dom: dom.texts.get("promotion-champion") == version),
        "--dump-dom",
    )
    assert isinstance(header, AccuracyDom) and "promotion" not in header.hidden
    assert header.texts["promotion-decision"] == f"promoted {version}"
    assert "no champion: only the baseline test applies" in header.texts["promotion-reasons"]
    assert header.texts["promotion-next"].startswith("next run ")

    shot = tmp_path / "accuracy.png"

    def painted(run: subprocess.CompletedProcess[str]) -> bool:
        return shot.exists() and len(Counter(png_pixels(shot)[2])) > 100

    render(tmp_path / "shot", url, painted, f"--screenshot={shot}", "--window-size=1400,1000")
