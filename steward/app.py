"""The steward web app (``mdm serve``): the review queue, pair decisions, search, golden records.

Server-rendered (Jinja2 with autoescaping, no front-end build step); a small static script
adds the keyboard shortcuts. Sign-in with per-user accounts, roles steward / analyst /
admin, server-side sessions that expire, CSRF tokens on every form, sign-in throttling,
and an audit entry for every page that shows unmasked ID numbers or phones.
"""


import hmac
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mdm.errors import MdmError, ReviewError, SecurityError
from schemas.settings import RunConfig
from steward.master import MasterReader
from steward.store import DecisionStore
from steward.users import Session, ThrottlePolicy, UserStore
from steward.views import Contribution, search_lookups

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "mdm_session"
LOGIN_CSRF_COOKIE = "mdm_login_csrf"
CLAIM_RENEW_SECONDS = 60  # opening an item renews this steward's claim on it at most once a minute


@dataclass(frozen=True)
class AppSettings:
    session_ttl_seconds: int = 8 * 3600
    lease_seconds: int = 900
    secure_cookies: bool = False
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    # "background": build a version's missing lookup store in a separate process (pages read the master
    # database meanwhile); "off": only use a store built by the nightly run (or `python -m steward.lookup_build`).
    lookup_build: Literal["background", "off"] = "background"
    workers: int = 0  # server processes sharing the port; 0: one per core, at most 4 (see steward.serving)
    request_threads: int = 4  # request threads per process: pages are short, more threads only fight over the GIL


class AppState:
    def __init__(self, config: RunConfig, settings: AppSettings) -> None:
        self.config = config
        self.settings = settings
        self.users = UserStore.open(config.state_dir)
        self.decisions = DecisionStore.open(config.state_dir)
        self.master = MasterReader(config.master_dir, config.master_key(),
                                   build_lookups=settings.lookup_build == "background")

    def audit(self, actor: str, action: str, target: str, details: dict[str, Any] | None = None) -> None:
        from mdm.audit import AuditLog

        AuditLog.for_state(self.config.state_dir).append(actor, action, target, details or {})

    def warm_up(self) -> None:
        """Load what the first pages would otherwise load under load: name tables, the lookup store."""
        search_lookups("name", "王小明")
        self.master.lookup()

    def close(self) -> None:
        self.users.close()
        self.decisions.close()
        self.master.close()


