"""Nothing lost, nothing leaked: what an adversarial run broke, each as a regression test."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codex_sessions.codex.reaper import process_tree
from codex_sessions.paths import socket_path
from codex_sessions.relay import SyncFrames
from codex_sessions.testing.client import RpcError, SidecarClient
from codex_sessions.testing.sandbox import OfflineCodex, make_git_project

from test_persistence import STANDALONE, alive, daemon_pid, gone_within
from test_sidecar import finished, start


def db_items(state_dir: Path, session_id: str) -> dict[int, str]:
    with sqlite3.connect(state_dir / "sessions.db") as conn:
        return {seq: data for seq, data in conn.execute(
            "SELECT seq, data FROM items WHERE session_id = ?", (session_id,))}


def seen_seqs(client: SidecarClient, session_id: str) -> set[int]:
    return {i["seq"] for i in client.output_items(session_id) if "seq" in i}


# ---- framing: one bad frame costs one error answer, never the connection -------------------

BAD_FRAMES = {
    "length too small": b"Content-Length: 10\r\n\r\n" + b'{"jsonrpc":"2.0","id":"x","method":"nope"}',
    "length too big": b"Content-Length: 4000\r\n\r\n" + b'{"jsonrpc":"2.0","id":"x","method":"nope"}',
    "zero": b"Content-Length: 0\r\n\r\n",
    "negative": b"Content-Length: -5\r\n\r\n{}",
    "ten to the twelfth": b"Content-Length: 1000000000000\r\n\r\n{}",
    "forty digits": b"Content-Length: " + b"9" * 40 + b"\r\n\r\n{}",
    "not a number": b"Content-Length: lots\r\n\r\n{}",
    "no header at all": b"hello there\r\n\r\n",
    "not JSON": b"Content-Length: 5\r\n\r\nhello",
    "not an object": b"Content-Length: 7\r\n\r\n[1,2,3]",
}


def _request(msg_id: int, method: str = "codex/session/list", header: bytes = b"Content-Length") -> bytes:
    body = b'{"jsonrpc":"2.0","id":%d,"method":"%s","params":{}}' % (msg_id, method.encode())
    return header + b": %d\r\n\r\n" % len(body) + body


def _answers_until(frames: SyncFrames, msg_id: int) -> list[dict]:
    got = []
    while True:
        _, message = frames.next()
        assert message is not None, "the connection closed"
        got.append(message)
        if message.get("id") == msg_id:
            return got


def test_bad_frames_cost_one_error_each_and_the_daemon_keeps_answering(offline):
    asyncio.run(_open_daemon(offline))
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(socket_path(offline.state_dir)))
    sock.settimeout(20)
    frames = SyncFrames(sock.recv)
    for n, (name, bad) in enumerate(BAD_FRAMES.items(), start=1):
        sock.sendall(bad + _request(n))
        answers = _answers_until(frames, n)
        assert "result" in answers[-1], (name, answers)
        assert any("error" in a and a["error"]["code"] in (-32700, -32600) for a in answers[:-1]) \
            or name == "length too big", (name, answers)
    sock.sendall(_request(99, header=b"content-length"))  # header names ignore case
    assert "result" in _answers_until(frames, 99)[-1]
    sock.close()
    pid = daemon_pid(offline)
    assert alive([pid]) == [pid]


async def _open_daemon(offline) -> None:
    client = SidecarClient(env=offline.env())
    await client.start()
    await client.stop()


def test_fuzzed_frames_and_params_never_stop_a_connection(tmp_path):
    """Random frames and random params, in-process, with a fixed seed and budget."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    from codex_sessions.rpc.framing import FrameError, FrameReader
    from codex_sessions.rpc.handlers import App, register
    from codex_sessions.rpc.transport import Connection

    methods = ["codex/session/start", "codex/session/list", "codex/session/get",
               "codex/session/send", "codex/session/respond", "codex/session/rename",
               "codex/session/transcript", "codex/session/killAll", "codex/project/resolve",
               "initialize", "shutdown", "$/cancelRequest", "no/such/method"]
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12)
    params = st.dictionaries(st.sampled_from(["id", "project", "name", "text", "prompt", "newName",
                                              "requestId", "decision", "after", "limit", "status"]),
                             json_values, max_size=5) | json_values
    messages = st.builds(lambda m, p, i: {"jsonrpc": "2.0", "id": i, "method": m, "params": p},
                         st.sampled_from(methods), params,
                         st.integers(1, 10**6) | st.text(max_size=5) | st.lists(st.integers(), max_size=2))
    junk = st.binary(min_size=1, max_size=200)

    async def exchange(chunks: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        app = App(state_dir=tmp_path / "state")
        conn = Connection(out.append, lambda: None, lambda c: register(c, app))
        feed = list(chunks) + [_request(424242, "codex/project/resolve")]

        async def read(n: int) -> bytes:
            return feed.pop(0) if feed else b""
        reader = FrameReader(read)
        while True:
            try:
                message = await reader.next()
            except EOFError:
                break
            except FrameError:
                continue
            conn.handle(message)
            await asyncio.sleep(0)
        for _ in range(50):  # let async handlers answer
            await asyncio.sleep(0.01)
        if app.sessions:
            await app.sessions.shutdown()
        return out

    @settings(max_examples=100, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(messages.map(lambda m: _frame_json(m)) | junk, max_size=6))
    def check(chunks: list[bytes]) -> None:
        out = asyncio.run(exchange(chunks))
        assert any(b'"id":424242' in o for o in out), "the last request was answered"

    check()


def _frame_json(message: dict) -> bytes:
    import json
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


# ---- items reach clients only once saved: SIGKILL at random moments ---------------------------

async def test_sigkill_loop_loses_no_item_a_client_saw_and_leaves_no_process(offline, project):
    rng = random.Random(20261122)
    lost, leftovers, checked = [], [], 0
    for trial in range(20):
        client = SidecarClient(env=offline.env())
        await client.start()
        name = f"k{trial}"
        s = await start(client, project, name, "stream: " + " ".join(f"w{n}" for n in range(300)))
        # the prompt was committed before start answered
        if trial % 2:  # at the moment an item reaches the client
            await client.wait_for("codex/session/output",
                                  lambda p: p["id"] == s["id"] and any("seq" in i and i["kind"] != "user"
                                                                       for i in p["items"]))
        else:  # at a random moment while it streams
            await asyncio.sleep(rng.uniform(0.0, 1.2))
        pid = daemon_pid(offline)
        tree = process_tree(pid)
        os.kill(pid, signal.SIGKILL)
        saw = seen_seqs(client, s["id"])
        leftovers += gone_within(tree, 2)
        kept = db_items(offline.state_dir, s["id"])
        lost += [(trial, seq) for seq in saw if seq not in kept]
        assert 1 in kept, "the user's prompt is saved before start answers"
        checked += len(saw)
        await client.stop()
    assert lost == [] and leftovers == []
    assert checked > 40


# ---- storage faults: told at once, nothing dropped, told again when it works ------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs for the state folder (the test needs to be able to mount one)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs here ({done.stderr.strip()}); run as root with "
                    "CAP_SYS_ADMIN")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


