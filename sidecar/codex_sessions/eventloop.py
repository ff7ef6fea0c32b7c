"""The event loop the sidecar runs on: uvloop where it is installed, asyncio's own otherwise.

A turn is some fifty messages from Codex, a dozen round trips to the store's thread and a
few writes to each client, each a step of the loop; uvloop's steps cost less (bench/:
the daemon's CPU a turn 13.2 -> 11.0 ms), and on a busy machine that CPU is taken from
Codex. `CODEX_SESSIONS_EVENT_LOOP=asyncio` keeps asyncio's own loop (troubleshooting).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")

ENV = "CODEX_SESSIONS_EVENT_LOOP"


def chosen() -> str:
    """"uvloop" or "asyncio": the loop `run` uses."""
    if os.environ.get(ENV, "").strip().lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    if chosen() == "uvloop":
        import uvloop
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


def running() -> str:
    """"uvloop" or "asyncio": the loop this code runs on (for `codex/daemon/status`)."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
