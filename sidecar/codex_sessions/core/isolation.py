"""Parallel without collisions: work trees (diff, merge, discard), write scopes, overlaps.

A mixin of `Sessions` (service.py): these operations use its registry, runners and store.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import InvalidProject, InvalidState, SessionBusy
from ..wire import OVERLAP
from . import scopes, worktrees
from .session import Session

if TYPE_CHECKING:
    from .service import Sessions


class Isolation:
    def wrote(self: "Sessions", session: Session, paths: list[str]) -> None:
        """`session` changed these files: flag writes outside its scope and shared files."""
        for path in paths:
            if session.role == "worker" and session.write_scope and \
                    not scopes.in_scope(path, session.write_scope):
                self.runner(session).flag(f"wrote outside its scope "
                                          f"({', '.join(session.write_scope)}): {path}")
                self.emit(OVERLAP, {"path": path, "sessions": [session.id], "reason": "outOfScope"})
            writers = self._writers.setdefault((session.workdir, path), [])
            if session.id in writers:
                continue
            writers.append(session.id)
            if len(writers) < 2:
                continue
            involved = [s for s in (self.registry.get(i) for i in writers) if s is not None]
            for one in involved:
                others = ", ".join(o.name for o in involved if o is not one)
                self.runner(one).flag(f"overlap: {path} was also changed by {others}")
            self.emit(OVERLAP, {"path": path, "sessions": list(writers), "reason": "sameFile"})


    def _scope_warnings(self: "Sessions", session: Session) -> list[str]:
        if session.role != "worker" or not session.write_scope:
            return []
        found = []
        for other in self.registry.in_project(session.project.root):
            if other.live and other.role == "worker" and other.write_scope and \
                    other.workdir == session.workdir:
                for mine, theirs in scopes.intersect(session.write_scope, other.write_scope):
                    found.append(f"write scope {mine} meets {other.name}'s {theirs} in the same "
                                 "work tree: the two may change the same files")
        return found

    async def _drop_worktree(self: "Sessions", session: Session) -> None:
        if session.worktree:
            await worktrees.discard(session.project.root, _tree(session))

    async def diff(self: "Sessions", session: Session) -> dict[str, Any]:
        """What the session changed: against its base (work tree) or the files it was seen
        changing (shared tree), as a unified diff."""
        if session.worktree:
            if not os.path.isdir(session.worktree["path"]):
                return {"diff": "", "files": [], "overlaps": []}
            found = await worktrees.diff(session.worktree["path"], session.worktree["base"])
        else:
            if not await worktrees.is_git(session.project.root):
                raise InvalidProject(f"{session.project.root} is not a git repository: there is no "
                                     "base to diff against")
            found = await worktrees.diff(session.project.root, "HEAD", list(session.changed_files))
        found["overlaps"] = self._tree_overlaps(session, [f["path"] for f in found["files"]])
        return found

    def _tree_overlaps(self: "Sessions", session: Session, paths: list[str]) -> list[dict[str, Any]]:
        """Other unmerged work-tree sessions of the project that changed the same files."""
        found = []
        for other in self.registry.in_project(session.project.root):
            if other is session or not other.worktree or other.worktree.get("merged"):
                continue
            for path in sorted(set(paths) & set(other.changed_files)):
                found.append({"path": path, "sessions": [session.id, other.id]})
        return found

    async def merge(self: "Sessions", session: Session, strategy: str) -> dict[str, Any]:
        """A work-tree session's changes into the main work tree: staged, not committed."""
        if not session.worktree:
            raise InvalidState(f"session {session.name!r} works in the project's own tree: there is "
                               "nothing to merge", {"id": session.id})
        if session.turn_active:
            raise SessionBusy(f"session {session.name!r} is {session.status}; merge when its turn "
                              "has ended", {"id": session.id})
        message = _commit_message(session)
        files = await worktrees.merge(session.project.root, _tree(session), strategy, message)
        session.worktree = {**session.worktree, "merged": True}
        self.runner(session).note(f"Merged into {session.project.root} ({strategy}), staged: "
                                  + (", ".join(files) or "no changes"))
        self.runner(session).changed()
        return {"session": session.to_wire(), "files": files, "message": message}

    async def discard(self: "Sessions", session: Session) -> None:
        """Remove a work-tree session's work tree and branch (its record stays)."""
        if not session.worktree:
            raise InvalidState(f"session {session.name!r} has no work tree to discard",
                               {"id": session.id})
        if session.live:
            await self.runner(session).end_process("stopped")
        await worktrees.discard(session.project.root, _tree(session))
        self.runner(session).note(f"Discarded the work tree and the branch {session.worktree['branch']}")
        session.worktree = None
        self.runner(session).changed()



def _tree(session: Session) -> worktrees.Worktree:
    tree = session.worktree or {}
    return worktrees.Worktree(tree["path"], tree["branch"], tree["base"])


def _commit_message(session: Session) -> str:
    """A suggested commit message, from the session's title and its last report."""
    title = (session.title or session.name).splitlines()[0][:72]
    body = []
    if session.report:
        body.append(session.report["summary"])
        if session.report["verified"]:
            body.append("Verified: " + ", ".join(session.report["verified"]))
    return f"{title}\n\n" + "\n".join(body) + f"\n\ncodex-sessions: {session.name}\n"
