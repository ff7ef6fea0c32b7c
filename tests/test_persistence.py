"""Nothing lost: restarts, SIGKILL, resume, two sidecars on one database, no orphans."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time

import pytest

from codex_sessions.codex.reaper import process_tree
from codex_sessions.testing.client import RpcError, SidecarClient

from test_sidecar import finished, start


STANDALONE = [sys.executable, "-m", "codex_sessions", "serve", "--standalone"]


async def new_sidecar(offline, standalone: bool = False, **options) -> SidecarClient:
    """An editor's connection: through the daemon (the default) or a standalone sidecar."""
    client = SidecarClient(STANDALONE if standalone else None, env=offline.env())
    await client.start(**options)
    return client


def daemon_pid(offline) -> int:
    return int((offline.state_dir / "daemon.pid").read_text())


def alive(pids: list[int]) -> list[int]:
    """The pids still running (zombies count as gone)."""
    still = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    still.append(pid)
        except OSError:
            pass
    return still


def gone_within(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive(pids)


async def test_sigkill_of_the_daemon_mid_turn_keeps_items_and_streamed_text(offline, project):
    first = await new_sidecar(offline)
    s = await start(first, project, "review", "slow: 60")
    await first.wait_for("codex/session/output",
                         lambda p: p["id"] == s["id"] and any(i["kind"] == "agentDelta" for i in p["items"]))
    await asyncio.sleep(0.5)
    shown = "".join(i["text"] for i in first.output_items(s["id"]) if i["kind"] == "agentDelta")
    pid = daemon_pid(offline)
    tree = process_tree(pid)
    assert len(tree) >= 3  # daemon, reaper, Codex
    os.kill(pid, signal.SIGKILL)
    assert gone_within(tree, 2) == [], "every Codex process is gone within two seconds"
    await asyncio.wait_for(first.proc.wait(), 5)  # its editor's relay ends with the daemon

    second = await new_sidecar(offline)
    try:
        listed = (await second.request("codex/session/list", {"project": str(project)}))["sessions"]
        assert [(x["name"], x["status"]) for x in listed] == [("review", "interrupted")]
        items = (await second.request("codex/session/transcript", {"id": s["id"]}))["items"]
        assert items[0]["seq"] == 1
        assert [i["text"] for i in items if i["kind"] == "user"] == ["slow: 60"]
        assert "running" in [i["status"] for i in items if i["kind"] == "status"]
        kept = [i for i in items if i["kind"] == "agent" and i.get("partial")]
        assert kept and kept[0]["text"].startswith(shown), "the text that streamed is kept"
        page = await second.request("codex/session/transcript", {"id": s["id"]})
        assert page["truncated"] is False
    finally:
        await second.stop()


@pytest.mark.parametrize("how", ["standalone: stdin closed", "standalone: shutdown and exit",
                                 "standalone: SIGTERM", "standalone: SIGINT", "standalone: SIGKILL",
                                 "daemon: SIGTERM", "daemon: SIGINT", "daemon: SIGKILL",
                                 "daemon: stop"])
async def test_no_codex_process_outlives_its_owner(offline, project, how):
    mode, _, way = how.partition(": ")
    client = await new_sidecar(offline, standalone=mode == "standalone")
    busy = await start(client, project, "busy", "run: sleep 300")
    idle = await start(client, project, "idle")
    await client.wait_status(idle["id"], "idle")
    await client.wait_for("codex/session/changed",
                          lambda p: p["session"]["id"] == busy["id"] and p["session"]["status"] == "running")
    await asyncio.sleep(1.0)  # let Codex start `sleep 300`
    owner = client.proc.pid if mode == "standalone" else daemon_pid(offline)
    tree = process_tree(owner)
    commands = [open(f"/proc/{p}/cmdline").read() for p in alive(tree)]
    assert any("sleep\x00300" in c or "sleep 300" in c for c in commands), commands
    if way == "stdin closed":
        client.proc.stdin.close()
    elif way == "shutdown and exit":
        await client.request("shutdown", None)
        client.notify("exit", None)
    elif way == "stop":
        offline.stop_daemon()
    elif mode == "standalone":
        client.proc.send_signal(getattr(signal, way))
    else:
        os.kill(owner, getattr(signal, way))
    if mode == "standalone":
        await asyncio.wait_for(client.proc.wait(), 10)
    assert gone_within(tree, 2 if way == "SIGKILL" else 10) == []
    await client.stop()


async def test_an_editor_leaving_does_not_stop_its_turns(offline, project):
    first = await new_sidecar(offline)
    s = await start(first, project, "long", "slow: 8")
    await first.wait_status(s["id"], "running")
    await first.stop()  # shutdown and exit: the editor quits mid-turn
    second = await new_sidecar(offline)
    try:
        got = (await second.request("codex/session/get", {"id": s["id"]}))["session"]
        assert got["status"] == "running" and got["live"]
        done = await finished(second, s["id"])
        assert done["report"]["status"] == "done"
        text = "".join(i["text"] for i in second.output_items(s["id"]) if i["kind"] == "agentDelta")
        assert "tick" in text, "the second editor receives the turn's streamed text"
    finally:
        await second.stop()


async def test_resume_continues_the_same_conversation(offline, project):
    first = await new_sidecar(offline)
    s = await start(first, project, "main", "say: the secret word is pumpkin")
    await finished(first, s["id"])
    thread = (await first.request("codex/session/get", {"id": s["id"]}))["session"]["threadId"]
    await first.stop()
    offline.stop_daemon()  # e.g. the machine restarted

    second = await new_sidecar(offline)
    try:
        got = (await second.request("codex/session/get", {"project": str(project), "name": "main"}))["session"]
        assert got["status"] == "interrupted" and got["threadId"] == thread
        with pytest.raises(RpcError) as info:  # a client that says not to resume
            await second.request("codex/session/send", {"id": s["id"], "text": "hi", "resume": False})
        assert info.value.code == -32007 and "resume" in info.value.message
        # sending resumes it: same thread, same history
        await second.request("codex/session/send", {"id": s["id"], "text": "say: remembered"})
        await finished(second, s["id"], turns=2)
        last = offline.model.requests[-1]
        history = str(last["input"])
        assert "the secret word is pumpkin" in history, "the model received the earlier turn"
        got = (await second.request("codex/session/get", {"id": s["id"]}))["session"]
        assert got["threadId"] == thread and got["turns"] == 2
        items = (await second.request("codex/session/transcript", {"id": s["id"]}))["items"]
        assert [i["seq"] for i in items] == list(range(1, len(items) + 1))
        assert [i["text"] for i in items if i["kind"] == "user"] == [
            "say: the secret word is pumpkin", "say: remembered"]
    finally:
        await second.stop()


async def test_stopped_and_failed_sessions_resume_too(offline, project):
    client = await new_sidecar(offline, codexProcess="perSession")
    try:
        s = await start(client, project, "main", "say: one")
        await finished(client, s["id"])
        await client.request("codex/session/kill", {"id": s["id"]})
        await client.request("codex/session/resume", {"id": s["id"]})
        await client.wait_status(s["id"], "idle")
        pid = (await client.request("codex/session/get", {"id": s["id"]}))["session"]["pid"]
        os.kill(pid, signal.SIGKILL)
        await client.wait_status(s["id"], "failed")
        await client.request("codex/session/resume", {"id": s["id"]})
        await client.wait_for("codex/session/changed", lambda p: p["session"]["id"] == s["id"]
                              and p["session"]["status"] == "idle" and p["session"]["error"] is None)
    finally:
        await client.stop()


async def test_two_standalone_sidecars_share_one_database(offline, project, tmp_path):
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    a = SidecarClient(STANDALONE, env=offline.env(), stderr_path=str(logs[0]))
    b = SidecarClient(STANDALONE, env=offline.env(), stderr_path=str(logs[1]))
    await a.start()
    await b.start()
    try:
        alpha = await start(a, project, "alpha", "say: from a")
        beta = await start(b, project, "beta", "say: from b")
        await finished(a, alpha["id"])
        await finished(b, beta["id"])
        for _ in range(3):  # both write while both read
            await asyncio.gather(
                a.request("codex/session/send", {"id": alpha["id"], "text": "stream: more from a " * 20}),
                b.request("codex/session/send", {"id": beta["id"], "text": "stream: more from b " * 20}),
                a.request("codex/session/list", {}), b.request("codex/session/list", {}))
            await finished(a, alpha["id"], turns=_ + 2)
            await finished(b, beta["id"], turns=_ + 2)

        async def listed_by(client):
            return {x["name"]: x for x in (await client.request("codex/session/list", {}))["sessions"]}

        for _ in range(50):  # the other sidecar commits its rows within milliseconds
            seen_by_b = await listed_by(b)
            if seen_by_b.get("alpha", {}).get("status") == "idle":
                break
            await asyncio.sleep(0.02)
        assert set(seen_by_b) == {"alpha", "beta"}
        assert seen_by_b["alpha"]["owner"] == {"pid": a.proc.pid} and not seen_by_b["alpha"]["live"]
        assert seen_by_b["alpha"]["status"] == "idle" and seen_by_b["beta"]["live"]
        seen_by_a = await listed_by(a)
        assert seen_by_a["beta"]["owner"] == {"pid": b.proc.pid}
        with pytest.raises(RpcError) as info:
            await b.request("codex/session/send", {"id": alpha["id"], "text": "hi"})
        assert info.value.code == -32007 and "another codex-sessions" in info.value.message
        items = (await b.request("codex/session/transcript", {"id": alpha["id"]}))["items"]
        assert [i["text"] for i in items if i["kind"] == "user"][0] == "say: from a"

        a.proc.kill()  # A dies: its sessions become B's to resume
        await a.proc.wait()
        seen_by_b = await listed_by(b)
        assert seen_by_b["alpha"]["status"] == "interrupted" and seen_by_b["alpha"]["owner"] is None
        await b.request("codex/session/resume", {"id": alpha["id"]})
        await b.wait_status(alpha["id"], "idle")
    finally:
        await a.stop()
        await b.stop()
    for log in logs:
        assert "locked" not in log.read_text(), log.read_text()


async def test_corrupt_database_is_moved_aside_not_overwritten(offline, project, tmp_path):
    offline.state_dir.mkdir(parents=True)
    garbage = b"this is not a database\n" * 100
    (offline.state_dir / "sessions.db").write_bytes(garbage)
    client = SidecarClient(env=offline.env())
    await client.start()
    try:
        s = await start(client, project, "main", "say: fresh start")
        await finished(client, s["id"])
        aside = list(offline.state_dir.glob("sessions.db.corrupt-*"))
        assert len(aside) == 1 and aside[0].read_bytes() == garbage
        notice = await client.wait_for("window/showMessage", timeout=5)
        assert str(aside[0]) in notice["message"] and "sessions.db" in notice["message"]
    finally:
        await client.stop()
    log = (offline.state_dir / "daemon.log").read_text()
    assert "sessions.db" in log and "corrupt" in log


async def test_unusable_state_folder_is_a_clear_error(offline, project, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    client = SidecarClient(env=offline.env(CODEX_SESSIONS_STATE_DIR=str(blocker)))
    await client.start()
    try:
        with pytest.raises(RpcError) as info:
            await start(client, project, "main")
        assert str(blocker) in info.value.message and "CODEX_SESSIONS_STATE_DIR" in info.value.message
        with pytest.raises(RpcError):  # asking again gives the same answer, no crash
            await client.request("codex/session/list", {})
    finally:
        await client.stop()


async def test_default_location_modes_and_schema_version(offline, project, tmp_path):
    env = offline.env(XDG_STATE_HOME=str(tmp_path / "xdg"))
    del env["CODEX_SESSIONS_STATE_DIR"]
    client = SidecarClient(env=env)
    await client.start()
    try:
        s = await start(client, project, "main", "say: hi")
        await finished(client, s["id"])
    finally:
        await client.stop()
    folder = tmp_path / "xdg" / "codex-sessions"
    db = folder / "sessions.db"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        kinds = {k for (k,) in conn.execute("SELECT json_extract(data, '$.kind') FROM items")}
    assert {"user", "agent", "status"} <= kinds
    stop = subprocess.run([sys.executable, "-m", "codex_sessions", "daemon", "stop"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0, stop.stderr
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    client = SidecarClient(env=env)
    await client.start()
    try:
        with pytest.raises(RpcError) as info:
            await client.request("codex/session/list", {})
        assert "schema 99" in info.value.message and str(db) in info.value.message
        listed = subprocess.run([sys.executable, "-m", "codex_sessions", "ls"], env=env,
                                capture_output=True, text=True, timeout=60)
        assert listed.returncode == 2 and "schema 99" in listed.stderr
    finally:
        await client.stop()
        subprocess.run([sys.executable, "-m", "codex_sessions", "daemon", "stop"], env=env,
                       capture_output=True, timeout=60)


async def test_transcript_pages_through_history_beyond_memory(offline, project):
    client = await new_sidecar(offline, outputLimitBytes=4096)
    try:
        s = await start(client, project, "main", "say: " + "a" * 1500)
        await finished(client, s["id"])
        for turn in range(2, 5):
            await client.request("codex/session/send", {"id": s["id"], "text": f"say: {turn} " + "b" * 1500})
            await finished(client, s["id"], turns=turn)
        page = await client.request("codex/session/transcript", {"id": s["id"], "after": 0, "limit": 1000})
        assert page["truncated"] is False  # memory dropped the oldest; the database has them
        seqs = [i["seq"] for i in page["items"]]
        assert seqs == list(range(1, len(seqs) + 1))
        assert len([i for i in page["items"] if i["kind"] == "user"]) == 4
        small = await client.request("codex/session/transcript", {"id": s["id"], "after": 2, "limit": 2})
        assert [i["seq"] for i in small["items"]] == [3, 4] and small["next"] == 4
    finally:
        await client.stop()


async def test_resume_after_a_crash_stays_live_under_concurrent_lists(offline, project):
    first = await new_sidecar(offline)
    s = await start(first, project, "main")  # never had a turn: Codex has no rollout for it
    await first.wait_status(s["id"], "idle")
    os.kill(daemon_pid(offline), signal.SIGKILL)
    await first.proc.wait()
    second = await new_sidecar(offline)
    try:
        # pipelined: the sidecar handles these while the resume is under way
        await asyncio.gather(*[second.request("codex/session/list", {}) for _ in range(10)],
                             second.request("codex/session/resume", {"id": s["id"]}),
                             *[second.request("codex/session/list", {}) for _ in range(30)])
        await second.wait_status(s["id"], "idle")
        for _ in range(5):
            got = (await second.request("codex/session/get", {"id": s["id"]}))["session"]
            assert got["status"] == "idle" and got["live"] and got["pid"]
            await second.request("codex/session/list", {})
        await second.request("codex/session/send", {"id": s["id"], "text": "say: back"})
        done = await finished(second, s["id"])
        assert done["report"]["summary"] == "back"
        assert done["session"]["turnStartedAt"] and done["session"]["turnStartedAt"] <= done["session"]["finishedAt"]
    finally:
        await second.stop()
