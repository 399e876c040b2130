"""End to end in real headless Chromium (Debian's package): a steward's session with the keyboard."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest
import uvicorn

from steward.app import AppSettings, create_app
from steward.store import DecisionStore
from tests.conftest import make_workspace
from tests.steward_fixtures import HOSTILE, build_master

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def server(tmp_path):
    from schemas.settings import load_run_config

    ws = make_workspace(tmp_path / "ws", generate=False)
    build_master(ws.master_dir, ws.state_dir)
    port = _free_port()
    config = uvicorn.Config(create_app(load_run_config(ws.config_path), AppSettings()), host="127.0.0.1",
                            port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "the web app did not start"
    yield ws, f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def test_steward_session_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    ws, base = server
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 500 else None)
        page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))

        page.goto(f"{base}/login")
        page.fill("#username", "alice")
        page.fill("#password", "correct horse battery")
        page.click("#sign-in")
        page.wait_for_url(f"{base}/")
        assert page.locator("#count-open").inner_text() == "3"

        # Review three pairs with the keyboard: Enter starts, m / n / s decide and load the next item.
        page.keyboard.press("Enter")
        for key in ("m", "n", "s"):
            try:
                page.wait_for_selector("#decide-form", timeout=15000)
            except Exception:
                page.screenshot(path=str(tmp_path / "fail.png"))
                (tmp_path / "fail.html").write_text(page.content())
                raise
            assert HOSTILE not in page.content() or "&lt;script&gt;" in page.content()
            page.keyboard.press(key)
            page.wait_for_load_state("networkidle")
        with DecisionStore.open(ws.state_dir) as store:
            hist = store.history()
        assert sorted(hist["action"]) == ["match", "no_match", "skip"]

        # Search a customer by name and open the golden record.
        page.goto(f"{base}/search")
        page.select_option("#search-kind", "name")
        page.fill("#search-q", "张伟")
        page.click("#search-go")
        page.click("#results a")
        page.wait_for_selector("#golden-table")
        assert "GA" in page.url

        # Split a record out of the golden customer.
        page.locator("form.unmerge").filter(has=page.locator("input[value='loan:1']")).locator("button").click()
        page.wait_for_selector("text=the master reflects it at the next run")
        with DecisionStore.open(ws.state_dir) as store:
            _, cannot = store.constraints()
        assert ("deposit:1", "loan:1") in {tuple(x) for x in cannot.to_numpy()}

        # The hostile name is shown as text, never run.
        page.goto(f"{base}/customer/GF")
        assert page.locator("#golden-table").inner_text().count(HOSTILE) >= 1
        assert not page.evaluate("() => window.__xss === true")

        page.click("#sign-out")
        page.wait_for_url(f"{base}/login")
        page.goto(f"{base}/")
        assert page.url.endswith("/login")
        browser.close()
    assert not errors, errors
