"""Codex's thread model per session: fork, review, adopt, steer, its terminal UI, models.

A mixin of `Sessions` (service.py): these operations use its registry, runners, pool and
store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..codex.appserver import AppServerError
from ..config import ClientConfig
from ..errors import CodexUnavailable, InvalidParams, InvalidState
from . import events, worktrees
from .session import Session

if TYPE_CHECKING:
    from .service import Sessions


class ThreadModel:
    async def fork(self: "Sessions", client: ClientConfig, source: Session, new_name: str,
                   at_turn: int | None) -> Session:
        """A new session on a new Codex thread holding `source`'s turns 1..at_turn (all)."""
        if not source.thread_id or not source.turns:
            raise InvalidState(f"session {source.name!r} has no turn yet: there is nothing to fork",
                               {"id": source.id})
        kept = source.turns if at_turn is None else at_turn
        if not 1 <= kept <= source.turns:
            raise InvalidParams("at_turn", f"must be a turn of {source.name!r}: 1 to {source.turns}")
        last_turn = None
        if at_turn is not None:
            ids = source.turn_ids if len(source.turn_ids) == source.turns else []
            if not ids:
                raise InvalidState(f"session {source.name!r} was recorded without its turn ids; "
                                   "fork it whole (no atTurn)", {"id": source.id})
            last_turn = ids[kept - 1]
        options: dict[str, Any] = {
            "model": source.model, "effort": source.effort, "sandbox": source.sandbox,
            "approval_policy": source.approval_policy, "role": source.role,
            "write_scope": list(source.write_scope), "isolation": "shared"}
        tree = source.worktree
        if tree and os.path.isdir(tree["path"]):  # the fork works on a copy of the source's files
            options["isolation"] = "worktree"
            options["tree_from"] = worktrees.Worktree(tree["path"], tree["branch"], tree["base"])
        session, runner = await self._create(client, source.project, new_name, **options)
        session.turns, session.turn_ids = kept, source.turn_ids[:kept]
        session.title = source.title
        fork: dict[str, Any] = {"threadId": source.thread_id}
        if last_turn:
            fork["lastTurnId"] = last_turn
        runner.note(f"Forked from {source.name} after turn {kept} of {source.turns}",
                    forkedFrom={"id": source.id, "name": source.name, "turn": kept})
        runner.changed()
        asyncio.create_task(runner.open_thread(fork=fork))
        await self.store.flush()
        return session

    async def review(self: "Sessions", client: ClientConfig, project_path: str, target: Any,
                     name: str | None) -> Session:
        """A session whose first turn is Codex's review of the target."""
        await self.ready()
        project = self.registry.resolve(project_path)
        wire_target, described = review_target(target)
        if name is None:
            name = "review"
            n = 1
            while self.registry.named(project, name) is not None:
                n += 1
                name = f"review-{n}"
        session, runner = await self._create(client, project, name)
        runner.note(f"Review of {described}", reviewTarget=wire_target)
        runner.prompt(f"Review {described}")
        session.next_review = wire_target
        asyncio.create_task(runner.open_thread())
        await self.store.flush()
        return session

    async def threads(self: "Sessions", client: ClientConfig, project_path: str) -> list[dict[str, Any]]:
        """Codex's own saved conversations in this project that are not sessions yet."""
        await self.ready()
        project = self.registry.resolve(project_path)
        known = {s.thread_id for s in self.registry if s.thread_id}
        found: list[dict[str, Any]] = []
        async with self.utility(client, project.root) as process:
            cursor = None
            for _ in range(20):  # at most 1,000 threads
                params: dict[str, Any] = {"cwd": project.root, "limit": 50,
                                          "sortKey": "updated_at"}
                if cursor:
                    params["cursor"] = cursor
                page = await process.request("thread/list", params, client.codex_timeout)
                for thread in page.get("data") or []:
                    if thread.get("id") not in known:
                        found.append({"threadId": thread["id"],
                                      "title": thread.get("name") or thread.get("preview") or "",
                                      "updatedAt": _iso(thread.get("updatedAt"))})
                cursor = page.get("nextCursor")
                if not cursor:
                    break
        return found

    async def adopt(self: "Sessions", client: ClientConfig, project_path: str, thread_id: str,
                    name: str) -> Session:
        """Make one of Codex's own conversations a named session, its history shown."""
        await self.ready()
        project = self.registry.resolve(project_path)
        if any(s.thread_id == thread_id for s in self.registry):
            raise InvalidState(f"thread {thread_id} is a session already", {"field": "threadId"})
        async with self.utility(client, project.root) as process:
            try:
                read = await process.request("thread/read", {"threadId": thread_id,
                                                             "includeTurns": True}, 60)
            except AppServerError as exc:
                raise InvalidParams("thread_id", f"Codex does not know thread {thread_id}: {exc}") from None
        turns = read["thread"].get("turns") or []
        session, runner = await self._create(client, project, name)
        session.thread_id, session.turns = thread_id, len(turns)
        session.turn_ids = [t["id"] for t in turns]
        runner.note(f"Adopted Codex conversation {thread_id}", adoptedThread=thread_id)
        for turn in turns:
            session.turn_id = turn["id"]
            for item in turn.get("items") or []:
                if item.get("type") == "userMessage":
                    text = "".join(c.get("text", "") for c in item.get("content") or []
                                   if isinstance(c, dict))
                    session.accept_prompt(text)
                    session.drop_prompt()
                    runner.record(session.item("user", text=text))
                else:
                    shown = events.completed_item(session, item, {})
                    if shown is not None:
                        runner.record(shown)
        session.turn_id = None
        runner.changed()
        asyncio.create_task(runner.open_thread(resume=True))
        await self.store.flush()
        return session

    async def steer(self: "Sessions", session: Session, text: str) -> str:
        self.drivable(session)
        turn_id = await self.runner(session).steer(text)
        await self.store.flush()
        return turn_id

    async def tui(self: "Sessions", session: Session) -> dict[str, Any]:
        """A socket where Codex's own terminal UI joins this session's thread, and the
        command that opens it there."""
        if not session.live and session.owner is None:
            await self.resume(session)
        self.drivable(session)
        runner = self.runner(session)
        for _ in range(600):  # a resumed session needs its thread first
            if session.phase == "ready" or not session.live:
                break
            await asyncio.sleep(0.05)
        if session.phase != "ready" or runner.process is None or not session.thread_id:
            raise InvalidState(f"session {session.name!r} is {session.status}: its Codex is not "
                               "ready for a terminal UI", {"id": session.id})
        if runner.tui is None:
            from ..codex.tui import TuiBridge
            path = self.store.state_dir / f"tui-{session.id}.sock"
            runner.tui = TuiBridge(runner.process, session.thread_id, path)
            await runner.tui.start()
        argv = [*session.codex_command, "resume", "--remote", f"unix://{runner.tui.path}",
                session.thread_id, "-C", session.workdir]
        return {"socket": str(runner.tui.path), "threadId": session.thread_id, "command": argv,
                "env": dict(session.codex_env)}

    @contextlib.asynccontextmanager
    async def utility(self: "Sessions", client: ClientConfig, cwd: str) -> Any:
        """A Codex process to ask something of (the project's own, when one runs)."""
        listener = _Nobody()
        key = ("perProject", cwd, tuple(client.codex_command), tuple(sorted(client.codex_env)))
        try:
            process = await self.pool.acquire(listener, key, list(client.codex_command),
                                              dict(client.codex_env), cwd)
        except OSError as exc:
            raise CodexUnavailable(f"cannot run Codex ({shlex.join(client.codex_command)}): "
                                   f"{exc.strerror or exc}") from None
        try:
            await asyncio.shield(process.ready)
            yield process
        except AppServerError as exc:
            raise CodexUnavailable(f"Codex did not answer: {exc}") from None
        finally:
            await self.pool.release(process, listener, None)

    async def models(self: "Sessions", client: ClientConfig) -> list[dict[str, Any]]:
        """The models Codex offers (`model/list`), kept for ten minutes."""
        now = time.monotonic()
        if self._models and now - self._models[0] < 600:
            return self._models[1]
        async with self.utility(client, os.path.expanduser("~")) as process:
            result = await process.request("model/list", {}, client.codex_timeout)
        models = [{"id": m.get("id") or m.get("model"), "displayName": m.get("displayName"),
                   "description": m.get("description"), "isDefault": m.get("isDefault", False),
                   "efforts": [e.get("reasoningEffort") for e in m.get("supportedReasoningEfforts") or []],
                   "defaultEffort": m.get("defaultReasoningEffort")}
                  for m in result.get("data") or [] if not m.get("hidden")]
        self._models = (now, models)
        return models

    async def limits(self: "Sessions", client: ClientConfig) -> dict[str, Any]:
        """The account's rate limits where Codex reports them; else why not."""
        async with self.utility(client, os.path.expanduser("~")) as process:
            try:
                result = await process.request("account/rateLimits/read", {}, client.codex_timeout)
            except AppServerError as exc:
                return {"limits": None, "unavailable": str(exc)}
        return {"limits": result.get("rateLimits") or result, "unavailable": None}


