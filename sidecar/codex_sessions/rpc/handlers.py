"""The protocol's methods: params checked, the core called, the answer shaped.

One handler style, each a few lines over the core (core/service.py). What a
client gave in `initialize` is kept per connection and applies to the sessions
it starts.
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import orjson
from lsprotocol import types
from pydantic.alias_generators import to_camel

from ..config import ClientConfig, codex_command
from ..core.service import Sessions
from ..core.worktrees import GitError
from ..errors import InvalidParams, InvalidState, ProtocolError, StorageUnavailable
from ..store import StoreError
from ..wire import SHOW_MESSAGE, Encoded
from . import notes
from . import params as P

if TYPE_CHECKING:
    from .transport import Connection

Handler = Callable[["Connection", Any], Awaitable[Any]]
QuickHandler = Callable[[Sessions, Any], Any]
METHODS: dict[str, Handler] = {}
AT_ONCE: dict[str, Callable[["Connection", Any], Any]] = {}


class App:
    """What the handlers share in one process: the sessions, and how this process serves."""

    def __init__(self, daemon: Any = None, state_dir: Any = None) -> None:
        self.daemon = daemon  # the Daemon when serving many clients, else None (standalone)
        self.state_dir = state_dir
        self.sessions: Sessions | None = None
        self.emit: Callable[[str, Any], None] = lambda method, params: None

    def open(self, state_dir: Any) -> Sessions:
        if self.sessions is None:
            self.sessions = Sessions(state_dir, self.emit)
        return self.sessions


def method(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(conn: "Connection", raw: Any) -> Any:
            try:
                return await handler(conn, raw)
            except (InvalidParams, StoreError, GitError) as exc:
                raise protocol_error(exc) from None
        METHODS[name] = checked
        return checked
    return register


def at_once(name: str) -> Callable[[QuickHandler], QuickHandler]:
    """A read the connection answers in the step that read the request, with no task and no
    pass through pygls, when the sessions are loaded; the handler returns None otherwise
    (and `method(name)` answers it)."""
    def register(handler: QuickHandler) -> QuickHandler:
        @functools.wraps(handler)
        def checked(conn: "Connection", raw: Any) -> Any:
            app: App | None = conn.state["app"] if conn.state else None
            if app is None or app.sessions is None or not app.sessions.is_ready:
                return None
            try:
                return handler(app.sessions, raw)
            except (InvalidParams, StoreError, GitError) as exc:
                raise protocol_error(exc) from None
        AT_ONCE[name] = checked
        return handler  # `method(name)` calls it too, once the sessions are loaded
    return register


def protocol_error(exc: Exception) -> ProtocolError:
    """What the core raised, as the protocol's error."""
    if isinstance(exc, InvalidParams):
        field = exc.data.get("field", "") if isinstance(exc.data, dict) else ""
        if "_" in field:  # the core names fields as Python does; clients know camelCase
            return InvalidParams(to_camel(field), str(exc.message).split(": ", 1)[-1])
        return exc
    if isinstance(exc, StoreError):
        return StorageUnavailable(str(exc))
    return InvalidState(f"git refused: {exc}")


def register(conn: "Connection", app: App) -> None:
    """Give a new connection every method (pygls passes the connection as `ls`)."""
    def on_initialize(ls: Any, params: Any) -> None:
        initialize(ls, params, app)

    async def on_shutdown(ls: Any, *args: Any) -> None:
        await shutdown(ls, app)

    conn.feature(types.INITIALIZE)(on_initialize)
    conn.feature(types.SHUTDOWN)(on_shutdown)
    for name, handler in METHODS.items():
        conn.feature(name)(_with_app(handler, app))
    conn.at_once = AT_ONCE


def _with_app(handler: Handler, app: App) -> Any:
    async def run(ls: Any, raw: Any) -> Any:
        ls.state = ls.state or _client(app, P.InitOptions())
        return await handler(ls, raw)
    return run


def _client(app: App, options: P.InitOptions) -> dict[str, Any]:
    """A connection's state: its options in the core's terms, and the app."""
    env = dict(options.client_env)
    config = ClientConfig(
        codex_command=tuple(codex_command(options.codex_command, options.codex_args, env or None)),
        codex_env=tuple(sorted((k, v) for k, v in env.items() if k.startswith("CODEX_")
                               or k in ("HOME", "PATH"))),
        max_sessions_per_project=options.max_sessions_per_project,
        max_running=options.max_running, output_limit_bytes=options.output_limit_bytes,
        codex_process=options.codex_process, codex_timeout=options.codex_timeout,
        isolation=options.isolation, notes=options.notes)
    return {"config": config, "app": app, "options": options}


