"""Codex processes shared by sessions: one per project (default) or one per session.

One `codex app-server` holds many threads; its notifications and server
requests carry `threadId`, by which they are routed to the session's runner.
A process starts when its first session needs it and stops when its last
session lets it go.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Protocol

from .appserver import AppServer, AppServerError
from .launcher import native
from .reaper import Reaper, kill_strays

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 60.0
EARLY_LIMIT = 1000  # messages kept for a thread whose session has not attached yet


class Listener(Protocol):
    def on_event(self, method: str, params: dict[str, Any]) -> None: ...
    def on_request(self, codex_id: Any, method: str, params: dict[str, Any]) -> None: ...
    def on_exit(self, code: int, stderr_tail: str) -> None: ...


def _thread_of(params: dict[str, Any]) -> str | None:
    return params.get("threadId") or (params.get("thread") or {}).get("id")


class CodexProcess:
    """One app-server and the threads of the sessions that use it."""

    def __init__(self, pool: "Pool", key: tuple[Any, ...], argv: list[str],
                 env: dict[str, str], cwd: str) -> None:
        self.pool = pool
        self.key = key
        argv, launcher_env = native(argv)
        self.server = AppServer(argv, cwd, {**launcher_env, **env}, self._on_message, self._on_exit)
        self.threads: dict[str, Listener] = {}
        self.users: set[Listener] = set()
        self.early: dict[str, list[dict[str, Any]]] = {}
        self.observers: dict[str, list[Callable[[dict[str, Any]], None]]] = {}  # tui.py's
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def pid(self) -> int | None:
        return self.server.pid

    @property
    def shared(self) -> bool:
        return self.key[0] != "perSession"

    def call(self, method: str, params: dict[str, Any], timeout: float) -> asyncio.Future[Any]:
        """Write the request now; the future holds the answer (see AppServer.call)."""
        return self.server.call(method, params, timeout)

    async def request(self, method: str, params: dict[str, Any], timeout: float) -> Any:
        return await self.server.call(method, params, timeout)

    def respond(self, codex_id: Any, result: dict[str, Any]) -> None:
        self.server.respond(codex_id, result)

    def respond_error(self, codex_id: Any, code: int, message: str) -> None:
        self.server.respond_error(codex_id, code, message)

    def attach(self, thread_id: str, listener: Listener) -> None:
        """Route the thread's messages to `listener`, starting with those that came early."""
        self.threads[thread_id] = listener
        for message in self.early.pop(thread_id, []):
            self._deliver(listener, message)

    def observe(self, thread_id: str, callback: Callable[[dict[str, Any]], None]) -> None:
        """Also hand `callback` every message of the thread, and those of no thread."""
        self.observers.setdefault(thread_id, []).append(callback)

    def unobserve(self, thread_id: str, callback: Callable[[dict[str, Any]], None]) -> None:
        if callback in self.observers.get(thread_id, []):
            self.observers[thread_id].remove(callback)

    def _on_message(self, message: dict[str, Any]) -> None:
        params = message.get("params") or {}
        thread_id = _thread_of(params)
        if self.observers:
            for key in ([thread_id] if thread_id else list(self.observers)):
                for callback in self.observers.get(key, []):
                    callback(message)
        listener = self.threads.get(thread_id) if thread_id else None
        if listener is None and not thread_id and len(self.threads) == 1:
            listener = next(iter(self.threads.values()))
        if listener is not None:
            self._deliver(listener, message)
        elif thread_id:
            early = self.early.setdefault(thread_id, [])
            if len(early) < EARLY_LIMIT:
                early.append(message)
        elif "id" in message:
            self.server.respond_error(message["id"], -32601,
                                      f"codex-sessions does not handle {message['method']}")

    @staticmethod
    def _deliver(listener: Listener, message: dict[str, Any]) -> None:
        if "id" in message:
            listener.on_request(message["id"], message["method"], message.get("params") or {})
        else:
            listener.on_event(message["method"], message.get("params") or {})

    def _on_exit(self, code: int, tail: str) -> None:
        self.pool._forget(self)
        self.pool.kill_strays()
        for listener in list(self.users):
            listener.on_exit(code, tail)
        self.users.clear()
        self.threads.clear()