def create_app(config: RunConfig, settings: AppSettings | None = None) -> FastAPI:
    state = AppState(config, settings or AppSettings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state.settings.request_threads > 0:
            anyio.to_thread.current_default_thread_limiter().total_tokens = state.settings.request_threads
        try:
            await anyio.to_thread.run_sync(state.warm_up)
        except MdmError as e:  # no master yet: the pages say so
            log.warning("%s", e)
        yield
        state.close()

    app = FastAPI(title="Customer master: steward review", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.mdm = state
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals["mask"] = _mask
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    app.add_middleware(SecurityHeaders)

    @app.exception_handler(MdmError)
    async def mdm_error(request: Request, exc: MdmError) -> Response:
        session = _session(request)
        return templates.TemplateResponse(
            request, "error.html", {"session": session, "message": str(exc)}, status_code=400
        )

    def render(request: Request, name: str, session: Session | None, **ctx: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            request, name, {"session": session, "master": state.master.version_name(), **ctx}
        )

    def current(request: Request) -> Session:
        session = _session(request)
        if session is None:
            raise HTTPException(status_code=303, headers={"Location": "/login"})
        return session

    def steward_only(session: Annotated[Session, Depends(current)]) -> Session:
        if not session.user.can_review:
            raise HTTPException(status_code=403, detail="this page is for stewards")
        return session

    def check_csrf(session: Session, token: str) -> None:
        if not hmac.compare_digest(session.csrf_token, token or ""):
            raise HTTPException(status_code=403, detail="the form has expired; reload the page and try again")

    def _session(request: Request) -> Session | None:
        return state.users.session(request.cookies.get(SESSION_COOKIE))

    # -- sign-in ---------------------------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request) -> Response:
        token = secrets.token_urlsafe(24)
        response = render(request, "login.html", None, login_csrf=token, error=None)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                            secure=state.settings.secure_cookies, max_age=900)
        return response

    @app.post("/login")
    def login(
        request: Request,
        username: Annotated[str, Form()],
        password: Annotated[str, Form()],
        csrf: Annotated[str, Form()] = "",
    ) -> Response:
        if not hmac.compare_digest(request.cookies.get(LOGIN_CSRF_COOKIE, ""), csrf or "-"):
            raise HTTPException(status_code=403, detail="the sign-in form has expired; reload it")
        client = request.client.host if request.client else "unknown"
        try:
            user = state.users.authenticate(username, password, client, state.settings.throttle)
        except SecurityError as e:
            state.audit(username[:64], "sign_in_failed", "web", {"client": client})
            token = secrets.token_urlsafe(24)
            response = render(request, "login.html", None, login_csrf=token, error=str(e))
            response.status_code = 401
            response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                                secure=state.settings.secure_cookies, max_age=900)
            return response
        session = state.users.new_session(user, state.settings.session_ttl_seconds)
        state.audit(user.username, "sign_in", "web", {"role": user.role})
        redirect = RedirectResponse("/" if user.can_review else "/search", status_code=303)
        redirect.set_cookie(SESSION_COOKIE, session.token, httponly=True, samesite="strict",
                            secure=state.settings.secure_cookies, max_age=state.settings.session_ttl_seconds)
        redirect.delete_cookie(LOGIN_CSRF_COOKIE)
        return redirect

    @app.post("/logout")
    def logout(request: Request, session: Annotated[Session, Depends(current)],
               csrf: Annotated[str, Form()] = "") -> Response:
        check_csrf(session, csrf)
        state.users.end_session(session.token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    # -- the queue ---------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def queue(
        request: Request,
        session: Annotated[Session, Depends(steward_only)],
        status: str = "open",
        kind: str = "",
        page: int = 0,
    ) -> Response:
        items = state.decisions.item_rows(status=status or None, kind=kind or None, limit=50, offset=max(page, 0) * 50)
        return render(request, "queue.html", session, items=items, counts=state.decisions.counts(),
                      status=status, kind=kind, page=max(page, 0))

    @app.get("/review/next")
    def review_next(request: Request, session: Annotated[Session, Depends(steward_only)], kind: str = "") -> Response:
        item = state.decisions.next_item(session.user.username, state.settings.lease_seconds, kind or None)
        if item is None:
            return RedirectResponse("/?status=open", status_code=303)
        return RedirectResponse(f"/review/{item['item_id']}", status_code=303)

    @app.get("/review/{item_id}", response_class=HTMLResponse)
    def review_item(request: Request, item_id: str, session: Annotated[Session, Depends(steward_only)]) -> Response:
        item = state.decisions.item(item_id)
        claim_error = None
        try:
            state.decisions.claim(item_id, session.user.username, state.settings.lease_seconds,
                                  renew_after=CLAIM_RENEW_SECONDS)
        except ReviewError as e:
            claim_error = str(e)
        with state.master.evidence() as source:
            ev = source.pair_evidence(item["record_key_l"], item["record_key_r"])
        history = state.decisions.history_rows(item["record_key_l"], item["record_key_r"])
        state.audit(session.user.username, "view_unmasked", f"review_item:{item_id}",
                    {"records": [item["record_key_l"], item["record_key_r"]]})
        return render(request, "pair.html", session, item=item, ev=ev, claim_error=claim_error,
                      history=history, chart=_chart(ev.contributions))

    @app.post("/review/{item_id}/decide")
    def decide(
        request: Request,
        item_id: str,
        session: Annotated[Session, Depends(steward_only)],
        verdict: Annotated[str, Form()],
        csrf: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        check_csrf(session, csrf)
        decision_id = state.decisions.decide(item_id, session.user.username, verdict, reason.strip()[:500] or None)
        state.audit(session.user.username, "steward_decision", f"review_item:{item_id}",
                    {"verdict": verdict, "decision_id": decision_id})
        return RedirectResponse("/review/next", status_code=303)

    # -- customers -----------------------------------------------------------------------------------

    @app.get("/search", response_class=HTMLResponse)
    def search(request: Request, session: Annotated[Session, Depends(current)], kind: str = "name",
               q: str = "") -> Response:
        results: list[dict[str, Any]] = []
        if q.strip():
            if kind in ("id_number", "phone") and not session.user.can_review:
                raise HTTPException(status_code=403, detail="searching by ID number or phone is for stewards")
            with state.master.evidence() as source:
                results = source.search(kind, q[:200])
            state.audit(session.user.username, "search", "customers", {"kind": kind, "results": len(results)})
        return render(request, "search.html", session, kind=kind, q=q, results=results)

    @app.get("/customer/{golden_id}", response_class=HTMLResponse)
    def customer(request: Request, golden_id: str, session: Annotated[Session, Depends(current)]) -> Response:
        with state.master.evidence() as source:
            view = source.customer_view(golden_id)
        if view is None:
            raise HTTPException(status_code=404, detail="no such golden customer")
        if view.current_id != golden_id:
            return RedirectResponse(f"/customer/{view.current_id}", status_code=303)
        unmasked = session.user.can_review
        if unmasked:
            state.audit(session.user.username, "view_unmasked", f"golden_customer:{golden_id}", {})
        return render(request, "customer.html", session, view=view, unmasked=unmasked)

    @app.post("/customer/{golden_id}/unmerge")
    def unmerge(
        request: Request,
        golden_id: str,
        session: Annotated[Session, Depends(steward_only)],
        record_key: Annotated[str, Form()],
        csrf: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        check_csrf(session, csrf)
        with state.master.evidence() as source:
            members = source.cluster_members([golden_id]).get(golden_id, [])
        keys = [m["record_key"] for m in members]
        if record_key not in keys:
            raise ReviewError("that record is not part of this golden customer (the master may have changed)")
        batch = state.decisions.unmerge(record_key, keys, session.user.username, reason.strip()[:500] or None)
        state.audit(session.user.username, "steward_decision", f"golden_customer:{golden_id}",
                    {"action": "unmerge", "record_key": record_key, "batch": batch})
        return RedirectResponse(f"/customer/{golden_id}?pending=unmerge", status_code=303)

    @app.post("/customer/merge")
    def merge(
        request: Request,
        session: Annotated[Session, Depends(steward_only)],
        golden_a: Annotated[str, Form()],
        golden_b: Annotated[str, Form()],
        csrf: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        check_csrf(session, csrf)
        with state.master.evidence() as source:
            members = source.cluster_members([golden_a.strip(), golden_b.strip()])
        keys_a = [m["record_key"] for m in members.get(golden_a.strip(), [])]
        keys_b = [m["record_key"] for m in members.get(golden_b.strip(), [])]
        batch = state.decisions.merge(keys_a, keys_b, session.user.username, reason.strip()[:500] or None)
        state.audit(session.user.username, "steward_decision", f"golden_customer:{golden_a}",
                    {"action": "merge", "other": golden_b, "batch": batch})
        return RedirectResponse(f"/customer/{golden_a.strip()}?pending=merge", status_code=303)

    return app


SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class SecurityHeaders:
    """Sets :data:`SECURITY_HEADERS` on every response (plain ASGI: no extra task per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _mask(kind: str, value: Any) -> str:
    from validators.masking import mask_value

    text = "" if value is None else str(value)
    return mask_value(kind, text) or ""


def _chart(contributions: list[Contribution]) -> dict[str, Any]:
    """Geometry of the per-comparison weight chart (a waterfall of log2 Bayes factors), as SVG numbers."""
    if not contributions:
        return {"bars": [], "width": 0, "height": 0}
    scale = max(1.0, max(abs(c.weight) for c in contributions))
    half = 160.0
    bars = []
    for i, c in enumerate(contributions):
        length = abs(c.weight) / scale * half
        x = half if c.weight >= 0 else half - length
        bars.append({"y": i * 22, "x": x, "w": max(length, 1.0), "label": c.comparison, "level": c.level,
                     "weight": round(c.weight, 2), "positive": c.weight >= 0})
    return {"bars": bars, "width": 2 * half, "height": len(bars) * 22, "axis": half}


def serve(config: RunConfig, host: str, port: int, settings: AppSettings | None = None) -> None:
    """Serve the app (``mdm serve``): see :func:`steward.serving.serve`."""
    from steward.serving import serve as run

    run(config, host, port, settings or AppSettings())