class _Nobody:
    """The listener of a short request to Codex: it wants no events."""

    def on_event(self, method: str, params: dict[str, Any]) -> None:
        pass

    def on_request(self, codex_id: Any, method: str, params: dict[str, Any]) -> None:
        pass

    def on_exit(self, code: int, stderr_tail: str) -> None:
        pass


def review_target(target: Any) -> tuple[dict[str, Any], str]:
    """The protocol's review target as Codex's, and in words; InvalidParams when unusable."""
    if target == "uncommittedChanges" or target is None:
        return {"type": "uncommittedChanges"}, "the uncommitted changes"
    if isinstance(target, dict) and isinstance(target.get("baseBranch"), str) and target["baseBranch"]:
        return {"type": "baseBranch", "branch": target["baseBranch"]}, \
            f"the changes against {target['baseBranch']}"
    if isinstance(target, dict) and isinstance(target.get("commit"), str) and target["commit"]:
        return {"type": "commit", "sha": target["commit"]}, f"commit {target['commit'][:12]}"
    raise InvalidParams("target", 'must be "uncommittedChanges", {"baseBranch": NAME} or '
                        f'{{"commit": SHA}} (got {target!r})')


def _iso(value: Any) -> str | None:
    """Codex's times (unix seconds, or text already) as ISO 8601 UTC."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc).isoformat(timespec="seconds").replace(
            "+00:00", "Z")
    return value if isinstance(value, str) else None
