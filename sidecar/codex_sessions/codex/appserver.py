"""A client of one `codex app-server` process: newline-delimited JSON-RPC on stdio.

pygls only speaks Content-Length framing, so this small client is our own. It
reads Codex's output as the pipe delivers it (large chunks, split into lines
here) and decodes with orjson. Every request has a deadline. Each process runs
in its own session (so its own process group); `close()` ends its whole process tree. If the owner
is killed, Codex sees its stdin close and exits, and the reaper (reaper.py)
kills whatever is left.

A command's output is most of what Codex says, and it only passes through: its
`delta` is kept as the JSON string Codex wrote (`JsonString`), never decoded,
and goes out to the clients as it came.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import logging
import os
import re
from typing import Any, Callable

import orjson

from .. import __version__
from ..wire import JsonString
from .reaper import kill_tree

log = logging.getLogger(__name__)

STDERR_TAIL_BYTES = 4096
REQUEST_TIMEOUT = 30.0
PIPE_BYTES = 1 << 20  # Codex's stdout pipe: room to go on writing while we send a batch

Handler = Callable[[dict[str, Any]], None]

OUTPUT_DELTA = "item/commandExecution/outputDelta"
_DELTA_HEAD = b'{"method":"%s","params":{' % OUTPUT_DELTA.encode()
_DELTA_KEY = b',"delta":"'
_DELTA_TAIL = re.compile(rb'\}(?:,"emittedAtMs":\d+)?\}')  # what follows the delta's closing quote


def output_delta(line: bytes) -> dict[str, Any] | None:
    """An outputDelta line as a message whose delta stays JSON; None if it is shaped otherwise.

    Codex writes `{"method":..,"params":{"threadId":..,"turnId":..,"itemId":..,"delta":".."}
    [,"emittedAtMs":N]}`: the ids hold no quotes, so the first `,"delta":"` is the key, and
    the delta ends at the last `"` before a tail that holds no string.
    """
    key = line.find(_DELTA_KEY, len(_DELTA_HEAD))
    end = line.rfind(b'"}')
    if key == -1 or end <= key or not _DELTA_TAIL.fullmatch(line, end + 1):
        return None
    try:
        params = orjson.loads(line[len(_DELTA_HEAD) - 1:key] + b"}")
    except orjson.JSONDecodeError:
        return None
    params["delta"] = JsonString(memoryview(line)[key + len(_DELTA_KEY) - 1:end + 1])
    return {"method": OUTPUT_DELTA, "params": params}


class AppServerError(Exception):
    """Codex answered a request with an error, or its process is gone."""


class AppServerTimeout(AppServerError):
    """Codex did not answer in time: it may hang."""


class _Pipes(asyncio.SubprocessProtocol):
    """Splits stdout into lines; keeps the tail of stderr; says when the process ends."""

    def __init__(self, owner: "AppServer") -> None:
        self.owner = owner
        self.partial: list[bytes] = []
        self.exited = asyncio.get_running_loop().create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 2:
            self.owner._stderr_chunk(data)
            return
        start = 0
        while (end := data.find(b"\n", start)) != -1:
            if self.partial:
                self.partial.append(data[start:end])
                line = b"".join(self.partial)
                self.partial = []
            else:
                line = data[start:end]
            start = end + 1
            if line:
                self.owner._line(line)
        if start < len(data):
            self.partial.append(data[start:])

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class _Stdout(asyncio.Protocol):
    """Codex's stdout, a pipe of our own making (so it can be 1 MiB under any event loop)."""

    def __init__(self, pipes: _Pipes) -> None:
        self.pipes = pipes

    def data_received(self, data: bytes) -> None:
        self.pipes.pipe_data_received(1, data)


def _stdout_pipe() -> tuple[int, int]:
    """(read end, write end), asking for 1 MiB (64 KiB by default); a refusal is no error."""
    read_fd, write_fd = os.pipe()
    try:
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:
        pass
    return read_fd, write_fd


