"""Every session this sidecar knows, by id: finding them, names, limits, other sidecars.

Several sidecars may share one database (a daemon and `serve --standalone`
ones). Each runs its own sessions and shows the others' as their owner last
recorded them (`owner`), reading what changed every half second.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Iterable

import orjson

from ..errors import InvalidParams, LimitReached, SessionNotFound
from ..codex.reaper import alive
from ..store import Store
from .projects import Project, resolve_project
from .session import Session

log = logging.getLogger(__name__)

ENDED = ("failed", "stopped", "interrupted")


class Registry:
    def __init__(self, store: Store, limit_bytes: Callable[[], int]) -> None:
        self.store = store
        self.limit_bytes = limit_bytes
        self.sessions: dict[str, Session] = {}
        self._synced_at = ""
        self.quarantined: list[str] = []  # what was set aside, for the user

    def __iter__(self) -> Iterable[Session]:
        return iter(list(self.sessions.values()))

    def get(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    def add(self, session: Session) -> None:
        self.sessions[session.id] = session
        Session.changes += 1

    def remove(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        Session.changes += 1

    # ---- finding ------------------------------------------------------------------------

    def resolve(self, path: str) -> Project:
        """The project of `path`; inside a session's own work tree, that session's project."""
        project = resolve_project(path)
        for session in self.sessions.values():
            if session.worktree and os.path.realpath(session.worktree["path"]) == project.root:
                return session.project
        return project

    def live_named(self, project: Project, name: str) -> Session | None:
        for session in self.sessions.values():
            if session.project.root == project.root and session.name == name and (
                    session.live or session.owner is not None):
                return session
        return None

    def named(self, project: Project, name: str) -> Session | None:
        """The live session of that name, else the most recent one that had it."""
        live = self.live_named(project, name)
        if live is not None:
            return live
        named = [s for s in self.sessions.values()
                 if s.project.root == project.root and s.name == name]
        return max(named, key=lambda s: s.updated_at) if named else None

    def find(self, session_id: str | None, project_path: str | None, name: str) -> Session:
        if session_id is not None:
            session = self.sessions.get(session_id)
            if session is None:
                raise SessionNotFound(f"no session with id {session_id}", {"id": session_id})
            return session
        if project_path is None:
            raise InvalidParams("id", "give a session id, or project and name")
        project = self.resolve(project_path)
        session = self.named(project, name)
        if session is None:
            raise SessionNotFound(f"no session named {name!r} in {project.root}",
                                  {"name": name, "project": project.root})
        return session

    def in_project(self, root: str | None) -> list[Session]:
        return [s for s in self.sessions.values() if root is None or s.project.root == root]

    def check_limit(self, project: Project, limit: int) -> None:
        live = sum(1 for s in self.sessions.values()
                   if s.project.root == project.root and (s.live or s.owner is not None))
        if live >= limit:
            raise LimitReached(f"{project.name} already has {limit} live sessions "
                               f"(maxSessionsPerProject); kill one first",
                               {"project": project.root})

    def free_name(self, project: Project, name: str) -> str:
        """A name for an old record moving out of the way: NAME~1, NAME~2, ..."""
        taken = {s.name for s in self.sessions.values() if s.project.root == project.root}
        n = 1
        while f"{name}~{n}" in taken:
            n += 1
        return f"{name}~{n}"

    # ---- other sidecars -------------------------------------------------------------------

    async def sync(self, first: bool = False) -> list[Session]:
        """Read what other sidecars wrote (the first time: everything); return what changed."""
        rows = await self.store.load_sessions(self._synced_at)
        next_seqs = await self.store.next_seqs() if first else {}
        changed = []
        for session_id, data, pid, token in rows:
            try:
                rec = orjson.loads(data)
                self._synced_at = max(self._synced_at, rec["updatedAt"])
                changed_one = self._take(rec, pid, token, first, next_seqs)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                log.error("session row %s is unreadable (%s); it was set aside", session_id, reason)
                self.quarantined.append(f"{session_id} ({reason})")
                await self.store.quarantine(session_id, data, reason)
                continue
            if changed_one is not None:
                changed.append(changed_one)
        return changed + self.reap_owners()

    def reap_owners(self) -> list[Session]:
        """Sessions whose owner died are interrupted now (theirs to resume is anyone's)."""
        freed = []
        for session in self.sessions.values():
            if session.owner and not alive(session.owner.get("pid")):
                session.owner = None
                session.recorded_status = None
                session.forget_encoding()
                freed.append(session)
        return freed

    def _take(self, rec: dict[str, Any], pid: int | None, token: str | None, first: bool,
              next_seqs: dict[str, int]) -> Session | None:
        mine = self.sessions.get(rec["id"])
        foreign = bool(token) and token != self.store.owner_token and alive(pid)
        if mine is not None and mine.owner is None and not foreign:
            return None  # ours (perhaps being resumed right now): the record is older news
        session = Session.from_record(rec, self.limit_bytes())
        if first:
            session.transcript.next_seq = max(session.transcript.next_seq,
                                              next_seqs.get(rec["id"], 1))
            session.transcript.first_seq = session.transcript.next_seq
        if foreign and rec["status"] not in ENDED:
            session.owner = {"pid": pid}  # type: ignore[dict-item]
        elif rec["status"] not in ENDED:
            session.recorded_status = None  # its sidecar is gone: interrupted
            self.store.save_session(session.record(), owned=False)
        if mine is not None and mine.to_wire() == session.to_wire():
            return None
        self.add(session)
        return session
