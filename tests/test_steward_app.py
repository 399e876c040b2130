"""The steward web app over HTTP: sign-in, roles, CSRF, throttling, escaping, decisions."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from steward.app import AppSettings, create_app
from steward.store import DecisionStore
from steward.users import ThrottlePolicy
from tests.conftest import make_workspace
from tests.steward_fixtures import HOSTILE, build_master


@pytest.fixture()
def env(tmp_path):
    from schemas.settings import load_run_config

    ws = make_workspace(tmp_path / "ws", generate=False)
    golden = build_master(ws.master_dir, ws.state_dir)
    app = create_app(load_run_config(ws.config_path), AppSettings(throttle=ThrottlePolicy(max_failures=3)))
    return ws, golden, app


def _login(client: TestClient, user: str, password: str):
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"username": user, "password": password, "csrf": token},
                       follow_redirects=False)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_pages_need_sign_in(env):
    _, _, app = env
    client = TestClient(app)
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_sign_in_sets_a_session_and_queue_shows_counts(env):
    _, _, app = env
    client = TestClient(app)
    r = _login(client, "alice", "correct horse battery")
    assert r.status_code == 303
    page = client.get("/")
    assert page.status_code == 200
    assert 'id="count-open">3<' in page.text


def test_wrong_password_and_throttling(env):
    _, _, app = env
    client = TestClient(app)
    for _ in range(3):
        assert _login(client, "alice", "wrong password!!").status_code == 401
    r = _login(client, "alice", "correct horse battery")
    assert r.status_code == 401 and "too many failed sign-ins" in r.text


def test_login_form_needs_its_csrf_token(env):
    _, _, app = env
    client = TestClient(app)
    client.get("/login")
    r = client.post("/login", data={"username": "alice", "password": "correct horse battery", "csrf": "forged"})
    assert r.status_code == 403


def test_decision_needs_csrf_and_updates_the_queue(env):
    ws, _, app = env
    client = TestClient(app)
    _login(client, "alice", "correct horse battery")
    page = client.get("/review/next")
    assert page.status_code == 200
    item_id = re.search(r'action="/review/([0-9a-f]+)/decide"', page.text).group(1)
    forged = client.post(f"/review/{item_id}/decide", data={"verdict": "match", "csrf": "nope"})
    assert forged.status_code == 403
    ok = client.post(f"/review/{item_id}/decide", data={"verdict": "no_match", "csrf": _csrf(page.text)},
                     follow_redirects=False)
    assert ok.status_code == 303
    with DecisionStore.open(ws.state_dir) as store:
        assert store.item(item_id)["status"] == "decided"
        _, cannot = store.constraints()
    assert len(cannot) == 1


def test_hostile_names_are_escaped(env):
    _, _, app = env
    client = TestClient(app)
    _login(client, "alice", "correct horse battery")
    page = client.get("/customer/GF")
    assert page.status_code == 200
    assert HOSTILE not in page.text
    assert "&lt;script&gt;" in page.text


def test_analysts_see_masked_values_and_no_queue(env):
    _, _, app = env
    client = TestClient(app)
    _login(client, "ana", "analyst password 1")
    assert client.get("/").status_code == 403
    page = client.get("/customer/GA")
    assert page.status_code == 200
    assert "11010519800101001X" not in page.text
    assert "+8613800000001" not in page.text
    assert client.get("/search", params={"kind": "id_number", "q": "11010519800101001X"}).status_code == 403


def test_unmerge_records_cannot_links(env):
    ws, _, app = env
    client = TestClient(app)
    _login(client, "alice", "correct horse battery")
    page = client.get("/customer/GA")
    r = client.post("/customer/GA/unmerge", data={"record_key": "loan:1", "csrf": _csrf(page.text)},
                    follow_redirects=False)
    assert r.status_code == 303
    with DecisionStore.open(ws.state_dir) as store:
        _, cannot = store.constraints()
    assert {tuple(p) for p in cannot.to_numpy()} == {("deposit:1", "loan:1"), ("card:1", "loan:1")}


def test_search_by_id_number_finds_the_customer(env):
    _, _, app = env
    client = TestClient(app)
    _login(client, "alice", "correct horse battery")
    page = client.get("/search", params={"kind": "id_number", "q": "11010519800101001x"})
    assert page.status_code == 200 and "/customer/GA" in page.text


def test_sign_out_ends_the_session(env):
    _, _, app = env
    client = TestClient(app)
    _login(client, "alice", "correct horse battery")
    page = client.get("/")
    client.post("/logout", data={"csrf": _csrf(page.text)})
    assert client.get("/", follow_redirects=False).status_code == 303
