"""Nothing lost: restarts, SIGKILL, resume, two sidecars on one database, no orphans."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import stat
import time

import pytest

from codex_sessions.codex.reaper import process_tree
from codex_sessions.testing.client import RpcError, SidecarClient

from test_sidecar import finished, start


async def new_sidecar(offline, **options) -> SidecarClient:
    client = SidecarClient(env=offline.env())
    await client.start(**options)
    return client


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


async def test_sigkill_mid_turn_then_restart_shows_interrupted_with_its_items(offline, project):
    first = await new_sidecar(offline)
    s = await start(first, project, "review", "slow: 60")
    await first.wait_for("codex/session/output",
                         lambda p: p["id"] == s["id"] and any(i["kind"] == "agentDelta" for i in p["items"]))
    tree = process_tree(first.proc.pid)
    assert len(tree) >= 3  # sidecar, reaper, Codex (and its native binary)
    first.proc.kill()
    await first.proc.wait()
    assert gone_within(tree, 2) == [], "every Codex process is gone within two seconds"

    second = await new_sidecar(offline)
    try:
        listed = (await second.request("codex/session/list", {"project": str(project)}))["sessions"]
        assert [(x["name"], x["status"]) for x in listed] == [("review", "interrupted")]
        items = (await second.request("codex/session/transcript", {"id": s["id"]}))["items"]
        assert items[0]["seq"] == 1
        assert [i["text"] for i in items if i["kind"] == "user"] == ["slow: 60"]
        assert "running" in [i["status"] for i in items if i["kind"] == "status"]
    finally:
        await second.stop()


@pytest.mark.parametrize("how", ["stdin closed", "shutdown and exit", "SIGTERM", "SIGINT", "SIGKILL"])
async def test_no_codex_process_outlives_the_sidecar(offline, project, how):
    client = await new_sidecar(offline)
    busy = await start(client, project, "busy", "run: sleep 300")
    idle = await start(client, project, "idle")
    await client.wait_status(idle["id"], "idle")
    await client.wait_for("codex/session/changed",
                          lambda p: p["session"]["id"] == busy["id"] and p["session"]["status"] == "running")
    await asyncio.sleep(1.0)  # let Codex start `sleep 300`
    tree = process_tree(client.proc.pid)
    commands = [open(f"/proc/{p}/cmdline").read() for p in alive(tree)]
    assert any("sleep\x00300" in c or "sleep 300" in c for c in commands), commands
    if how == "stdin closed":
        client.proc.stdin.close()
    elif how == "shutdown and exit":
        await client.request("shutdown", None)
        client.notify("exit", None)
    else:
        client.proc.send_signal(getattr(signal, how))
    await asyncio.wait_for(client.proc.wait(), 10)
    assert gone_within(tree, 2) == []


async def test_resume_continues_the_same_conversation(offline, project):
    first = await new_sidecar(offline)
    s = await start(first, project, "main", "say: the secret word is pumpkin")
    await finished(first, s["id"])
    thread = (await first.request("codex/session/get", {"id": s["id"]}))["session"]["threadId"]
    await first.stop()

    second = await new_sidecar(offline)
    try:
        got = (await second.request("codex/session/get", {"project": str(project), "name": "main"}))["session"]
        assert got["status"] == "interrupted" and got["threadId"] == thread
        with pytest.raises(RpcError) as info:
            await second.request("codex/session/send", {"id": s["id"], "text": "hello"})
        assert info.value.code == -32007 and "resume" in info.value.message
        resumed = (await second.request("codex/session/resume", {"id": s["id"]}))["session"]
        assert resumed["status"] == "starting"
        await second.wait_status(s["id"], "idle")
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
    client = await new_sidecar(offline)
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


async def test_two_sidecars_share_one_database(offline, project, tmp_path):
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    a = SidecarClient(env=offline.env(), stderr_path=str(logs[0]))
    b = SidecarClient(env=offline.env(), stderr_path=str(logs[1]))
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
    log = tmp_path / "sidecar.log"
    client = SidecarClient(env=offline.env(), stderr_path=str(log))
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
    assert "sessions.db" in log.read_text() and "corrupt" in log.read_text()


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
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        kinds = {k for (k,) in conn.execute("SELECT json_extract(data, '$.kind') FROM items")}
    assert {"user", "agent", "status"} <= kinds
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    client = SidecarClient(env=env)
    await client.start()
    try:
        with pytest.raises(RpcError) as info:
            await client.request("codex/session/list", {})
        assert "schema 99" in info.value.message and str(db) in info.value.message
    finally:
        await client.stop()


async def test_transcript_pages_through_history_beyond_memory(offline, project):
    client = await new_sidecar(offline, outputLimitBytes=4096)
    try:
        s = await start(client, project, "main", "say: " + "a" * 1500)
        await finished(client, s["id"])
        for turn in range(2, 5):
            await client.request("codex/session/send", {"id": s["id"], "text": f"say: {turn} " + "b" * 1500})
            await finished(client, s["id"], turns=turn)
        page = await client.request("codex/session/transcript", {"id": s["id"], "after": 0, "limit": 1000})
        assert page["truncated"] is True
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
    first.proc.kill()
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
