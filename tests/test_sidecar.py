"""End to end: the real sidecar over stdio, the real Codex, a scripted model on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from codex_sessions.wire import NOTIFICATIONS, SessionInfo
from codex_sessions.testing.client import RpcError, SidecarClient


async def start(client: SidecarClient, project: Path, name: str, prompt: str | None = None,
                **extra: Any) -> dict[str, Any]:
    params = {"project": str(project), "name": name, **extra}
    if prompt is not None:
        params["prompt"] = prompt
    return (await client.request("codex/session/start", params))["session"]


async def finished(client: SidecarClient, sid: str, turns: int = 1, timeout: float = 60) -> dict[str, Any]:
    return await client.wait_for(
        "codex/session/finished",
        lambda p: p["session"]["id"] == sid and p["session"]["turns"] >= turns, timeout)


async def rpc_error(coro: Any) -> RpcError:
    with pytest.raises(RpcError) as info:
        await coro
    return info.value


def agent_text(client: SidecarClient, sid: str) -> str:
    return "".join(i["text"] for i in client.output_items(sid) if i["kind"] == "agent")


async def test_initialize_names_the_server(offline):
    client = SidecarClient(env=offline.env())
    result = await client.start()
    try:
        assert result["serverInfo"]["name"] == "codex-sessions"
        assert result["serverInfo"]["version"]
    finally:
        await client.stop()


async def test_three_sessions_at_once_outputs_kept_apart(sidecar, project, other_project):
    sessions = {}
    for name in ("main", "review", "tests"):
        sessions[name] = await start(sidecar, project, name, f"slow: 3\nstream: I am {name} here")
    sessions["other"] = await start(sidecar, other_project, "main", "stream: I am other here")
    for s in sessions.values():
        await finished(sidecar, s["id"])

    # all three in one project were running at the same moment
    running: set[str] = set()
    most = 0
    for message in sidecar.notifications:
        if message["method"] == "codex/session/changed":
            s = message["params"]["session"]
            (running.add if s["status"] == "running" else running.discard)(s["id"])
            most = max(most, len(running))
    assert most >= 3

    # each got its own answer, streamed, and nobody else's
    assert agent_text(sidecar, sessions["review"]["id"]).startswith("tick")
    texts = {name: "".join(i["text"] for i in sidecar.output_items(s["id"])
                           if i["kind"] == "agentDelta") for name, s in sessions.items()}
    for name, text in texts.items():
        for other in sessions:
            if other != name:
                assert f"I am {other} here" not in text

    # names, buffer names and the protocol's hash
    root = str(project)
    digest = hashlib.sha1((root + "/").encode()).hexdigest()[:8]
    assert sessions["review"]["bufferName"] == f"*codex:ultra:review:{digest}*"
    assert sessions["review"]["project"] == {"root": root, "name": "ultra", "hash": digest}
    assert sessions["other"]["bufferName"].startswith("*codex:other:main:")
    pids = {s["id"]: (await sidecar.request("codex/session/get", {"id": s["id"]}))["session"]["pid"]
            for s in sessions.values()}
    ids = {name: s["id"] for name, s in sessions.items()}
    assert pids[ids["main"]] == pids[ids["review"]] == pids[ids["tests"]], \
        "one Codex process per project"
    assert pids[ids["other"]] != pids[ids["main"]]


async def test_get_and_list_show_the_session_record(sidecar, project):
    s = await start(sidecar, project, "review", "run: echo hi > hello.txt\nplease check")
    await finished(sidecar, s["id"])
    got = (await sidecar.request("codex/session/get", {"project": str(project), "name": "review"}))["session"]
    assert got["status"] == "idle"
    assert got["title"] == "run: echo hi > hello.txt"
    assert got["threadId"]
    assert got["createdAt"].endswith("Z") and got["startedAt"] and got["finishedAt"]
    assert got["turns"] == 1 and got["lastTurn"]["status"] == "completed"
    assert got["changedFiles"] == ["hello.txt"]
    assert got["usage"]["inputTokens"] > 0 and got["usage"]["outputTokens"] > 0
    TypeAdapter(SessionInfo).validate_python(got)
    listed = (await sidecar.request("codex/session/list", {"project": str(project)}))["sessions"]
    assert [x["id"] for x in listed] == [s["id"]]


async def test_list_orders_waiting_failed_running_then_rest(sidecar, project, offline):
    idle = await start(sidecar, project, "idle", "say: ok")
    await finished(sidecar, idle["id"])
    # a session with a Codex of its own (codexProcess perSession), whose Codex then dies
    isolated = SidecarClient(env=offline.env())
    await isolated.start(codexProcess="perSession")
    try:
        failing = await start(isolated, project, "broken")
        await sidecar.wait_status(failing["id"], "idle")
        pid = (await sidecar.request("codex/session/get", {"id": failing["id"]}))["session"]["pid"]
        os.kill(pid, signal.SIGKILL)
        await sidecar.wait_status(failing["id"], "failed")
    finally:
        await isolated.stop()
    running = await start(sidecar, project, "busy", "slow: 20")
    await sidecar.wait_status(running["id"], "running")
    waiting = await start(sidecar, project, "asks", "run-approved: touch asked.txt")
    await sidecar.wait_status(waiting["id"], "waiting")
    listed = (await sidecar.request("codex/session/list", {"project": str(project)}))["sessions"]
    assert [(x["name"], x["status"]) for x in listed] == [
        ("asks", "waiting"), ("broken", "failed"), ("busy", "running"), ("idle", "idle")]
    only = (await sidecar.request("codex/session/list", {"status": ["waiting"]}))["sessions"]
    assert [x["name"] for x in only] == ["asks"]
    assert (await sidecar.request("codex/session/list", {"waiting": True}))["sessions"] == only
    # the rows a list line needs, nothing more
    rows = (await sidecar.request("codex/session/list", {
        "project": str(project), "fields": ["name", "status", "headline", "rank"]}))["sessions"]
    assert [set(r) for r in rows] == [{"id", "name", "status", "headline", "rank"}] * 4
    assert rows[0]["headline"].startswith("waits: ") and "touch asked.txt" in rows[0]["headline"]
    assert [r["rank"] for r in rows] == [0, 1, 2, 5]


async def test_streaming_pieces_then_the_whole_message(sidecar, project):
    s = await start(sidecar, project, "main", "stream: one two three four five")
    done = await finished(sidecar, s["id"])
    items = sidecar.output_items(s["id"])
    deltas = [i for i in items if i["kind"] == "agentDelta"]
    assert deltas and "".join(d["text"] for d in deltas) == "one two three four five"
    assert agent_text(sidecar, s["id"]) == "one two three four five"
    statuses = [i["status"] for i in items if i["kind"] == "status"]
    assert statuses[-2:] == ["running", "idle"]
    seqs = [i["seq"] for i in items if "seq" in i]
    assert seqs == list(range(1, len(seqs) + 1))
    assert done["report"]["summary"] == "one two three four five"


async def test_a_commands_output_reaches_the_client_as_codex_sent_it(sidecar, project):
    # A command's output is passed on as the JSON Codex wrote, not decoded: what JSON escapes,
    # text that looks like the line's own keys, and non-ASCII must all arrive intact.
    line = ('quote " backslash \\ tab \t bell \x07 "},"emittedAtMs":1} ,"delta":"x" '
            'caf\u00e9 \u65e5\u672c \U0001f389 \\"\n')
    text = "".join(f"{n:04d} {line}" for n in range(300))  # ~27 KB: several pieces
    (project / "tricky.txt").write_text(text, encoding="utf-8")
    s = await start(sidecar, project, "main", "run: sleep 0.5; cat tricky.txt")
    await finished(sidecar, s["id"])
    items = sidecar.output_items(s["id"])
    streamed = "".join(i["text"] for i in items if i["kind"] == "commandDelta")
    command = next(i for i in items if i["kind"] == "command")
    assert command["output"].replace("\r\n", "\n") == text
    assert streamed.replace("\r\n", "\n") == text
    assert sum(1 for i in items if i["kind"] == "commandDelta") >= 1


async def test_a_paced_stream_arrives_in_pieces_before_the_message(sidecar, project):
    s = await start(sidecar, project, "main", "slow: 1.2")
    await finished(sidecar, s["id"])
    batches = [[i["kind"] for i in m["params"]["items"]] for m in sidecar.notifications
               if m["method"] == "codex/session/output" and m["params"]["id"] == s["id"]]
    with_pieces = [n for n, kinds in enumerate(batches) if "agentDelta" in kinds]
    whole = next(n for n, kinds in enumerate(batches) if "agent" in kinds)
    assert len(with_pieces) >= 3 and with_pieces[0] < whole
    assert agent_text(sidecar, s["id"]) == "tick " * 6


async def test_follow_up_prompt_and_busy_session(sidecar, project):
    s = await start(sidecar, project, "main", "slow: 3")
    await sidecar.wait_status(s["id"], "running")
    err = await rpc_error(sidecar.request("codex/session/send", {"id": s["id"], "text": "again"}))
    assert err.code == -32002 and "main" in err.message
    await finished(sidecar, s["id"])
    sent = await sidecar.request("codex/session/send", {"id": s["id"], "text": "say: second answer"})
    assert sent["turnId"]
    await finished(sidecar, s["id"], turns=2)
    assert agent_text(sidecar, s["id"]).endswith("second answer")


async def test_cancel_interrupts_a_running_turn(sidecar, project):
    s = await start(sidecar, project, "main", "slow: 60")
    await sidecar.wait_for("codex/session/output",
                           lambda p: p["id"] == s["id"] and any(i["kind"] == "agentDelta" for i in p["items"]))
    began = time.monotonic()
    await sidecar.request("codex/session/cancel", {"id": s["id"]})
    done = await finished(sidecar, s["id"], timeout=20)
    assert time.monotonic() - began < 10
    assert done["session"]["lastTurn"]["status"] == "interrupted"
    assert done["session"]["status"] == "idle"
    assert done["report"]["status"] == "blocked"
    err = await rpc_error(sidecar.request("codex/session/cancel", {"id": s["id"]}))
    assert err.code == -32007


async def test_approval_round_trip_accept(sidecar, project):
    s = await start(sidecar, project, "main", "run-approved: touch approved.txt")
    request = await sidecar.wait_for("codex/session/request", lambda p: p["id"] == s["id"])
    waiting = (await sidecar.request("codex/session/get", {"id": s["id"]}))["session"]
    assert waiting["status"] == "waiting"
    assert waiting["pending"][0]["requestId"] == request["request"]["requestId"]
    req = request["request"]
    assert req["kind"] == "command" and req["command"] == "touch approved.txt"
    assert req["cwd"] == str(project) and "approval" in req["reason"].lower()
    assert not (project / "approved.txt").exists()
    await sidecar.request("codex/session/respond",
                          {"id": s["id"], "requestId": req["requestId"], "decision": "accept"})
    done = await finished(sidecar, s["id"])
    assert (project / "approved.txt").exists()
    assert done["report"]["status"] == "done"
    assert done["report"]["verified"] == ["touch approved.txt (exit 0)"]
    assert done["report"]["changed"] == ["approved.txt"]
    decisions = [i["decision"] for i in sidecar.output_items(s["id"]) if i["kind"] == "request"]
    assert decisions == [None, "accept"]


async def test_approval_declined_blocks_the_report(sidecar, project):
    s = await start(sidecar, project, "main", "run-approved: touch nope.txt")
    request = await sidecar.wait_for("codex/session/request", lambda p: p["id"] == s["id"])
    err = await rpc_error(sidecar.request("codex/session/respond",
                                          {"id": s["id"], "requestId": "r99", "decision": "accept"}))
    assert err.code == -32602 and "requestId" in err.message
    err = await rpc_error(sidecar.request("codex/session/respond",
                                          {"id": s["id"], "requestId": "r1", "decision": "maybe"}))
    assert err.code == -32602 and "decision" in err.message
    await sidecar.request("codex/session/respond", {
        "id": s["id"], "requestId": request["request"]["requestId"], "decision": "decline"})
    done = await finished(sidecar, s["id"])
    assert not (project / "nope.txt").exists()
    assert done["report"]["status"] == "blocked"
    assert any("declined" in b for b in done["report"]["blockers"])
    assert "Status: blocked" in done["text"]


async def test_report_comes_from_observation_not_claims(sidecar, project):
    s = await start(sidecar, project, "main", "say: I fixed every bug and all tests pass.")
    done = await finished(sidecar, s["id"])
    assert done["report"]["changed"] == [] and done["report"]["verified"] == []
    await sidecar.request("codex/session/send", {"id": s["id"], "text": "run: echo broken > out.txt; exit 3"})
    done = await finished(sidecar, s["id"], turns=2)
    report = done["report"]
    assert report["status"] == "blocked"
    assert report["changed"] == ["out.txt"]
    assert any("exited 3" in b for b in report["blockers"])
    got = await sidecar.request("codex/session/report", {"id": s["id"]})
    assert got["report"] == report
    assert got["text"].splitlines()[0] == "Session: main"
    assert [line.split(":")[0] for line in got["text"].splitlines()] == [
        "Session", "Status", "Summary", "Changed", "Verified", "Blockers", "Next"]


async def test_model_error_fails_the_turn_not_the_session(sidecar, project):
    s = await start(sidecar, project, "main", "fail")
    retrying = await sidecar.wait_for("codex/session/changed", lambda p: p["session"]["id"] == s["id"]
                                      and p["session"]["retry"])
    assert retrying["session"]["status"] == "running"
    assert retrying["session"]["headline"].startswith("retrying (1)")
    done = await finished(sidecar, s["id"])
    assert done["report"]["status"] == "failed"
    assert done["session"]["lastTurn"]["status"] == "failed"
    assert done["session"]["status"] == "idle" and done["session"]["retry"] is None
    assert done["session"]["headline"].startswith("failed: "), "the list line agrees with the report"
    errors = [i for i in sidecar.output_items(s["id"]) if i["kind"] == "error"]
    assert [bool(e.get("willRetry")) for e in errors] == [True, True, False]
    await sidecar.request("codex/session/send", {"id": s["id"], "text": "say: recovered"})
    assert (await finished(sidecar, s["id"], turns=2))["report"]["status"] == "done"


async def test_rename_kill_and_kill_all(sidecar, project, other_project):
    a = await start(sidecar, project, "review")
    b = await start(sidecar, project, "tests")
    c = await start(sidecar, other_project, "main")
    for s in (a, b, c):
        await sidecar.wait_status(s["id"], "idle")
    renamed = (await sidecar.request("codex/session/rename", {"id": a["id"], "newName": "rev2"}))["session"]
    assert renamed["name"] == "rev2" and renamed["bufferName"].startswith("*codex:ultra:rev2:")
    err = await rpc_error(sidecar.request("codex/session/rename", {"id": a["id"], "newName": "tests"}))
    assert err.code == -32004
    err = await rpc_error(sidecar.request("codex/session/rename", {"id": a["id"], "newName": "no way"}))
    assert err.code == -32602 and "newName" in err.message

    pid = (await sidecar.request("codex/session/get", {"id": a["id"]}))["session"]["pid"]
    killed = (await sidecar.request("codex/session/kill", {"project": str(project), "name": "rev2"}))["session"]
    assert killed["status"] == "stopped" and killed["pid"] is None
    await asyncio.sleep(0.5)
    assert Path(f"/proc/{pid}").exists(), "the project's Codex still serves `tests`"
    listed = (await sidecar.request("codex/session/list", {}))["sessions"]
    assert a["id"] not in [s["id"] for s in listed]
    listed = (await sidecar.request("codex/session/list", {"all": True}))["sessions"]
    assert a["id"] in [s["id"] for s in listed]

    result = await sidecar.request("codex/session/killAll", {"project": str(project)})
    assert result["killed"] == [b["id"]]
    await asyncio.sleep(0.5)
    assert not Path(f"/proc/{pid}").exists(), "the project's last session took its Codex along"
    assert (await sidecar.request("codex/session/get", {"id": c["id"]}))["session"]["status"] == "idle"
    result = await sidecar.request("codex/session/killAll", {})
    assert result["killed"] == [c["id"]]
    # a stopped session's name is its handle: start resumes that conversation ...
    resumed = await sidecar.request("codex/session/start", {"project": str(project), "name": "tests"})
    again = resumed["session"]
    assert again["id"] == b["id"] and not resumed["created"]
    assert resumed["warnings"] == [], "nothing was asked that the resume ignores"
    await sidecar.wait_status(b["id"], "idle")
    await sidecar.request("codex/session/kill", {"id": b["id"]})
    # ... and a fresh one under that name moves the old record out of the way
    fresh = await start(sidecar, project, "tests", fresh=True)
    assert fresh["id"] != b["id"] and fresh["bufferName"] == again["bufferName"]
    old = (await sidecar.request("codex/session/get", {"id": b["id"]}))["session"]
    assert old["name"] == "tests~1" and old["status"] == "stopped"


async def test_a_kept_list_answer_changes_with_every_session_change(sidecar, project):
    compact = {"all": True, "fields": ["name", "status"]}

    async def rows() -> dict[str, tuple[str, str]]:
        listed = (await sidecar.request("codex/session/list", compact))["sessions"]
        assert listed == (await sidecar.request("codex/session/list", compact))["sessions"]
        return {r["id"]: (r["name"], r["status"]) for r in listed}

    before = await rows()
    s = await start(sidecar, project, "keep")
    await sidecar.wait_status(s["id"], "idle")
    assert (await rows())[s["id"]] == ("keep", "idle") and len(await rows()) == len(before) + 1
    await sidecar.request("codex/session/rename", {"id": s["id"], "newName": "kept"})
    assert (await rows())[s["id"]] == ("kept", "idle")
    await sidecar.request("codex/session/kill", {"id": s["id"]})
    assert (await rows())[s["id"]] == ("kept", "stopped")
    assert s["id"] not in [r["id"] for r in (await sidecar.request(
        "codex/session/list", {"fields": ["name"]}))["sessions"]]
    await sidecar.request("codex/session/forget", {"id": s["id"]})
    assert s["id"] not in await rows()


async def test_a_prompt_right_after_a_kill_resumes_the_session_every_time(sidecar, project):
    # The resumed thread needs a Codex of its own, started once the killed one has let go of
    # the thread (Codex keeps a writer lock on it until it exits).
    s = await start(sidecar, project, "again", "say: turn 1")
    await finished(sidecar, s["id"])
    for turn in range(2, 6):
        await sidecar.request("codex/session/kill", {"id": s["id"]})
        sent = await sidecar.request("codex/session/send", {"id": s["id"], "text": f"say: turn {turn}"})
        assert sent["session"]["status"] != "stopped"
        done = await finished(sidecar, s["id"], turn)
        assert done["session"]["status"] == "idle" and done["report"]["status"] == "done", done
    assert agent_text(sidecar, s["id"]).count("turn") == 5


async def test_limits_and_the_run_queue(offline, project):
    client = SidecarClient(env=offline.env())
    await client.start(maxSessionsPerProject=2, maxRunning=1)
    try:
        first = await start(client, project, "one", "slow: 3")
        await client.wait_status(first["id"], "running")
        second = await start(client, project, "two", "say: after one")
        await client.wait_status(second["id"], "queued")
        err = await rpc_error(start(client, project, "three"))
        assert err.code == -32003 and "maxSessionsPerProject" in err.message
        done = [await finished(client, first["id"]), await finished(client, second["id"])]
        assert done[1]["session"]["startedAt"] >= done[0]["session"]["finishedAt"]
        running: set[str] = set()
        queued = set()
        for message in client.notifications:
            if message["method"] == "codex/session/changed":
                s = message["params"]["session"]
                (running.add if s["status"] == "running" else running.discard)(s["id"])
                assert len(running) <= 1
                if s["status"] == "queued":
                    queued.add(s["id"])
        assert queued == {done[1]["session"]["id"]}
        assert agent_text(client, second["id"]) == "after one"
    finally:
        await client.stop()


async def test_bad_requests_get_clear_errors_and_the_sidecar_lives(sidecar, project, tmp_path):
    err = await rpc_error(start(sidecar, project, "bad name!"))
    assert err.code == -32602 and err.message.startswith("name:") and err.data == {"field": "name"}
    err = await rpc_error(sidecar.request("codex/session/start", {"name": "main"}))
    assert err.code == -32602 and err.message.startswith("project:")
    err = await rpc_error(sidecar.request("codex/session/start", {"project": "relative/dir"}))
    assert err.code == -32006 and "absolute" in err.message
    err = await rpc_error(sidecar.request("codex/session/start", {"project": str(tmp_path / "missing")}))
    assert err.code == -32006 and "does not exist" in err.message
    err = await rpc_error(sidecar.request("codex/session/get", {"id": "nope"}))
    assert err.code == -32001
    err = await rpc_error(sidecar.request("codex/session/get", {"project": str(project), "name": "ghost"}))
    assert err.code == -32001 and "ghost" in err.message
    err = await rpc_error(sidecar.request("codex/session/transcript", {"id": "x", "limit": "many"}))
    assert err.code == -32602 and "limit" in err.message
    err = await rpc_error(sidecar.request("codex/session/list", [1, 2]))
    assert err.code == -32602
    s = await start(sidecar, project, "main")
    err = await rpc_error(start(sidecar, project, "main", reuse=False))
    assert err.code == -32004
    same = await sidecar.request("codex/session/start", {"project": str(project), "name": "main"})
    assert same["created"] is False and same["session"]["id"] == s["id"]
    err = await rpc_error(sidecar.request("codex/session/resume", {"id": s["id"]}))
    assert err.code == -32007
    err = await rpc_error(sidecar.request("codex/session/send", {"id": s["id"], "text": ""}))
    assert err.code == -32602 and "text" in err.message
    # `list` is answered at once now that the sessions are loaded: its errors keep their shape
    err = await rpc_error(sidecar.request("codex/session/list", {"status": ["nope"]}))
    assert err.code == -32602 and err.message.startswith("status") and err.data["field"].startswith("status")
    err = await rpc_error(sidecar.request("codex/session/list", {"project": "relative/dir"}))
    assert err.code == -32006 and "absolute" in err.message
    # still serving after all that
    listed = await sidecar.request("codex/session/list", {"project": str(project)})
    assert [x["name"] for x in listed["sessions"]] == ["main"]


async def test_missing_codex_is_codex_unavailable(offline, project):
    client = SidecarClient(env=offline.env())
    await client.start(codexCommand=["/nonexistent/bin/codex"])
    try:
        err = await rpc_error(start(client, project, "main", "say: hi"))
        assert err.code == -32005
        assert "/nonexistent/bin/codex" in err.message and "npm install" in err.message
        assert (await client.request("codex/session/list", {}))["sessions"] == []
    finally:
        await client.stop()


async def test_a_dying_shared_codex_interrupts_only_its_projects_sessions(sidecar, project,
                                                                        other_project):
    doomed = await start(sidecar, project, "doomed", "slow: 30")
    fine = await start(sidecar, project, "fine", "say: first turn here")
    elsewhere = await start(sidecar, other_project, "main")
    await sidecar.wait_status(doomed["id"], "running")
    await finished(sidecar, fine["id"])
    await sidecar.wait_status(elsewhere["id"], "idle")
    pid = (await sidecar.request("codex/session/get", {"id": doomed["id"]}))["session"]["pid"]
    os.kill(pid, signal.SIGKILL)
    for s in (doomed, fine):
        ended = await sidecar.wait_status(s["id"], "interrupted")
        assert ended["error"].startswith("Codex exited with code")
    done = await finished(sidecar, doomed["id"])
    assert done["report"]["status"] == "blocked"
    assert any("Codex exited" in b for b in done["report"]["blockers"])
    assert (await sidecar.request("codex/session/get", {"id": elsewhere["id"]}))["session"]["status"] == "idle"
    # a prompt resumes each one, with its history
    await sidecar.request("codex/session/send", {"id": fine["id"], "text": "say: still here"})
    assert (await finished(sidecar, fine["id"], turns=2))["report"]["summary"] == "still here"
    history = [m for r in offline_requests(sidecar) for m in r]
    assert any("first turn here" in text for text in history)


def offline_requests(client: SidecarClient) -> list[list[str]]:
    """What the scripted model was sent, per request: the texts of its input (set by a fixture)."""
    model = getattr(client, "model", None)
    assert model is not None, "the sidecar fixture records its model server"
    return [[json.dumps(item) for item in body.get("input") or []] for body in model.requests]


async def test_transcript_pages(sidecar, project):
    s = await start(sidecar, project, "main", "say: first")
    await finished(sidecar, s["id"])
    await sidecar.request("codex/session/send", {"id": s["id"], "text": "say: second"})
    await finished(sidecar, s["id"], turns=2)
    everything = await sidecar.request("codex/session/transcript", {"id": s["id"]})
    kinds = [i["kind"] for i in everything["items"]]
    assert kinds.count("user") == 2 and kinds.count("agent") == 2
    page = await sidecar.request("codex/session/transcript", {"id": s["id"], "after": 2, "limit": 3})
    assert [i["seq"] for i in page["items"]] == [3, 4, 5] and page["next"] == 5
    assert page["truncated"] is False


async def test_every_notification_matches_the_protocol_models(sidecar, project):
    s = await start(sidecar, project, "main", "run-approved: touch x.txt")
    request = await sidecar.wait_for("codex/session/request", lambda p: p["id"] == s["id"])
    await sidecar.request("codex/session/respond", {
        "id": s["id"], "requestId": request["request"]["requestId"], "decision": "accept"})
    await finished(sidecar, s["id"])
    adapters = {m: TypeAdapter(t) for m, t in NOTIFICATIONS.items()}
    seen = set()
    for message in sidecar.notifications:
        if message["method"] in adapters:
            adapters[message["method"]].validate_python(message["params"])
            seen.add(message["method"])
    assert seen == set(NOTIFICATIONS)


async def test_nothing_but_protocol_on_stdout(offline, project):
    """Framed messages only: a stray print would break the client's reader."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "codex_sessions", "serve", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=offline.env())
    body = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}'
    exit_ = b'{"jsonrpc":"2.0","method":"exit"}'
    frames = b"".join(b"Content-Length: %d\r\n\r\n%s" % (len(m), m) for m in (body, exit_))
    out, _ = await asyncio.wait_for(proc.communicate(frames), 30)
    assert out.startswith(b"Content-Length: ")
    header, _, rest = out.partition(b"\r\n\r\n")
    assert len(rest) == int(header.split(b":")[1].split(b"\r\n")[0])


