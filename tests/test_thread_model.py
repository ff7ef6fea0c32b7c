"""Codex's thread model through the sidecar: fork, review, adopt, steer, models."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from codex_sessions.codex.appserver import AppServer
from codex_sessions.testing.client import RpcError

from test_sidecar import finished, start


def user_texts(body: dict) -> list[str]:
    """The user messages a request to the model carried, in order."""
    texts = []
    for item in body.get("input") or []:
        if item.get("type") == "message" and item.get("role") == "user":
            texts += [c.get("text", "") for c in item.get("content") or [] if isinstance(c, dict)]
    return [t for t in texts if not t.lstrip().startswith("<")]  # not the environment context


async def test_fork_keeps_the_turns_asked_for_and_leaves_the_original(sidecar, project, offline):
    s = await start(sidecar, project, "main", "say: one")
    await finished(sidecar, s["id"])
    for n, word in enumerate(("two", "three"), start=2):
        await sidecar.request("codex/session/send", {"id": s["id"], "text": f"say: {word}"})
        await finished(sidecar, s["id"], turns=n)

    whole = (await sidecar.request("codex/session/fork", {"id": s["id"], "newName": "whole"}))["session"]
    early = (await sidecar.request("codex/session/fork", {"id": s["id"], "newName": "early",
                                                          "atTurn": 1}))["session"]
    for f in (whole, early):
        await sidecar.wait_status(f["id"], "idle")
        assert f["threadId"] is None or f["threadId"] != s["threadId"]
    await sidecar.request("codex/session/send", {"id": early["id"], "text": "say: four"})
    await finished(sidecar, early["id"], turns=2)
    assert user_texts(offline.model.requests[-1]) == ["say: one", "say: four"]
    await sidecar.request("codex/session/send", {"id": whole["id"], "text": "say: five"})
    await finished(sidecar, whole["id"], turns=4)
    assert user_texts(offline.model.requests[-1]) == ["say: one", "say: two", "say: three", "say: five"]
    # the original is untouched
    await sidecar.request("codex/session/send", {"id": s["id"], "text": "say: six"})
    await finished(sidecar, s["id"], turns=4)
    assert user_texts(offline.model.requests[-1]) == ["say: one", "say: two", "say: three", "say: six"]
    # items carry their turn's number
    mine = (await sidecar.request("codex/session/transcript", {"id": s["id"]}))["items"]
    assert [(i["turn"], i["text"]) for i in mine if i["kind"] == "user"] == [
        (1, "say: one"), (2, "say: two"), (3, "say: three"), (4, "say: six")]
    assert {i["turn"] for i in mine if i["kind"] == "agent"} == {1, 2, 3, 4}
    # the fork's transcript starts with its origin
    items = (await sidecar.request("codex/session/transcript", {"id": early["id"]}))["items"]
    assert items[0]["kind"] == "note" and items[0]["forkedFrom"] == {"id": s["id"], "name": "main", "turn": 1}
    for bad, code in (({"id": s["id"], "newName": "x", "atTurn": 9}, -32602),
                      ({"id": s["id"], "newName": "early"}, -32004)):
        with pytest.raises(RpcError) as info:
            await sidecar.request("codex/session/fork", bad)
        assert info.value.code == code


async def test_review_of_uncommitted_changes_is_a_session_with_a_report(sidecar, project, offline):
    (project / "README.md").write_text("# changed by hand\n")
    review = (await sidecar.request("codex/session/review", {"project": str(project)}))["session"]
    assert review["name"] == "review" and review["title"] == "Review the uncommitted changes"
    done = await finished(sidecar, review["id"])
    asked = offline.model.requests[-1]
    assert any("Review the current code changes" in t for t in user_texts(asked))
    assert done["report"]["status"] == "done" and done["report"]["summary"].startswith("Done: Review")
    items = (await sidecar.request("codex/session/transcript", {"id": review["id"]}))["items"]
    assert items[0]["kind"] == "note" and items[0]["reviewTarget"] == {"type": "uncommittedChanges"}
    assert [i for i in items if i["kind"] == "agent"]
    second = (await sidecar.request("codex/session/review", {
        "project": str(project), "target": {"baseBranch": "main"}}))["session"]
    assert second["name"] == "review-2"
    await finished(sidecar, second["id"])
    assert any("against the base branch 'main'" in t for t in user_texts(offline.model.requests[-1]))
    with pytest.raises(RpcError) as info:
        await sidecar.request("codex/session/review", {"project": str(project), "target": {"tag": "x"}})
    assert info.value.code == -32602 and "target" in info.value.message


async def _codex_conversation(offline, project, prompt: str) -> tuple[AppServer, str]:
    """A conversation made the way Codex's own clients make it: app-server driven directly."""
    messages: list[dict] = []
    done = asyncio.Event()

    def on_message(message: dict) -> None:
        messages.append(message)
        if message.get("method") == "turn/completed":
            done.set()
    env = {k: v for k, v in offline.env().items() if k in ("HOME", "CODEX_HOME")}
    server = AppServer(offline.codex_command, str(project), env, on_message, lambda *a: None)
    await server.spawn()
    await server.handshake()
    thread = (await server.request("thread/start", {"cwd": str(project)}))["thread"]["id"]
    await server.request("turn/start", {"threadId": thread, "input": [{"type": "text", "text": prompt}]})
    await asyncio.wait_for(done.wait(), 60)
    return server, thread


