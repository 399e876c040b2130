"""The steward web app over HTTP: sign-in, roles, CSRF, throttling, escaping, decisions."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from mdm.audit import AuditLog
from steward.app import SECURITY_HEADERS, AppSettings, create_app
from steward.lookup_build import build_lookup
from steward.store import DecisionStore
from steward.users import ThrottlePolicy
from tests.conftest import make_workspace
from tests.steward_fixtures import HOSTILE, build_master


@pytest.fixture(params=["master", "lookup"])
def env(tmp_path, request):
    """The app reading the master database, or the version's lookup store (every test runs on both)."""
    from schemas.settings import load_run_config

    ws = make_workspace(tmp_path / "ws", generate=False)
    golden = build_master(ws.master_dir, ws.state_dir)
    config = load_run_config(ws.config_path)
    if request.param == "lookup":
        build_lookup(config.master_dir / "versions" / "R1", config.master_key())
    app = create_app(config, AppSettings(throttle=ThrottlePolicy(max_failures=3), lookup_build="off"))
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


def test_every_answer_carries_the_security_headers(env):
    _, _, app = env
    client = TestClient(app)
    for response in (client.get("/login"), client.get("/", follow_redirects=False), client.get("/healthz")):
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value


def test_unmasked_pages_are_audited_and_masked_ones_are_not(env):
    ws, _, app = env
    client = TestClient(app)
    _login(client, "alice", "correct horse battery")
    client.get("/customer/GA")
    item = client.get("/review/next")
    assert item.status_code == 200
    client.get("/search", params={"kind": "phone", "q": "13800000002"})
    analyst = TestClient(app)
    _login(analyst, "ana", "analyst password 1")
    analyst.get("/customer/GB")
    entries = [(e["actor"], e["action"], e["target"]) for e in AuditLog.for_state(ws.state_dir).entries()]
    assert ("alice", "view_unmasked", "golden_customer:GA") in entries
    assert any(a == "alice" and act == "view_unmasked" and t.startswith("review_item:") for a, act, t in entries)
    assert ("alice", "search", "customers") in entries
    assert not any(a == "ana" and act == "view_unmasked" for a, act, _ in entries)


def test_search_by_phone_and_name_and_golden_id(env):
    _, _, app = env
    client = TestClient(app)
    _login(client, "alice", "correct horse battery")
    assert "/customer/GB" in client.get("/search", params={"kind": "phone", "q": "138 0000 0002"}).text
    page = client.get("/search", params={"kind": "name", "q": "李娜"}).text
    assert "/customer/GB" in page and "/customer/GC" in page
    assert "/customer/GD" in client.get("/search", params={"kind": "golden_id", "q": "GD"}).text
    assert "No golden customer found" in client.get("/search", params={"kind": "name", "q": "无此人"}).text


def test_pair_page_shows_both_records_and_the_score(env):
    _, _, app = env
    client = TestClient(app)
    _login(client, "alice", "correct horse battery")
    page = client.get("/review/next")
    assert page.status_code == 200
    assert "weight <strong>" in page.text and "level 3" in page.text
    assert page.text.count("1980-01-01") >= 2
    assert "/customer/G" in page.text