async def test_a_full_disk_is_told_kept_in_memory_and_saved_when_space_returns(tmp_path, small_disk):
    world = OfflineCodex(tmp_path / "w")
    world.state_dir = small_disk / "state"
    project = make_git_project(tmp_path / "proj")
    client = SidecarClient(env=world.env())
    await client.start()
    try:
        s = await start(client, project, "main", "say: before")
        await finished(client, s["id"])
        filler = small_disk / "filler"
        with open(filler, "wb") as f:  # fill the disk to the last block
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        await client.request("codex/session/send", {"id": s["id"], "text": "stream-bytes: 300000"})
        told = await client.wait_for("window/showMessage", lambda p: p["type"] == 1, timeout=30)
        assert "cannot write" in told["message"] and "sessions.db" in told["message"]
        flagged = await client.wait_for("codex/session/changed", lambda p: p["session"]["storageError"])
        assert flagged["session"]["id"] == s["id"]
        await finished(client, s["id"], turns=2)
        # A small write can fit on the full disk now and then (the user is told it works, then
        # that it does not): what counts is what comes after the space returns.
        mark = len(client.notifications)
        filler.unlink()
        await client.wait_for("window/showMessage", lambda p: p["type"] == 3 and
                              "works again" in p["message"], timeout=30, start=mark)
        await client.wait_for("codex/session/changed", lambda p: p["session"]["id"] == s["id"]
                              and p["session"]["storageError"] is None, start=mark)
        kept = db_items(world.state_dir, s["id"])
        saw = seen_seqs(client, s["id"])
        assert saw and saw <= set(kept), sorted(saw - set(kept))[:10]
        assert sorted(kept) == list(range(1, max(kept) + 1))
    finally:
        await client.stop()
        world.close()