async def test_adopt_a_conversation_made_in_codex_itself(sidecar, project, offline):
    server, thread = await _codex_conversation(offline, project, "say: the password is swordfish")
    try:
        threads = (await sidecar.request("codex/project/threads", {"project": str(project)}))["threads"]
        assert [t["threadId"] for t in threads] == [thread]
        assert "the password is swordfish" in threads[0]["title"]
        # while Codex itself holds it, Codex refuses, and the session says why
        adopted = (await sidecar.request("codex/session/adopt", {
            "project": str(project), "threadId": thread, "name": "held"}))["session"]
        failed = await sidecar.wait_status(adopted["id"], "failed")
        assert "another Codex" in failed["error"] and "active writer" in failed["error"]
    finally:
        await server.close()
    await sidecar.request("codex/session/resume", {"id": adopted["id"]})
    await sidecar.wait_status(adopted["id"], "idle")
    items = (await sidecar.request("codex/session/transcript", {"id": adopted["id"]}))["items"]
    assert [i["text"] for i in items if i["kind"] == "user"] == ["say: the password is swordfish"]
    assert any(i["kind"] == "agent" and i["text"] == "the password is swordfish" for i in items)
    await sidecar.request("codex/session/send", {"id": adopted["id"], "text": "say: recalled"})
    await finished(sidecar, adopted["id"], turns=2)
    assert user_texts(offline.model.requests[-1]) == ["say: the password is swordfish", "say: recalled"]
    assert (await sidecar.request("codex/project/threads", {"project": str(project)}))["threads"] == []
    # Codex's own name for it follows ours, so `codex resume held` finds it
    reader, _ = await _codex_reader(offline, project)
    try:
        read = await reader.request("thread/read", {"threadId": thread})
        assert read["thread"]["name"] == "held"
    finally:
        await reader.close()


async def _codex_reader(offline, project) -> tuple[AppServer, None]:
    env = {k: v for k, v in offline.env().items() if k in ("HOME", "CODEX_HOME")}
    server = AppServer(offline.codex_command, str(project), env, lambda m: None, lambda *a: None)
    await server.spawn()
    await server.handshake()
    return server, None


async def test_steer_adds_a_thought_to_the_running_turn(sidecar, project, offline):
    s = await start(sidecar, project, "main", "slow: 20")
    await sidecar.wait_for("codex/session/output", lambda p: p["id"] == s["id"] and any(
        i["kind"] == "agentDelta" for i in p["items"]))
    steered = await sidecar.request("codex/session/steer", {"id": s["id"], "text": "say: steered"})
    assert steered["turnId"]
    done = await finished(sidecar, s["id"], timeout=30)
    assert done["report"]["summary"] == "steered"
    assert user_texts(offline.model.requests[-1]) == ["slow: 20", "say: steered"]
    with pytest.raises(RpcError) as info:
        await sidecar.request("codex/session/steer", {"id": s["id"], "text": "too late"})
    assert info.value.code == -32007 and "no running turn" in info.value.message


async def test_model_and_effort_reach_the_model_and_models_are_listed(sidecar, project, offline):
    s = await start(sidecar, project, "tuned", "say: ok", model="mock-model-b", effort="high")
    assert s["model"] == "mock-model-b" and s["effort"] == "high"
    await finished(sidecar, s["id"])
    body = offline.model.requests[-1]
    assert body["model"] == "mock-model-b"
    assert (body.get("reasoning") or {}).get("effort") == "high"
    plain = await start(sidecar, project, "plain", "say: ok")
    await finished(sidecar, plain["id"])
    got = (await sidecar.request("codex/session/get", {"id": plain["id"]}))["session"]
    assert got["model"] == "mock-model", "the model Codex chose is recorded"
    models = (await sidecar.request("codex/models", {}))["models"]
    assert models and all(m["id"] for m in models) and any(m["isDefault"] for m in models)
    limits = await sidecar.request("codex/account/limits", {})
    assert limits["limits"] is None and "authentication" in limits["unavailable"]


def test_review_fork_and_models_from_the_terminal(offline, project):
    env = offline.env()
    cli = [sys.executable, "-m", "codex_sessions"]
    (project / "README.md").write_text("# edited\n")
    review = subprocess.run([*cli, "review", "-C", str(project)], env=env, capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert review.returncode == 0, review.stderr
    assert "Session: review\nStatus: done" in review.stdout
    forked = subprocess.run([*cli, "fork", "review", "again", "-C", str(project), "--json"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert forked.returncode == 0, forked.stderr
    assert json.loads(forked.stdout)["session"]["name"] == "again"
    models = subprocess.run([*cli, "models"], env=env, capture_output=True, text=True, timeout=60)
    assert models.returncode == 0 and "(default)" in models.stdout