async def test_malformed_messages_never_stop_the_sidecar(offline, project):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "codex_sessions", "serve", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=offline.env())

    def frame(body: bytes) -> bytes:
        return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)

    bad = [b"{not json", b"[1, 2, 3]", b'"a string"',
           b'{"jsonrpc":"2.0","id":2,"method":"codex/session/start","params":"oops"}',
           b'{"jsonrpc":"2.0","id":3,"method":"codex/session/start","params":{"project":42}}',
           b'{"jsonrpc":"2.0","id":4,"method":"codex/no/such/method","params":{}}',
           b'{"jsonrpc":"2.0","id":5,"method":"codex/session/list","params":{"status":["nope"]}}',
           b'{"jsonrpc":"2.0","method":"codex/session/kill","params":{"id":"x"}}']
    good = b'{"jsonrpc":"2.0","id":9,"method":"codex/session/list","params":{"project":"%s"}}' % (
        str(project).encode())
    proc.stdin.write(b"".join(frame(b) for b in bad) + frame(good))
    answers = {}
    try:
        while not {2, 3, 4, 5, 9} <= answers.keys():  # answers may come in any order
            header = await asyncio.wait_for(proc.stdout.readuntil(b"\r\n\r\n"), 30)
            length = int(header.split(b"Content-Length:")[1].split(b"\r\n")[0])
            message = json.loads(await proc.stdout.readexactly(length))
            if "id" in message:
                answers[message["id"]] = message
    finally:
        proc.kill()
        await proc.wait()
    assert answers[9]["result"] == {"sessions": []}
    assert answers[2]["error"]["code"] == -32602
    assert answers[3]["error"]["code"] == -32602 and "project" in answers[3]["error"]["message"]
    assert answers[4]["error"]["code"] == -32601
    assert answers[5]["error"]["code"] == -32602 and "status" in answers[5]["error"]["message"]