async def test_a_deleted_database_is_noticed_and_written_again(offline, project):
    client = SidecarClient(env=offline.env())
    await client.start()
    try:
        s = await start(client, project, "main", "say: first")
        await finished(client, s["id"])
        for suffix in ("", "-wal", "-shm"):
            Path(str(offline.state_dir / "sessions.db") + suffix).unlink(missing_ok=True)
        await client.request("codex/session/send", {"id": s["id"], "text": "say: second"})
        told = await client.wait_for("window/showMessage", lambda p: "deleted or replaced" in p["message"])
        assert told["type"] == 1
        await finished(client, s["id"], turns=2)
        await asyncio.sleep(0.3)
        kept = db_items(offline.state_dir, s["id"])
        assert seen_seqs(client, s["id"]) <= set(kept)
        assert min(kept) == 1, "what was written before the deletion is written again"
    finally:
        await client.stop()


# ---- a hung Codex: deadlines, and cancel escalates ----------------------------------------------

async def test_a_hung_codex_answers_with_an_error_and_cancel_stops_it(offline, project):
    client = SidecarClient(env=offline.env())
    await client.start(codexTimeout=2)
    try:
        s = await start(client, project, "stuck", "slow: 30")
        await client.wait_for("codex/session/changed", lambda p: p["session"]["id"] == s["id"] and (
            p["session"]["lastTurn"] or {}).get("status") == "inProgress")  # Codex took the turn
        pid = (await client.request("codex/session/get", {"id": s["id"]}))["session"]["pid"]
        os.kill(pid, signal.SIGSTOP)  # Codex hangs
        began = time.monotonic()
        await client.request("codex/session/cancel", {"id": s["id"]}, timeout=15)
        assert time.monotonic() - began < 12  # the deadline is 2 s; it no longer waits on Codex
        ended = await client.wait_status(s["id"], "interrupted", timeout=10)
        assert "Codex exited" in (ended["error"] or "")
        items = await client.request("codex/session/transcript", {"id": s["id"]})
        assert any("not responding" in i.get("text", "") for i in items["items"])
        assert alive([pid]) == []
        # it stays resumable: the next prompt brings it back
        await client.request("codex/session/send", {"id": s["id"], "text": "say: back"})
        assert (await finished(client, s["id"], turns=2))["report"]["summary"] == "back"
        # a send that Codex never answers fails in time, naming the problem
        pid = (await client.request("codex/session/get", {"id": s["id"]}))["session"]["pid"]
        os.kill(pid, signal.SIGSTOP)
        with pytest.raises(RpcError) as info:
            await client.request("codex/session/send", {"id": s["id"], "text": "say: hello?"}, timeout=15)
        assert "not responding" in info.value.message
        await client.wait_status(s["id"], "interrupted", timeout=10)  # and that Codex is stopped
        assert gone_within([pid], 2) == []
    finally:
        await client.stop()


# ---- bad rows, names, kills, inputs --------------------------------------------------------------

