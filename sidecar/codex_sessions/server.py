"""`codex-sessions serve`: the pygls server. Thin handlers: validate, call the manager.

Nothing but protocol goes to stdout. However the server ends (stdin closed,
`exit`, SIGTERM, SIGINT, SIGHUP), it stops every Codex process it started
before the process exits; on SIGKILL the reaper does it.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import inspect
import json
import logging
import os
import signal
import sys
import threading
from typing import Any, Callable

from lsprotocol import types
from pygls.io_ import StdinAsyncReader, StdoutWriter, run_async
from pygls.lsp.server import LanguageServer
from pygls.protocol import (JsonRPCNotification, JsonRPCRequestMessage, JsonRPCResponseMessage,
                            LanguageServerProtocol, default_converter, lsp_method)

from . import __version__
from .errors import ProtocolError
from .manager import Manager
from .projects import resolve_project
from .protocol import (InitOptions, KillAllParams, ListParams, ProjectParams, RenameParams,
                       RespondParams, SendParams, SessionRef, StartParams, TranscriptParams, parse)
from .store import StoreError

log = logging.getLogger(__name__)


def _keep_params_as_dicts(obj: dict[str, Any], cls: type) -> Any:
    return cls(**obj)


def converter():
    """pygls's converter, but custom methods get their params as plain dicts for pydantic."""
    conv = default_converter()
    conv.register_structure_hook(JsonRPCRequestMessage, _keep_params_as_dicts)
    conv.register_structure_hook(JsonRPCNotification, _keep_params_as_dicts)
    return conv


class Encoded(str):
    """A result that is JSON text already (e.g. spliced from cached session objects)."""


class Protocol(LanguageServerProtocol):
    def _send_data(self, data: Any) -> None:
        """Our answers and notifications are plain JSON already: skip cattrs' walk of them."""
        payload = getattr(data, "result", None) if isinstance(data, JsonRPCResponseMessage) \
            else getattr(data, "params", None) if isinstance(data, JsonRPCNotification) else None
        if isinstance(payload, Encoded) and self.writer is not None:
            body = '{"jsonrpc":"2.0","id":%s,"result":%s}' % (json.dumps(data.id), payload)
            data = body.encode()
            self.writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
            return
        if isinstance(payload, dict):
            plain: dict[str, Any] = {"jsonrpc": data.jsonrpc}
            if isinstance(data, JsonRPCResponseMessage):
                plain.update(id=data.id, result=payload)
            else:
                plain.update(method=data.method, params=payload)
            data = plain
        super()._send_data(data)

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> None:
        """End the serve loop; cleanup runs in `serve` rather than via sys.exit here."""
        server: SessionServer = self._server  # type: ignore[assignment]
        server.exit_code = 0 if self._shutdown else 1
        server.stop()


class SessionServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("codex-sessions", __version__, protocol_cls=Protocol,
                         converter_factory=converter)
        self.manager: Manager | None = None
        self.exit_code = 0
        self._main: asyncio.Task[None] | None = None

    def stop(self) -> None:
        if self._main is not None:
            self._main.cancel()

    def emit(self, method: str, params: dict[str, Any]) -> None:
        if method == types.WINDOW_SHOW_MESSAGE:  # pygls wants lsprotocol's type for it
            self.window_show_message(types.ShowMessageParams(
                type=types.MessageType(params["type"]), message=params["message"]))
        else:
            self.protocol.notify(method, params)

    def sessions(self) -> Manager:
        if self.manager is None:  # a client that skipped initialize gets the defaults
            self.manager = Manager(InitOptions(), self.emit)
        return self.manager

    async def ready(self) -> Manager:
        manager = self.sessions()
        try:
            await manager.ready()
        except StoreError as exc:
            raise ProtocolError(str(exc)) from None
        return manager


server = SessionServer()


@server.feature(types.INITIALIZE)
def initialize(ls: SessionServer, params: types.InitializeParams) -> None:
    options = parse(InitOptions, params.initialization_options or {})
    ls.manager = Manager(options, ls.emit)


@server.feature(types.SHUTDOWN)
async def shutdown(ls: SessionServer, *args: Any) -> None:
    if ls.manager is not None:
        await ls.manager.shutdown()


async def _session(ls: SessionServer, model: type, raw: Any) -> tuple[Manager, Any, Any]:
    """Validated params, and the session they refer to."""
    params = parse(model, raw)
    manager = await ls.ready()
    return manager, params, await manager.get(params)


@server.feature("codex/project/resolve")
async def project_resolve(ls: SessionServer, raw: Any) -> dict[str, Any]:
    return {"project": resolve_project(parse(ProjectParams, raw).project).to_wire()}


