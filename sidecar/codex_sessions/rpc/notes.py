"""The protocol's methods for the notetaker and learn mode (core/notes.py).

Kept apart from handlers.py, in its style: `codex/session/notes`, `codex/session/learn`,
`codex/project/learnings`, and what `start` does with `notes` and `learn`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..config import ClientConfig
from . import params as P

if TYPE_CHECKING:
    from ..core.service import Sessions
    from ..core.session import Session
    from .transport import Connection


def start_options(config: ClientConfig, p: P.StartParams) -> dict[str, Any]:
    """What a new session starts with: notes (default: the client's), and learn mode."""
    if p.learn:  # learn mode needs the notetaker
        return {"notes": True, "learn": {"on": True, "endedBecause": None, "openGaps": []}}
    return {"notes": config.notes if p.notes is None else p.notes}


def start_existing(sessions: "Sessions", session: "Session", p: P.StartParams) -> None:
    """`notes`/`learn` given to `start` of an existing session: they apply from its next prompt."""
    if session.owner is not None:
        return
    if p.notes is not None and p.notes != session.notes:
        sessions.notes.set_notes(sessions.runner(session), p.notes)
    if p.learn is not None and p.learn != bool((session.learn or {}).get("on")):
        sessions.notes.set_learn(sessions.runner(session), p.learn)


def register(method: Callable[[str], Any], session_of: Any, sessions_of: Any) -> None:
    """Add these methods to handlers.py's table (`method` is its decorator)."""

    async def switch(conn: "Connection", raw: Any, learn: bool) -> dict[str, Any]:
        sessions, p, session = await session_of(conn, P.SwitchParams, raw)
        if session.owner is not None:
            sessions.drivable(session)  # run by another codex-sessions: refused, saying which
        runner = sessions.runner(session)
        (sessions.notes.set_learn if learn else sessions.notes.set_notes)(runner, p.on)
        return {"session": session.to_wire()}

    @method("codex/session/notes")
    async def session_notes(conn: "Connection", raw: Any) -> dict[str, Any]:
        return await switch(conn, raw, learn=False)

    @method("codex/session/learn")
    async def session_learn(conn: "Connection", raw: Any) -> dict[str, Any]:
        return await switch(conn, raw, learn=True)

    @method("codex/project/learnings")
    async def project_learnings(conn: "Connection", raw: Any) -> dict[str, Any]:
        p = P.parse(P.LearningsParams, raw)
        sessions = await sessions_of(conn)
        return await sessions.notes.project_learnings(sessions.registry.resolve(p.project), p.limit)