async def test_catching_up_mid_message_and_names_right_after_a_kill(sidecar, project):
    s = await start(sidecar, project, "main", "slow: 6")
    await sidecar.wait_for("codex/session/output", lambda p: p["id"] == s["id"] and any(
        i["kind"] == "agentDelta" for i in p["items"]))
    await asyncio.sleep(0.5)
    page = await sidecar.request("codex/session/transcript", {"id": s["id"]})
    assert page["streaming"] and page["streaming"][0]["kind"] == "agentDelta"
    assert page["streaming"][0]["text"].startswith("tick"), "a client catching up sees the text so far"
    first = (await sidecar.request("codex/session/get", {"id": s["id"]}))["session"]["version"]
    await sidecar.request("codex/session/kill", {"id": s["id"]})
    assert (await sidecar.request("codex/session/get", {"id": s["id"]}))["session"]["version"] > first
    with pytest.raises(RpcError) as info:
        await sidecar.request("codex/session/kill", {"id": s["id"]})
    assert info.value.code == -32007 and "nothing to kill" in info.value.message
    fresh = await start(sidecar, project, "main", fresh=True)  # at once: the name is free
    assert fresh["id"] != s["id"]


async def test_a_codex_starting_while_others_close_is_left_alone(sidecar, project, other_project,
                                                               tmp_path):
    from codex_sessions.testing.sandbox import make_git_project
    for round_ in range(6):
        a = await start(sidecar, project, f"a{round_}")
        b = await start(sidecar, other_project, f"b{round_}")
        for s in (a, b):
            await sidecar.wait_status(s["id"], "idle")
        third = make_git_project(tmp_path / f"third{round_}")
        kill = asyncio.create_task(sidecar.request("codex/session/killAll", {}))
        await asyncio.sleep(0.01 * round_)
        c = await start(sidecar, third, "c", "say: still alive")
        await kill
        done = await finished(sidecar, c["id"], timeout=60)
        assert done["report"]["summary"] == "still alive", done["session"]["error"]
        await sidecar.request("codex/session/killAll", {})