@server.feature("codex/session/start")
async def session_start(ls: SessionServer, raw: Any) -> dict[str, Any]:
    p = parse(StartParams, raw)
    manager = await ls.ready()
    session, created = await manager.start(
        p.project, p.name, p.prompt, p.reuse, model=p.model, sandbox=p.sandbox,
        approval_policy=p.approval_policy)
    return {"session": session.to_wire(), "created": created}


@server.feature("codex/session/list")
async def session_list(ls: SessionServer, raw: Any) -> dict[str, Any]:
    p = parse(ListParams, raw)
    manager = await ls.ready()
    found = await manager.list(p.project, p.status, p.all)
    return Encoded('{"sessions":[%s]}' % ",".join(s.wire_json() for s in found))


@server.feature("codex/session/send")
async def session_send(ls: SessionServer, raw: Any) -> dict[str, Any]:
    manager, p, session = await _session(ls, SendParams, raw)
    turn_id = await manager.send(session, p.text)
    return {"session": session.to_wire(), "turnId": turn_id}


@server.feature("codex/session/killAll")
async def session_kill_all(ls: SessionServer, raw: Any) -> dict[str, Any]:
    p = parse(KillAllParams, raw)
    manager = await ls.ready()
    return {"killed": await manager.kill_all(p.project)}


@server.feature("codex/session/transcript")
async def session_transcript(ls: SessionServer, raw: Any) -> dict[str, Any]:
    manager, p, session = await _session(ls, TranscriptParams, raw)
    return await manager.transcript(session, p.after, p.limit)


@server.feature("codex/session/report")
async def session_report(ls: SessionServer, raw: Any) -> dict[str, Any]:
    manager, _, session = await _session(ls, SessionRef, raw)
    return manager.report(session)


# Methods that act on one session and answer `{session}`: params model, and the action.
SESSION_ACTIONS: dict[str, tuple[type, Callable[[Manager, Any, Any], Any]]] = {
    "codex/session/get": (SessionRef, lambda m, s, p: None),
    "codex/session/cancel": (SessionRef, lambda m, s, p: m.cancel(s)),
    "codex/session/respond": (RespondParams, lambda m, s, p: m.respond(s, p.request_id, p.decision)),
    "codex/session/rename": (RenameParams, lambda m, s, p: m.rename(s, p.new_name)),
    "codex/session/kill": (SessionRef, lambda m, s, p: m.kill(s)),
    "codex/session/resume": (SessionRef, lambda m, s, p: m.resume(s)),
}


def _register_session_action(method: str, model: type, action: Callable[..., Any]) -> None:
    async def handler(ls: SessionServer, raw: Any) -> dict[str, Any]:
        manager, p, session = await _session(ls, model, raw)
        result = action(manager, session, p)
        if inspect.isawaitable(result):
            await result
        return {"session": session.to_wire()}
    server.feature(method)(handler)


for _method, (_model, _action) in SESSION_ACTIONS.items():
    _register_session_action(_method, _model, _action)


def tune_memory() -> None:
    """Fewer, cheaper collections, and big strings returned to the system when freed.

    Every answer allocates many small dicts, so the default GC thresholds fire often;
    and glibc, after the first large transcript strings are freed, raises its mmap
    threshold and fragments the heap with later ones.
    """
    gc.set_threshold(50_000, 20, 20)
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: fixed, so no dynamic raise
    except (OSError, AttributeError):
        pass


class _QuietProtocolErrors(logging.Filter):
    """pygls logs every error answer with a traceback; ours are expected answers."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ProtocolError)


def serve(log_file: str | None = None, verbose: bool = False) -> int:
    """Run the server on stdin/stdout until the client goes away; return the exit code."""
    handler: logging.Handler = (logging.FileHandler(log_file) if log_file
                                else logging.StreamHandler(sys.stderr))
    handler.addFilter(_QuietProtocolErrors())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler])
    if not verbose:
        logging.getLogger("pygls").setLevel(logging.ERROR)
    tune_memory()
    # Anything else that prints must not corrupt the protocol stream.
    stdout = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    stdin = sys.stdin.buffer
    asyncio.run(_serve(stdin, stdout))
    sys.stderr.flush()
    os._exit(server.exit_code)  # the stdin reader thread may still block in read()


async def _serve(stdin: Any, stdout: Any) -> None:
    server.protocol.set_writer(StdoutWriter(stdout))
    reader = StdinAsyncReader(stdin, server.thread_pool)
    loop = asyncio.get_running_loop()
    server._main = asyncio.create_task(run_async(
        stop_event=threading.Event(), reader=reader, protocol=server.protocol, logger=log,
        error_handler=server.report_server_error))
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, server.stop)
    try:
        await server._main
    except asyncio.CancelledError:
        pass
    except BrokenPipeError:
        log.warning("the client went away")
    finally:
        if server.manager is not None:
            try:
                await asyncio.wait_for(server.manager.shutdown(), 10)
            except Exception:
                log.exception("shutting down")
