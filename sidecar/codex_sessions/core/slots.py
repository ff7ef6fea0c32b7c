"""Run slots: how many turns run at once, and who waits for one, in order.

A session may run when fewer turns run than its own `maxRunning` (the limit of
the client that started it); otherwise it waits in line. Work that is not a
session's turn (the notetaker, notes.py) waits in the same line with `take()`.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import Callable, Union

from .session import Session


@dataclass(eq=False)
class _Taker:
    """Someone waiting for a slot with `take()`."""

    max_running: int
    future: "asyncio.Future[None]"


class Slots:
    def __init__(self, begin: Callable[[Session], None]) -> None:
        self.begin = begin  # starts the session's queued prompt as a turn
        self.running = 0
        self.line: collections.deque[Union[Session, _Taker]] = collections.deque()

    def want(self, session: Session) -> None:
        """Run the session's prompt now if a slot is free, else queue it."""
        if self.running < session.max_running and not self.line:
            self.running += 1
            self.begin(session)
        elif session not in self.line:
            self.line.append(session)

    def take(self, max_running: int) -> "asyncio.Future[None]":
        """A slot for other work: done when it is the caller's, who then must `release()` it."""
        future = asyncio.get_running_loop().create_future()
        if self.running < max_running and not self.line:
            self.running += 1
            future.set_result(None)
        else:
            self.line.append(_Taker(max_running, future))
        return future

    def release(self) -> None:
        self.running -= 1
        while self.line and self.running < self.line[0].max_running:
            waiting = self.line.popleft()
            if isinstance(waiting, _Taker):
                if not waiting.future.done():  # not cancelled meanwhile
                    self.running += 1
                    waiting.future.set_result(None)
            elif waiting.phase == "ready" and waiting.next_prompt is not None:
                self.running += 1
                self.begin(waiting)

    def leave(self, session: Session) -> None:
        if session in self.line:
            self.line.remove(session)
