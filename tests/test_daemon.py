"""The daemon: one process owns the sessions; every client sees and drives them all."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import socket
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from codex_sessions.paths import socket_path
from codex_sessions.testing.client import RpcError, SidecarClient

from test_sidecar import finished, start

CLI = [sys.executable, "-m", "codex_sessions"]


def status(offline) -> dict:
    done = subprocess.run([*CLI, "daemon", "status", "--json"], env=offline.env(),
                          capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout)


async def test_two_clients_see_and_drive_the_same_sessions(offline, project):
    a, b = SidecarClient(env=offline.env()), SidecarClient(env=offline.env())
    await asyncio.gather(a.start(), b.start())
    try:
        s = await start(a, project, "asks", "run-approved: touch approved.txt")
        request = await b.wait_for("codex/session/request", lambda p: p["id"] == s["id"])
        await a.wait_for("codex/session/request", lambda p: p["id"] == s["id"])
        # answered in one client, it is gone in the other at once
        await b.request("codex/session/respond", {"id": s["id"],
                                                  "requestId": request["request"]["requestId"],
                                                  "decision": "accept"})
        await a.wait_for("codex/session/changed", lambda p: p["session"]["id"] == s["id"]
                         and p["session"]["status"] == "running" and not p["session"]["pending"])
        for client in (a, b):
            done = await finished(client, s["id"])
            assert done["report"]["status"] == "done"
            kinds = {m["method"] for m in client.notifications
                     if (m["params"].get("id") or m["params"].get("session", {}).get("id")) == s["id"]}
            assert kinds == {"codex/session/changed", "codex/session/output",
                             "codex/session/request", "codex/session/finished"}
        assert (project / "approved.txt").exists()
        # a session started by one client is sent to by the other
        await b.request("codex/session/send", {"id": s["id"], "text": "say: from b"})
        assert (await finished(a, s["id"], turns=2))["report"]["summary"] == "from b"
        # one client's shutdown ends only its own connection
        await b.stop()
        got = (await a.request("codex/session/get", {"id": s["id"]}))["session"]
        assert got["live"] and got["status"] == "idle"
    finally:
        await a.stop()
        await b.stop()


async def test_serve_started_together_share_one_daemon(offline, project):
    clients = [SidecarClient(env=offline.env()) for _ in range(4)]
    await asyncio.gather(*(c.start() for c in clients))
    try:
        s = await start(clients[0], project, "shared", "say: hello all")
        for c in clients:
            await finished(c, s["id"])
        pids = {int(line) for line in (offline.state_dir / "daemon.pid").read_text().split()}
        assert len(pids) == 1
        wanted = f"--state-dir\0{offline.state_dir}\0daemon"
        daemons = [p for p in os.listdir("/proc") if p.isdigit() and wanted in _cmdline(p)]
        assert len(daemons) == 1, daemons
        assert status(offline)["clients"] >= 4
    finally:
        await asyncio.gather(*(c.stop() for c in clients))


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read()
    except OSError:
        return ""


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_a_command_streams_and_ends_on_either_event_loop(offline, project, loop):
    env = offline.env(CODEX_SESSIONS_EVENT_LOOP=loop) if loop == "asyncio" else offline.env()
    client = SidecarClient(env=env)
    await client.start()
    try:
        text = "".join(f"line {n}\n" for n in range(2000))
        (project / "lines.txt").write_text(text)
        s = await start(client, project, "cmd", "run: sleep 0.5; cat lines.txt")
        assert (await finished(client, s["id"]))["report"]["status"] == "done"
        items = client.output_items(s["id"])
        command = next(i for i in items if i["kind"] == "command")
        assert command["exitCode"] == 0 and command["output"].replace("\r\n", "\n") == text
        streamed = "".join(i["text"] for i in items if i["kind"] == "commandDelta")
        assert streamed.replace("\r\n", "\n") == text
        assert status(offline)["eventLoop"] == loop
        pid = (await client.request("codex/session/get", {"id": s["id"]}))["session"]["pid"]
        assert os.getsid(pid) == pid  # Codex leads a session of its own, so its tree can be killed
    finally:
        await client.stop()


async def test_idle_exit_happens_and_status_shows_it(offline, project):
    client = SidecarClient(env=offline.env())
    await client.start(idleExitSeconds=2)
    s = await start(client, project, "brief", "say: bye")
    await finished(client, s["id"])
    await client.stop()
    seen = status(offline)
    assert seen["running"] and seen["clients"] == 1  # the status request itself
    assert seen["idleExitSeconds"] == 2 and seen["liveSessions"] == 1
    for _ in range(100):
        if not status(offline)["running"]:
            break
        await asyncio.sleep(0.1)
    assert status(offline) == {"running": False, "stateDir": str(offline.state_dir)}
    again = SidecarClient(env=offline.env())
    await again.start()
    try:
        got = (await again.request("codex/session/get", {"id": s["id"]}))["session"]
        assert got["status"] == "interrupted"  # resumable, as after any restart
    finally:
        await again.stop()


async def test_a_running_turn_keeps_the_daemon_past_its_idle_time(offline, project):
    client = SidecarClient(env=offline.env())
    await client.start(idleExitSeconds=1)
    s = await start(client, project, "long", "slow: 8")
    await client.wait_status(s["id"], "running")
    await client.stop()
    await asyncio.sleep(2.5)
    assert status(offline)["running"], "the turn holds the daemon"
    later = SidecarClient(env=offline.env())
    await later.start()
    try:
        done = await finished(later, s["id"])
        assert done["report"]["status"] == "done"
    finally:
        await later.stop()


def test_socket_and_folder_are_private_and_another_uid_is_refused():
    from codex_sessions.testing.sandbox import OfflineCodex
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.fail("this machine has no `nobody` user to connect as")
    if os.getuid() != 0:
        pytest.fail("the other-uid check needs root to become `nobody`")
    top = Path(tempfile.mkdtemp(prefix="codex-uid-"))  # outside root-only test folders
    world = OfflineCodex(top / "w")
    try:
        async def open_one() -> None:
            client = SidecarClient(env=world.env())
            await client.start()
            await client.stop()
        asyncio.run(open_one())
        path = socket_path(world.state_dir)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(world.state_dir.stat().st_mode) == 0o700
        # open the file modes, so only the daemon's own check (SO_PEERCRED) stands in the way
        for folder in (top, top / "w", world.state_dir):
            os.chmod(folder, 0o711)
        os.chmod(path, 0o666)
        probe = (
            "import socket,sys\n"
            "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
            "body=b'{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"codex/daemon/status\"}'\n"
            "try: s.sendall(b'Content-Length: %d\\r\\n\\r\\n' % len(body) + body)\n"
            "except (BrokenPipeError, ConnectionResetError): print(repr(b'')); sys.exit()\n"
            "s.settimeout(5)\n"
            "try: print(repr(s.recv(4096)))\n"
            "except ConnectionResetError: print(repr(b''))\n")
        python = "/usr/bin/python3"  # one `nobody` may run (the venv's may sit in root's home)
        done = subprocess.run([python, "-c", probe, str(path)], capture_output=True, text=True,
                              timeout=30, user=nobody.pw_uid, group=nobody.pw_gid, cwd="/")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "b''", "the daemon closed the connection without answering"
        # while the same uid is answered
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(path))
        body = b'{"jsonrpc":"2.0","id":1,"method":"codex/daemon/status"}'
        s.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        s.settimeout(5)
        assert b'"pid"' in s.recv(65536)
        s.close()
    finally:
        world.close()
        shutil.rmtree(top, ignore_errors=True)


async def test_a_long_state_path_gets_a_short_socket(tmp_path, project):
    from codex_sessions.testing.sandbox import OfflineCodex
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    world = OfflineCodex(deep)
    try:
        client = SidecarClient(env=world.env())
        await client.start()
        await client.stop()
        shown = json.loads(subprocess.run([*CLI, "daemon", "status", "--json"], env=world.env(),
                                          capture_output=True, text=True, timeout=60).stdout)
        assert len(shown["socket"]) < 100 and shown["stateDir"] == str(world.state_dir)
        assert not (world.state_dir / "daemon.sock").exists()
    finally:
        world.close()


async def test_bad_options_and_methods_after_shutdown(offline, project, tmp_path):
    client = SidecarClient(env=offline.env())
    await client.start()
    try:
        with pytest.raises(RpcError) as info:  # a second initialize changes nothing
            await client.request("initialize", {"processId": None, "capabilities": {}})
        assert info.value.code == -32600
        s = await start(client, project, "main")
        await client.wait_status(s["id"], "idle")
        await client.request("shutdown", None)
        with pytest.raises(RpcError) as info:
            await client.request("codex/session/list", {})
        assert info.value.code == -32600
    finally:
        await client.stop()
    other = SidecarClient(env=offline.env())
    await other.start()
    try:  # the first client's session is still this daemon's: live, drivable
        got = (await other.request("codex/session/get", {"id": s["id"]}))["session"]
        assert got["live"] and got["owner"] is None
        await other.request("codex/session/kill", {"id": s["id"]})
    finally:
        await other.stop()


async def test_a_serve_of_another_version_waits_for_a_busy_daemon_and_replaces_an_idle_one(
        offline, project, tmp_path):
    import codex_sessions
    old = tmp_path / "old"  # this very code, calling itself another version
    shutil.copytree(Path(codex_sessions.__file__).parent, old / "codex_sessions",
                    ignore=shutil.ignore_patterns("__pycache__"))
    init = old / "codex_sessions" / "__init__.py"
    init.write_text(init.read_text().replace(f'"{codex_sessions.__version__}"', '"0.0.1-old"'))
    older = SidecarClient([*CLI, "serve"], env=offline.env(PYTHONPATH=str(old)))
    await older.start()
    newer = SidecarClient(env=offline.env())
    try:
        assert status(offline)["version"] == "0.0.1-old"
        s = await start(older, project, "long", "slow: 4")
        await older.wait_status(s["id"], "running")
        # a turn runs: the newer editor is told, and served by the old daemon meanwhile
        await newer.start()
        told = await newer.wait_for("window/showMessage", lambda p: "0.0.1-old" in p["message"])
        assert told["type"] == 2 and "codex-sessions daemon stop" in told["message"]
        got = (await newer.request("codex/session/get", {"id": s["id"]}))["session"]
        assert got["status"] == "running" and got["live"]
        assert (await finished(newer, s["id"]))["report"]["status"] == "done"
        assert status(offline)["version"] == "0.0.1-old"
        await asyncio.gather(older.stop(), newer.stop())
        # nothing runs now: the next editor's serve replaces the old daemon with its own
        old_pid = status(offline)["pid"]
        latest = SidecarClient(env=offline.env())
        await latest.start()
        try:
            now = status(offline)
            assert now["version"] == codex_sessions.__version__ and now["pid"] != old_pid
            assert not any(m["method"] == "window/showMessage" and "0.0.1-old" in m["params"]["message"]
                           for m in latest.notifications)
            got = (await latest.request("codex/session/get", {"id": s["id"]}))["session"]
            assert got["status"] == "interrupted" and got["turns"] == 1
            await latest.request("codex/session/send", {"id": s["id"], "text": "say: on the new one"})
            assert (await finished(latest, s["id"], turns=2))["report"]["summary"] == "on the new one"
        finally:
            await latest.stop()
    finally:
        await asyncio.gather(older.stop(), newer.stop())