class AppServer:
    """One running `codex app-server`; messages go to `on_message`, its end to `on_exit`."""

    def __init__(self, argv: list[str], cwd: str, env: dict[str, str] | None,
                 on_message: Handler, on_exit: Callable[[int, str], None]) -> None:
        self.argv = [*argv, "app-server"]
        self.cwd = cwd
        self.env = env
        self.on_message = on_message
        self.on_exit = on_exit
        self.transport: asyncio.SubprocessTransport | None = None
        self._stdout: asyncio.BaseTransport | None = None
        self._pipes: _Pipes | None = None
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._raw: set[int] = set()  # requests whose whole answer (result or error) is wanted
        self.info: dict[str, Any] = {}  # what Codex said to `initialize`
        self._stderr: collections.deque[bytes] = collections.deque()
        self._stderr_size = 0
        self._closing = False
        self.returncode: int | None = None

    @property
    def pid(self) -> int | None:
        return self.transport.get_pid() if self.transport else None

    @property
    def running(self) -> bool:
        return self.transport is not None and self.returncode is None

    def stderr_tail(self) -> str:
        return b"".join(self._stderr).decode("utf-8", "replace")[-STDERR_TAIL_BYTES:].strip()

    async def spawn(self) -> None:
        """Start the process; OSError (e.g. FileNotFoundError) if it cannot run."""
        loop = asyncio.get_running_loop()
        env = {**os.environ, **self.env} if self.env else None
        read_fd, write_fd = _stdout_pipe()
        try:
            self.transport, self._pipes = await loop.subprocess_exec(
                lambda: _Pipes(self), *self.argv, cwd=self.cwd, env=env,
                stdin=asyncio.subprocess.PIPE, stdout=write_fd,
                stderr=asyncio.subprocess.PIPE, start_new_session=True)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        pipes = self._pipes
        self._stdout, _ = await loop.connect_read_pipe(lambda: _Stdout(pipes),
                                                       os.fdopen(read_fd, "rb", 0))
        asyncio.create_task(self._watch_exit())

    async def handshake(self, timeout: float = 60.0) -> dict[str, Any]:
        result = await self.request("initialize", {
            "clientInfo": {"name": "codex-sessions", "title": "codex-sessions",
                           "version": __version__},
            # Codex's own terminal UI may join through us (tui.py) and uses these methods
            "capabilities": {"experimentalApi": True}}, timeout)
        self._send({"method": "initialized", "params": {}})
        self.info = result or {}
        return result

    def _send(self, message: dict[str, Any]) -> None:
        stdin = self.transport.get_pipe_transport(0) if self.running else None  # type: ignore[union-attr]
        if stdin is None or stdin.is_closing():
            raise AppServerError("Codex is not running")
        stdin.write(orjson.dumps(message) + b"\n")

    def call(self, method: str, params: dict[str, Any],
             timeout: float = REQUEST_TIMEOUT) -> asyncio.Future[Any]:
        """Write the request now; the future holds Codex's answer.

        AppServerTimeout past the deadline, AppServerError when Codex refuses or is gone.
        """
        self._next_id += 1
        msg_id = self._next_id
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        try:
            self._send({"id": msg_id, "method": method, "params": params})
        except AppServerError as exc:
            future.set_exception(exc)
            return future
        self._pending[msg_id] = future
        timer = loop.call_later(timeout, self._expire, msg_id, method, timeout)
        future.add_done_callback(lambda _: (timer.cancel(), self._pending.pop(msg_id, None)))
        return future

    def _expire(self, msg_id: int, method: str, timeout: float) -> None:
        future = self._pending.pop(msg_id, None)
        if future is not None and not future.done():
            future.set_exception(AppServerTimeout(
                f"Codex did not answer {method} within {timeout:g} s"))

    async def request(self, method: str, params: dict[str, Any],
                      timeout: float = REQUEST_TIMEOUT) -> Any:
        return await self.call(method, params, timeout)

    def call_raw(self, method: str, params: Any, timeout: float) -> asyncio.Future[Any]:
        """Like call, but the future holds Codex's whole answer: `{result}` or `{error}`."""
        future = self.call(method, params, timeout)
        self._raw.add(self._next_id)
        return future

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"method": method, "params": params})

    def respond(self, request_id: Any, result: dict[str, Any]) -> None:
        self._send({"id": request_id, "result": result})

    def respond_error(self, request_id: Any, code: int, message: str) -> None:
        self._send({"id": request_id, "error": {"code": code, "message": message}})

    def _line(self, line: bytes) -> None:
        message = output_delta(line) if line.startswith(_DELTA_HEAD) else None
        try:
            message = message or orjson.loads(line)
        except orjson.JSONDecodeError:
            log.warning("not JSON from Codex: %r", line[:200])
            return
        if not isinstance(message, dict):
            return
        if "method" not in message:
            msg_id = message.get("id")
            future = self._pending.get(msg_id)  # type: ignore[arg-type]
            if future is None or future.done():
                return
            if msg_id in self._raw:
                self._raw.discard(msg_id)  # type: ignore[arg-type]
                future.set_result(message)
            elif "error" in message:
                error = message["error"] or {}
                future.set_exception(AppServerError(error.get("message", str(error))))
            else:
                future.set_result(message.get("result"))
            return
        try:
            self.on_message(message)
        except Exception:  # a bug in one handler must not stop the others
            log.exception("handling %s from Codex", message.get("method"))

    def _stderr_chunk(self, chunk: bytes) -> None:
        self._stderr.append(chunk)
        self._stderr_size += len(chunk)
        while self._stderr_size - len(self._stderr[0]) > STDERR_TAIL_BYTES:
            self._stderr_size -= len(self._stderr.popleft())

    async def _watch_exit(self) -> None:
        """When the process ends, end what it left, fail what waits, and say so."""
        assert self._pipes and self.transport
        await self._pipes.exited
        self.returncode = code = self.transport.get_returncode() or 0
        kill_tree(self.transport.get_pid())
        await asyncio.sleep(0.05)  # let the pipes deliver Codex's last words
        text = f"Codex exited with code {code}"
        tail = self.stderr_tail()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(AppServerError(text + (f": {tail.splitlines()[-1]}" if tail else "")))
        self.transport.close()
        if self._stdout is not None:
            self._stdout.close()
        if not self._closing:
            self.on_exit(code, tail)

    async def close(self, grace: float = 1.0) -> None:
        """Stop the process and everything it started; safe to call twice."""
        self._closing = True
        if not self.running:
            return
        assert self.transport and self._pipes
        stdin = self.transport.get_pipe_transport(0)
        if stdin is not None and not stdin.is_closing():
            stdin.close()  # app-server exits by itself on EOF
        try:
            await asyncio.wait_for(asyncio.shield(self._pipes.exited), grace)
        except asyncio.TimeoutError:
            pass
        kill_tree(self.transport.get_pid())

    def kill(self) -> None:
        """Kill it now (a hung Codex); `on_exit` follows as for any other end."""
        if self.transport is not None:
            kill_tree(self.transport.get_pid())
