"""A client of the protocol: over a sidecar's stdio (`serve`) or the daemon's socket.

The CLI uses it to drive the daemon; the tests and benchmarks use it as an
editor would. It keeps every notification so a caller can wait for the one it
expects.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import orjson

from .framing import FrameError, FrameReader, frame

Predicate = Callable[[dict[str, Any]], bool]


class RpcError(Exception):
    """A JSON-RPC error answer."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = error.get("message", "")
        self.data = error.get("data")


class Client:
    """Content-Length framed JSON-RPC to a sidecar process or a daemon socket."""

    def __init__(self, argv: list[str] | None = None, env: dict[str, str] | None = None,
                 cwd: str | None = None, stderr_path: str | None = None) -> None:
        self.argv = argv or [sys.executable, "-m", "codex_sessions", "serve"]
        self.env = env
        self.cwd = cwd
        self.stderr_path = stderr_path
        self.proc: asyncio.subprocess.Process | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.notifications: list[dict[str, Any]] = []
        self.on_notification: Callable[[str, Any], None] | None = None
        self.closed: asyncio.Future[None] | None = None
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    async def start(self, **init_options: Any) -> dict[str, Any]:
        """Spawn the sidecar and initialize it."""
        stderr: Any = asyncio.subprocess.DEVNULL
        if self.stderr_path:
            stderr = open(self.stderr_path, "ab")
        elif os.environ.get("CODEX_SESSIONS_TEST_STDERR"):
            stderr = None
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=stderr, env=self.env, cwd=self.cwd, limit=1 << 26)
        if self.stderr_path:
            stderr.close()
        assert self.proc.stdout and self.proc.stdin
        self._begin(self.proc.stdout.read, self.proc.stdin.write)
        return await self.initialize(**init_options)

    async def connect(self, sock: Any, **init_options: Any) -> dict[str, Any]:
        """Use a connected socket (see relay.ensure_daemon) and initialize."""
        reader, self.writer = await asyncio.open_unix_connection(sock=sock, limit=1 << 26)
        self._begin(reader.read, self.writer.write)
        return await self.initialize(**init_options)

    def _begin(self, read: Callable[[int], Any], write: Callable[[bytes], Any]) -> None:
        self._write_bytes = write
        self.closed = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_loop(FrameReader(read)))

    async def initialize(self, **init_options: Any) -> dict[str, Any]:
        result = await self.request("initialize", {
            "processId": os.getpid(), "capabilities": {}, "rootUri": None,
            "initializationOptions": init_options})
        self.notify("initialized", {})
        return result

    async def stop(self) -> None:
        """Say shutdown and exit, then make sure the connection (or process) is gone."""
        if self.proc is not None and self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.request("shutdown", None), 10)
                self.notify("exit", None)
                await asyncio.wait_for(self.proc.wait(), 10)
            except (asyncio.TimeoutError, ConnectionError, RpcError, BrokenPipeError):
                try:
                    self.proc.kill()
                except ProcessLookupError:
                    pass
                await self.proc.wait()
        elif self.writer is not None and not self.writer.is_closing():
            try:
                await asyncio.wait_for(self.request("shutdown", None), 10)
                self.notify("exit", None)
            except (asyncio.TimeoutError, ConnectionError, RpcError):
                pass
            self.writer.close()
        if self._reader:
            self._reader.cancel()

    def _write(self, message: dict[str, Any]) -> None:
        message = {"jsonrpc": "2.0", **message}
        try:
            body = orjson.dumps(message)
        except TypeError:  # text orjson refuses (a lone surrogate): JSON allows it escaped
            body = json.dumps(message).encode()
        self._write_bytes(frame(body))

    async def request(self, method: str, params: Any = None, timeout: float = 60) -> Any:
        if self.closed is not None and self.closed.done():  # nobody would ever answer
            raise ConnectionError("the sidecar closed the connection")
        self._next_id += 1
        msg_id = self._next_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        self._write({"id": msg_id, "method": method, "params": params})
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(msg_id, None)

    def notify(self, method: str, params: Any = None) -> None:
        self._write({"method": method, "params": params})

    async def _read_loop(self, frames: FrameReader) -> None:
        problem = "the sidecar closed the connection"
        try:
            while True:
                try:
                    message = await frames.next()
                except FrameError as exc:
                    problem = f"unreadable frame from the sidecar: {exc}"
                    break
                await self._dispatch(message)
        except (EOFError, ConnectionError, OSError):
            pass
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError(problem))
        if self.closed and not self.closed.done():
            self.closed.set_result(None)
        async with self._changed:
            self._changed.notify_all()

    async def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message and "method" not in message:
            future = self._pending.pop(message["id"], None)
            if future and not future.done():
                if "error" in message:
                    future.set_exception(RpcError(message["error"]))
                else:
                    future.set_result(message.get("result"))
            return
        if self.on_notification is not None:
            self.on_notification(message.get("method", ""), message.get("params"))
        async with self._changed:
            self.notifications.append(message)
            self._changed.notify_all()

    async def wait_for(self, method: str, predicate: Predicate = lambda p: True,
                       timeout: float = 60, start: int = 0) -> dict[str, Any]:
        """The params of the first notification `method` (from index `start`) matching."""
        async def find() -> dict[str, Any]:
            seen = start
            async with self._changed:
                while True:
                    for message in self.notifications[seen:]:
                        if message.get("method") == method and predicate(message["params"]):
                            return message["params"]
                    seen = len(self.notifications)
                    if self.closed is not None and self.closed.done():
                        raise ConnectionError("the connection closed while waiting for " + method)
                    await self._changed.wait()
        return await asyncio.wait_for(find(), timeout)

    async def wait_status(self, session_id: str, *statuses: str, timeout: float = 60,
                          start: int = 0) -> dict[str, Any]:
        """Wait until a `codex/session/changed` shows the session in one of `statuses`."""
        params = await self.wait_for(
            "codex/session/changed",
            lambda p: p["session"]["id"] == session_id and p["session"]["status"] in statuses,
            timeout, start)
        return params["session"]

    def output_items(self, session_id: str) -> list[dict[str, Any]]:
        """Every transcript item and streamed piece seen for a session, in order."""
        return [item for m in self.notifications
                if m.get("method") == "codex/session/output" and m["params"]["id"] == session_id
                for item in m["params"]["items"]]


async def connect_daemon(state_dir: Path, start: bool = True, **init_options: Any) -> Client:
    """A client of the daemon serving `state_dir` (started if needed and `start`)."""
    from ..relay import ensure_daemon
    sock = await asyncio.to_thread(ensure_daemon, state_dir, start)
    client = Client()
    await client.connect(sock, **init_options)
    return client
