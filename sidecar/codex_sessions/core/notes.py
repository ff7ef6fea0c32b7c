"""The notetaker: notes after each turn, learnings that carry over, and learn mode.

With notes on (`start` with `notes: true`, the client option `notes`, or
`codex/session/notes`), after each finished turn a hidden Codex thread in the
session's own Codex process (read-only sandbox, approvals `never`, never a
session: not listed, not counted against `maxSessionsPerProject`, but it waits
for a run slot like a turn) is given that turn's prompt, actions and outcome, and
answers in a fixed template (a JSON schema Codex enforces). The entry goes to
`learnings.md` in the session's documents folder (documents.py) and to the
database (table `learnings`, with an FTS5 index), tagged with the project. When
a session with notes is killed, the notetaker writes a closing summary.

Nothing the notetaker says reaches the task session's thread or transcript. Its
failure never fails the session: the session's `notesError` says why, and the
turn is tried again after the next turn (at most MAX_ATTEMPTS times).

Learn mode (`learn: true`, `codex/session/learn`): before a prompt is sent, the
notetaker rewrites it with the project's earlier learnings (the newest, then the
best FTS5 matches); the session waits with a `promptReview` request, and the
user's answer decides what is sent (accept: the rewrite, edit: their text,
decline: the original, cancel: nothing). `augmented_turns.md` keeps each review.
Learn mode ends by itself once the notetaker finds every gap it tracked in the
session resolved.

One session's notetaker jobs run one after the other, so a rewrite sees the
entry of the turn before it. Each job asks in a fresh thread, deleted when it is
answered (`thread/delete`): nothing stays loaded in Codex, nothing shows in
Codex's own history.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from ..codex.appserver import AppServerError
from ..codex.pool import CodexProcess
from ..errors import InvalidParams
from ..wire import REQUEST, Request
from . import events
from .documents import AUGMENTED_FILE, LEARNINGS_FILE
from .learnings import (ACTIONS_LIMIT, ENTRY_PROMPT, ENTRY_SCHEMA, PROMPT_LIMIT, REWRITE_PROMPT,
                        REWRITE_SCHEMA, SUMMARY_PROMPT, SUMMARY_SCHEMA, NotesFailed, TurnNote,
                        describe_actions, entry_markdown, fenced, is_gap, parse_answer,
                        project_markdown, search_words, source_line, summary_markdown,
                        unified_diff, wire_entry, wire_source)
from .projects import Project
from .report import render
from .session import Pending, Session, now

if TYPE_CHECKING:
    from .runner import Runner
    from .service import Core

log = logging.getLogger(__name__)

NOTES_TIMEOUT = 300.0  # seconds the notetaker may take for one answer
MAX_ATTEMPTS = 3  # tries per turn before its entry is given up
RECENT, MATCHES = 3, 5  # learnings offered to a rewrite: the newest, then the best matches
REVIEW_REASON = "learn mode rewrote the prompt: accept, edit or decline"


@dataclass
class _State:
    """One session's notetaker: jobs in order, turns still to note, the review under way."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    backlog: list[TurnNote] = field(default_factory=list)
    review: int = 0  # increases with every review begun or abandoned


class _Asker:
    """One notetaker job's listener on its Codex process: it hears its hidden thread."""

    def __init__(self, process: CodexProcess) -> None:
        self.process = process
        self.answer: asyncio.Future[str] | None = None
        self.texts: list[str] = []
        self.errors: list[str] = []

    def begin(self) -> asyncio.Future[str]:
        self.texts, self.errors = [], []
        self.answer = asyncio.get_running_loop().create_future()
        return self.answer

    def _end(self, result: str | None, error: str | None = None) -> None:
        if self.answer is not None and not self.answer.done():
            if error is not None:
                self.answer.set_exception(NotesFailed(error))
            else:
                self.answer.set_result(result or "")

    def on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "item/completed":
            item = params.get("item") or {}
            if item.get("type") == "agentMessage":
                self.texts.append(item.get("text") or "")
        elif method == "error" and not params.get("willRetry"):
            self.errors.append((params.get("error") or {}).get("message") or "Codex reported an error")
        elif method == "turn/completed":
            turn = params.get("turn") or {}
            if turn.get("status") == "completed":
                self._end(self.texts[-1] if self.texts else "")
            else:
                why = (turn.get("error") or {}).get("message") or "; ".join(self.errors)
                self._end(None, f"its turn {turn.get('status', 'failed')}" + (f": {why}" if why else ""))

    def on_request(self, codex_id: Any, method: str, params: dict[str, Any]) -> None:
        self.process.respond_error(codex_id, -32601, "the notetaker is read-only")

    def on_exit(self, code: int, stderr_tail: str) -> None:
        self._end(None, f"Codex exited with code {code}")