class Pool:
    """Every Codex process of this sidecar, by key."""

    def __init__(self, reaper: Reaper | None) -> None:
        self.reaper = reaper
        self.processes: dict[tuple[Any, ...], CodexProcess] = {}
        self.closing: dict[tuple[Any, ...], asyncio.Future[None]] = {}  # by key, while they end
        self._spawning = 0  # a Codex being started is a child we do not know by pid yet
        self._strays_waiting = False

    async def acquire(self, listener: Listener, key: tuple[Any, ...], argv: list[str],
                      env: dict[str, str], cwd: str) -> CodexProcess:
        """The process for `key`, started if needed (await its `ready` before use).

        OSError when the command cannot run.
        """
        process = self.processes.get(key)
        while process is None and key in self.closing:
            # its predecessor still holds the threads' writer locks: a resume now would fail
            await asyncio.shield(self.closing[key])
            process = self.processes.get(key)
        if process is None:
            process = CodexProcess(self, key, argv, env, cwd)
            self.processes[key] = process
            self._spawning += 1
            try:
                await process.server.spawn()
            except OSError:
                self.processes.pop(key, None)
                raise
            finally:
                self._spawning -= 1
                if self._strays_waiting and not self._spawning:
                    self.kill_strays()
            if self.reaper and process.pid:
                self.reaper.watch(process.pid)
            asyncio.create_task(self._handshake(process))
        process.users.add(listener)
        return process

    async def _handshake(self, process: CodexProcess) -> None:
        try:
            await process.server.handshake(HANDSHAKE_TIMEOUT)
        except AppServerError as exc:
            if not process.ready.done():
                process.ready.set_exception(exc)
                process.ready.exception()  # retrieved: waiters get it too
            await self._close(process)
            return
        if not process.ready.done():
            process.ready.set_result(None)

    def detach(self, process: CodexProcess, listener: Listener, thread_id: str | None) -> str | None:
        """`listener` no longer uses the process (at once, before anything is awaited, so a
        resume right after starts from this); the thread to unsubscribe, if any."""
        process.users.discard(listener)
        if thread_id and process.threads.get(thread_id) is listener:
            del process.threads[thread_id]
            return thread_id
        return None

    async def release(self, process: CodexProcess, listener: Listener, thread_id: str | None) -> None:
        """`listener` is done with its thread; the process stops with its last user."""
        await self.settle(process, self.detach(process, listener, thread_id))

    async def settle(self, process: CodexProcess, unsubscribe: str | None) -> None:
        """After `detach`: unsubscribe the thread others' process keeps; close it if unused."""
        if unsubscribe and process.users and process.server.running:
            try:
                await process.request("thread/unsubscribe", {"threadId": unsubscribe}, 10)
            except AppServerError as exc:
                log.info("unsubscribing %s: %s", unsubscribe, exc)
        if not process.users:
            await self._close(process)

    async def _close(self, process: CodexProcess) -> None:
        self._forget(process)
        closed = self.closing[process.key] = asyncio.ensure_future(process.server.close())
        try:
            await asyncio.shield(closed)
        finally:
            if self.closing.get(process.key) is closed:
                del self.closing[process.key]
        self.kill_strays()

    def kill_strays(self) -> None:
        """What an ended Codex left behind came to us (we are a subreaper): end it."""
        if self._spawning:  # it could be taken for a stray: look once it is known
            self._strays_waiting = True
            return
        self._strays_waiting = False
        known = {p.pid for p in self.processes.values() if p.pid}
        if self.reaper:
            known.add(self.reaper.pid)
        kill_strays(known)

    def _forget(self, process: CodexProcess) -> None:
        if self.processes.get(process.key) is process:
            del self.processes[process.key]
        if self.reaper and process.pid:
            self.reaper.forget(process.pid)

    async def close_all(self) -> None:
        await asyncio.gather(*(self._close(p) for p in list(self.processes.values())),
                             return_exceptions=True)
