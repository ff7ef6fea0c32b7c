"""`codex-sessions daemon`: the one process that owns the sessions of a state folder.

It listens on a Unix socket (`daemon.sock` in the state folder, 0600, folder
0700), speaking the same protocol as `serve`, to any number of clients of the
same user (checked with SO_PEERCRED). Every client sees every session and gets
every notification. It stays while a client is connected or a turn runs, waits
for a slot or waits for the user; once nothing holds it, it exits after
`idleExitSeconds`, and its idle sessions become `interrupted` (resumable).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from . import __version__, eventloop
from .config import DEFAULT_IDLE_EXIT
from .codex.reaper import become_subreaper
from .paths import socket_path
from .store import StoreError
from .rpc.handlers import App, register
from .rpc.transport import Connection, Hub, serve_stream, stream_writer
from .wire import LIVE_STATUSES

log = logging.getLogger(__name__)

SEND_BUFFER = 4 << 20  # per client socket: asked for; Linux grants up to net.core.wmem_max


def _private_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = folder.stat()
    if st.st_uid != os.getuid():
        raise SystemExit(f"codex-sessions daemon: {folder} belongs to another user; refusing it")
    os.chmod(folder, 0o700)


def peer_uid(sock: socket.socket) -> int | None:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None
    return struct.unpack("3i", creds)[1]


class Daemon:
    def __init__(self, state_dir: Path, idle_exit: float = DEFAULT_IDLE_EXIT,
                 http: str | None = None, http_allow_remote: bool = False) -> None:
        self.state_dir = state_dir
        self.socket = socket_path(state_dir)
        self.idle_exit = idle_exit
        self.hub = Hub()
        self.app = App(daemon=self, state_dir=state_dir)
        self.app.emit = self._emit
        self.http_flag, self.http_allow_remote = http, http_allow_remote
        self.http: Any = None  # the HTTP API and panel (http/), when turned on
        self.http_error: str | None = None  # why it is off although the config file asks
        self.started = time.time()
        self.idle_since: float | None = time.monotonic()
        self._stop = asyncio.Event()
        self._lock_fd: int | None = None

    # ---- what clients may ask ---------------------------------------------------------------

    def client_options(self, options: Any) -> None:
        if options.idle_exit_seconds is not None:
            self.idle_exit = options.idle_exit_seconds

    def status(self) -> dict[str, Any]:
        sessions = list(self.app.sessions.registry) if self.app.sessions else []
        live = [s for s in sessions if s.owner is None and s.status in LIVE_STATUSES]
        counts: dict[str, int] = {}
        for s in live:
            counts[s.status] = counts.get(s.status, 0) + 1
        return {"pid": os.getpid(), "version": __version__, "socket": str(self.socket),
                "stateDir": str(self.state_dir), "log": str(self.state_dir / "daemon.log"),
                "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                "uptimeSeconds": round(time.time() - self.started, 1),
                "clients": sum(1 for c in self.hub.connections if not c.closed),
                "liveSessions": len(live), "statuses": counts,
                "busy": bool(self.app.sessions and self.app.sessions.busy),
                "idleExitSeconds": self.idle_exit,
                "idleFor": (round(time.monotonic() - self.idle_since, 1)
                            if self.idle_since is not None else None),
                "http": self.http.describe() if self.http else None,
                "httpError": self.http_error, "eventLoop": eventloop.running()}

    def stop_soon(self) -> None:
        asyncio.get_running_loop().call_soon(self._stop.set)

    # ---- running -----------------------------------------------------------------------------

    def _take_lock(self) -> bool:
        """One daemon per state folder: hold an exclusive lock on daemon.pid while we run."""
        fd = os.open(self.state_dir / "daemon.pid", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        return True

    async def run(self) -> int:
        _private_folder(self.state_dir)
        _private_folder(self.socket.parent)
        become_subreaper()
        if not self._take_lock():
            print(f"codex-sessions daemon: another daemon serves {self.state_dir}", file=sys.stderr)
            return 1
        sessions = self.app.open(self.state_dir)
        try:
            await sessions.ready()
        except StoreError as exc:  # every request answers with it until it is fixed
            log.error("%s", exc)
        if not await self._start_http():
            await sessions.shutdown()
            return 2
        if self.socket.exists() or self.socket.is_symlink():
            self.socket.unlink()  # a dead daemon's: we hold the lock
        old_umask = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(self._client, path=str(self.socket),
                                                     limit=1 << 20)
        finally:
            os.umask(old_umask)
        os.chmod(self.socket, 0o600)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self._stop.set)
        watcher = asyncio.create_task(self._watch_idle())
        log.info("codex-sessions daemon %s serving %s on %s (event loop: %s)", __version__,
                 self.state_dir, self.socket, eventloop.running())
        try:
            await self._stop.wait()
        finally:
            watcher.cancel()
            server.close()
            if self.http:
                await self.http.close()
            for conn in list(self.hub.connections):
                conn.close()
            try:
                await asyncio.wait_for(sessions.shutdown(), 15)
            except Exception:
                log.exception("stopping the sessions")
            try:
                self.socket.unlink()
            except FileNotFoundError:
                pass
        log.info("codex-sessions daemon stopped")
        return 0

    async def _watch_idle(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            held = any(not c.closed for c in self.hub.connections) or bool(
                self.app.sessions and self.app.sessions.busy) or self.http is not None
            if held:
                self.idle_since = None
            elif self.idle_since is None:
                self.idle_since = time.monotonic()
            elif time.monotonic() - self.idle_since >= self.idle_exit:
                log.info("idle for %.0f s with no client: exiting", self.idle_exit)
                self._stop.set()

    # ---- the HTTP API and panel (http/) -------------------------------------------------------

    # A daemon serving HTTP stays: HTTP clients cannot start it as editors do.

    def _emit(self, method: str, params: Any) -> None:
        """Every notification to every editor connection and every HTTP event stream."""
        self.hub.emit(method, params)
        if self.http:
            self.http.publish(method, params)

    async def _start_http(self) -> bool:
        """Serve HTTP if --http or the config file asks; False: --http cannot be served."""
        from .http.address import HttpSetupError, configured_address
        from .http.server import HttpServer
        try:
            address = configured_address(self.http_flag, self.http_allow_remote)
            if address is not None:
                server = HttpServer(self.app.sessions, self.state_dir, address,
                                    self.http_allow_remote)
                await server.start()
                self.http = server
        except (HttpSetupError, OSError) as exc:
            if self.http_flag:  # asked for on the command line: say so, and do not run
                print(f"codex-sessions daemon: {exc}", file=sys.stderr)
                return False
            log.error("%s", exc)  # from the config file: the editors still get their daemon
            self.http_error = str(exc)
            if self.app.sessions:
                self.app.sessions.tell(1, f"the HTTP API is off: {exc}", lasting=True)
        return True

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        uid = peer_uid(sock) if sock is not None else None
        if uid != os.getuid():
            log.warning("refused a connection from uid %s", uid)
            writer.close()
            return
        try:  # a command's output batch (MiBs) goes to the kernel in one send, not copied
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)  # (capped at wmem_max)
        except OSError:
            pass
        conn = Connection(stream_writer(writer), writer.close,
                          lambda c: register(c, self.app))
        self.hub.add(conn)
        try:
            await serve_stream(conn, reader.read)
        finally:
            self.hub.remove(conn)
            conn.close()


def run_daemon(state_dir: Path, idle_exit: float | None, log_file: Path | None,
               verbose: bool, http: str | None = None, http_allow_remote: bool = False) -> int:
    from .logs import setup_logging
    from .serve import tune_memory
    setup_logging(log_file, verbose)
    tune_memory()
    daemon = Daemon(state_dir, DEFAULT_IDLE_EXIT if idle_exit is None else idle_exit,
                    http, http_allow_remote)
    return eventloop.run(daemon.run())