class Notetaker:
    """Every session's notetaker, in one daemon."""

    def __init__(self, core: "Core") -> None:
        self.core = core
        self.states: dict[str, _State] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def _state(self, session: Session) -> _State:
        state = self.states.get(session.id)
        if state is None:
            state = self.states[session.id] = _State()
        return state

    # ---- switches ---------------------------------------------------------------------------

    def set_notes(self, runner: "Runner", on: bool) -> None:
        session = runner.session
        session.notes = on
        if not on:
            self._state(session).backlog.clear()
            self._learn_ended(session, "off")
        runner.changed()

    def set_learn(self, runner: "Runner", on: bool) -> None:
        session = runner.session
        if on:
            session.notes = True
            gaps = (session.learn or {}).get("openGaps") or []
            session.learn = {"on": True, "endedBecause": None, "openGaps": gaps}
        else:
            self._learn_ended(session, "off")
        runner.changed()

    @staticmethod
    def _learn_ended(session: Session, why: str) -> None:
        if session.learn and session.learn.get("on"):
            session.learn = {**session.learn, "on": False, "endedBecause": why}

    # ---- jobs -------------------------------------------------------------------------------

    def _spawn(self, runner: "Runner", process: CodexProcess,
               job: Callable[[_Asker], Awaitable[None]]) -> None:
        """Run `job` after the session's earlier jobs, holding its Codex process meanwhile."""
        session = runner.session
        state = self._state(session)
        asker = _Asker(process)
        process.users.add(asker)  # the process stays while the job needs it (e.g. after a kill)
        session.notes_jobs += 1

        async def run() -> None:
            try:
                async with state.lock:
                    await job(asker)
            except Exception:
                log.exception("the notetaker of %s", session.name)
            finally:
                session.notes_jobs -= 1
                await self.core.pool.release(process, asker, None)
        task = asyncio.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _ask(self, asker: _Asker, session: Session, prompt: str,
                   schema: dict[str, Any]) -> dict[str, Any]:
        """Ask in a fresh hidden thread; the answer as a dict, or NotesFailed."""
        process = asker.process
        try:
            await asyncio.wait_for(asyncio.shield(process.ready), 60)
        except (AppServerError, asyncio.TimeoutError) as exc:
            raise NotesFailed(f"Codex is not ready: {exc}") from None
        slots = self.core.slots
        slot = slots.take(session.max_running)
        try:
            await slot
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():
                slots.release()
            raise
        try:
            params: dict[str, Any] = {"cwd": session.workdir, "sandbox": "read-only",
                                      "approvalPolicy": "never"}
            if session.model:
                params["model"] = session.model
            try:
                started = await process.request("thread/start", params, session.codex_timeout)
            except AppServerError as exc:
                raise NotesFailed(f"Codex would not start its thread: {exc}") from None
            thread_id = started["thread"]["id"]
            answer = asker.begin()
            process.attach(thread_id, asker)
            try:
                await process.request("turn/start", {
                    "threadId": thread_id, "input": [{"type": "text", "text": prompt}],
                    "outputSchema": schema}, session.codex_timeout)
                text = await asyncio.wait_for(asyncio.shield(answer), NOTES_TIMEOUT)
            except AppServerError as exc:
                raise NotesFailed(str(exc)) from None
            except asyncio.TimeoutError:
                raise NotesFailed(f"no answer within {NOTES_TIMEOUT:g} s") from None
            finally:
                process.threads.pop(thread_id, None)
                if process.server.running:
                    try:  # nothing of it stays loaded, nor in Codex's own history
                        await process.request("thread/delete", {"threadId": thread_id}, 10)
                    except AppServerError as exc:
                        log.info("deleting the notetaker's thread %s: %s", thread_id, exc)
        finally:
            slots.release()
        return parse_answer(text, schema)

    def _failed(self, runner: "Runner", message: str) -> None:
        log.warning("the notetaker of %s: %s", runner.session.name, message)
        if getattr(self.core, "_closed", False):
            return  # the daemon is stopping: nothing to tell, nothing to save
        runner.session.notes_error = f"the notetaker {message}"
        runner.changed()

    def _succeeded(self, runner: "Runner") -> None:
        if runner.session.notes_error is not None:
            runner.session.notes_error = None
            runner.changed()

    # ---- after each turn --------------------------------------------------------------------

    def turn_ended(self, runner: "Runner") -> None:
        """A turn is over (its report made, `finished` queued): note it, if notes are on."""
        session = runner.session
        if not session.notes or runner.process is None:
            return
        self._state(session).backlog.append(self._turn_note(session))
        self._spawn(runner, runner.process, lambda asker: self._write_entries(asker, runner))

    def process_ended(self, runner: "Runner", phase: str, process: CodexProcess | None,
                      was_running: bool) -> None:
        """The session's Codex is let go: a review under way ends; a kill gets its summary."""
        session = runner.session
        state = self._state(session)
        state.review += 1
        if phase != "stopped" or not session.notes or process is None or not process.server.running:
            return
        if was_running:
            state.backlog.append(self._turn_note(session))

        async def close(asker: _Asker) -> None:
            await self._write_entries(asker, runner)
            await self._write_summary(asker, runner)
        self._spawn(runner, process, close)

    def _turn_note(self, session: Session) -> TurnNote:
        start = self.core.documents.turn_start.get(session.id, session.transcript.next_seq)
        items = session.transcript.page(start - 1, 2000) or []
        prompt = next((i["text"] for i in items if i["kind"] == "user"), "")
        return TurnNote(number=session.turns, turn_id=(session.last_turn or {}).get("id"),
                        prompt=prompt[:PROMPT_LIMIT], actions=describe_actions(items),
                        outcome=render(session.report) if session.report else "unknown")

    async def _write_entries(self, asker: _Asker, runner: "Runner") -> None:
        session, state = runner.session, self._state(runner.session)
        for note in list(state.backlog):
            note.attempts += 1
            last = await self._entries(session, limit=1)
            open_gaps = (last[-1]["data"].get("openGaps") or []) if last else []
            try:
                answer = await self._ask(asker, session, ENTRY_PROMPT.format(
                    prompt=note.prompt, actions=note.actions or "(none)", outcome=note.outcome,
                    open_gaps="\n".join(f"- {g}" for g in open_gaps) or "(none)"), ENTRY_SCHEMA)
            except NotesFailed as exc:
                if note.attempts >= MAX_ATTEMPTS:
                    state.backlog.remove(note)
                    self._failed(runner, f"gave up on turn {note.number} after {note.attempts} "
                                         f"tries: {exc}")
                else:
                    self._failed(runner, f"failed on turn {note.number} (tried again after the "
                                         f"next turn): {exc}")
                return
            state.backlog.remove(note)
            if not await self._keep(runner, "turn", note, answer, entry_markdown(note, answer)):
                return
            await self._track_gaps(runner, answer)
        self._succeeded(runner)

    async def _keep(self, runner: "Runner", kind: str, note: TurnNote | None,
                    answer: dict[str, Any], text: str) -> bool:
        """Append the entry to learnings.md and the database; False (and notesError) if it fails."""
        session, documents = runner.session, self.core.documents
        try:
            path = documents.folder(session.id) / LEARNINGS_FILE
            if not path.exists():
                documents.append_text(session.id, LEARNINGS_FILE, f"# Learnings: session "
                                      f"{session.name} in {session.project.name}\n\n"
                                      f"Project: {session.project.root}\n")
            documents.append_text(session.id, LEARNINGS_FILE, "\n" + text)
        except OSError as exc:
            self._failed(runner, f"cannot write {LEARNINGS_FILE}: {exc}")
            return False
        try:
            await self.core.store.add_learning({
                "root": session.project.root, "session_id": session.id,
                "session_name": session.name, "turn": note.number if note else None,
                "turn_id": note.turn_id if note else None, "kind": kind, "at": now(),
                "text": text, "data": answer})
            await self.write_project(session.project)
        except (sqlite3.Error, OSError) as exc:
            self._failed(runner, f"cannot keep its entry in the database: {exc}")
            return False
        return True

    async def _track_gaps(self, runner: "Runner", answer: dict[str, Any]) -> None:
        """Learn mode follows the open gaps; it ends once every gap it tracked is resolved."""
        session = runner.session
        if not (session.learn and session.learn.get("on")):
            return
        gaps = [g for g in answer["openGaps"] if g.strip()]
        learn = {**session.learn, "openGaps": gaps}
        if not gaps and any(is_gap(e["data"].get("gap")) for e in
                            await self._entries(session, limit=10000) if e["kind"] == "turn"):
            learn.update(on=False, endedBecause="resolved")
        session.learn = learn
        runner.changed()

    async def _write_summary(self, asker: _Asker, runner: "Runner") -> None:
        session = runner.session
        entries = await self._entries(session, limit=100)
        if not entries and not session.turns:
            return
        notes = "\n".join(e["text"] for e in entries if e["kind"] == "turn") or "(none)"
        try:
            answer = await self._ask(asker, session, SUMMARY_PROMPT.format(
                notes=notes[-ACTIONS_LIMIT:], outcome=render(session.report) if session.report
                else "no turn ended"), SUMMARY_SCHEMA)
        except NotesFailed as exc:
            self._failed(runner, f"could not write the closing summary: {exc}")
            return
        if await self._keep(runner, "summary", None, answer, summary_markdown(answer)):
            self._succeeded(runner)

    async def _entries(self, session: Session, limit: int) -> list[dict[str, Any]]:
        try:
            return await self.core.store.learnings(session.project.root, session.id, limit)
        except sqlite3.Error as exc:
            log.warning("reading the learnings of %s: %s", session.name, exc)
            return []

    # ---- learn mode -------------------------------------------------------------------------

    def review(self, runner: "Runner", text: str) -> bool:
        """In learn mode, hold the prompt for the notetaker's rewrite and the user's review."""
        session = runner.session
        if not (session.learn and session.learn.get("on")) or runner.process is None:
            return False
        state = self._state(session)
        state.review += 1
        ticket = state.review
        session.reviewing = text
        runner.changed()
        self._spawn(runner, runner.process, lambda asker: self._rewrite(asker, runner, text, ticket))
        return True

    async def _rewrite(self, asker: _Asker, runner: "Runner", text: str, ticket: int) -> None:
        session, state = runner.session, self._state(runner.session)
        if state.review != ticket:
            return  # cancelled or killed meanwhile
        sources = await self.relevant(session.project, text)
        augmented: str | None = None
        try:
            answer = await self._ask(asker, session, REWRITE_PROMPT.format(
                prompt=text, learnings="\n".join(source_line(s) for s in sources) or "(none)"),
                REWRITE_SCHEMA)
            augmented = answer["prompt"].strip() or text
        except NotesFailed as exc:
            self._failed(runner, f"could not rewrite the prompt (the original was sent): {exc}")
        else:
            self._succeeded(runner)
        if state.review != ticket or session.reviewing is None:
            return
        if augmented is None or augmented == text.strip():
            self._augmented(session, text, augmented, "unchanged" if augmented else "notetaker failed",
                            text)
            session.reviewing = None
            runner.prompt(text, reviewed=True)
            return
        session.request_counter += 1
        request_id = f"r{session.request_counter}"
        wire = Request(requestId=request_id, kind="promptReview", reason=REVIEW_REASON,  # type: ignore[typeddict-item]
                       original=text, augmented=augmented, diff=unified_diff(text, augmented),
                       sources=[wire_source(s) for s in sources])
        pending = Pending(None, wire, {})
        session.pending[request_id] = pending
        runner.record(events.request_item(session, pending, None))
        runner.changed()
        self.core.outbox.then(session.id, REQUEST, {"id": session.id, "request": wire})

    def answer(self, runner: "Runner", pending: Pending, decision: str, text: str | None) -> None:
        """The user's answer to a promptReview: what it says is sent (or nothing, on cancel)."""
        session, wire = runner.session, pending.wire
        if decision not in ("accept", "edit", "decline", "cancel"):
            raise InvalidParams("decision", "a promptReview takes accept, edit, decline or cancel "
                                f"(got {decision!r})")
        if decision == "edit" and not (text or "").strip():
            raise InvalidParams("text", "the prompt to send is required with decision edit")
        sent = {"accept": wire["augmented"], "edit": text, "decline": wire["original"],
                "cancel": None}[decision]
        del session.pending[wire["requestId"]]
        session.reviewing = None
        self._state(session).review += 1
        runner.record(events.request_item(session, pending, decision))
        self._augmented(session, wire["original"], wire["augmented"], decision, sent)
        if sent is None:
            runner.record(session.item("error", text="prompt cancelled in its review: nothing was sent"))
            runner.changed()
            return
        runner.prompt(sent, reviewed=True)

    def drop_review(self, runner: "Runner") -> None:
        """`cancel` while learn mode holds the prompt: it is not sent."""
        session = runner.session
        original = session.reviewing or ""
        for request_id, pending in list(session.pending.items()):
            if pending.wire["kind"] == "promptReview":
                del session.pending[request_id]
                runner.record(events.request_item(session, pending, "cancel"))
        session.reviewing = None
        self._state(session).review += 1
        self._augmented(session, original, None, "cancel", None)
        runner.record(session.item("error", text="queued prompt cancelled"))
        runner.changed()

    def _augmented(self, session: Session, original: str, augmented: str | None, decision: str,
                   sent: str | None) -> None:
        """One review in augmented_turns.md: original, rewrite, diff, decision, what was sent."""
        parts = [f"## Turn {session.turns + 1} · {now()} · {decision}", "", "### Original", "",
                 fenced(original)]
        if augmented is not None:
            parts += ["", "### Rewrite", "", fenced(augmented), "", "### Diff", "",
                      fenced(unified_diff(original, augmented), "diff")]
        parts += ["", f"Decision: {decision}", ""]
        if sent is not None and sent != augmented and sent != original:
            parts += ["### Sent (edited)", "", fenced(sent), ""]
        try:
            path = self.core.documents.folder(session.id) / AUGMENTED_FILE
            if not path.exists():
                self.core.documents.append_text(
                    session.id, AUGMENTED_FILE, f"# Learn mode: session {session.name} in "
                    f"{session.project.name}\n\n")
            self.core.documents.append_text(session.id, AUGMENTED_FILE, "\n".join(parts) + "\n")
        except OSError as exc:
            log.warning("cannot write %s of %s: %s", AUGMENTED_FILE, session.name, exc)

    # ---- the project's learnings ---------------------------------------------------------------

    async def relevant(self, project: Project, text: str) -> list[dict[str, Any]]:
        """What a rewrite is given: the newest learnings, then the best matches, no repeats."""
        store = self.core.store
        try:
            found = list(reversed(await store.learnings(project.root, limit=RECENT)))
            found += await store.matching_learnings(project.root, search_words(text), MATCHES)
        except sqlite3.Error as exc:
            log.warning("finding learnings in %s: %s", project.root, exc)
            return []
        unique: dict[int, dict[str, Any]] = {}
        for entry in found:
            unique.setdefault(entry["id"], entry)
        return list(unique.values())

    async def project_learnings(self, project: Project, limit: int) -> dict[str, Any]:
        entries = await self.core.store.learnings(project.root, limit=limit)
        path = self.core.documents.project_folder(project) / LEARNINGS_FILE
        if entries and not path.exists():
            path = await self.write_project(project)
        return {"project": project.to_wire(), "path": str(path),
                "entries": [wire_entry(e) for e in entries], "text": project_markdown(project, entries)}

    async def write_project(self, project: Project) -> Any:
        entries = await self.core.store.learnings(project.root, limit=10000)
        return self.core.documents.write_project(project, project_markdown(project, entries))

    def forget(self, session: Session) -> None:
        self.states.pop(session.id, None)
        self.core.documents.remove(session.id)


