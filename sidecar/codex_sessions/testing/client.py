"""A small client of `codex-sessions serve` over real stdio and LSP framing.

Used by the end-to-end tests and the benchmarks: it spawns the sidecar as an
editor would, sends requests, and keeps every notification so a test can wait
for the one it expects.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any, Callable

Predicate = Callable[[dict[str, Any]], bool]


class RpcError(Exception):
    """A JSON-RPC error answer from the sidecar."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = error.get("message", "")
        self.data = error.get("data")


class SidecarClient:
    """Spawns the sidecar and speaks Content-Length framed JSON-RPC to it."""

    def __init__(self, argv: list[str] | None = None, env: dict[str, str] | None = None,
                 cwd: str | None = None, stderr_path: str | None = None) -> None:
        self.argv = argv or [sys.executable, "-m", "codex_sessions", "serve"]
        self.env = env
        self.cwd = cwd
        self.stderr_path = stderr_path
        self.proc: asyncio.subprocess.Process | None = None
        self.notifications: list[dict[str, Any]] = []
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    async def start(self, **init_options: Any) -> dict[str, Any]:
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
        self._reader = asyncio.create_task(self._read_loop())
        result = await self.request("initialize", {
            "processId": os.getpid(), "capabilities": {}, "rootUri": None,
            "initializationOptions": init_options})
        self.notify("initialized", {})
        return result

    async def stop(self) -> None:
        """Shut the sidecar down politely, then make sure it is gone."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.request("shutdown", None), 10)
                self.notify("exit", None)
                await asyncio.wait_for(self.proc.wait(), 10)
            except (asyncio.TimeoutError, ConnectionError, RpcError, BrokenPipeError):
                self.proc.kill()
                await self.proc.wait()
        if self._reader:
            self._reader.cancel()

    def _write(self, message: dict[str, Any]) -> None:
        assert self.proc and self.proc.stdin
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    async def request(self, method: str, params: Any = None, timeout: float = 60) -> Any:
        self._next_id += 1
        msg_id = self._next_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        self._write({"id": msg_id, "method": method, "params": params})
        return await asyncio.wait_for(future, timeout)

    def notify(self, method: str, params: Any = None) -> None:
        self._write({"method": method, "params": params})

    async def _read_loop(self) -> None:
        assert self.proc and self.proc.stdout
        stdout = self.proc.stdout
        try:
            while True:
                length = None
                while True:
                    line = await stdout.readline()
                    if not line:
                        raise ConnectionError("sidecar closed its stdout")
                    line = line.strip()
                    if not line:
                        break
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                if length is None:
                    raise ValueError("frame without Content-Length")
                message = json.loads(await stdout.readexactly(length))
                await self._dispatch(message)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError(str(exc)))

    async def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message and "method" not in message:
            future = self._pending.pop(message["id"], None)
            if future and not future.done():
                if "error" in message:
                    future.set_exception(RpcError(message["error"]))
                else:
                    future.set_result(message.get("result"))
            return
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
