"""The sessions over HTTP: each endpoint is a protocol method, in a few lines over the core.

JSON in and out. Params are checked by the protocol's own models (rpc/params.py),
so a problem names the field as the protocol does. Errors are
`{error: {code, message, field?, id?}}` with the protocol's codes and an HTTP
status that fits (see STATUS).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional

import orjson
from aiohttp import web
from pydantic import Field
from pydantic.alias_generators import to_camel

from .. import errors as E
from ..config import ClientConfig, codex_command
from ..core.service import Sessions
from ..core.session import TITLE_LIMIT, Session
from ..errors import InvalidParams, ProtocolError
from ..rpc import notes
from ..rpc import params as P
from ..store import StoreError
from .auth import CODE_SECONDS

if TYPE_CHECKING:
    from .server import HttpServer

PARSE_ERROR = -32700  # JSON-RPC's code for a body that is not JSON
INVALID_REQUEST = -32600  # no (or a wrong) token, a foreign Host
METHOD_NOT_FOUND = -32601  # no such endpoint
INTERNAL_ERROR = -32603

STATUS = {E.INVALID_PARAMS: 400, E.INVALID_PROJECT: 400, PARSE_ERROR: 400,
          E.SESSION_NOT_FOUND: 404, E.SESSION_BUSY: 409, E.NAME_TAKEN: 409,
          E.INVALID_STATE: 409, E.LIMIT_REACHED: 429, E.CODEX_UNAVAILABLE: 503}


# ---- answers ------------------------------------------------------------------------------

def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def error_response(status: int, code: int, message: str, data: Any = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if isinstance(data, dict):
        for key in ("field", "id"):
            if data.get(key) is not None:
                error[key] = data[key]
    response = json_response({"error": error}, status)
    if headers:
        response.headers.update(headers)
    return response


def protocol_error(exc: ProtocolError) -> web.Response:
    code = int(exc.code)
    message, data = str(exc.message), exc.data
    if isinstance(exc, InvalidParams) and isinstance(data, dict) and "_" in data.get("field", ""):
        field = to_camel(data["field"])  # the core names fields as Python does
        message, data = f"{field}: {message.split(': ', 1)[-1]}", {**data, "field": field}
    return error_response(STATUS.get(code, 500), code, message, data)


@web.middleware
async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every failure as {error: {...}}: the protocol's errors, unknown paths, the rest."""
    try:
        return await handler(request)
    except ProtocolError as exc:
        return protocol_error(exc)
    except StoreError as exc:
        return error_response(500, E.ProtocolError.CODE, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = METHOD_NOT_FOUND if exc.status in (404, 405) else INVALID_REQUEST
        message = {404: f"no such endpoint: {request.method} {request.path}",
                   405: f"{request.path} does not take {request.method}"}.get(exc.status, exc.reason)
        return error_response(exc.status, code, message)


# ---- reading requests ---------------------------------------------------------------------

async def body_of(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidParams("body", "must be a JSON object")
    return value


class ParseError(ProtocolError):
    CODE = PARSE_ERROR


def query_of(request: web.Request, *lists: str) -> dict[str, Any]:
    """The query string as params: `status=running,waiting` (or repeated) is a list."""
    params: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        params[key] = [v for value in values for v in value.split(",") if v] \
            if key in lists else values[-1]
    return params


class StartBody(P.StartParams):
    prompt: str = Field(min_length=1)  # type: ignore[assignment]
    title: Optional[str] = Field(default=None, min_length=1, max_length=TITLE_LIMIT)


# ---- the endpoints ------------------------------------------------------------------------

SERVER: web.AppKey["HttpServer"] = web.AppKey("server")


def server_of(request: web.Request) -> "HttpServer":
    return request.app[SERVER]


async def sessions_of(request: web.Request) -> Sessions:
    sessions = server_of(request).sessions
    await sessions.ready()
    return sessions


def with_elapsed(session: Session) -> dict[str, Any]:
    """The session object, and how long its turn has run (the last one took, once over)."""
    wire: dict[str, Any] = dict(session.to_wire())
    began = session.turn_started_at
    elapsed = None
    if began:
        start = datetime.fromisoformat(began.replace("Z", "+00:00")).timestamp()
        end = time.time() if session.turn_active or not session.finished_at else \
            datetime.fromisoformat(session.finished_at.replace("Z", "+00:00")).timestamp()
        elapsed = round(max(0.0, end - start), 1)
    wire["elapsedSeconds"] = elapsed
    return wire


async def session_at(request: web.Request) -> tuple[Sessions, Session]:
    sessions = await sessions_of(request)
    return sessions, await sessions.get(request.match_info["id"], None, "main")


def http_client() -> ClientConfig:
    """What sessions started over HTTP run with: the daemon's defaults and its Codex."""
    return ClientConfig(codex_command=tuple(codex_command(None)))


async def start(request: web.Request) -> web.Response:
    p = P.parse(StartBody, await body_of(request))
    sessions = await sessions_of(request)
    warnings: list[str] = []
    session, created = await sessions.start(
        server_of(request).client, p.project, p.name, p.prompt, p.reuse, p.fresh, warnings,
        model=p.model, effort=p.effort, sandbox=p.sandbox, approval_policy=p.approval_policy,
        isolation=p.isolation, role=p.role, write_scope=list(p.write_scope), title=p.title,
        **notes.start_options(server_of(request).client, p))
    if not created:
        notes.start_existing(sessions, session, p)
    return json_response({"session": with_elapsed(session), "created": created,
                          "warnings": warnings}, 201 if created else 200)


async def list_sessions(request: web.Request) -> web.Response:
    p = P.parse(P.ListParams, query_of(request, "status", "fields"))
    sessions = await sessions_of(request)
    found = await sessions.list(p.project, p.status, p.all, p.waiting)
    if p.fields is not None:  # exactly these fields (and id), as the protocol's list gives them
        fields = tuple(p.fields)
        return web.Response(body=b'{"sessions":[' + b",".join(s.row_json(fields) for s in found)
                            + b"]}", content_type="application/json")
    return json_response({"sessions": [with_elapsed(s) for s in found]})


async def get(request: web.Request) -> web.Response:
    _, session = await session_at(request)
    return json_response({"session": with_elapsed(session)})


async def transcript(request: web.Request) -> web.Response:
    sessions, session = await session_at(request)
    p = P.parse(P.TranscriptParams, {**query_of(request), "id": session.id})
    return json_response(await sessions.transcript(session, p.after, p.limit))


async def report(request: web.Request) -> web.Response:
    sessions, session = await session_at(request)
    answer = sessions.report(session)
    form = request.query.get("format", "json")
    if form == "text":
        return web.Response(text=answer["text"] + "\n", content_type="text/plain")
    if form != "json":
        raise InvalidParams("format", f"must be 'json' or 'text' (got {form!r})")
    return json_response(answer)


async def send(request: web.Request) -> web.Response:
    sessions, session = await session_at(request)
    p = P.parse(P.SendParams, {**await body_of(request), "id": session.id})
    turn_id = await sessions.send(session, p.text, p.resume)
    return json_response({"session": with_elapsed(session), "turnId": turn_id})


async def cancel(request: web.Request) -> web.Response:
    sessions, session = await session_at(request)
    await sessions.cancel(session)
    return json_response({"session": with_elapsed(session)})


async def kill(request: web.Request) -> web.Response:
    sessions, session = await session_at(request)
    await sessions.kill(session)
    return json_response({"session": with_elapsed(session)})


async def respond(request: web.Request) -> web.Response:
    sessions, session = await session_at(request)
    p = P.parse(P.RespondParams, {**await body_of(request), "id": session.id,
                                  "requestId": request.match_info["request_id"]})
    sessions.respond(session, p.request_id, p.decision, p.text)
    return json_response({"session": with_elapsed(session)})


async def events(request: web.Request) -> web.StreamResponse:
    output = request.query.get("output", "0").lower() in ("1", "true", "yes", "on")
    server = server_of(request)
    return await server.events.stream(request, output, server.sessions.startup_notices)


async def login_code(request: web.Request) -> web.Response:
    """A one-time login link for the panel (what `codex-sessions panel` prints)."""
    server = server_of(request)
    code = server.credentials.new_code()
    return json_response({"code": code, "url": f"{server.url}/login?code={code}",
                          "expiresInSeconds": int(CODE_SECONDS)}, 201)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/sessions", start)
    app.router.add_get("/api/sessions", list_sessions)
    app.router.add_get("/api/sessions/{id}", get)
    app.router.add_get("/api/sessions/{id}/transcript", transcript)
    app.router.add_get("/api/sessions/{id}/report", report)
    app.router.add_post("/api/sessions/{id}/messages", send)
    app.router.add_post("/api/sessions/{id}/cancel", cancel)
    app.router.add_post("/api/sessions/{id}/kill", kill)
    app.router.add_post("/api/sessions/{id}/requests/{request_id}", respond)
    app.router.add_get("/api/events", events)
    app.router.add_post("/api/login-codes", login_code)
