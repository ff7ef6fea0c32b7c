"""`codex-sessions serve --standalone`: a sidecar of its own, for one client on stdio.

A standalone sidecar serves one client on stdin/stdout, and its sessions end
with it: however it ends (stdin closed, `exit`, SIGTERM, SIGINT, SIGHUP), it
stops every Codex process it started before the process exits; on SIGKILL the
reaper does it. Nothing but protocol goes to stdout.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import gc
import logging
import os
import signal
import sys

from . import eventloop
from .codex.reaper import become_subreaper
from .rpc.handlers import App, register
from .rpc.transport import Connection, serve_stream

log = logging.getLogger(__name__)


def tune_memory() -> None:
    """Fewer, cheaper collections; big blocks reused, not mapped afresh for each.

    Every answer allocates many small dicts, so the default GC thresholds fire often.
    glibc maps every block over 128 KiB by default and raises that bound as they are
    freed, fragmenting the heap with the transcript strings that follow; a fixed 4 MiB
    bound keeps it predictable, and the heap keeps up to 8 MiB free at its top, so
    that streaming a command's output (a pipe buffer per read, a batch per notification)
    does not fault in fresh pages for each (about 1,400 page faults a MiB before, 300 after).
    """
    gc.set_threshold(50_000, 20, 20)
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD: fixed, so no dynamic raise
        libc.mallopt(-1, 8 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def standalone_server(already_read: bytes = b"") -> int:
    """Serve this one client on stdio (after `already_read`, what a relay read of it)."""
    tune_memory()
    become_subreaper()
    # Anything else that prints must not corrupt the protocol stream.
    out_fd = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:  # room for a command's output batch while the editor reads the one before
        fcntl.fcntl(out_fd, fcntl.F_SETPIPE_SZ, 1 << 20)
    except OSError:  # not a pipe, or more than this user may have
        pass
    code = eventloop.run(_standalone(sys.stdin.fileno(), out_fd, already_read))
    sys.stderr.flush()
    os._exit(code)


async def _standalone(in_fd: int, out_fd: int, already_read: bytes) -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    if already_read:
        reader.feed_data(already_read)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(in_fd, "rb", 0))

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(out_fd, view):]
            except BlockingIOError:
                continue

    app = App()
    conn = Connection(write, lambda: None, lambda c: register(c, app))
    app.emit = lambda method, params: conn.notify(method, params) if conn.initialized else None
    main = asyncio.create_task(serve_stream(conn, reader.read))
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, main.cancel)
    try:
        await main
    except asyncio.CancelledError:
        pass
    finally:
        if app.sessions is not None:
            try:
                await asyncio.wait_for(app.sessions.shutdown(), 10)
            except Exception:
                log.exception("shutting down")
    return conn.exit_code if conn.closed else 1
