"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against ``fundtrail serve`` on
a demo home (built once per session on a small world).

The tests sign in, open the demo case, run a trace and check the rendered graph, approve a request as a
supervisor, check that an analyst cannot, and save screenshots of the main pages to docs/screenshots/.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PASSWORD = "demo password for the browser tests"
FUNDTRAIL = [sys.executable, "-c", "from fundtrail.cli.main import run; run()"]
DOC_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
REFRESH_ENV = "FUNDTRAIL_REFRESH_SCREENSHOTS"
"""Set to 1 to write the screenshots over the tracked ones in docs/screenshots (``make screenshots``)."""


def screenshot_dir(environ: dict[str, str] | None = None) -> Path:
    """Where the browser tests save screenshots: a temporary folder, docs/screenshots only when asked."""
    env = os.environ if environ is None else environ
    if env.get(REFRESH_ENV, "").strip() not in ("", "0"):
        return DOC_SCREENSHOTS
    return Path(tempfile.gettempdir()) / "fundtrail-screenshots"


def test_screenshots_leave_the_tracked_docs_alone_unless_asked() -> None:
    assert DOC_SCREENSHOTS not in screenshot_dir({}).parents and screenshot_dir({}) != DOC_SCREENSHOTS
    assert screenshot_dir({REFRESH_ENV: "0"}) != DOC_SCREENSHOTS
    assert screenshot_dir({REFRESH_ENV: "1"}) == DOC_SCREENSHOTS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; the tests skip without it, except in CI where it must be there."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (CI installs the chromium package)")
        pytest.skip(f"{CHROMIUM} is missing")
    return CHROMIUM


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Path:
    """A demo agency built on a small world, its users signing in with :data:`PASSWORD`."""
    home = tmp_path_factory.mktemp("demo") / "home"
    env = {**os.environ, "FUNDTRAIL_DEMO_PASSWORD": PASSWORD}
    env.pop("FUNDTRAIL_DATABASE_URL", None)
    done = subprocess.run([*FUNDTRAIL, "demo", "--home", str(home), "--size", "small", "--format", "json"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    steps = {s["name"]: s["status"] for s in json.loads(done.stdout)["steps"]}
    assert steps.get("logins") == "done" and steps.get("case") == "done", steps
    return home


@pytest.fixture(scope="session")
def server(demo_home: Path) -> Iterator[str]:
    """``fundtrail serve`` on the demo home, on a free loopback port; yields its base URL."""
    port = _free_port()
    env = {**os.environ}
    env.pop("FUNDTRAIL_DATABASE_URL", None)
    process = subprocess.Popen([*FUNDTRAIL, "serve", "--home", str(demo_home), "--port", str(port),
                                "--no-access-log"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise AssertionError(f"fundtrail serve stopped: {process.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{base}/login", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("fundtrail serve did not answer")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture(scope="session")
def browser(chromium: Path) -> Iterator[Any]:
    """Headless Chromium."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page_as(browser: Any, server: str) -> Iterator[Any]:
    """``page_as(user)``: a new browser page signed in as ``user`` through the sign-in form."""
    contexts = []

    def sign_in(user: str) -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)  # CSP too
        page.errors = errors
        page.goto(f"{server}/login")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{server}/**")
        assert "/login" not in page.url, f"{user} could not sign in"
        return page

    yield sign_in
    for context in contexts:
        context.close()


def _case_number(server: str) -> str:
    login = httpx.post(f"{server}/api/auth/login", json={"username": "investigator", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    return httpx.get(f"{server}/api/cases", headers=headers).json()["items"][0]["number"]


def wait_until(page: Any, expression: str, timeout: float = 60.0) -> None:
    """Poll a JavaScript expression until it is true (``page.evaluate`` works under the dashboard's
    content security policy, which forbids the string evaluation ``wait_for_function`` needs)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if page.evaluate(f"() => Boolean({expression})"):
                return
        except Exception as error:  # noqa: BLE001 - the page may be reloading meanwhile
            if "context was destroyed" not in str(error) and "navigat" not in str(error):
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.1)


def _shot(page: Any, name: str) -> None:
    screenshot_dir().mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot_dir() / name), full_page=True)


def test_sign_in_and_see_the_case_list(page_as: Any, server: str) -> None:
    page = page_as("investigator")
    assert page.url.endswith("/cases")
    assert page.locator("#case-table tbody tr").count() >= 1
    assert "Demo ransomware campaign" in page.inner_text("#case-table")
    _shot(page, "cases.png")
    assert not page.errors


def test_wrong_password_is_refused_in_words(browser: Any, server: str) -> None:
    page = browser.new_page()
    page.goto(f"{server}/login")
    page.fill("input[name=username]", "analyst")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    assert "Wrong user name or password" in page.inner_text("main")
    _shot(page, "login.png")
    page.close()


def test_trace_graph_renders_and_explains_an_address(page_as: Any, server: str, tmp_path: Path) -> None:
    page = page_as("investigator")
    number = _case_number(server)
    page.goto(f"{server}/cases/{number}")
    # the graph starts from the preserved trace: every ransom address is connected (the multi-input spend
    # draws all its inputs), and the exchanges hold the amounts of the case's subjects
    wait_until(page, "window.fundtrail && window.fundtrail.cy.nodes().length > 1")
    unconnected = page.evaluate("window.fundtrail.cy.nodes('[kind = \"seed\"]')"
                                ".filter((n) => n.outgoers('edge').length === 0).map((n) => n.id())")
    assert unconnected == []
    drawn = page.evaluate("Object.fromEntries(window.fundtrail.cy.nodes('[kind = \"exchange\"]')"
                          ".map((n) => [n.data('address'), n.data('tainted')]))")
    subjects = _case(server, number)["subjects"]
    owed = {s["value"]: s["amount"] for s in subjects if s["amount"] and s["value"] in drawn}
    assert drawn and owed == drawn
    page.click("#trace-run")
    wait_until(page, "!document.getElementById('trace-compare').hidden")
    assert page.inner_text("#trace-compare").startswith("Same owner hops and policy as the preserved trace")
    kinds = page.evaluate("window.fundtrail.cy.nodes().map((n) => n.data('kind'))")
    assert "seed" in kinds and "exchange" in kinds
    assert page.evaluate("window.fundtrail.cy.edges().length") > 0
    widths = page.evaluate("window.fundtrail.cy.edges().map((e) => e.data('width'))")
    assert max(widths) > min(widths)  # edges are sized by value
    # click an exchange: its risk and tags show in the panel
    # (in a function returning nothing: evaluating emit() itself would hand back the cytoscape collection,
    # which Playwright serialises object by object through the whole graph, for seconds)
    page.evaluate("() => { window.fundtrail.cy.nodes('[kind = \"exchange\"]')[0].emit('tap'); }")
    page.wait_for_selector("#details [data-risk-level]")
    assert page.locator("#details [data-tag]").count() >= 1
    _shot(page, "case.png")
    # expand one hop from an address on the way
    before = page.evaluate("window.fundtrail.cy.elements().length")
    page.evaluate("window.fundtrail.graph.expand(window.fundtrail.cy.nodes('[kind = \"seed\"]')[0].id())")
    wait_until(page, "document.getElementById('trace-status').textContent.match(/Added|No further/)")
    assert page.evaluate("window.fundtrail.cy.elements().length") >= before
    # nodes are ringed in their chain's colour, named in the legend; a pool's candidate withdrawal joins the
    # graph as a conversion edge labelled with its kind, rule and confidence when the investigator adds it
    assert page.evaluate("window.fundtrail.cy.nodes().every((n) => n.data('chainColor') === "
                         "window.FundTrailGraph.chainColor('btc'))")
    assert "Chain btc" in page.inner_text("#graph-legend [data-chain-legend]")
    label = page.evaluate("""() => {
        const src = window.fundtrail.cy.nodes()[0].id();
        window.fundtrail.graph.addCandidate({id: "c:a>b>W", source: src, target: "W", asset: "native",
          value: "1", hop: 1, txids: ["a", "b"], chain: "eth", conversion: {kind: "pool",
          rule: "pool-same-address", confidence: 0.9, candidates: 2, anonymity_set: 7, in_chain: "eth",
          out_chain: "eth"}});
        return window.fundtrail.cy.getElementById("c:a>b>W").data("label"); }""")
    assert label.startswith("pool pool-same-address (0.90)")
    with page.expect_download() as download:
        page.click("#export-png")
    saved = tmp_path / "graph.png"
    download.value.save_as(saved)
    assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.locator("#graph").screenshot(path=str(screenshot_dir() / "graph.png"))
    # fewer owner hops than the preserved trace: the page says what lies beyond them
    page.fill("#trace-hops", "1")
    page.click("#trace-run")
    wait_until(page, "document.getElementById('trace-compare').textContent"
                     ".includes('This graph: 1 owner hop;')")
    note = page.inner_text("#trace-compare")
    assert "the preserved trace" in note and "BTC lies beyond 1 owner hop" in note, note
    assert not page.errors


def _case(server: str, number: str) -> dict[str, Any]:
    login = httpx.post(f"{server}/api/auth/login", json={"username": "investigator", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    return dict(httpx.get(f"{server}/api/cases/{number}", headers=headers).json())


def _draft(server: str, number: str) -> str:
    login = httpx.post(f"{server}/api/auth/login", json={"username": "investigator", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['token']}", "X-Reason": "freeze the second cash-out"}
    r = httpx.post(f"{server}/api/cases/{number}/requests", headers=headers,
                   json={"type": "freeze", "recipient": "Harbor Street Exchange",
                         "recipient_jurisdiction": "GB"})
    assert r.status_code == 201, r.text
    return r.json()["number"]


def test_supervisor_approves_and_analyst_cannot(page_as: Any, server: str) -> None:
    number = _case_number(server)
    request = _draft(server, number)
    row = f"tr[data-request='{request}']"

    analyst = page_as("analyst")
    analyst.goto(f"{server}/cases/{number}")
    assert analyst.locator(f"{row} [data-step=approve]").count() == 0
    refused = analyst.evaluate(
        "(url) => fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json', "
        "'X-Requested-With': 'fundtrail', 'X-Reason': 'try'}, body: '{}'}).then((r) => r.status)",
        f"/api/requests/{request}/approve")
    assert refused == 403

    supervisor = page_as("supervisor")
    supervisor.goto(f"{server}/cases/{number}")
    supervisor.click(f"{row} [data-step=approve]")  # without a reason: asked for one, nothing happens
    assert "reason" in supervisor.inner_text("#action-status")
    supervisor.fill("#reason", "grounds and evidence checked")
    supervisor.click(f"{row} [data-step=approve]")
    wait_until(supervisor,
               f"document.querySelector(\"{row} [data-state]\") && "
               f"document.querySelector(\"{row} [data-state]\").textContent.trim() === 'approved'")
    _shot(supervisor, "requests.png")
    assert not supervisor.errors


def test_other_pages_render(page_as: Any, server: str) -> None:
    number = _case_number(server)
    auditor = page_as("auditor")
    auditor.goto(f"{server}/cases/{number}/audit")
    assert auditor.locator("#audit-table tbody tr").count() > 5
    auditor.click("#verify-audit")
    wait_until(auditor, "document.getElementById('verify-result').textContent.startsWith('Intact')")
    _shot(auditor, "audit.png")
    auditor.goto(f"{server}/recovery")
    wait_until(auditor, "window.fundtrailCharts && window.fundtrailCharts.length > 0")
    _shot(auditor, "recovery.png")

    analyst = page_as("analyst")
    login = httpx.post(f"{server}/api/auth/login", json={"username": "analyst", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    case = httpx.get(f"{server}/api/cases/{number}", headers=headers).json()
    exchange = next(s for s in case["subjects"] if s["label"] and "Exchange" in s["label"])
    analyst.goto(f"{server}/address?chain=btc&q={exchange['value']}")
    assert exchange["label"] in analyst.inner_text("main")
    _shot(analyst, "address.png")
    assert not auditor.errors and not analyst.errors


def test_scripts_work_without_inline_code_and_sign_out_ends_the_session(page_as: Any, server: str) -> None:
    number = _case_number(server)
    page = page_as("investigator")
    policy = httpx.get(f"{server}/login").headers["content-security-policy"]
    scripts = [d.split() for d in policy.split(";") if d.split()[:1] == ["script-src"]]
    assert scripts == [["script-src", "'self'"]]
    # the case list's status filter sends its form on change (a script file, no onchange attribute)
    page.goto(f"{server}/cases")
    with page.expect_navigation():
        page.select_option("select[name=status]", "closed")
    assert page.url.endswith("/cases?status=closed")
    # the trace page traces the seeds of its link at once (data-autorun, no inline script)
    login = httpx.post(f"{server}/api/auth/login", json={"username": "investigator", "password": PASSWORD})
    case = httpx.get(f"{server}/api/cases/{number}",
                     headers={"Authorization": f"Bearer {login.json()['token']}"}).json()
    seed = next(s["value"] for s in case["subjects"] if s["kind"] == "address" and s["chain"] == "btc")
    page.goto(f"{server}/trace?chain=btc&seeds={seed}&max_hops=2")
    wait_until(page, "window.fundtrail && window.fundtrail.cy.nodes().length > 1")
    # the API documentation starts Swagger UI from a script file
    page.goto(f"{server}/docs")
    page.wait_for_selector(".swagger-ui .opblock")
    assert not page.errors, page.errors
    # signing out revokes the session: a copy of the cookie is refused afterwards
    page.goto(f"{server}/cases")
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "fundtrail_session")
    assert httpx.get(f"{server}/api/auth/me", cookies={"fundtrail_session": cookie}).status_code == 200
    with page.expect_navigation():
        page.click("header form[action='/logout'] button")
    assert page.url.endswith("/login")
    # every worker refuses it at once (each request on a new connection, so that both workers answer)
    statuses = [httpx.get(f"{server}/api/auth/me", cookies={"fundtrail_session": cookie}).status_code
                for _ in range(12)]
    assert statuses == [401] * 12, "the session still works after sign-out"
    page.goto(f"{server}/cases")
    assert "/login" in page.url