def initialize(conn: "Connection", params: types.InitializeParams, app: App) -> None:
    """Keep the client's options; from now on it gets every notification."""
    options = P.parse(P.InitOptions, params.initialization_options or {})
    if app.daemon is not None and options.state_dir and \
            os.path.realpath(os.path.expanduser(options.state_dir)) != str(app.state_dir):
        raise InvalidParams("stateDir", f"this daemon serves {app.state_dir}; start one for "
                            f"{options.state_dir} with `codex-sessions serve`")
    conn.state = _client(app, options)
    if app.daemon is not None:
        app.daemon.client_options(options)
    conn.initialized = True
    for notice in app.sessions.startup_notices if app.sessions else []:
        asyncio.get_running_loop().call_soon(conn.notify, SHOW_MESSAGE, notice)


async def shutdown(conn: "Connection", app: App) -> None:
    if app.daemon is None and app.sessions is not None:
        await app.sessions.shutdown()  # standalone: sessions end with their editor


async def _sessions(conn: "Connection") -> Sessions:
    app: App = conn.state["app"]
    sessions = app.open(app.state_dir or _state_dir(conn))
    await sessions.ready()
    return sessions


def _state_dir(conn: "Connection") -> Any:
    from ..paths import state_dir
    return state_dir(conn.state["options"].state_dir)


async def _session(conn: "Connection", model: type, raw: Any) -> tuple[Sessions, Any, Any]:
    """Validated params, the sessions, and the session the params refer to."""
    p = P.parse(model, raw)
    sessions = await _sessions(conn)
    return sessions, p, await sessions.get(p.id, p.project, p.name)


# ---- methods ------------------------------------------------------------------------------

@method("codex/project/resolve")
async def project_resolve(conn: "Connection", raw: Any) -> dict[str, Any]:
    p = P.parse(P.ProjectParams, raw)
    sessions = await _sessions(conn)
    return {"project": sessions.registry.resolve(p.project).to_wire()}


@method("codex/session/start")
async def session_start(conn: "Connection", raw: Any) -> Encoded:
    p = P.parse(P.StartParams, raw)
    sessions = await _sessions(conn)
    warnings: list[str] = []
    session, created = await sessions.start(
        conn.state["config"], p.project, p.name, p.prompt, p.reuse, p.fresh, warnings,
        model=p.model, effort=p.effort, sandbox=p.sandbox, approval_policy=p.approval_policy,
        isolation=p.isolation, role=p.role, write_scope=list(p.write_scope),
        **notes.start_options(conn.state["config"], p))
    if not created:
        notes.start_existing(sessions, session, p)
    return Encoded(b'{"session":' + session.wire_json() + b',"created":'
                   + (b"true" if created else b"false") + b',"warnings":'
                   + orjson.dumps(warnings) + b"}")


@method("codex/session/list")
async def session_list(conn: "Connection", raw: Any) -> Encoded:
    sessions = await _sessions(conn)
    return session_rows(sessions, raw)


@at_once("codex/session/list")
def session_rows(sessions: Sessions, raw: Any) -> Encoded:
    p = P.parse(P.ListParams, raw)
    return Encoded(sessions.list_json(p.project, p.status, p.all, p.waiting, p.fields))


@method("codex/session/get")
async def session_get(conn: "Connection", raw: Any) -> Encoded:
    _, _, session = await _session(conn, P.SessionRef, raw)
    return Encoded(b'{"session":' + session.wire_json() + b"}")


@method("codex/session/send")
async def session_send(conn: "Connection", raw: Any) -> dict[str, Any]:
    sessions, p, session = await _session(conn, P.SendParams, raw)
    turn_id = await sessions.send(session, p.text, p.resume)
    return {"session": session.to_wire(), "turnId": turn_id}


@method("codex/session/cancel")
async def session_cancel(conn: "Connection", raw: Any) -> dict[str, Any]:
    sessions, _, session = await _session(conn, P.SessionRef, raw)
    await sessions.cancel(session)
    return {"session": session.to_wire()}


@method("codex/session/respond")
async def session_respond(conn: "Connection", raw: Any) -> dict[str, Any]:
    sessions, p, session = await _session(conn, P.RespondParams, raw)
    sessions.respond(session, p.request_id, p.decision, p.text)
    return {"session": session.to_wire()}


@method("codex/session/rename")
async def session_rename(conn: "Connection", raw: Any) -> dict[str, Any]:
    sessions, p, session = await _session(conn, P.RenameParams, raw)
    sessions.rename(session, p.new_name)
    return {"session": session.to_wire()}


@method("codex/session/kill")
async def session_kill(conn: "Connection", raw: Any) -> dict[str, Any]:
    sessions, _, session = await _session(conn, P.SessionRef, raw)
    await sessions.kill(session)
    return {"session": session.to_wire()}


@method("codex/session/killAll")
async def session_kill_all(conn: "Connection", raw: Any) -> dict[str, Any]:
    p = P.parse(P.KillAllParams, raw)
    sessions = await _sessions(conn)
    return {"killed": await sessions.kill_all(p.project)}


