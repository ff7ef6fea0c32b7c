"""Run slots: how many turns run at once, and who waits for one, in order.

A session may run when fewer turns run than its own `maxRunning` (the limit of
the client that started it); otherwise it waits in line.
"""

from __future__ import annotations

import collections
from typing import Callable

from .session import Session


class Slots:
    def __init__(self, begin: Callable[[Session], None]) -> None:
        self.begin = begin  # starts the session's queued prompt as a turn
        self.running = 0
        self.line: collections.deque[Session] = collections.deque()

    def want(self, session: Session) -> None:
        """Run the session's prompt now if a slot is free, else queue it."""
        if self.running < session.max_running and not self.line:
            self.running += 1
            self.begin(session)
        elif session not in self.line:
            self.line.append(session)

    def release(self) -> None:
        self.running -= 1
        while self.line and self.running < self.line[0].max_running:
            waiting = self.line.popleft()
            if waiting.phase == "ready" and waiting.next_prompt is not None:
                self.running += 1
                self.begin(waiting)

    def leave(self, session: Session) -> None:
        if session in self.line:
            self.line.remove(session)
