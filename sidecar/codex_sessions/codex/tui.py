"""Codex's own terminal UI on a session's thread, joined to the daemon's Codex.

`codex resume --remote unix://SOCKET THREAD_ID` speaks the app-server protocol over
a WebSocket on a Unix socket. The bridge serves such a socket for one session and
passes the TUI's messages to the session's `codex app-server` over the daemon's own
connection (request ids renumbered, answers mapped back); the thread's events and
approval requests go to the TUI as well as to the session's runner. What the user
types in the TUI runs on the same thread, in the same process, so the editors show
it as it happens. The first answer to an approval wins, wherever it is given.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from pathlib import Path
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from ..wire import json_default
from .pool import CodexProcess

log = logging.getLogger(__name__)

FORWARD_TIMEOUT = 600.0  # a TUI's request may legitimately take long (e.g. compaction)


class TuiBridge:
    def __init__(self, process: CodexProcess, thread_id: str, path: Path) -> None:
        self.process = process
        self.thread_id = thread_id
        self.path = path
        self.runner: web.AppRunner | None = None
        self.clients: set[web.WebSocketResponse] = set()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._connect)  # whatever path the TUI asks for
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self.runner.setup()
        if self.path.exists():
            self.path.unlink()
        old = os.umask(0o177)
        try:
            await web.UnixSite(self.runner, str(self.path)).start()
        finally:
            os.umask(old)

    async def close(self) -> None:
        for ws in list(self.clients):
            await ws.close()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        self.path.unlink(missing_ok=True)

    async def _connect(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        self.clients.add(ws)
        asked: dict[int, Any] = {}  # our id for a server request sent to the TUI -> Codex's
        ids = itertools.count(1)

        def to_tui(message: dict[str, Any]) -> None:
            if ws.closed:
                return
            if "id" in message and "method" in message:  # an approval: the TUI may answer it
                mine = next(ids)
                asked[mine] = message["id"]
                message = {**message, "id": mine}
            asyncio.ensure_future(ws.send_str(orjson.dumps(message, default=json_default).decode()))

        self.process.observe(self.thread_id, to_tui)
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                try:
                    message = orjson.loads(frame.data)
                except orjson.JSONDecodeError:
                    continue
                await self._from_tui(ws, message, asked)
        finally:
            self.process.unobserve(self.thread_id, to_tui)
            self.clients.discard(ws)
        return ws

    async def _from_tui(self, ws: web.WebSocketResponse, message: dict[str, Any],
                        asked: dict[int, Any]) -> None:
        method, msg_id = message.get("method"), message.get("id")
        if method is None:  # the TUI answers an approval it was sent
            codex_id = asked.pop(msg_id, None)  # type: ignore[arg-type]
            if codex_id is not None:
                if "error" in message:
                    err = message["error"] or {}
                    self.process.respond_error(codex_id, err.get("code", -32000), err.get("message", ""))
                else:
                    self.process.respond(codex_id, message.get("result") or {})
            return
        if method == "initialize":  # the connection is ours and initialized already
            await ws.send_str(orjson.dumps({"id": msg_id, "result": self.process.server.info}).decode())
            return
        if msg_id is None:
            if method != "initialized":
                self.process.server.notify(method, message.get("params") or {})
            return
        asyncio.ensure_future(self._forward(ws, msg_id, method, message.get("params")))

    async def _forward(self, ws: web.WebSocketResponse, msg_id: Any, method: str, params: Any) -> None:
        try:
            answer = await self.process.server.call_raw(method, params or {}, FORWARD_TIMEOUT)
        except Exception as exc:  # Codex is gone or silent
            answer = {"error": {"code": -32000, "message": str(exc)}}
        reply = {"id": msg_id, **{k: answer[k] for k in ("result", "error") if k in answer}}
        if not ws.closed:
            await ws.send_str(orjson.dumps(reply).decode())