@method("codex/session/resume")
async def session_resume(conn: "Connection", raw: Any) -> dict[str, Any]:
    sessions, _, session = await _session(conn, P.SessionRef, raw)
    await sessions.resume(session)
    return {"session": session.to_wire()}


@method("codex/session/forget")
async def session_forget(conn: "Connection", raw: Any) -> dict[str, Any]:
    sessions, _, session = await _session(conn, P.SessionRef, raw)
    await sessions.forget(session)
    return {"forgotten": session.id}


@method("codex/session/transcript")
async def session_transcript(conn: "Connection", raw: Any) -> dict[str, Any]:
    sessions, p, session = await _session(conn, P.TranscriptParams, raw)
    return await sessions.transcript(session, p.after, p.limit)


@method("codex/session/report")
async def session_report(conn: "Connection", raw: Any) -> dict[str, Any]:
    sessions, _, session = await _session(conn, P.SessionRef, raw)
    return sessions.report(session)


notes.register(method, _session, _sessions)  # codex/session/notes, learn; codex/project/learnings


@method("codex/session/fork")
async def session_fork(conn: "Connection", raw: Any) -> Encoded:
    sessions, p, source = await _session(conn, P.ForkParams, raw)
    session = await sessions.fork(conn.state["config"], source, p.new_name, p.at_turn)
    return Encoded(b'{"session":' + session.wire_json() + b"}")


@method("codex/session/review")
async def session_review(conn: "Connection", raw: Any) -> Encoded:
    p = P.parse(P.ReviewParams, raw)
    sessions = await _sessions(conn)
    session = await sessions.review(conn.state["config"], p.project, p.target, p.name)
    return Encoded(b'{"session":' + session.wire_json() + b"}")


@method("codex/session/steer")
async def session_steer(conn: "Connection", raw: Any) -> dict[str, Any]:
    sessions, p, session = await _session(conn, P.SteerParams, raw)
    turn_id = await sessions.steer(session, p.text)
    return {"session": session.to_wire(), "turnId": turn_id}


@method("codex/project/threads")
async def project_threads(conn: "Connection", raw: Any) -> dict[str, Any]:
    p = P.parse(P.ProjectParams, raw)
    sessions = await _sessions(conn)
    return {"threads": await sessions.threads(conn.state["config"], p.project)}


@method("codex/session/adopt")
async def session_adopt(conn: "Connection", raw: Any) -> Encoded:
    p = P.parse(P.AdoptParams, raw)
    sessions = await _sessions(conn)
    session = await sessions.adopt(conn.state["config"], p.project, p.thread_id, p.name)
    return Encoded(b'{"session":' + session.wire_json() + b"}")


@method("codex/models")
async def models(conn: "Connection", raw: Any) -> dict[str, Any]:
    sessions = await _sessions(conn)
    return {"models": await sessions.models(conn.state["config"])}


@method("codex/account/limits")
async def account_limits(conn: "Connection", raw: Any) -> dict[str, Any]:
    sessions = await _sessions(conn)
    return await sessions.limits(conn.state["config"])


@method("codex/session/diff")
async def session_diff(conn: "Connection", raw: Any) -> dict[str, Any]:
    sessions, _, session = await _session(conn, P.SessionRef, raw)
    return await sessions.diff(session)


@method("codex/session/merge")
async def session_merge(conn: "Connection", raw: Any) -> dict[str, Any]:
    sessions, p, session = await _session(conn, P.MergeParams, raw)
    return await sessions.merge(session, p.strategy)


@method("codex/session/discard")
async def session_discard(conn: "Connection", raw: Any) -> dict[str, Any]:
    sessions, _, session = await _session(conn, P.SessionRef, raw)
    await sessions.discard(session)
    return {"session": session.to_wire()}


@method("codex/session/tui")
async def session_tui(conn: "Connection", raw: Any) -> dict[str, Any]:
    sessions, _, session = await _session(conn, P.SessionRef, raw)
    return await sessions.tui(session)


@method("codex/daemon/status")
async def daemon_status(conn: "Connection", raw: Any) -> dict[str, Any]:
    app: App = conn.state["app"]
    if app.daemon is None:
        raise ProtocolError("this is a standalone sidecar (serve --standalone), not the daemon")
    return app.daemon.status()


@method("codex/daemon/stop")
async def daemon_stop(conn: "Connection", raw: Any) -> dict[str, Any]:
    p = P.parse(P.DaemonStopParams, raw)
    app: App = conn.state["app"]
    if app.daemon is None:
        raise ProtocolError("this is a standalone sidecar (serve --standalone), not the daemon")
    if p.only_if_idle and app.sessions is not None and app.sessions.busy:
        return {"stopping": False}
    app.daemon.stop_soon()
    return {"stopping": True}
