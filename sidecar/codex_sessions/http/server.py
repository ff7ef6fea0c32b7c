"""The HTTP server inside the daemon: who gets in, the panel's files, starting and stopping.

It runs aiohttp in the daemon's own event loop and calls the core in-process
(the daemon's `Sessions`), so a session started here is the one every editor
sees, and every notification the editors get reaches SSE subscribers too.
Where it listens is address.py's business.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from ..config import ClientConfig
from ..core.service import Sessions
from . import api
from .address import Address, HttpSetupError
from .auth import COOKIE, Credentials, host_allowed, load_token
from .sse import EventLog

log = logging.getLogger(__name__)

PANEL = Path(__file__).resolve().parent / "panel"
PANEL_FILES = {"/": ("index.html", "text/html"), "/panel.js": ("panel.js", "text/javascript"),
               "/panel.css": ("panel.css", "text/css")}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
COOKIE_SECONDS = 30 * 24 * 3600


class AccessLog(AbstractAccessLogger):
    """Method, path, status and time: never the query (a login code) nor any header."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("http %s %s %s %.1f ms", request.method, request.path, response.status,
                         time * 1000)


def _html(status: int, title: str, text: str) -> web.Response:
    body = (f"<!doctype html><meta charset=utf-8><title>{title}</title>"
            f"<body style='font-family:sans-serif;max-width:40em;margin:3em auto'>"
            f"<h1>{title}</h1><p>{text}</p>")
    return web.Response(status=status, text=body, content_type="text/html")


class HttpServer:
    """The API, the event stream and the panel, served from the daemon's loop."""

    def __init__(self, sessions: Sessions, state_dir: Path, address: Address,
                 allow_remote: bool = False) -> None:
        self.sessions = sessions
        self.address = address
        token, self.token_file = load_token(state_dir)
        self.credentials = Credentials(token)
        self.events = EventLog()
        self.client: ClientConfig = api.http_client()
        self.allowed_hosts = frozenset({address.host} if allow_remote else ())
        if allow_remote and address.host in ("0.0.0.0", "::"):
            self.allowed_hosts = frozenset({"*"})
        self.url = address.url
        self._files = {path: ((PANEL / name).read_bytes(), kind)
                       for path, (name, kind) in PANEL_FILES.items()}
        self._runner: web.AppRunner | None = None

    # ---- what the daemon asks --------------------------------------------------------------

    def publish(self, method: str, params: Any) -> None:
        self.events.publish(method, params)

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "tokenFile": str(self.token_file),
                "subscribers": self.events.subscribers}

    async def start(self) -> None:
        app = web.Application(middlewares=[self._guard, api.errors], client_max_size=4 << 20)
        app[api.SERVER] = self
        api.add_routes(app)
        for path in self._files:
            app.router.add_get(path, self._file)
        app.router.add_get("/login", self._login)
        app.on_response_prepare.append(self._headers)
        self._runner = web.AppRunner(app, access_log_class=AccessLog, handle_signals=False,
                                     shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.address.host, self.address.port,
                           shutdown_timeout=2.0)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise HttpSetupError(f"cannot listen on {self.address.host}:{self.address.port}: "
                                 f"{exc.strerror or exc}") from None
        port = self._runner.addresses[0][1]  # the one chosen, when asked for port 0
        self.address = Address(self.address.host, port)
        self.url = self.address.url
        log.info("HTTP API and panel on %s (token in %s)", self.url, self.token_file)

    async def close(self) -> None:
        self.events.wake_all()  # event streams end, so the server need not wait for them
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- who gets in -------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not host_allowed(request.headers.get("Host"), self.allowed_hosts):
            return api.error_response(403, api.INVALID_REQUEST, (
                "the Host header must name this machine's loopback address (127.0.0.1, [::1] "
                "or localhost); others are refused against DNS rebinding"))
        if request.path == "/login":
            return await handler(request)
        bearer = self.credentials.bearer_ok(request.headers.get("Authorization", ""))
        if bearer is False:
            return self._unauthorized(request, "wrong token: use the one in "
                                      f"{self.token_file}")
        if bearer is None:
            if not self.credentials.cookie_ok(request.cookies.get(COOKIE)):
                return self._unauthorized(request, "send Authorization: Bearer TOKEN (the token "
                                          f"is in {self.token_file})")
            if request.method not in ("GET", "HEAD") and \
                    request.headers.get("Origin") != f"http://{request.host}":
                return api.error_response(403, api.INVALID_REQUEST, (
                    "a change made with the panel's login must come from the panel's own page"))
        return await handler(request)

    def _unauthorized(self, request: web.Request, message: str) -> web.Response:
        if request.path.startswith("/api/"):
            return api.error_response(401, api.INVALID_REQUEST, message,
                                      headers={"WWW-Authenticate": 'Bearer realm="codex-sessions"'})
        return _html(401, "codex-sessions: log in first",
                     "Run <code>codex-sessions panel --open</code> (or open the link "
                     "<code>codex-sessions panel</code> prints) to log this browser in.")

    async def _login(self, request: web.Request) -> web.Response:
        if not self.credentials.use_code(request.query.get("code", "")):
            return _html(401, "codex-sessions: this login link does not work",
                         "It was used already or has expired. Run <code>codex-sessions panel "
                         "--open</code> for a new one.")
        response = web.Response(status=303, headers={"Location": "/"})
        response.set_cookie(COOKIE, self.credentials.cookie, httponly=True, samesite="Strict",
                            path="/", max_age=COOKIE_SECONDS)
        return response

    # ---- the panel's files, and headers on everything -------------------------------------

    async def _file(self, request: web.Request) -> web.Response:
        body, kind = self._files[request.path]
        return web.Response(body=body, content_type=kind, charset="utf-8")

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        headers.setdefault("Cache-Control", "no-store")
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Frame-Options"] = "DENY"
        if response.content_type == "text/html":
            headers["Content-Security-Policy"] = CSP
