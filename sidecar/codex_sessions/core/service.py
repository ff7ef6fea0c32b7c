"""The sessions, as every client sees them: the operations the protocol names.

`Core` holds what the runners share (store, outbox, run slots, Codex processes,
work-tree watches); `Sessions` adds the operations. A client's options arrive
as a ClientConfig with each call that starts something, and are recorded with
the session it starts.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import shlex
import uuid
from pathlib import Path
from typing import Any, Callable

from ..codex.appserver import AppServerTimeout
from ..codex.pool import Pool
from ..codex.reaper import Reaper, alive
from ..config import ClientConfig
from ..errors import CodexUnavailable, InvalidState, NameTaken, SessionBusy
from ..store import NameHeld, Store
from ..wire import FORGOTTEN, SHOW_MESSAGE
from . import changes, worktrees
from .documents import Documents
from .isolation import Isolation
from .notes import Notetaker
from .outbox import Outbox
from .projects import Project, check_name
from .registry import Registry
from .report import render
from .runner import Runner
from .session import RANK, REST_RANK, Session, report_of
from .slots import Slots
from .threads import ThreadModel

log = logging.getLogger(__name__)

Emit = Callable[[str, Any], None]
SYNC_INTERVAL = 0.5


class Core:
    """What every session's runner shares."""

    def __init__(self, state_dir: Path, emit: Emit) -> None:
        self.emit = emit
        self.store = Store(state_dir, uuid.uuid4().hex)
        self.registry = Registry(self.store, lambda: 10 * 1024 * 1024)
        self.outbox = Outbox(emit, self.store, self._wire_of)
        self.slots = Slots(lambda session: self.runners[session.id].begin())
        self.runners: dict[str, Runner] = {}
        self.reaper: Reaper | None = None
        self.pool = Pool(None)
        self._watches: dict[str, changes.ProjectWatch] = {}
        self.documents = Documents(state_dir)  # what is recorded of every session, as files
        self.notes = Notetaker(self)  # the notetaker and learn mode
        self._writers: dict[tuple[str, str], list[str]] = {}  # (work tree, file): who changed it

    def _wire_of(self, session_id: str) -> bytes | None:
        session = self.registry.get(session_id)
        return session.wire_json() if session is not None else None

    def watch(self, root: str) -> changes.ProjectWatch:
        if root not in self._watches:
            self._watches[root] = changes.ProjectWatch(root)
        return self._watches[root]

    def runner(self, session: Session) -> Runner:
        runner = self.runners.get(session.id)
        if runner is None or runner.session is not session:
            runner = self.runners[session.id] = Runner(session, self)
        return runner