async def test_unreadable_rows_are_set_aside_and_the_rest_served(offline, project):
    client = SidecarClient(env=offline.env())
    await client.start()
    s = await start(client, project, "good", "say: fine")
    await finished(client, s["id"])
    await client.stop()
    offline.stop_daemon()
    with sqlite3.connect(offline.state_dir / "sessions.db") as conn:
        conn.execute("INSERT INTO sessions VALUES ('bad1', ?, 'bad', 'idle', '2026', NULL, NULL, "
                     "'{not json')", (str(project),))
        conn.execute("INSERT INTO sessions VALUES ('bad2', ?, 'worse', 'stopped', '2026', NULL, NULL, "
                     "'{\"id\": \"bad2\"}')", (str(project),))
    client = SidecarClient(env=offline.env())
    await client.start()
    try:
        notice = await client.wait_for("window/showMessage", lambda p: "set aside" in p["message"])
        assert notice["type"] == 1 and "2 unreadable" in notice["message"]
        listed = (await client.request("codex/session/list", {"all": True}))["sessions"]
        assert [x["name"] for x in listed] == ["good"]
    finally:
        await client.stop()
    with sqlite3.connect(offline.state_dir / "sessions.db") as conn:
        assert conn.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 2
    ls = subprocess.run([sys.executable, "-m", "codex_sessions", "ls", "-C", str(project)],
                        env=offline.env(), capture_output=True, text=True, timeout=30)
    assert ls.returncode == 0 and "good" in ls.stdout


async def test_two_standalone_sidecars_cannot_run_one_name_twice(offline, project):
    a = SidecarClient(STANDALONE, env=offline.env())
    b = SidecarClient(STANDALONE, env=offline.env())
    await asyncio.gather(a.start(), b.start())
    try:
        results = await asyncio.gather(
            start(a, project, "twin"), start(b, project, "twin"), return_exceptions=True)
        created = [r for r in results if isinstance(r, dict)]
        refused = [r for r in results if isinstance(r, RpcError)]
        assert len(created) == 1 and len(refused) == 1 and refused[0].code == -32004
        owner, other = (a, b) if isinstance(results[0], dict) else (b, a)
        twin = created[0]
        await owner.wait_status(twin["id"], "idle")
        await owner.request("codex/session/kill", {"id": twin["id"]})
        began = time.monotonic()
        await other.wait_for("codex/session/changed", lambda p: p["session"]["id"] == twin["id"]
                             and p["session"]["status"] == "stopped", timeout=5)
        assert time.monotonic() - began < 1.5, "the other sidecar's view follows within a second"
    finally:
        await a.stop()
        await b.stop()


async def test_kill_mid_turn_sends_finished(sidecar, project):
    s = await start(sidecar, project, "doomed", "slow: 30")
    await sidecar.wait_status(s["id"], "running")
    await sidecar.request("codex/session/kill", {"id": s["id"]})
    done = await finished(sidecar, s["id"], timeout=10)
    assert done["session"]["status"] == "stopped"
    assert done["report"]["status"] == "blocked" and "the turn was interrupted" in done["report"]["blockers"]


async def test_bad_input_is_refused_before_anything_is_created(sidecar, project, tmp_path):
    async def error_of(params):
        with pytest.raises(RpcError) as info:
            await sidecar.request("codex/session/start", params)
        return info.value

    err = await error_of({"project": str(project), "name": "ghost", "prompt": "hi \ud800 there"})
    assert err.code == -32602 and err.data == {"field": "prompt"}
    for bad in ("/", "/proc/self", str(project) + "\nx", str(project) + "\0"):
        err = await error_of({"project": bad, "name": "x"})
        assert err.code in (-32602, -32006) and "project" in err.message
    listed = (await sidecar.request("codex/session/list", {"all": True}))["sessions"]
    assert listed == [], "a failing start leaves nothing behind"
    for bad_id in ({"a": 1}, [1, 2]):
        with pytest.raises(RpcError) as info:
            await sidecar.request("codex/session/get", {"id": bad_id})
        assert info.value.code == -32602
    # an empty `.git` folder is not a repository: it captures nothing below it
    fake = tmp_path / "fake"
    (fake / ".git").mkdir(parents=True)
    (fake / "inner").mkdir()
    resolved = await sidecar.request("codex/project/resolve", {"project": str(fake / "inner")})
    assert resolved["project"]["root"] == str(fake / "inner")


async def test_logs_are_private_and_hold_no_transcript_text(offline, project):
    client = SidecarClient(env=offline.env())
    await client.start()
    try:
        secret = "OPENAI_API_KEY=sk-do-not-log-me"
        s = await start(client, project, "leaky", f"run: echo {secret}")
        await finished(client, s["id"])
    finally:
        await client.stop()
    log = offline.state_dir / "daemon.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert "sk-do-not-log-me" not in log.read_text()
