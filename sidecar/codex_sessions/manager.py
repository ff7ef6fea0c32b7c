"""The session manager: every session by id, limits, run slots, lifecycle, fan-out.

It is the one owner of session state. Front-ends reach it through the server
(server.py) and the CLI calls it directly; both get its notifications through
the `emit(method, params)` callback it is given.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import os
import shlex
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any, Awaitable, Callable

from . import changes
from .appserver import AppServer, AppServerError
from .errors import (CodexUnavailable, InvalidParams, InvalidState, LimitReached, NameTaken,
                     SessionBusy, SessionNotFound)
from .projects import Project, check_name, resolve_project
from .protocol import InitOptions, SessionRef
from .reaper import Reaper
from .report import render
from .session import Session, answer_for, describe, now, report_of
from .store import Store, default_state_dir

log = logging.getLogger(__name__)

Emit = Callable[[str, dict[str, Any]], None]
LIST_ORDER = {"waiting": 0, "failed": 1, "running": 2, "starting": 3, "queued": 4}
OUTPUT_INTERVAL = 0.05  # at most about 20 output notifications a second per session
START_TIMEOUT = 60.0


def codex_command(options: InitOptions) -> list[str]:
    """codexCommand, else $CODEX_SESSIONS_CODEX, else `codex`; then codexArgs."""
    if options.codex_command:
        base = list(options.codex_command)
    else:
        from_env = os.environ.get("CODEX_SESSIONS_CODEX")
        base = shlex.split(from_env) if from_env else ["codex"]
    return base + list(options.codex_args)


def state_dir(options: InitOptions) -> Path:
    chosen = options.state_dir or os.environ.get("CODEX_SESSIONS_STATE_DIR")
    return Path(chosen).expanduser() if chosen else default_state_dir()


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Manager:
    """Named Codex sessions, each with its own `codex app-server` process."""

    def __init__(self, options: InitOptions, emit: Emit) -> None:
        self.options = options
        self.emit = emit
        self.codex_command = codex_command(options)
        self.token = uuid.uuid4().hex
        self.store = Store(state_dir(options), self.token)
        self.sessions: dict[str, Session] = {}
        self.running = 0
        self.slot_queue: collections.deque[Session] = collections.deque()
        self.reaper: Reaper | None = None
        self._opened: asyncio.Future[None] | None = None
        self._outbox: dict[str, list[dict[str, Any]]] = {}
        self._dirty: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._last_output: dict[str, float] = {}
        self._last_status: dict[str, str] = {}
        self._turn_tasks: dict[str, asyncio.Task[str | None]] = {}
        self._watches: dict[str, changes.ProjectWatch] = {}
        self._synced_at = ""
        self._closed = False

    # ---- opening and closing ----------------------------------------------------------

    async def ready(self) -> None:
        """Open the database and load earlier sessions, once."""
        if self._opened is None:
            self._opened = asyncio.ensure_future(self._open())
        await asyncio.shield(self._opened)

    async def _open(self) -> None:
        await self.store.open()
        if self.store.notice:
            self.emit("window/showMessage", {"type": 2, "message": f"codex-sessions: {self.store.notice}"})
        self.reaper = Reaper()
        await self._sync(first=True)
        gc.freeze()  # what was loaded lives long: keep it out of every collection

    async def _sync(self, first: bool = False) -> None:
        """Read sessions other sidecars wrote (and, the first time, all of them)."""
        rows = await self.store.load_sessions(self._synced_at)
        next_seqs = await self.store.next_seqs() if first else {}
        for rec, pid, token in rows:
            self._synced_at = max(self._synced_at, rec["updatedAt"])
            mine = self.sessions.get(rec["id"])
            foreign = bool(token) and token != self.token and _alive(pid)
            if mine is not None and mine.owner is None and not foreign:
                continue  # ours (perhaps being resumed right now): the record is older news
            session = Session.from_record(rec, self.options.output_limit_bytes)
            if first:
                session.transcript.next_seq = max(session.transcript.next_seq,
                                                  next_seqs.get(rec["id"], 1))
                session.transcript.dropped = session.transcript.next_seq > 1
            if foreign and rec["status"] not in ("failed", "stopped", "interrupted"):
                session.owner = {"pid": pid}  # type: ignore[dict-item]
            elif rec["status"] not in ("failed", "stopped", "interrupted"):
                session.recorded_status = None  # its sidecar is gone: interrupted
                self.store.save_session(session.record(), owned=False)
            self.sessions[session.id] = session
        for session in self.sessions.values():
            if session.owner and not _alive(session.owner.get("pid")):
                session.owner = None
                session.recorded_status = None
                session.encoded = None

    async def shutdown(self) -> None:
        """Stop every Codex process we run; keep every record (live ones: interrupted)."""
        if self._closed:
            return
        self._closed = True
        closing = []
        for session in self.sessions.values():
            if session.live and session.owner is None:
                closing.append(self._stop(session, "interrupted"))
        await asyncio.gather(*closing, return_exceptions=True)
        if self._opened is not None and self._opened.done() and not self._opened.exception():
            await self.store.close()
        if self.reaper:
            self.reaper.close()

    # ---- finding sessions ---------------------------------------------------------------

    def _live_named(self, project: Project, name: str) -> Session | None:
        for session in self.sessions.values():
            if session.project.root == project.root and session.name == name and (
                    session.live or session.owner is not None):
                return session
        return None

    def find(self, ref: SessionRef) -> Session:
        if ref.id is not None:
            session = self.sessions.get(ref.id)
            if session is None:
                raise SessionNotFound(f"no session with id {ref.id}", {"id": ref.id})
            return session
        if ref.project is None:
            raise InvalidParams("id", "give a session id, or project and name")
        project = resolve_project(ref.project)
        session = self._live_named(project, ref.name)
        if session is None:
            named = [s for s in self.sessions.values()
                     if s.project.root == project.root and s.name == ref.name]
            if not named:
                raise SessionNotFound(f"no session named {ref.name!r} in {project.root}",
                                      {"name": ref.name, "project": project.root})
            session = max(named, key=lambda s: s.updated_at)
        return session

    def _drivable(self, session: Session) -> None:
        if session.owner is not None:
            raise InvalidState(f"session {session.name!r} is run by another codex-sessions "
                               f"(pid {session.owner['pid']}); use that editor",
                               {"id": session.id})
        if not session.live:
            raise InvalidState(f"session {session.name!r} is {session.status}; resume it first",
                               {"id": session.id})

    def _live_in(self, project: Project) -> int:
        return sum(1 for s in self.sessions.values()
                   if s.project.root == project.root and (s.live or s.owner is not None))

    # ---- notifications --------------------------------------------------------------------

    def _changed(self, session: Session) -> None:
        """Session state changed: persist it, and tell the front-ends at once."""
        session.touch()
        status = session.status
        if self._last_status.get(session.id) != status:
            self._last_status[session.id] = status
            self._record(session, session.item("status", status=status))
        self.store.save_session(session.record())
        self._dirty.add(session.id)
        self._schedule(session.id, 0)

    def _record(self, session: Session, item: dict[str, Any]) -> dict[str, Any]:
        item, encoded = session.transcript.append(item)
        self.store.append_item(session.id, item["seq"], encoded)
        self._output(session.id, item)
        return item

    def _output(self, session_id: str, item: dict[str, Any]) -> None:
        """Queue output; sent at once if none went out in the last interval, else batched."""
        box = self._outbox.setdefault(session_id, [])
        last = box[-1] if box else None
        if "seq" in item:
            box.append(item)
        elif (last is not None and "parts" in last and last["kind"] == item["kind"]
              and last["itemId"] == item.get("itemId")):
            last["parts"].append(item["text"])  # one piece per item per batch
        else:
            box.append({"kind": item["kind"], "itemId": item.get("itemId"), "parts": [item["text"]]})
        since = asyncio.get_running_loop().time() - self._last_output.get(session_id, 0.0)
        self._schedule(session_id, max(0.0, OUTPUT_INTERVAL - since))

    def _schedule(self, session_id: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        timer = self._timers.get(session_id)
        if timer is not None:
            if timer.when() <= loop.time() + delay:
                return
            timer.cancel()
        self._timers[session_id] = loop.call_later(delay, self._flush, session_id)

    def _flush(self, session_id: str) -> None:
        timer = self._timers.pop(session_id, None)
        if timer is not None:
            timer.cancel()
        items = self._outbox.pop(session_id, None)
        if items:
            pieces = False
            for item in items:
                if "parts" in item:
                    item["text"] = "".join(item.pop("parts"))
                    pieces = True
            if pieces:  # only streaming is paced; a status or prompt must not delay it
                self._last_output[session_id] = asyncio.get_running_loop().time()
            self.emit("codex/session/output", {"id": session_id, "items": items})
        if session_id in self._dirty:
            self._dirty.discard(session_id)
            self.emit("codex/session/changed", {"session": self.sessions[session_id].to_wire()})

    # ---- starting -------------------------------------------------------------------------

    async def start(self, project_path: str, name: str, prompt: str | None, reuse: bool,
                    **options: Any) -> tuple[Session, bool]:
        await self.ready()
        project = resolve_project(project_path)
        check_name(name)
        existing = self._live_named(project, name)
        if existing is not None:
            if not reuse or existing.owner is not None:
                owner = f" by another codex-sessions (pid {existing.owner['pid']})" if existing.owner else ""
                raise NameTaken(f"a session named {name!r} is already running{owner} in "
                                f"{project.root}", {"id": existing.id, "field": "name"})
            if prompt:
                self._prompt(existing, prompt)
            return existing, False
        self._check_limit(project)
        session = Session.new(name, project, self.options.output_limit_bytes, **options)
        await self._spawn(session)
        self.sessions[session.id] = session
        self._changed(session)
        if prompt:
            self._prompt(session, prompt)
        asyncio.create_task(self._handshake(session, resume=False))
        return session, True

    def _check_limit(self, project: Project) -> None:
        limit = self.options.max_sessions_per_project
        if self._live_in(project) >= limit:
            raise LimitReached(f"{project.name} already has {limit} live sessions "
                               f"(maxSessionsPerProject); kill one first",
                               {"project": project.root})

    async def _spawn(self, session: Session) -> None:
        server = AppServer(self.codex_command, session.project.root,
                           partial(self._on_event, session), partial(self._on_request, session),
                           partial(self._on_exit, session))
        try:
            await server.spawn()
        except OSError as exc:
            raise CodexUnavailable(
                f"cannot run Codex ({shlex.join(self.codex_command)}): {exc.strerror or exc}. "
                "Install it with `npm install -g @openai/codex`, or point codexCommand / "
                "CODEX_SESSIONS_CODEX at it; `codex-sessions doctor` checks the set-up") from None
        assert self.reaper and server.pid
        self.reaper.watch(server.pid)
        session.server = server
        session.phase = "starting"
        session.error = None

    async def _handshake(self, session: Session, resume: bool) -> None:
        server = session.server
        assert server
        try:
            await asyncio.wait_for(server.handshake(), START_TIMEOUT)
            if resume and session.thread_id and session.turns:  # no turn, no rollout to resume
                result = await asyncio.wait_for(server.request(
                    "thread/resume", {"threadId": session.thread_id, "cwd": session.project.root,
                                      "approvalPolicy": session.approval_policy,
                                      "sandbox": session.sandbox}), START_TIMEOUT)
            else:
                params = {"cwd": session.project.root, "approvalPolicy": session.approval_policy,
                          "sandbox": session.sandbox}
                if session.model:
                    params["model"] = session.model
                result = await asyncio.wait_for(server.request("thread/start", params),
                                                START_TIMEOUT)
        except (AppServerError, asyncio.TimeoutError, OSError) as exc:
            if session.server is server:
                tail = server.stderr_tail()
                self._fail(session, f"Codex could not start a conversation: {exc or 'timed out'}"
                           + (f"; its stderr ends: {tail[-800:]}" if tail else ""))
                await server.close()
            return
        if session.server is not server:
            return  # killed meanwhile
        if self._watch(session).last is None:
            await self._watch(session).reset()  # the baseline its commands are compared with
        session.thread_id = result["thread"]["id"]
        self._quietly(server.request("thread/name/set", {"threadId": session.thread_id,
                                                         "name": session.name}))
        session.phase = "ready"
        if session.next_prompt is not None:
            self._want_slot(session)
        self._changed(session)

    @staticmethod
    def _quietly(future: Any) -> None:
        future.add_done_callback(lambda f: f.cancelled() or f.exception())

    # ---- turns ---------------------------------------------------------------------------

    def _prompt(self, session: Session, text: str) -> None:
        self._drivable(session)
        if session.busy:
            raise SessionBusy(f"session {session.name!r} is {session.status}; wait for its turn "
                              "to end or cancel it", {"id": session.id})
        session.set_title(text)
        self._record(session, session.item("user", text=text))
        session.next_prompt = text
        if session.phase == "ready":
            self._want_slot(session)
        self._changed(session)

    def _want_slot(self, session: Session) -> None:
        if self.running < self.options.max_running:
            self._begin_turn(session)
        elif session not in self.slot_queue:
            self.slot_queue.append(session)

    def _begin_turn(self, session: Session) -> None:
        assert session.server
        prompt = session.next_prompt or ""
        # Codex first; our own bookkeeping and notifications after.
        started = session.server.request("turn/start", {
            "threadId": session.thread_id, "input": [{"type": "text", "text": prompt}]})
        self.running += 1
        session.next_prompt = None
        session.turn_active = True
        session.turn_id = None
        session.turns += 1
        session.turn_started_at = now()
        session.started_at = session.started_at or session.turn_started_at
        session.log = type(session.log)()
        self._turn_tasks[session.id] = asyncio.create_task(
            self._run_turn(session, session.server, started))
        self._changed(session)

    async def _run_turn(self, session: Session, server: AppServer,
                        started: Awaitable[Any]) -> str | None:
        """Wait for Codex to accept the turn; a refusal ends it as failed."""
        try:
            result = await started
        except AppServerError as exc:
            if session.turn_active and session.server is server:
                self._record(session, session.item("error", text=str(exc)))
                self._end_turn(session, {"id": None, "status": "failed",
                                         "error": {"message": str(exc)}})
            return None
        turn_id = result["turn"]["id"]
        if session.turn_active and session.server is server:
            session.turn_id = turn_id
            session.last_turn = {"id": turn_id, "status": "inProgress", "error": None}
            self._changed(session)
        return turn_id

    def _watch(self, session: Session) -> changes.ProjectWatch:
        root = session.project.root
        if root not in self._watches:
            self._watches[root] = changes.ProjectWatch(root)
        return self._watches[root]

    async def _observe(self, session: Session, command: dict[str, Any]) -> None:
        """Credit this session with the files its command changed."""
        end = command.get("completedAtMs") or time.time() * 1000
        start = min(command.get("startedAtMs") or end,
                    session.command_floor.pop(command.get("id", ""), end))
        found = await self._watch(session).changes_during(start, end)
        fresh = [c for c in found if c["path"] not in session.log.changed]
        if fresh and session.turn_active:
            session.note_changed([c["path"] for c in fresh])
            self._record(session, session.item("fileChange", changes=fresh))
            self._changed(session)

    async def _complete_turn(self, session: Session, turn: dict[str, Any]) -> None:
        await self._watch(session).lock_free()  # observations of its commands come first
        if session.turn_active:
            self._end_turn(session, turn)

    def _end_turn(self, session: Session, turn: dict[str, Any]) -> None:
        """The turn is over (completed, failed or interrupted): report and free the slot."""
        error = (turn.get("error") or {}).get("message")
        if error and error not in session.log.errors:
            session.log.errors.append(error)
        session.last_turn = {"id": turn.get("id") or session.turn_id, "status": turn["status"],
                             "error": error}
        session.finished_at = now()
        session.turn_active = False
        session.turn_id = None
        session.pending.clear()
        session.report = report_of(session)
        self._turn_tasks.pop(session.id, None)
        self._release_slot()
        self._changed(session)
        self._flush(session.id)
        self.emit("codex/session/finished", {"session": session.to_wire(),
                                             "report": session.report,
                                             "text": render(session.report)})

    def _release_slot(self) -> None:
        self.running -= 1
        while self.running < self.options.max_running and self.slot_queue:
            waiting = self.slot_queue.popleft()
            if waiting.phase == "ready" and waiting.next_prompt is not None:
                self._begin_turn(waiting)

    # ---- events from Codex ----------------------------------------------------------------

    def _on_event(self, session: Session, method: str, params: dict[str, Any]) -> None:
        previous, session.last_event_ms = session.last_event_ms, time.time() * 1000
        if method == "item/agentMessage/delta":
            self._output(session.id, {"kind": "agentDelta", "itemId": params.get("itemId"),
                                      "text": params.get("delta", "")})
        elif method == "item/commandExecution/outputDelta":
            self._output(session.id, {"kind": "commandDelta", "itemId": params.get("itemId"),
                                      "text": params.get("delta", "")})
        elif method == "item/completed":
            item = session.completed_item(params.get("item") or {})
            if item is not None:
                self._record(session, item)
                if item["kind"] == "fileChange":
                    self._changed(session)
                elif item["kind"] == "command":
                    asyncio.create_task(self._observe(session, params["item"]))
        elif method == "item/started":
            item = params.get("item") or {}
            if item.get("type") == "commandExecution":
                session.command_floor[item.get("id", "")] = previous
            session.started_item(item)
        elif method == "turn/started":
            session.turn_id = session.turn_id or (params.get("turn") or {}).get("id")
        elif method == "turn/completed":
            asyncio.create_task(self._complete_turn(session, params.get("turn") or {}))
        elif method == "thread/tokenUsage/updated":
            total = (params.get("tokenUsage") or {}).get("total") or {}
            session.usage = {"inputTokens": total.get("inputTokens", 0),
                             "outputTokens": total.get("outputTokens", 0)}
            self._changed(session)
        elif method == "error" and not params.get("willRetry"):
            message = (params.get("error") or {}).get("message") or "Codex reported an error"
            session.log.errors.append(message)
            self._record(session, session.item("error", text=message))
        elif method == "serverRequest/resolved":
            for request_id, pending in list(session.pending.items()):
                if pending.codex_id == params.get("requestId"):
                    del session.pending[request_id]
                    self._changed(session)
        elif method in ("warning", "configWarning"):
            log.info("Codex (%s): %s", session.name, params.get("message") or params.get("summary"))

    def _on_request(self, session: Session, codex_id: Any, method: str,
                    params: dict[str, Any]) -> None:
        pending = session.new_request(codex_id, method, params)
        if pending is None:
            assert session.server
            session.server.respond_error(codex_id, -32601, f"codex-sessions does not handle {method}")
            return
        wire = pending.wire
        self._record(session, session.item(
            "request", requestId=wire["requestId"], requestKind=wire["kind"],
            command=wire.get("command"), cwd=wire.get("cwd"), reason=wire.get("reason"),
            changes=wire.get("changes"), decision=None))
        self._changed(session)
        self._flush(session.id)
        self.emit("codex/session/request", {"id": session.id, "request": wire})

    def _on_exit(self, session: Session, code: int, stderr_tail: str) -> None:
        if session.server is None or session.server.proc is None:
            return
        if self.reaper and session.server.pid:
            self.reaper.forget(session.server.pid)
        self._fail(session, f"Codex exited with code {code}" +
                   (f"; its stderr ends: {stderr_tail[-800:]}" if stderr_tail else ""))

    def _fail(self, session: Session, message: str) -> None:
        session.error = message
        session.server = None
        was_running = session.turn_active
        if was_running:
            self._record(session, session.item("error", text=message))
        session.phase = "failed"
        self._drop_queued(session)
        if was_running:
            self._end_turn(session, {"id": session.turn_id, "status": "failed",
                                     "error": {"message": message}})
        else:
            self._changed(session)

    def _drop_queued(self, session: Session) -> None:
        session.next_prompt = None
        if session in self.slot_queue:
            self.slot_queue.remove(session)

    # ---- the protocol's operations ----------------------------------------------------------

    async def list(self, project_path: str | None, statuses: list[str] | None,
                   include_stopped: bool) -> list[Session]:
        await self.ready()
        await self._sync()
        root = resolve_project(project_path).root if project_path else None
        found = [s for s in self.sessions.values()
                 if (root is None or s.project.root == root)
                 and (statuses is None or s.status in statuses)
                 and (include_stopped or statuses is not None or s.status != "stopped")]
        found.sort(key=lambda s: s.updated_at, reverse=True)
        found.sort(key=lambda s: LIST_ORDER.get(s.status, 9))
        return found

    async def get(self, ref: SessionRef) -> Session:
        await self.ready()
        if ref.id is None or ref.id not in self.sessions:
            await self._sync()
        return self.find(ref)

    async def send(self, session: Session, text: str) -> str | None:
        self._prompt(session, text)
        task = self._turn_tasks.get(session.id)
        return await asyncio.shield(task) if task is not None else None

    async def cancel(self, session: Session) -> None:
        self._drivable(session)
        if session.turn_active:
            task = self._turn_tasks.get(session.id)
            turn_id = session.turn_id or (await asyncio.shield(task) if task else None)
            if turn_id and session.server and session.turn_active:
                try:
                    await asyncio.wait_for(session.server.request(
                        "turn/interrupt", {"threadId": session.thread_id, "turnId": turn_id}), 10)
                except (AppServerError, asyncio.TimeoutError) as exc:
                    log.warning("interrupt of %s failed: %s", session.name, exc)
        elif session.next_prompt is not None:
            self._drop_queued(session)
            self._record(session, session.item("error", text="queued prompt cancelled"))
            self._changed(session)
        else:
            raise InvalidState(f"session {session.name!r} is {session.status}: nothing to cancel",
                               {"id": session.id})

    def respond(self, session: Session, request_id: str, decision: str) -> None:
        self._drivable(session)
        pending = session.pending.pop(request_id, None)
        if pending is None:
            raise InvalidParams("requestId", f"session {session.name!r} has no pending request "
                                f"{request_id!r}")
        assert session.server
        session.server.respond(pending.codex_id, answer_for(pending, decision))
        if pending.params.get("itemId"):  # the command cannot have run before this answer
            session.command_floor[pending.params["itemId"]] = time.time() * 1000
        if decision in ("decline", "cancel"):
            session.log.declined.append(describe(pending))
        self._record(session, session.item(
            "request", requestId=request_id, requestKind=pending.wire["kind"],
            command=pending.wire.get("command"), decision=decision))
        self._changed(session)

    def rename(self, session: Session, new_name: str) -> None:
        check_name(new_name, "newName")
        if new_name == session.name:
            return
        clash = self._live_named(session.project, new_name)
        if clash is not None:
            raise NameTaken(f"a session named {new_name!r} is already running in "
                            f"{session.project.root}", {"id": clash.id, "field": "newName"})
        if session.owner is not None:
            self._drivable(session)
        session.name = new_name
        if session.report is not None:
            session.report = {**session.report, "session": new_name}  # type: ignore[typeddict-item]
        if session.server and session.thread_id and session.phase == "ready":
            self._quietly(session.server.request(
                "thread/name/set", {"threadId": session.thread_id, "name": new_name}))
        self._changed(session)

    async def kill(self, session: Session) -> None:
        if session.owner is not None:
            self._drivable(session)
        await self._stop(session, "stopped")

    async def _stop(self, session: Session, phase: str) -> None:
        server = session.server
        session.server = None
        if session.turn_active:
            session.turn_active = False
            session.turn_id = None
            session.last_turn = {**(session.last_turn or {"id": None}),
                                 "status": "interrupted", "error": None}
            self._turn_tasks.pop(session.id, None)
            self._release_slot()
        self._drop_queued(session)
        session.pending.clear()
        session.phase = phase
        session.finished_at = session.finished_at or now()
        self._changed(session)
        self._flush(session.id)
        if server:
            await server.close()
            if self.reaper and server.pid:
                self.reaper.forget(server.pid)

    async def kill_all(self, project_path: str | None) -> list[str]:
        await self.ready()
        root = resolve_project(project_path).root if project_path else None
        doomed = [s for s in self.sessions.values()
                  if s.live and s.owner is None and (root is None or s.project.root == root)]
        await asyncio.gather(*(self._stop(s, "stopped") for s in doomed))
        return [s.id for s in doomed]

    async def resume(self, session: Session) -> None:
        if session.owner is not None:
            self._drivable(session)
        if session.live:
            raise InvalidState(f"session {session.name!r} is {session.status}, not stopped: "
                               "there is nothing to resume", {"id": session.id})
        clash = self._live_named(session.project, session.name)
        if clash is not None:
            raise NameTaken(f"another session named {session.name!r} is running in "
                            f"{session.project.root}; rename one of them first",
                            {"id": clash.id, "field": "name"})
        self._check_limit(session.project)
        session.recorded_status = None
        await self._spawn(session)
        self._changed(session)
        asyncio.create_task(self._handshake(session, resume=True))

    async def transcript(self, session: Session, after: int, limit: int) -> dict[str, Any]:
        items = session.transcript.page(after, limit) if session.owner is None else None
        if items is None:
            items = await self.store.items(session.id, after, limit)
        return {"items": items, "next": items[-1]["seq"] if items else after,
                "truncated": session.transcript.dropped}

    def report(self, session: Session) -> dict[str, Any]:
        report = report_of(session) if session.turn_active or session.report is None else session.report
        return {"report": report, "text": render(report)}