class Sessions(Core, Isolation, ThreadModel):
    """Named Codex sessions: the protocol's operations."""

    def __init__(self, state_dir: Path, emit: Emit) -> None:
        super().__init__(state_dir, emit)
        self._opened: asyncio.Future[None] | None = None
        self._syncer: asyncio.Task[None] | None = None
        self._closed = False
        self._models: tuple[float, list[dict[str, Any]]] | None = None
        self._lists: dict[tuple[Any, ...], bytes] = {}  # list_json()'s, while Session.changes
        self._lists_at = -1                             # stays what it was then
        self.startup_notices: list[dict[str, Any]] = []  # told to each client that connects later

    # ---- opening and closing ------------------------------------------------------------

    async def ready(self) -> None:
        """Open the database and load earlier sessions, once (again after a failure)."""
        if self._opened is None or (self._opened.done() and self._opened.exception()):
            self._opened = asyncio.ensure_future(self._open())
        await asyncio.shield(self._opened)

    async def _open(self) -> None:
        self.store.on_health = self._storage_health
        self.store.on_replaced = self._storage_replaced
        try:
            await self.store.open()
        except BaseException:
            await self.store.close()
            raise
        if self.store.notice:
            self.tell(2, self.store.notice, lasting=True)
        self.reaper = Reaper()
        self.pool.reaper = self.reaper
        await self.registry.sync(first=True)
        await self._keep_streamed_text()
        if self.registry.quarantined:
            self.tell(1, f"{len(self.registry.quarantined)} unreadable session record(s) were set "
                         f"aside in {self.store.path} (table quarantine): "
                         + "; ".join(self.registry.quarantined[:3]), lasting=True)
        self._syncer = asyncio.create_task(self._sync_loop())
        gc.freeze()  # what was loaded lives long: keep it out of every collection

    async def _keep_streamed_text(self) -> None:
        """What streamed of a message that never completed becomes an item of its own."""
        for session_id in await self.store.with_pieces():
            session = self.registry.get(session_id)
            if session is None or session.live or session.owner is not None:
                continue
            await self.runner(session).keep_streamed_text(at_start=True)
            self.store.save_session(session.record(), owned=False)

    def tell(self, level: int, message: str, lasting: bool = False) -> None:
        """Something every client's user should read (1 error, 2 warning, 3 info).

        `lasting`: found at start-up, so told again to each client that connects later.
        """
        params = {"type": level, "message": f"codex-sessions: {message}"}
        if lasting:
            self.startup_notices.append(params)
        self.emit(SHOW_MESSAGE, params)

    async def _sync_loop(self) -> None:
        """Keep other sidecars' sessions in step (two editors on one database)."""
        while True:
            await asyncio.sleep(SYNC_INTERVAL)
            try:
                for session in await self.registry.sync():
                    self.outbox.changed(session.id)
            except Exception:  # a bad read now must not stop the next one
                log.exception("reading other sidecars' sessions")

    def _storage_health(self, problem: str | None) -> None:
        for session in self.registry:
            if session.owner is None:
                session.storage_error = problem
                session.forget_encoding()
                self.outbox.changed(session.id)
        if problem:
            self.tell(1, f"{problem}. Nothing is lost yet: it is kept in memory and saved when "
                         "writing works again; do not stop codex-sessions until then.")
        else:
            self.tell(3, f"saving to {self.store.path} works again; everything was saved")

    def _storage_replaced(self) -> None:
        """A new database file: write everything we hold into it."""
        for session in self.registry:
            self.store.save_session(session.record(), owned=session.live)
            for seq, encoded in session.transcript.encoded_items():
                self.store.append_item(session.id, seq, encoded)
        self.tell(1, self.store.notice or "the database was replaced")

    @property
    def busy(self) -> bool:
        """A turn runs, waits for a slot or for the user."""
        return any(s.holds_daemon for s in self.registry)

    async def shutdown(self) -> None:
        """Stop every Codex process we run; keep every record (live ones: interrupted)."""
        if self._closed:
            return
        self._closed = True
        if self._syncer:
            self._syncer.cancel()
        live = [self.runners[s.id] for s in self.registry
                if s.live and s.owner is None and s.id in self.runners]
        await asyncio.gather(*(r.end_process("interrupted") for r in live), return_exceptions=True)
        self.documents.flush()
        await self.pool.close_all()
        if self._opened is not None and not self._opened.done():
            # still opening: let it finish, so that its connection (a thread) is closed too
            await asyncio.wait([self._opened], timeout=30)
        if self.is_ready:
            await self.outbox.drain()
            await self.store.close()
        if self.reaper:
            self.reaper.close()

    # ---- checks -----------------------------------------------------------------------------

    def drivable(self, session: Session) -> None:
        if session.owner is not None:
            raise InvalidState(f"session {session.name!r} is run by another codex-sessions "
                               f"(pid {session.owner['pid']}); use that editor, or stop it",
                               {"id": session.id})
        if not session.live:
            raise InvalidState(f"session {session.name!r} is {session.status}; resume it first",
                               {"id": session.id})

    # ---- starting -------------------------------------------------------------------------

    async def start(self, client: ClientConfig, project_path: str, name: str,
                    prompt: str | None = None, reuse: bool = True, fresh: bool = False,
                    warnings: list[str] | None = None, **options: Any) -> tuple[Session, bool]:
        """Start a session; a name that had a session means that session unless `fresh`.

        `warnings` (when given) receives what the user should know (uncommitted changes a
        work tree lacks, a write scope that meets another worker's).
        """
        await self.ready()
        project = self.registry.resolve(project_path)
        check_name(name)
        existing = self.registry.live_named(project, name)
        if existing is not None:
            if not reuse or existing.owner is not None or fresh:
                owner = (f" by another codex-sessions (pid {existing.owner['pid']})"
                         if existing.owner else "")
                raise NameTaken(f"a session named {name!r} is already running{owner} in "
                                f"{project.root}", {"id": existing.id, "field": "name"})
            if prompt:
                await self.send(existing, prompt)
            return existing, False
        earlier = self.registry.named(project, name)
        if earlier is not None and not fresh:
            await self.resume(earlier)
            ignored = sorted(k for k, v in options.items()  # notes and learn apply (handlers.py)
                             if k not in ("notes", "learn")
                             and v not in (None, [], "worker", "workspace-write", "on-request"))
            if ignored and warnings is not None:
                warnings.append(f"{name!r} resumed its earlier conversation; {', '.join(ignored)} "
                                "stay as that session had them (start it fresh to change them)")
            if prompt:
                await self.send(earlier, prompt)
            return earlier, False
        if earlier is not None:  # a fresh conversation: the old one keeps its record, renamed
            self.runner(earlier).rename(self.registry.free_name(project, name))
        session, runner = await self._create(client, project, name, warnings, **options)
        if prompt:
            runner.prompt(prompt)
        asyncio.create_task(runner.open_thread())
        await self.store.flush()
        return session, True

    async def _create(self, client: ClientConfig, project: Project, name: str,
                      warnings: list[str] | None = None, tree_from: "worktrees.Worktree | None" = None,
                      **options: Any) -> tuple[Session, Runner]:
        """A new session with its Codex starting: limits checked, name taken, process spawned.

        `tree_from`: a work tree whose files the new session's work tree starts with (a fork)."""
        check_name(name)
        if self.registry.live_named(project, name) is not None:
            raise NameTaken(f"a session named {name!r} is already running in {project.root}",
                            {"field": "name"})
        self.registry.check_limit(project, client.max_sessions_per_project)
        options = {k: v for k, v in options.items() if v is not None}
        if options.get("role") == "explorer":
            options["sandbox"] = "read-only"  # an explorer looks; it never writes
        isolation = options.get("isolation") or client.isolation
        options["isolation"] = isolation
        session = Session.new(
            name, project, client.output_limit_bytes, codex_command=list(client.codex_command),
            codex_env=dict(client.codex_env), codex_process=client.codex_process,
            max_running=client.max_running, codex_timeout=client.codex_timeout, **options)
        told = warnings if warnings is not None else []
        if isolation == "worktree":
            folder = self.store.state_dir / "worktrees" / project.hash / f"{name}-{session.id}"
            if tree_from is not None:
                tree = await worktrees.copy(project.root, tree_from, folder, name)
            else:
                tree, found = await worktrees.create(project.root, folder, name)
                told += found
            session.worktree = {**tree.to_wire(), "merged": False}
        told += self._scope_warnings(session)
        try:
            await self._claim(session)
        except BaseException:
            await self._drop_worktree(session)
            raise
        self.registry.add(session)
        runner = self.runner(session)
        try:
            await runner.spawn()
        except OSError as exc:
            self.registry.remove(session)
            await self.store.forget(session.id)
            await self._drop_worktree(session)
            raise CodexUnavailable(
                f"cannot run Codex ({shlex.join(session.codex_command)}): {exc.strerror or exc}. "
                "Install it with `npm install -g @openai/codex`, or point codexCommand / "
                "CODEX_SESSIONS_CODEX at it; `codex-sessions doctor` checks the set-up") from None
        return session, runner

    async def _claim(self, session: Session) -> None:
        """Take the name in the database: no other sidecar runs a session of that name."""
        record = session.record()
        await self.store.flush()  # e.g. the kill of the session that had the name, just now
        for _ in range(3):
            try:
                await self.store.claim(record)
                return
            except NameHeld as held:
                ours = held.token == self.store.owner_token
                mine = self.registry.get(held.session_id)
                if (not ours and not alive(held.pid)) or (ours and (mine is None or not mine.live)):
                    await self.store.release_name(held.session_id)  # nobody runs it any more
                    continue
                raise NameTaken(f"a session named {session.name!r} is already running in "
                                f"{session.project.root} (pid {held.pid})",
                                {"id": held.session_id, "field": "name"}) from None
        raise NameTaken(f"the name {session.name!r} could not be taken", {"field": "name"})

    # ---- reading --------------------------------------------------------------------------

    @property
    def is_ready(self) -> bool:
        """The database is open and the sessions are loaded."""
        return self._opened is not None and self._opened.done() and not self._opened.exception()

    async def list(self, project_path: str | None = None, statuses: list[str] | None = None,
                   include_stopped: bool = False, waiting: bool = False) -> list[Session]:
        await self.ready()
        self.registry.reap_owners()
        return self.list_now(project_path, statuses, include_stopped, waiting)

    def list_json(self, project_path: str | None, statuses: list[str] | None,
                  include_stopped: bool, waiting: bool, fields: list[str] | None) -> bytes:
        """`list`'s answer as JSON, once `is_ready`: session objects, or only `fields` of each.

        The answer for all projects is kept until a session changes (editors ask for it
        when they connect; a voice assistant polls it).
        """
        self.registry.reap_owners()
        key = (statuses if statuses is None else tuple(statuses), include_stopped, waiting,
               fields if fields is None else tuple(fields))
        if project_path is None:
            if self._lists_at != Session.changes:
                self._lists.clear()
                self._lists_at = Session.changes
            elif key in self._lists:
                return self._lists[key]
        found = self.list_now(project_path, statuses, include_stopped, waiting)
        if fields is None:
            rows = [s.wire_json() for s in found]
        else:
            names = tuple(fields)
            rows = [s.row_json(names) for s in found]
        answer = b'{"sessions":[' + b",".join(rows) + b"]}"
        if project_path is None and self._lists_at == Session.changes:
            self._lists[key] = answer
        return answer

    def list_now(self, project_path: str | None = None, statuses: list[str] | None = None,
                 include_stopped: bool = False, waiting: bool = False) -> list[Session]:
        """`list` once `is_ready` (and owners that died were reaped)."""
        root = self.registry.resolve(project_path).root if project_path else None
        if waiting:
            statuses = [*(statuses or []), "waiting"]
        found = [s for s in self.registry.in_project(root)
                 if (statuses is None or s.status in statuses)
                 and (include_stopped or statuses is not None or s.status != "stopped"
                      or (s.worktree is not None and not s.worktree.get("merged")))]
        found.sort(key=lambda s: s.updated_at, reverse=True)
        found.sort(key=lambda s: RANK.get(s.status, REST_RANK))
        return found

    async def get(self, session_id: str | None, project: str | None, name: str) -> Session:
        await self.ready()
        if session_id is not None and self.registry.get(session_id) is None:
            await self.registry.sync()
        return self.registry.find(session_id, project, name)

    async def transcript(self, session: Session, after: int, limit: int) -> dict[str, Any]:
        items = session.transcript.page(after, limit) if session.owner is None else None
        if items is None:
            items = await self.store.items(session.id, after, limit)
        truncated = False
        if after == 0 and items and items[0]["seq"] > 1:
            truncated = True  # the database lost the oldest items
        result = {"items": items, "next": items[-1]["seq"] if items else after,
                  "truncated": truncated}
        runner = self.runners.get(session.id)
        if runner is not None and runner.open_streams and result["next"] >= session.transcript.next_seq - 1:
            # the end of the transcript, with a message still streaming: what streamed so far
            await self.store.flush()
            pieces = await self.store.pieces(session.id)
            result["streaming"] = [{"kind": "agentDelta", "itemId": item_id, "text": text}
                                   for item_id, (_, text) in pieces.items()
                                   if item_id in runner.open_streams]
        return result

    def report(self, session: Session) -> dict[str, Any]:
        report = report_of(session) if session.turn_active or session.report is None else session.report
        return {"report": report, "text": render(report)}

    # ---- driving ------------------------------------------------------------------------------

    async def send(self, session: Session, text: str, resume: bool = True) -> str | None:
        """The next prompt; a session that is not live is resumed first (unless told not to)."""
        if not session.live and session.owner is None and resume:
            await self.resume(session)
        self.drivable(session)
        if session.busy:
            raise SessionBusy(f"session {session.name!r} is {session.status}; wait for its turn "
                              "to end or cancel it", {"id": session.id})
        runner = self.runner(session)
        runner.prompt(text)
        await self.store.flush()
        if runner.turn is None:
            return None  # waiting for Codex or a run slot
        try:
            return await asyncio.shield(runner.turn)
        except AppServerTimeout as exc:
            raise InvalidState(f"session {session.name!r}: Codex is not responding ({exc}); it was "
                               "stopped, and the next prompt starts it again", {"id": session.id}) from None
        except Exception as exc:
            raise InvalidState(f"session {session.name!r}: the turn did not start: {exc}",
                               {"id": session.id}) from None

    async def cancel(self, session: Session) -> None:
        self.drivable(session)
        await self.runner(session).cancel()

    def respond(self, session: Session, request_id: str, decision: str,
                text: str | None = None) -> None:
        self.drivable(session)
        self.runner(session).respond(request_id, decision, text)

    def rename(self, session: Session, new_name: str) -> None:
        check_name(new_name, "new_name")
        if new_name == session.name:
            return
        clash = self.registry.live_named(session.project, new_name)
        if clash is not None:
            raise NameTaken(f"a session named {new_name!r} is already running in "
                            f"{session.project.root}", {"id": clash.id, "field": "newName"})
        if session.owner is not None:
            self.drivable(session)
        self.runner(session).rename(new_name)

    async def kill(self, session: Session) -> None:
        if session.owner is not None:
            self.drivable(session)
        if not session.live:
            raise InvalidState(f"session {session.name!r} is {session.status}, not running: "
                               "nothing to kill", {"id": session.id})
        await self.runner(session).end_process("stopped")

    async def kill_all(self, project_path: str | None) -> list[str]:
        await self.ready()
        root = self.registry.resolve(project_path).root if project_path else None
        doomed = [s for s in self.registry.in_project(root) if s.live and s.owner is None]
        await asyncio.gather(*(self.runner(s).end_process("stopped") for s in doomed))
        return [s.id for s in doomed]

    async def resume(self, session: Session) -> None:
        """Run Codex again for a session that is not live, on the same thread."""
        if session.owner is not None:
            self.drivable(session)
        if session.live:
            raise InvalidState(f"session {session.name!r} is {session.status}, not stopped: "
                               "there is nothing to resume", {"id": session.id})
        clash = self.registry.live_named(session.project, session.name)
        if clash is not None:
            raise NameTaken(f"another session named {session.name!r} is running in "
                            f"{session.project.root}; rename one of them first",
                            {"id": clash.id, "field": "name"})
        self.registry.check_limit(session.project, 1000)
        if not session.codex_command:  # recorded by the first version: today's defaults
            session.codex_command = list(ClientConfig().codex_command)
        runner = self.runner(session)
        session.phase = "starting"
        await self._claim(session)
        try:
            await runner.spawn()
        except OSError as exc:
            session.phase = "failed"
            session.error = f"cannot run Codex ({shlex.join(session.codex_command)}): {exc}"
            runner.changed()
            raise CodexUnavailable(session.error) from None
        asyncio.create_task(runner.open_thread(resume=True))

    async def forget(self, session: Session) -> None:
        """Delete a session that is not live, record and transcript, for good."""
        if session.live or session.owner is not None:
            raise InvalidState(f"session {session.name!r} is {session.status}; kill it first",
                               {"id": session.id})
        self.registry.remove(session)
        self.runners.pop(session.id, None)
        self.outbox.forget(session.id)
        await self.store.forget(session.id)
        self.notes.forget(session)  # its documents and learnings go too
        self.emit(FORGOTTEN, {"id": session.id})
