"""Session intelligence: recording, the notetaker, learn mode. Real Codex, scripted model."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import select
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from codex_sessions.testing.client import RpcError, SidecarClient

from test_sidecar import finished, start

MARKER = "codex-sessions notetaker"


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def last_user_text(body: dict[str, Any]) -> str:
    for item in reversed(body.get("input") or []):
        if item.get("type") == "message" and item.get("role") == "user":
            return "\n".join(p.get("text", "") for p in item.get("content") or [])
    return ""


def task_prompts(model) -> list[str]:
    """What the task agents were sent (the notetaker's own requests left out)."""
    return [last_user_text(b) for b in model.requests if not last_user_text(b).startswith(MARKER)]


def notetaker_requests(model, kind: str) -> list[dict[str, Any]]:
    return [b for b in model.requests if last_user_text(b).startswith(f"{MARKER}: {kind}")]


async def until(check, timeout: float = 60, what: str = "the condition"):
    """Poll `check` (sync or async) until it returns something true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def entries(offline, session_id: str) -> list[tuple]:
    with sqlite3.connect(offline.state_dir / "sessions.db") as db:
        return db.execute("SELECT turn, turn_id, kind, text, data FROM learnings WHERE session_id = ? "
                          "ORDER BY id", (session_id,)).fetchall()


async def get(client, sid: str) -> dict[str, Any]:
    return (await client.request("codex/session/get", {"id": sid}))["session"]


async def review_of(client, sid: str, start_at: int = 0) -> dict[str, Any]:
    params = await client.wait_for("codex/session/request", lambda p: p["id"] == sid
                                   and p["request"]["kind"] == "promptReview", start=start_at)
    return params["request"]


async def test_recording_the_notetaker_and_its_summary(sidecar, project, offline):
    s = await start(sidecar, project, "rec", "run: echo one > one.txt\nslow: 3")
    assert s["notes"] is False and s["notesError"] is None and s["learn"] is None
    folder = offline.state_dir / "documents" / s["id"]
    # mid-turn: the command ran, the message still streams, and both logs have it already
    await sidecar.wait_for("codex/session/output", lambda p: p["id"] == s["id"] and any(
        i["kind"] == "command" for i in p["items"]))
    await until(lambda: any(a["kind"] == "command" for a in lines(folder / "agent_actions.jsonl")),
                5, "the command in agent_actions.jsonl")
    assert (await get(sidecar, s["id"]))["status"] == "running"
    users = lines(folder / "user_actions.jsonl")
    assert [(u["kind"], u["text"]) for u in users] == [("user", "run: echo one > one.txt\nslow: 3")]
    command = next(a for a in lines(folder / "agent_actions.jsonl") if a["kind"] == "command")
    assert command["command"] == "echo one > one.txt" and command["exitCode"] == 0
    assert command["turnId"] and command["at"] and command["seq"]
    assert not any(a["kind"] == "agent" for a in lines(folder / "agent_actions.jsonl"))
    await finished(sidecar, s["id"])
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}
    # the logs hold the transcript's items, as they were numbered, user and agent apart
    items = (await sidecar.request("codex/session/transcript", {"id": s["id"]}))["items"]
    logged = lines(folder / "user_actions.jsonl") + lines(folder / "agent_actions.jsonl")
    assert sorted(logged, key=lambda i: i["seq"]) == [i for i in items if i["kind"] != "status"]
    assert not (folder / "learnings.md").exists(), "notes are off unless asked for"

    # notes on: the next turn gets an entry in the template, in learnings.md and the database
    turned = await sidecar.request("codex/session/notes", {"id": s["id"], "on": True})
    assert turned["session"]["notes"] is True
    await sidecar.request("codex/session/send", {"id": s["id"], "text": (
        "run: printf 'a\\n' > two.txt\nnote-gap: the user did not know printf adds no newline\n"
        "note-takeaway: printf needs an explicit \\n")})
    done = await finished(sidecar, s["id"], turns=2)
    turn_id = done["session"]["lastTurn"]["id"]
    learnings = folder / "learnings.md"
    text = await until(lambda: learnings.exists() and learnings.read_text(), 60, "learnings.md")
    assert re.search(
        r"## Turn 2 · \S+\n\n"
        rf"- Turn id: {turn_id}\n"
        r"- Prompt: run: printf 'a\\n' > two.txt\n"
        r"- Done: .+\n"
        r"- Gap: the user did not know printf adds no newline\n"
        r"- Outcome: .+\n"
        r"- Takeaway: printf needs an explicit \\n\n", text), text
    rows = entries(offline, s["id"])
    assert [(r[0], r[1], r[2]) for r in rows] == [(2, turn_id, "turn")]
    assert json.loads(rows[0][4])["gap"] == "the user did not know printf adds no newline"
    with sqlite3.connect(offline.state_dir / "sessions.db") as db:
        assert db.execute("SELECT count(*) FROM learnings_fts WHERE learnings_fts MATCH 'newline'"
                          ).fetchone() == (1,)
    project_view = await sidecar.request("codex/project/learnings", {"project": str(project)})
    assert [e["turnId"] for e in project_view["entries"]] == [turn_id]
    assert "## rec · Turn 2" in Path(project_view["path"]).read_text()
    # the notetaker ran hidden and read-only, was given the turn, and left no trace in the session
    (asked,) = notetaker_requests(sidecar.model, "entry")
    assert "printf 'a\\n' > two.txt" in last_user_text(asked) and "-> exit 0" in last_user_text(asked)
    assert '"sandbox_mode\\":\\"read-only' in json.dumps(asked)
    assert asked["text"]["format"]["type"] == "json_schema"
    after = (await sidecar.request("codex/session/transcript", {"id": s["id"]}))["items"]
    assert not any("Worked on" in json.dumps(i) for i in after)
    assert not any("Worked on" in p for p in task_prompts(sidecar.model))
    got = await get(sidecar, s["id"])
    assert got["turns"] == 2 and got["notesError"] is None
    listed = (await sidecar.request("codex/session/list", {"project": str(project)}))["sessions"]
    assert [x["name"] for x in listed] == ["rec"]

    # a kill ends with a closing summary, also kept in the database
    await sidecar.request("codex/session/kill", {"id": s["id"]})
    await until(lambda: "## Closing summary" in learnings.read_text(), 60, "the closing summary")
    assert re.search(r"- Timeline highlights:\n  - .+\n- Unresolved questions:\n  - .+\n"
                     r"- Suggested next repetitions:\n  - .+\n", learnings.read_text())
    await until(lambda: [r[2] for r in entries(offline, s["id"])] == ["turn", "summary"], 10,
                "the summary row")

    # export copies what was recorded; forget deletes it with the session
    out = offline.root / "exported"
    done = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "codex_sessions", "export", "rec", "-C", str(project), "-o", str(out),
        env=offline.env(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert await done.wait() == 0, await done.stderr.read()
    assert (out / "agent_actions.jsonl").read_bytes() == (folder / "agent_actions.jsonl").read_bytes()
    exported = (out / "learnings.md").read_text()
    assert "## Timeline" in exported and "- Takeaway: printf needs an explicit \\n" in exported
    await sidecar.request("codex/session/forget", {"id": s["id"]})
    assert not folder.exists() and entries(offline, s["id"]) == []


async def test_the_notetaker_takes_a_run_slot(offline, project):
    client = SidecarClient(env=offline.env())
    await client.start(maxRunning=1, notes=True)  # notes for every session this client starts
    try:
        a = await start(client, project, "slow-notes", "say: a\nnote-slow: 3")
        assert a["notes"] is True
        await finished(client, a["id"])
        b = await start(client, project, "next", "say: b")
        await client.wait_status(b["id"], "queued", timeout=10)  # a is idle: the notetaker runs
        await finished(client, b["id"])
        asked = [last_user_text(r) for r in offline.model.requests]
        assert asked.index("say: b") > next(i for i, t in enumerate(asked) if t.startswith(MARKER))
        await until(lambda: entries(offline, a["id"]), 10, "a's entry")
        listed = (await client.request("codex/session/list", {"project": str(project)}))["sessions"]
        assert sorted(x["name"] for x in listed) == ["next", "slow-notes"]
    finally:
        await client.stop()


async def test_learn_mode_sends_exactly_what_the_user_chose(sidecar, project, offline):
    # a first session leaves a learning in the project
    first = await start(sidecar, project, "first", "say: fixtures\nnote-gap: what a pytest "
                        "fixture is\nnote-takeaway: use the tmp_path fixture for files", notes=True)
    await finished(sidecar, first["id"])
    await until(lambda: entries(offline, first["id"]), 60, "the first session's entry")

    # a second session, in learn mode: its first prompt is rewritten with that learning
    s = await start(sidecar, project, "learner", "say: original one\nrewrite: say: rewritten one",
                    learn=True)
    assert s["learn"] == {"on": True, "endedBecause": None, "openGaps": []} and s["notes"]
    review = await review_of(sidecar, s["id"])
    waiting = await get(sidecar, s["id"])
    assert waiting["status"] == "waiting" and waiting["pending"] == [review]
    assert waiting["headline"].startswith("waits: learn mode rewrote the prompt")
    assert review["original"] == "say: original one\nrewrite: say: rewritten one"
    assert review["augmented"] == "say: rewritten one"
    assert review["diff"].startswith("--- original\n+++ rewrite\n@@")
    assert "-say: original one\n" in review["diff"] and "+say: rewritten one\n" in review["diff"]
    assert [(x["sessionName"], x["takeaway"]) for x in review["sources"]] == [
        ("first", "use the tmp_path fixture for files")]
    rewrite_asked = last_user_text(notetaker_requests(sidecar.model, "rewrite")[0])
    assert "use the tmp_path fixture for files" in rewrite_asked
    assert not any("rewritten one" in p or "original one" in p for p in task_prompts(sidecar.model))

    # bad answers are refused and change nothing
    ref = {"id": s["id"], "requestId": review["requestId"]}
    error = await rpc_error(sidecar.request("codex/session/respond", {**ref, "decision": "edit"}))
    assert error.code == -32602 and error.message.startswith("text:")
    error = await rpc_error(sidecar.request("codex/session/respond",
                                            {**ref, "decision": "acceptForSession"}))
    assert error.code == -32602 and "accept, edit, decline or cancel" in error.message
    busy = await rpc_error(sidecar.request("codex/session/send", {"id": s["id"], "text": "say: x"}))
    assert busy.code == -32002

    # accept: the rewrite is sent; edit: the user's text; decline: the original; cancel: nothing
    await sidecar.request("codex/session/respond", {**ref, "decision": "accept"})
    await finished(sidecar, s["id"], turns=1)
    for turn, (decision, extra, sent) in enumerate([
            ("edit", {"text": "say: edited two"}, "say: edited two"),
            ("decline", {}, "say: original three\nrewrite: say: rewritten three")], start=2):
        mark = len(sidecar.notifications)
        word = ["", "", "two", "three"][turn]
        await sidecar.request("codex/session/send", {"id": s["id"], "text":
                                                     f"say: original {word}\nrewrite: say: rewritten {word}"})
        review = await review_of(sidecar, s["id"], mark)
        await sidecar.request("codex/session/respond", {"id": s["id"], "requestId": review["requestId"],
                                                        "decision": decision, **extra})
        await finished(sidecar, s["id"], turns=turn)
    mark = len(sidecar.notifications)
    await sidecar.request("codex/session/send", {"id": s["id"], "text": "say: four\nrewrite: say: 4"})
    review = await review_of(sidecar, s["id"], mark)
    await sidecar.request("codex/session/respond", {"id": s["id"], "requestId": review["requestId"],
                                                    "decision": "cancel"})
    after = await get(sidecar, s["id"])
    assert after["status"] == "idle" and after["turns"] == 3 and not after["pending"]
    sent = [p for p in task_prompts(sidecar.model) if "first" not in p and "fixtures" not in p]
    assert sent == ["say: rewritten one", "say: edited two",
                    "say: original three\nrewrite: say: rewritten three"]
    reports = [m["params"]["report"]["summary"] for m in sidecar.notifications
               if m["method"] == "codex/session/finished" and m["params"]["session"]["id"] == s["id"]]
    assert reports == ["rewritten one", "edited two", "original three"]
    # the transcript shows what was sent; augmented_turns.md every review and its decision
    items = (await sidecar.request("codex/session/transcript", {"id": s["id"]}))["items"]
    assert [i["text"] for i in items if i["kind"] == "user"] == sent
    augmented = (offline.state_dir / "documents" / s["id"] / "augmented_turns.md").read_text()
    assert [d for d in re.findall(r"^Decision: (\w+)$", augmented, re.M)] == [
        "accept", "edit", "decline", "cancel"]
    assert augmented.count("### Diff") == 4 and "+say: rewritten three" in augmented
    assert "### Sent (edited)\n\n```\nsay: edited two\n```" in augmented


async def test_learn_mode_ends_when_gaps_are_resolved_or_turned_off(sidecar, project, offline):
    s = await start(sidecar, project, "gaps", "say: one\nnote-gap: what async means", learn=True)
    await finished(sidecar, s["id"])
    got = await until(lambda: _learn_gaps(sidecar, s["id"]), 60, "the open gap")
    assert got == {"on": True, "endedBecause": None, "openGaps": ["what async means"]}
    mark = len(sidecar.notifications)
    await sidecar.request("codex/session/send", {"id": s["id"], "text": "say: two\nnote-resolved"})
    review = await review_of(sidecar, s["id"], mark)  # offered the gap noted in turn 1
    assert "what async means" in review["augmented"]
    await sidecar.request("codex/session/respond", {"id": s["id"], "requestId": review["requestId"],
                                                    "decision": "decline"})
    await finished(sidecar, s["id"], turns=2)
    ended = await sidecar.wait_for("codex/session/changed", lambda p: p["session"]["id"] == s["id"]
                                   and (p["session"]["learn"] or {}).get("on") is False)
    assert ended["session"]["learn"] == {"on": False, "endedBecause": "resolved", "openGaps": []}
    # no longer in learn mode: the next prompt goes as it is, notes go on
    await sidecar.request("codex/session/send", {"id": s["id"], "text": "say: three\nrewrite: no"})
    await finished(sidecar, s["id"], turns=3)
    assert len(notetaker_requests(sidecar.model, "rewrite")) == 2
    # turned on again, then off by the user
    on = await sidecar.request("codex/session/learn", {"id": s["id"], "on": True})
    assert on["session"]["learn"]["on"] is True
    off = await sidecar.request("codex/session/learn", {"project": str(project), "name": "gaps",
                                                        "on": False})
    assert off["session"]["learn"] == {"on": False, "endedBecause": "off", "openGaps": []}
    assert off["session"]["notes"] is True
    missing = await rpc_error(sidecar.request("codex/session/learn", {"id": s["id"]}))
    assert missing.code == -32602 and missing.message.startswith("on:")


def _learn_gaps(client, sid: str) -> dict[str, Any] | None:
    for m in reversed(client.notifications):
        if m["method"] == "codex/session/changed" and m["params"]["session"]["id"] == sid:
            learn = m["params"]["session"]["learn"]
            return learn if learn and learn["openGaps"] else None
    return None


async def test_the_notetakers_failure_leaves_the_session_working(sidecar, project, offline):
    sidecar.model.notetaker.append("fail")  # its next answer: HTTP 500
    s = await start(sidecar, project, "fragile", "say: one", notes=True)
    done = await finished(sidecar, s["id"])
    assert done["report"]["status"] == "done"
    failed = await sidecar.wait_for("codex/session/changed", lambda p: p["session"]["id"] == s["id"]
                                    and p["session"]["notesError"])
    assert "turn 1" in failed["session"]["notesError"]
    assert failed["session"]["status"] == "idle" and entries(offline, s["id"]) == []
    # an answer out of the template is a failure too; the session goes on
    sidecar.model.notetaker.append("The turn went well, I think.")
    await sidecar.request("codex/session/send", {"id": s["id"], "text": "say: two"})
    assert (await finished(sidecar, s["id"], turns=2))["report"]["status"] == "done"
    await sidecar.wait_for("codex/session/changed", lambda p: p["session"]["id"] == s["id"]
                           and "not the JSON asked for" in (p["session"]["notesError"] or ""))
    # the next turn works, and the missed turns are noted with it
    await sidecar.request("codex/session/send", {"id": s["id"], "text": "say: three"})
    assert (await finished(sidecar, s["id"], turns=3))["report"]["status"] == "done"
    await until(lambda: [r[0] for r in entries(offline, s["id"])] == [1, 2, 3], 60, "the entries")
    await sidecar.wait_for("codex/session/changed", lambda p: p["session"]["id"] == s["id"]
                           and p["session"]["notesError"] is None and p["session"]["turns"] == 3)
    # in learn mode a failed rewrite sends the original prompt at once
    await sidecar.request("codex/session/learn", {"id": s["id"], "on": True})
    await sidecar.request("codex/session/send", {"id": s["id"], "text": "say: four\nrewrite-fail"})
    assert (await finished(sidecar, s["id"], turns=4))["report"]["summary"] == "four"
    assert task_prompts(sidecar.model)[-1] == "say: four\nrewrite-fail"
    await sidecar.wait_for("codex/session/changed", lambda p: p["session"]["id"] == s["id"] and
                           "could not rewrite the prompt" in (p["session"]["notesError"] or ""))


async def rpc_error(coro: Any) -> RpcError:
    with pytest.raises(RpcError) as info:
        await coro
    return info.value


CLI = [sys.executable, "-m", "codex_sessions"]


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


async def test_cli_notes_learnings_and_learn_mode(offline, project, tmp_path):
    env = offline.env()
    empty = cli(["learnings", "-C", str(project)], env)
    assert empty.returncode == 0 and "no learnings yet" in empty.stderr
    ran = cli(["run", "-C", str(project), "--name", "noted", "--notes",
               "say: hi\nnote-takeaway: greet before asking"], env)
    assert ran.returncode == 0, ran.stderr
    shown = await until(lambda: (out := cli(["learnings", "-C", str(project)], env).stdout)
                        and out, 60, "the learnings")
    assert shown.startswith(f"# Learnings in {project.name}\n")
    assert "## noted · Turn 1" in shown and "- Takeaway: greet before asking" in shown
    path = Path(cli(["learnings", "-C", str(project), "--path"], env).stdout.strip())
    assert path.read_text() == shown and str(path).startswith(str(offline.state_dir))
    as_json = json.loads(cli(["learnings", "-C", str(project), "--json"], env).stdout)
    assert [(e["sessionName"], e["fields"]["takeaway"]) for e in as_json] == [
        ("noted", "greet before asking")]

    # learn mode: --yes sends the rewrite; without a terminal the original is sent
    accepted = cli(["run", "-C", str(project), "--name", "learner", "--learn", "--yes",
                    "say: plain\nrewrite: say: rewritten"], env)
    assert accepted.returncode == 0, accepted.stderr
    assert "Summary: rewritten" in accepted.stdout
    assert "greet before asking" in accepted.stderr  # the learning it drew on, and the diff
    assert "+say: rewritten" in accepted.stderr
    declined = cli(["run", "-C", str(project), "--name", "learner",
                    "say: plain again\nrewrite: say: rewritten again"], env)
    assert declined.returncode == 0, declined.stderr
    assert "sending the original prompt" in declined.stderr
    assert "Summary: plain again" in declined.stdout

    # on a terminal: [e]dit opens $EDITOR on the rewrite, and what is saved is sent
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nprintf 'say: from the editor\\n' > \"$1\"\n")
    editor.chmod(0o755)
    output = await _on_terminal(
        [*CLI, "run", "-C", str(project), "--name", "learner", "say: typed\nrewrite: say: better"],
        offline.env(EDITOR=str(editor)), answer_after="[e]dit", answer=b"e\n")
    assert "Summary: from the editor" in output, output
    assert task_prompts(offline.model)[-1] == "say: from the editor"


async def _on_terminal(argv: list[str], env: dict[str, str], answer_after: str, answer: bytes,
                       timeout: float = 90) -> str:
    """Run `argv` on a pseudo-terminal; type `answer` once `answer_after` shows; all it printed."""
    main, child = pty.openpty()
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdin=child, stdout=child,
                                                stderr=child, start_new_session=True)
    os.close(child)
    seen, answered = b"", False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while loop.time() < deadline:
            try:
                chunk = await asyncio.wait_for(loop.run_in_executor(None, _read, main), 1)
            except asyncio.TimeoutError:
                chunk = b""
            if chunk is None:
                break
            seen += chunk
            if not answered and answer_after.encode() in seen:
                os.write(main, answer)
                answered = True
        await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
        os.close(main)
    return seen.decode(errors="replace")


def _read(fd: int) -> bytes | None:
    ready, _, _ = select.select([fd], [], [], 0.5)
    if not ready:
        return b""
    try:
        return os.read(fd, 65536) or None
    except OSError:  # the terminal's other end closed
        return None


async def test_a_prompt_held_for_review_is_kept_when_the_session_stops(sidecar, project):
    s = await start(sidecar, project, "held", "say: keep me\nrewrite: say: rewritten", learn=True)
    await review_of(sidecar, s["id"])
    await sidecar.request("codex/session/kill", {"id": s["id"]})
    items = (await sidecar.request("codex/session/transcript", {"id": s["id"]}))["items"]
    said = [i["text"] for i in items if i["kind"] == "error"]
    assert any("not sent, the session stopped" in t and "say: keep me\nrewrite: say: rewritten" in t
               for t in said), said
