"""One session's life: its Codex thread, its turns, its requests, what it tells clients.

The runner is the session's only writer of state changes that involve I/O: it
asks the session (session.py) to make each transition, then saves the record,
queues transcript items for the store and the clients (outbox.py), and talks
to Codex through the session's process (codex/pool.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from ..codex.appserver import AppServerError, AppServerTimeout
from ..codex.pool import CodexProcess
from ..errors import InvalidParams, InvalidState
from ..wire import FINISHED, REQUEST
from . import events
from .report import render
from .session import Session, describe

if TYPE_CHECKING:
    from .service import Core

log = logging.getLogger(__name__)

NOT_RESPONDING = "Codex is not responding"


class Runner:
    def __init__(self, session: Session, core: "Core") -> None:
        self.session = session
        self.core = core
        self.process: CodexProcess | None = None
        self.turn: asyncio.Future[str | None] | None = None  # Codex's answer to turn/start
        self.announced: dict[str, list[dict[str, str]]] = {}  # file changes by item id
        # When Codex last told us anything, and per running command the moment before it
        # began: Codex stamps a quick command's start after it already ran.
        self.last_event_ms = 0.0
        self.command_floor: dict[str, float] = {}
        self.open_streams: set[str] = set()  # agent messages streaming, not yet complete
        self.active_turn: str | None = None  # the running turn's id as Codex last started it
        self.external = False  # the running turn was started elsewhere (Codex's own TUI)
        self.tui: Any = None  # the bridge of Codex's TUI on this thread, while one is open
        self.last_status: str | None = session.status

    # ---- telling the store and the clients ------------------------------------------------

    def changed(self) -> None:
        """State changed: record a status change, save the record, tell the clients."""
        session = self.session
        session.touch()
        status = session.status
        if status != self.last_status:
            self.last_status = status
            self.record(session.item("status", status=status))
        self.core.store.save_session(session.record())
        self.core.outbox.changed(session.id)

    def record(self, item: dict[str, Any]) -> dict[str, Any]:
        encoded = self.session.transcript.append(item)
        self.core.store.append_item(self.session.id, item["seq"], encoded)
        self.core.outbox.item(self.session.id, encoded)
        self.core.documents.record(self.session.id, item, encoded)  # documents/ID/*.jsonl
        return item

    # ---- the process and the thread -----------------------------------------------------------

    async def spawn(self) -> None:
        """Start (or join) its Codex process; OSError when the command cannot run."""
        session = self.session
        key: tuple[Any, ...]
        if session.codex_process == "perSession":
            key = ("perSession", session.id)
        else:
            key = ("perProject", session.project.root, tuple(session.codex_command),
                   tuple(sorted(session.codex_env.items())))
        self.process = await self.core.pool.acquire(self, key, session.codex_command,
                                                    session.codex_env, session.project.root)
        session.process_started(self.process.pid)
        self.changed()

    async def open_thread(self, resume: bool = False, fork: dict[str, Any] | None = None) -> None:
        """Wait for Codex, then start, resume or fork the session's thread."""
        session, process = self.session, self.process
        assert process
        params: dict[str, Any] = {"cwd": session.workdir,
                                  "approvalPolicy": session.approval_policy,
                                  "sandbox": session.sandbox}
        if session.model:
            params["model"] = session.model
        try:
            await asyncio.shield(process.ready)
            if fork is not None:
                result = await process.request("thread/fork", {**fork, **params, "excludeTurns": True},
                                                60)
            elif resume and session.thread_id and session.turns:  # no turn, no rollout to resume
                result = await process.request("thread/resume",
                                                {"threadId": session.thread_id, **params}, 60)
            else:
                result = await process.request("thread/start", params, 60)
        except AppServerError as exc:
            if self.process is process:
                tail = process.server.stderr_tail()
                problem = str(exc)
                if "active writer" in problem:
                    problem += (" (another Codex, e.g. its terminal UI or the desktop app, has this "
                                "conversation open: close it there, then resume)")
                await self.end_process("failed", f"Codex could not open the conversation: {problem}"
                                       + (f"; its stderr ends: {tail[-800:]}" if tail else ""))
            return
        if self.process is not process:
            return  # killed meanwhile
        watch = self.core.watch(session.workdir)
        if watch.last is None:
            await watch.reset()  # the baseline its commands are compared with
        thread_id = result["thread"]["id"]
        session.model = session.model or result.get("model")  # the one Codex chose, if we did not
        process.attach(thread_id, self)
        session.process_ready(thread_id)
        self._quietly(process.call("thread/name/set", {"threadId": thread_id, "name": session.name},
                                   self.session.codex_timeout))
        if session.next_prompt is not None:
            self.core.slots.want(session)
        self.changed()

    async def end_process(self, phase: str, error: str | None = None) -> None:
        """Let go of its Codex: stopped, interrupted or failed. A running turn ends with it."""
        session, process = self.session, self.process
        self.process = None
        # let go of it now: a resume while what follows is awaited must get a process of its own
        unsubscribe = self.core.pool.detach(process, self, session.thread_id) if process else None
        was_running = session.turn_active
        if self.tui is not None:
            await self.tui.close()
            self.tui = None
        if was_running:
            await self.keep_streamed_text()
            if not self.external:
                self.core.slots.release()
            self.external = False
            if error:
                self.record(session.item("error", text=error))
        self.core.slots.leave(session)
        if session.reviewing is not None:  # held by learn mode, in memory only: keep its text
            self.record(session.item("error", text=f"not sent, the session {phase}: the prompt "
                                     f"learn mode held for your review was: {session.reviewing}"))
        elif session.next_prompt is not None and not was_running:
            self.record(session.item("error", text=f"not sent, the session {phase}: the queued "
                                     "prompt above did not run"))
        session.process_ended(phase, error)
        self.changed()
        if was_running:
            self._finished()
        else:
            self.core.outbox.flush(session.id)
        self.core.notes.process_ended(self, phase, process, was_running)  # a kill: closing summary
        if process is not None:
            await self.core.pool.settle(process, unsubscribe)

    @staticmethod
    def _quietly(future: asyncio.Future[Any]) -> None:
        future.add_done_callback(lambda f: f.cancelled() or f.exception())

    # ---- turns ------------------------------------------------------------------------------

    def prompt(self, text: str, reviewed: bool = False) -> None:
        """Accept the user's prompt; it runs as soon as Codex and a run slot are ready."""
        session = self.session
        if not reviewed and self.core.notes.review(self, text):
            return  # learn mode: the notetaker rewrites it, the user reviews it (notes.py)
        session.accept_prompt(text)
        self.record({**session.item("user", text=text), "turn": session.turns + 1})
        if session.phase == "ready":
            self.core.slots.want(session)
        self.changed()

    def begin(self) -> None:
        """A slot is ours: Codex first, our own bookkeeping and notifications after."""
        session, process = self.session, self.process
        assert process
        if session.next_review is not None:
            method, params = "review/start", {"threadId": session.thread_id,
                                              "target": session.next_review, "delivery": "inline"}
        else:
            method, params = "turn/start", {"threadId": session.thread_id,
                                            "input": [{"type": "text", "text": session.next_prompt or ""}]}
            if session.effort:
                params["effort"] = session.effort
        self.turn = asyncio.ensure_future(self._start_turn(
            process, process.call(method, params, session.codex_timeout)))
        self.turn.add_done_callback(lambda f: f.cancelled() or f.exception())
        session.begin_turn()
        self.changed()

    async def _start_turn(self, process: CodexProcess, started: asyncio.Future[Any]) -> str | None:
        """Wait for Codex to accept the turn; a refusal or silence ends it as failed."""
        session = self.session
        try:
            result = await started
        except AppServerError as exc:
            if session.turn_active and self.process is process:
                text = f"{NOT_RESPONDING}: {exc}" if isinstance(exc, AppServerTimeout) else str(exc)
                self.record(session.item("error", text=text))
                await self.end_turn("failed", text)
                if isinstance(exc, AppServerTimeout):  # a hung Codex is of no use: stop it
                    process.server.kill()
            raise
        turn_id = result["turn"]["id"]
        if session.turn_active and self.process is process:
            session.turn_accepted(turn_id)
            self.changed()
        return turn_id

    def flag(self, problem: str) -> None:
        """Something the user must hear of (an overlap): a blocker in its report, now."""
        session = self.session
        if problem in session.overlaps:
            return
        session.overlaps.append(problem)
        if session.report is not None and not session.turn_active:
            report = session.report
            session.report = {**report, "blockers": [*report["blockers"], problem],  # type: ignore[typeddict-item]
                              "status": "failed" if report["status"] == "failed" else "blocked"}
        self.record(session.item("error", text=problem, overlap=True))
        self.changed()

    def note(self, text: str, **fields: Any) -> None:
        """A line in the transcript from the sidecar itself (a fork's origin, a review's target)."""
        self.record(self.session.item("note", text=text, **fields))

    async def end_turn(self, status: str, error: str | None = None) -> None:
        """The turn is over (completed, failed or interrupted): report and free the slot."""
        session = self.session
        await self.core.watch(session.workdir).lock_free()  # its commands' changes first
        if not session.turn_active:
            return
        await self.keep_streamed_text()
        if not session.turn_active:
            return
        session.end_turn(status, error)
        self.turn = None
        if not self.external:
            self.core.slots.release()
        self.external = False
        self.changed()
        self._finished()
        self.core.documents.flush()
        self.core.notes.turn_ended(self)  # with notes on: the notetaker's entry (notes.py)

    async def keep_streamed_text(self, at_start: bool = False) -> None:
        """A message cut off mid-stream (cancel, a dying Codex) keeps what streamed of it."""
        if not (self.open_streams or at_start):
            return
        self.open_streams.clear()
        store = self.core.store
        await store.flush()
        for item_id, (turn_id, text) in (await store.pieces(self.session.id)).items():
            self.record({**self.session.item("agent", text=text, itemId=item_id, partial=True),
                         "turnId": turn_id})
            store.drop_pieces(self.session.id, item_id)

    def _finished(self) -> None:
        session = self.session
        report = session.report
        assert report is not None
        self.core.outbox.then(session.id, FINISHED, {"session": session.to_wire(), "report": report,
                                                     "text": render(report)})

    async def cancel(self) -> None:
        session = self.session
        if session.turn_active:
            turn_id = session.turn_id
            if turn_id is None and self.turn is not None:
                try:
                    turn_id = await asyncio.shield(self.turn)
                except AppServerError:
                    return  # the turn never started: it is over already
            process = self.process
            if not (turn_id and process and session.turn_active):
                return
            try:
                await process.request("turn/interrupt",
                                      {"threadId": session.thread_id,
                                       "turnId": self.active_turn or turn_id}, session.codex_timeout)
            except AppServerTimeout:
                # a hung Codex: stop it; the session stays resumable
                log.warning("Codex of %s does not answer turn/interrupt: killing it", session.name)
                self.record(session.item("error", text=f"{NOT_RESPONDING}; it was stopped"))
                process.server.kill()
            except AppServerError as exc:
                log.warning("interrupt of %s failed: %s", session.name, exc)
        elif session.reviewing is not None:
            self.core.notes.drop_review(self)  # learn mode held it for review: not sent
        elif session.next_prompt is not None:
            session.drop_prompt()
            self.core.slots.leave(session)
            self.record(session.item("error", text="queued prompt cancelled"))
            self.changed()
        else:
            raise InvalidState(f"session {session.name!r} is {session.status}: nothing to cancel",
                               {"id": session.id})

    async def steer(self, text: str) -> str:
        """Add the user's text to the running turn; the turn's id."""
        session, process = self.session, self.process
        turn_id = self.active_turn or session.turn_id
        if not (session.turn_active and process and turn_id):
            raise InvalidState(f"session {session.name!r} is {session.status}: no running turn to "
                               "steer; send a prompt instead", {"id": session.id, "reason": "noTurn"})
        try:
            result = await process.request("turn/steer", {
                "threadId": session.thread_id, "expectedTurnId": turn_id,
                "input": [{"type": "text", "text": text}]}, session.codex_timeout)
        except AppServerError as exc:
            reason = "noTurn" if "no active turn" in str(exc) else "refused"
            raise InvalidState(f"session {session.name!r}: Codex refused to steer: {exc}",
                               {"id": session.id, "reason": reason}) from None
        self.record(session.item("user", text=text, steer=True))
        self.changed()
        return result.get("turnId") or turn_id

    def respond(self, request_id: str, decision: str, text: str | None = None) -> None:
        session = self.session
        pending = session.pending.get(request_id)
        if pending is None:
            raise InvalidParams("request_id", f"session {session.name!r} has no pending request "
                                f"{request_id!r}")
        if pending.wire["kind"] == "promptReview":
            return self.core.notes.answer(self, pending, decision, text)  # learn mode (notes.py)
        if decision == "edit":
            raise InvalidParams("decision", "edit answers a promptReview only")
        assert self.process
        self.process.respond(pending.codex_id, events.answer_for(pending, decision))
        del session.pending[request_id]
        if pending.params.get("itemId"):  # the command cannot have run before this answer
            self.command_floor[pending.params["itemId"]] = time.time() * 1000
        if decision in ("decline", "cancel"):
            session.log.declined.append(describe(pending))
        self.record(events.request_item(session, pending, decision))
        self.changed()

    def rename(self, new_name: str) -> None:
        session = self.session
        session.name = new_name
        if session.report is not None:
            session.report = {**session.report, "session": new_name}  # type: ignore[typeddict-item]
        if self.process and session.thread_id and session.phase == "ready":
            self._quietly(self.process.call("thread/name/set",
                                            {"threadId": session.thread_id, "name": new_name},
                                            self.session.codex_timeout))
        self.changed()

    # ---- what Codex tells us ------------------------------------------------------------------

    def on_event(self, method: str, params: dict[str, Any]) -> None:
        previous, self.last_event_ms = self.last_event_ms, time.time() * 1000
        handler = EVENT_HANDLERS.get(method)
        if handler is not None:
            handler(self, params, previous)

    def _agent_delta(self, params: dict[str, Any], _: float) -> None:
        if params.get("itemId"):
            self.open_streams.add(params["itemId"])
        self.core.outbox.piece(self.session.id, "agentDelta", params.get("itemId"),
                               params.get("delta", ""), self.session.turn_id)

    def _command_delta(self, params: dict[str, Any], _: float) -> None:
        self.core.outbox.piece(self.session.id, "commandDelta", params.get("itemId"),
                               params.get("delta", ""), self.session.turn_id)

    def _item_started(self, params: dict[str, Any], previous: float) -> None:
        item = params.get("item") or {}
        if item.get("type") == "commandExecution":
            self.command_floor[item.get("id", "")] = previous
        elif item.get("type") == "fileChange":
            self.announced[item.get("id", "")] = events.file_changes(self.session, item)

    def _item_completed(self, params: dict[str, Any], _: float) -> None:
        codex_item = params.get("item") or {}
        if self.external and codex_item.get("type") == "userMessage":  # typed in Codex's TUI
            text = "".join(c.get("text", "") for c in codex_item.get("content") or []
                           if isinstance(c, dict) and c.get("type") == "text")
            if text.strip() and self.session.title is None:
                self.session.title = text.strip().splitlines()[0][:80]
            self.record(self.session.item("user", text=text, via="codexTui"))
            return
        item = events.completed_item(self.session, codex_item, self.announced)
        if item is None:
            return
        self.record(item)
        if item["kind"] == "agent":
            self.open_streams.discard(item.get("itemId") or "")
            self.core.store.drop_pieces(self.session.id, item.get("itemId"))
        elif item["kind"] == "fileChange":
            self.core.wrote(self.session, [c["path"] for c in item["changes"]])
            self.changed()
        elif item["kind"] == "command":
            asyncio.create_task(self._observe(codex_item))

    def _turn_started(self, params: dict[str, Any], _: float) -> None:
        session = self.session
        started = (params.get("turn") or {}).get("id")
        if not session.turn_active and started:  # someone else's turn: Codex's TUI on this thread
            self.external = True
            session.begin_turn()
            session.turn_accepted(started)
            self.changed()
        session.turn_id = session.turn_id or started
        self.active_turn = started  # what turn/interrupt and turn/steer name (a review's differs)

    def _turn_completed(self, params: dict[str, Any], _: float) -> None:
        turn = params.get("turn") or {}
        error = (turn.get("error") or {}).get("message")
        asyncio.create_task(self.end_turn(turn.get("status", "completed"), error))

    def _token_usage(self, params: dict[str, Any], _: float) -> None:
        total = (params.get("tokenUsage") or {}).get("total") or {}
        self.session.usage = {"inputTokens": total.get("inputTokens", 0),
                              "outputTokens": total.get("outputTokens", 0)}
        self.changed()

    def _error(self, params: dict[str, Any], _: float) -> None:
        session = self.session
        message = (params.get("error") or {}).get("message") or "Codex reported an error"
        if params.get("willRetry"):
            attempt = (session.retry or {}).get("attempt", 0) + 1
            session.retry = {"attempt": attempt, "message": message}
            self.record(session.item("error", text=f"Codex will retry (attempt {attempt}): {message}",
                                     willRetry=True))
            self.changed()
            return
        session.log.errors.append(message)
        self.record(session.item("error", text=message))

    def _resolved(self, params: dict[str, Any], _: float) -> None:
        session = self.session
        for request_id, pending in list(session.pending.items()):
            if pending.codex_id == params.get("requestId"):
                del session.pending[request_id]
                self.changed()

    def on_request(self, codex_id: Any, method: str, params: dict[str, Any]) -> None:
        session = self.session
        pending = events.new_request(session, codex_id, method, params, self.announced)
        if pending is None:
            assert self.process
            self.process.respond_error(codex_id, -32601, f"codex-sessions does not handle {method}")
            return
        self.record(events.request_item(session, pending, None))
        self.changed()
        self.core.outbox.then(session.id, REQUEST, {"id": session.id, "request": pending.wire})

    def on_exit(self, code: int, stderr_tail: str) -> None:
        process = self.process
        if process is None:
            return
        error = f"Codex exited with code {code}" + (
            f"; its stderr ends: {stderr_tail[-800:]}" if stderr_tail else "")
        # A shared Codex serves other sessions too: each of them can resume by itself.
        phase = "interrupted" if process.shared else "failed"
        asyncio.create_task(self.end_process(phase, error))

    async def _observe(self, command: dict[str, Any]) -> None:
        """Credit this session with the files its command changed."""
        session = self.session
        end = command.get("completedAtMs") or time.time() * 1000
        start = min(command.get("startedAtMs") or end,
                    self.command_floor.pop(command.get("id", ""), end))
        found = await self.core.watch(session.workdir).changes_during(start, end)
        fresh = [c for c in found if c["path"] not in session.log.changed]
        if fresh and session.turn_active:
            session.note_changed([c["path"] for c in fresh])
            self.record(session.item("fileChange", changes=fresh))
            self.core.wrote(session, [c["path"] for c in fresh])
            self.changed()


EVENT_HANDLERS: dict[str, Callable[[Runner, dict[str, Any], float], None]] = {
    "item/agentMessage/delta": Runner._agent_delta,
    "item/commandExecution/outputDelta": Runner._command_delta,
    "item/started": Runner._item_started,
    "item/completed": Runner._item_completed,
    "turn/started": Runner._turn_started,
    "turn/completed": Runner._turn_completed,
    "thread/tokenUsage/updated": Runner._token_usage,
    "error": Runner._error,
    "serverRequest/resolved": Runner._resolved,
}
