"""Unit tests of the pure parts: names, projects, transcripts, reports, params."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import subprocess

import pytest

from codex_sessions.errors import InvalidParams, InvalidProject
from codex_sessions.core.events import command_text
from codex_sessions.core.projects import buffer_name, check_name, resolve_project
from codex_sessions.core.report import TurnLog, build_report, render, summarise
from codex_sessions.core.transcript import Transcript
from codex_sessions.rpc.params import StartParams, TranscriptParams, parse
from codex_sessions.store import Store


def test_project_root_is_the_nearest_git_ancestor(tmp_path):
    root = tmp_path / "ultra"
    (root / "src" / "deep").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    project = resolve_project(str(root / "src" / "deep"))
    assert project.root == str(root) and project.name == "ultra"
    assert project.hash == hashlib.sha1((str(root) + "/").encode()).hexdigest()[:8]
    assert resolve_project(str(root / "src")) == project


def test_project_symlinks_are_resolved_and_plain_folders_are_their_own_root(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    # Codex's sandbox may leave an empty /tmp/.git behind: that is no repository
    assert resolve_project(str(link)).root == str(real.resolve())
    (real / ".git").mkdir()
    (real / "sub").mkdir()
    assert resolve_project(str(real / "sub")).root == str(real / "sub"), "an empty .git is not a repository"
    (real / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert resolve_project(str(link / "sub")).root == str(real.resolve())
    (real / ".git" / "HEAD").unlink()
    (real / ".git").rmdir()
    (real / "file.txt").write_text("x")
    with pytest.raises(InvalidProject):
        resolve_project(str(real / "file.txt"))
    with pytest.raises(InvalidProject):
        resolve_project("not/absolute")


@pytest.mark.parametrize("name", ["main", "review", "a", "T-1_x", "a" * 20])
def test_good_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", "_x", "a b", "a" * 21, "é", "x/y", None, 3])
def test_bad_names_name_the_field(name):
    with pytest.raises(InvalidParams) as info:
        check_name(name)
    assert info.value.message.startswith("name:")


def test_buffer_name():
    project = resolve_project(os.getcwd())
    assert buffer_name(project, "review") == f"*codex:{project.name}:review:{project.hash}*"


def test_transcript_drops_oldest_items_beyond_its_byte_limit():
    transcript = Transcript(limit_bytes=4096)
    for n in range(200):
        transcript.append({"kind": "agent", "text": f"message {n} " + "x" * 50})
    assert transcript.size <= 4096
    assert transcript.page(0, 10) is None  # the start is only in the database now
    tail = transcript.page(195, 10)
    assert [i["seq"] for i in tail] == [196, 197, 198, 199, 200]


def test_report_status_follows_what_was_observed():
    log = TurnLog()
    log.add_command("pytest -q", 1)
    log.add_command("pytest -q", 0)
    log.add_changed(["a.py"])
    log.last_agent_text = "Fixed it. Tests pass now. Ready. Extra sentence."
    report = build_report("main", "completed", log, [], None)
    assert report["status"] == "done"
    assert report["verified"] == ["pytest -q (exit 0)"]
    assert report["summary"] == "Fixed it. Tests pass now. Ready."
    log.add_command("ruff check", 2)
    assert build_report("main", "completed", log, [], None)["status"] == "blocked"
    assert build_report("main", "failed", TurnLog(), [], None)["status"] == "failed"
    assert build_report("main", None, TurnLog(), ["`rm x`"], None)["status"] == "blocked"
    assert build_report("main", None, TurnLog(), [], None)["status"] == "still running"
    text = render(report)
    assert text.splitlines()[3] == "Changed: a.py"


def test_summarise_is_short_and_one_line():
    assert summarise("a\nb.  c!") == "a b. c!"
    assert len(summarise("word " * 200)) <= 300


def test_command_text_prefers_what_the_user_would_type():
    assert command_text({"command": "/bin/bash -lc 'ls'", "commandActions": [{"command": "ls"}]}) == "ls"
    assert command_text({"command": ["git", "status"]}) == "git status"


def test_params_errors_name_the_field():
    with pytest.raises(InvalidParams) as info:
        parse(StartParams, {"project": "/x", "sandbox": "open"})
    assert info.value.message.startswith("sandbox:")
    with pytest.raises(InvalidParams) as info:
        parse(TranscriptParams, {"id": "x", "limit": 0})
    assert info.value.data == {"field": "limit"}
    assert parse(StartParams, {"project": "/x", "approvalPolicy": "never"}).approval_policy == "never"


async def test_changes_are_credited_to_the_command_whose_run_they_fall_in(tmp_path):
    import time as _time

    from codex_sessions.core.changes import ProjectWatch
    from codex_sessions.testing.sandbox import make_git_project

    root = make_git_project(tmp_path / "p")
    watch = ProjectWatch(str(root))
    await watch.reset()
    now = lambda: _time.time() * 1000  # noqa: E731
    a_start = now()
    (root / "a.txt").write_text("from a")
    a_end = now()
    _time.sleep(0.2)
    (root / "user-edit.txt").write_text("typed by hand")  # in nobody's run
    _time.sleep(0.2)
    b_start = now()
    (root / "b.txt").write_text("from b")
    (root / "README.md").write_text("changed by b")
    b_end = now()
    # b's command is observed first; it must not take a's file or the user's
    assert await watch.changes_during(b_start, b_end) == [
        {"path": "README.md", "kind": "update"}, {"path": "b.txt", "kind": "add"}]
    assert await watch.changes_during(a_start, a_end) == [{"path": "a.txt", "kind": "add"}]
    assert await watch.changes_during(b_start, b_end) == []  # each change credited once


async def test_sync_never_swaps_out_a_session_this_sidecar_holds(tmp_path, monkeypatch):
    """A resume awaits the spawn while the session is not yet live; a list's sync then
    must not replace it with a copy from its row (the resume would run an orphan)."""
    from codex_sessions.core.service import Sessions
    from codex_sessions.store import Store

    seed = Store(tmp_path, "a-dead-sidecar")
    await seed.open()
    seed.save_session({"id": "s1", "name": "main", "root": str(tmp_path), "createdAt": "2026",
                       "updatedAt": "2026-11-21T05:00:00.000Z", "status": "idle"})
    await seed.close()
    gone = subprocess.Popen(["true"])
    gone.wait()
    with sqlite3.connect(tmp_path / "sessions.db") as conn:  # the sidecar that wrote it is dead
        conn.execute("UPDATE sessions SET owner_pid = ?", (gone.pid,))
    sessions = Sessions(tmp_path, lambda method, params: None)
    try:
        await sessions.ready()
        held = sessions.registry.get("s1")
        assert held is not None and held.status == "interrupted"
        await sessions.registry.sync()
        await sessions.registry.sync()
        assert sessions.registry.get("s1") is held
    finally:
        await sessions.shutdown()


async def test_two_sidecars_opening_a_new_database_together_both_open(tmp_path):
    # SQLite refuses a journal-mode change that meets another connection's lock at once,
    # without waiting: two editors starting standalone sidecars together lost one of them.
    for attempt in range(60):
        folder = tmp_path / str(attempt)
        stores = [Store(folder, "one"), Store(folder, "two")]
        opened = await asyncio.gather(*(s.open() for s in stores), return_exceptions=True)
        await asyncio.gather(*(s.close() for s in stores))
        assert opened == [None, None], f"attempt {attempt}: {opened}"


async def test_a_barrier_taken_while_a_batch_is_written_waits_for_its_commit(tmp_path):
    # Clients are sent nothing the store has not committed. An item queued, taken by the
    # writer and still being written must hold a barrier asked for meanwhile, though
    # nothing new is queued: a client told of it before the commit loses it in a crash.
    store = Store(tmp_path, "me")
    await store.open()
    gate = asyncio.Event()
    db = store.db
    real = db.execute

    async def slow_execute(sql, *args):
        await gate.wait()
        return await real(sql, *args)

    db.execute = slow_execute  # type: ignore[method-assign]
    try:
        store.append_item("s1", 1, b'{"kind":"user","text":"hello"}')
        for _ in range(5):  # the writer takes the batch and waits in the database
            await asyncio.sleep(0)
        barrier = store.barrier()
        await asyncio.sleep(0.05)
        assert not barrier.done()
        gate.set()
        await asyncio.wait_for(barrier, 5)
        with sqlite3.connect(tmp_path / "sessions.db") as conn:
            assert conn.execute("SELECT data FROM items WHERE session_id = 's1'").fetchall() == [
                ('{"kind":"user","text":"hello"}',)]
    finally:
        gate.set()
        db.execute = real  # type: ignore[method-assign]
        await store.close()


async def test_watching_changes_never_rewrites_the_users_git_index(tmp_path):
    # A plain `git status` refreshes a stale index: it takes .git/index.lock and
    # rewrites the index, and the user's own `git add` meanwhile fails.
    import time as _time

    from codex_sessions.core.changes import snapshot
    from codex_sessions.testing.sandbox import make_git_project

    root = make_git_project(tmp_path / "p")
    index = root / ".git" / "index"
    _time.sleep(0.05)
    os.utime(root / "README.md")  # same content, newer stat: the index is stale
    before = os.stat(index)
    for _ in range(3):
        await snapshot(str(root))
    after = os.stat(index)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert not (root / ".git" / "index.lock").exists()


async def test_a_request_on_a_closed_connection_fails_at_once(tmp_path):
    # `daemon stop` said shutdown after the daemon had closed: it waited 10 s for an answer
    import socket

    from codex_sessions.rpc.client import Client

    ours, theirs = socket.socketpair()
    client = Client()
    reader, client.writer = await asyncio.open_unix_connection(sock=ours)
    client._begin(reader.read, client.writer.write)
    theirs.close()
    await asyncio.wait_for(client.closed, 5)
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(client.request("shutdown"), 2)
    await client.stop()


def _delta_line(delta: str, **tail: object) -> bytes:
    import orjson
    params = {"threadId": "t-1", "turnId": "u-1", "itemId": "call_1", "delta": delta}
    return orjson.dumps({"method": "item/commandExecution/outputDelta", "params": params, **tail})


@pytest.mark.parametrize("delta", ['plain', '', 'q " b \\ t \t nl \n \x01 é 日本 🎉',
                                   '"},"emittedAtMs":1}', ',"delta":"x"}}', '\\"}}'])
def test_a_commands_output_is_taken_from_codexs_line_without_decoding(delta):
    import orjson
    from codex_sessions.codex.appserver import output_delta
    for line in (_delta_line(delta), _delta_line(delta, emittedAtMs=1795330793028)):
        message = output_delta(line)
        assert message is not None and message["params"]["itemId"] == "call_1"
        assert message["params"]["threadId"] == "t-1"
        assert message["params"]["delta"].text() == delta
        assert orjson.loads(bytes(message["params"]["delta"].json)) == delta


def test_an_output_line_of_another_shape_is_left_to_the_full_parser():
    from codex_sessions.codex.appserver import output_delta
    assert output_delta(_delta_line("x", note="a string after the delta")) is None
    assert output_delta(b'{"method":"item/commandExecution/outputDelta","params":{"itemId":"c"}}') is None
    reordered = (b'{"method":"item/commandExecution/outputDelta","params":{"delta":"x","itemId":"c"}}')
    assert output_delta(reordered) is None


@pytest.mark.parametrize("text, shown", [("a\x00b", "a\u2400b"), ("x\\u0000y", "x\\u0000y"),
                                         ("\\\x00", "\\\u2400"), ("plain", "plain")])
def test_no_message_holds_a_nul_character(text, shown):
    import orjson
    from codex_sessions.rpc.transport import visible_nul
    assert orjson.loads(visible_nul(orjson.dumps({"text": text})))["text"] == shown
