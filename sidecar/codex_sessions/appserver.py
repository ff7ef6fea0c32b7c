"""A client of one `codex app-server` process: newline-delimited JSON-RPC on stdio.

pygls only speaks Content-Length framing, so this small client is our own. Each
process runs in its own process group; `close()` ends its whole process tree.
If the sidecar is killed, Codex sees its stdin close and exits, and the reaper
(reaper.py) kills whatever is left.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from typing import Any, Awaitable, Callable

from . import __version__
from .reaper import kill_tree

log = logging.getLogger(__name__)

NotificationHandler = Callable[[str, dict[str, Any]], None]
ServerRequestHandler = Callable[[Any, str, dict[str, Any]], None]
ExitHandler = Callable[[int, str], None]

STDERR_TAIL_BYTES = 4096


class AppServerError(Exception):
    """Codex answered a request with an error, or its process is gone."""


class AppServer:
    """One running `codex app-server`; events are handed to the callbacks."""

    def __init__(self, argv: list[str], cwd: str, on_notification: NotificationHandler,
                 on_request: ServerRequestHandler, on_exit: ExitHandler) -> None:
        self.argv = [*argv, "app-server"]
        self.cwd = cwd
        self._on_notification = on_notification
        self._on_request = on_request
        self._on_exit = on_exit
        self.proc: asyncio.subprocess.Process | None = None
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._stderr: collections.deque[bytes] = collections.deque()
        self._stderr_size = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stderr_tail(self) -> str:
        return b"".join(self._stderr).decode("utf-8", "replace")[-STDERR_TAIL_BYTES:].strip()

    async def spawn(self) -> None:
        """Start the process; OSError (e.g. FileNotFoundError) if it cannot run."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=self.cwd, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            process_group=0, limit=1 << 26)
        self._tasks = [asyncio.create_task(self._read_stdout()),
                       asyncio.create_task(self._read_stderr())]
        self._tasks.append(asyncio.create_task(self._watch_exit()))

    async def handshake(self) -> dict[str, Any]:
        result = await self.request("initialize", {
            "clientInfo": {"name": "codex-sessions", "title": "codex-sessions",
                           "version": __version__}})
        self._send({"method": "initialized", "params": {}})
        return result

    def _send(self, message: dict[str, Any]) -> None:
        if not self.proc or not self.proc.stdin or self.proc.stdin.is_closing():
            raise AppServerError("Codex is not running")
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")

    def request(self, method: str, params: dict[str, Any]) -> Awaitable[Any]:
        self._next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        try:
            self._send({"id": self._next_id, "method": method, "params": params})
        except AppServerError as exc:
            self._pending.pop(self._next_id, None)
            future.set_exception(exc)
        return future

    def respond(self, request_id: Any, result: dict[str, Any]) -> None:
        self._send({"id": request_id, "result": result})

    def respond_error(self, request_id: Any, code: int, message: str) -> None:
        self._send({"id": request_id, "error": {"code": code, "message": message}})

    async def _read_stdout(self) -> None:
        assert self.proc and self.proc.stdout
        stdout = self.proc.stdout
        while True:
            try:
                line = await stdout.readline()
            except (ValueError, asyncio.LimitOverrunError):
                log.warning("dropped an over-long line from Codex")
                continue
            if not line:
                break
            self._handle_line(line)
            del line  # a line can hold megabytes: do not keep it while waiting for the next

    def _handle_line(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            log.warning("not JSON from Codex: %r", line[:200])
            return
        try:
            self._dispatch(message)
        except Exception:  # a bug in one handler must not stop the session
            log.exception("handling %s", message.get("method"))

    def _dispatch(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        if method is None:
            future = self._pending.pop(message.get("id"), None)
            if future is None or future.done():
                return
            if "error" in message:
                error = message["error"] or {}
                future.set_exception(AppServerError(error.get("message", str(error))))
            else:
                future.set_result(message.get("result"))
        elif "id" in message:
            self._on_request(message["id"], method, message.get("params") or {})
        else:
            self._on_notification(method, message.get("params") or {})

    async def _read_stderr(self) -> None:
        assert self.proc and self.proc.stderr
        while chunk := await self.proc.stderr.read(4096):
            self._stderr.append(chunk)
            self._stderr_size += len(chunk)
            while self._stderr_size - len(self._stderr[0]) > STDERR_TAIL_BYTES:
                self._stderr_size -= len(self._stderr.popleft())

    async def _watch_exit(self) -> None:
        """When the process we started ends, end what it left (e.g. the wrapper's child)."""
        assert self.proc
        # proc.wait() would also wait for the pipes, which a leftover child keeps open.
        while self.proc.returncode is None:
            await asyncio.sleep(0.2)
        code = self.proc.returncode
        kill_tree(self.proc.pid)
        try:
            await asyncio.wait_for(asyncio.shield(self._tasks[0]), 2)
        except asyncio.TimeoutError:
            pass
        for future in self._pending.values():
            if not future.done():
                future.set_exception(AppServerError(self._exit_text(code)))
        self._pending.clear()
        if not self._closing:
            await asyncio.sleep(0.05)  # let the stderr reader catch the last words
            self._on_exit(code, self.stderr_tail())

    def _exit_text(self, code: int) -> str:
        tail = self.stderr_tail()
        return f"Codex exited with code {code}" + (f": {tail.splitlines()[-1]}" if tail else "")

    async def close(self, grace: float = 1.0) -> None:
        """Stop the process and everything it started; safe to call twice."""
        self._closing = True
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin and not proc.stdin.is_closing():
            proc.stdin.close()  # app-server exits by itself on EOF
        deadline = asyncio.get_running_loop().time() + grace
        while proc.returncode is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        kill_tree(proc.pid)

