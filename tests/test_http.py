"""The HTTP API end to end: a real HTTP client against the real daemon, real Codex, scripted model."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import aiohttp
import pytest

from codex_sessions.testing.client import connect_daemon
from codex_sessions.testing.sandbox import OfflineCodex, make_git_project

CLI = [sys.executable, "-m", "codex_sessions"]


class Events:
    """One `GET /api/events` subscription, read in the background into `events`."""

    def __init__(self, http: aiohttp.ClientSession, url: str, output: bool = False,
                 last_event_id: str | None = None) -> None:
        self.http, self.url = http, url + "/api/events" + ("?output=1" if output else "")
        self.headers: dict[str, str] = {}
        if last_event_id:
            self.headers["Last-Event-ID"] = last_event_id
        self.events: list[dict[str, Any]] = []  # {id, event, data}
        self.arrived = asyncio.Condition()
        self.response: aiohttp.ClientResponse | None = None
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "Events":
        self.response = await self.http.get(self.url, headers=self.headers,
                                            timeout=aiohttp.ClientTimeout(total=None))
        assert self.response.status == 200, await self.response.text()
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        self.task = asyncio.create_task(self._read())
        await self.next("ready")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.task:
            self.task.cancel()
        if self.response:
            self.response.close()

    async def _read(self) -> None:
        assert self.response
        fields: dict[str, Any] = {}
        data: list[str] = []
        async for raw in self.response.content:
            line = raw.decode().rstrip("\n")
            if not line:
                if data or fields.get("event"):
                    event = {"id": fields.get("id"), "event": fields.get("event", "message"),
                             "data": json.loads("\n".join(data)) if data else None}
                    async with self.arrived:
                        self.events.append(event)
                        self.arrived.notify_all()
                fields, data = {}, []
            elif line.startswith(":"):
                continue
            else:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    data.append(value)
                else:
                    fields[name] = value

    async def next(self, event: str, predicate: Callable[[Any], bool] = lambda d: True,
                   timeout: float = 60, start: int = 0) -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            async with self.arrived:
                while True:
                    for e in self.events[start:]:
                        if e["event"] == event and predicate(e["data"]):
                            return e
                    await self.arrived.wait()
        return await asyncio.wait_for(find(), timeout)

    async def finished(self, sid: str, turns: int = 1, timeout: float = 60) -> dict[str, Any]:
        e = await self.next("finished", lambda d: d["session"]["id"] == sid
                            and d["session"]["turns"] >= turns, timeout)
        return e["data"]

    async def status(self, sid: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
        e = await self.next("changed", lambda d: d["session"]["id"] == sid
                            and d["session"]["status"] in statuses, timeout)
        return e["data"]["session"]


@pytest.fixture
async def http(http_daemon):
    async with aiohttp.ClientSession(headers=http_daemon.auth) as session:
        yield session


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_git_project(tmp_path / "voice")


async def call(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.request(method, url, **kw) as answer:
        body = await answer.read()
        kind = answer.headers.get("Content-Type", "")
        return answer.status, json.loads(body) if kind.startswith("application/json") else body.decode()


async def test_start_list_get_transcript_and_report(http, http_daemon, repo):
    url = http_daemon.url
    async with Events(http, url) as events:
        status, body = await call(http, "POST", f"{url}/api/sessions", json={
            "project": str(repo), "name": "voice", "prompt": "run: echo hi > hi.txt",
            "title": "write hi.txt"})
        assert status == 201 and body["created"] is True
        session = body["session"]
        assert session["name"] == "voice" and session["title"] == "write hi.txt"
        assert session["project"]["root"] == str(repo)
        done = await events.finished(session["id"])
    assert done["report"]["status"] == "done" and done["report"]["changed"] == ["hi.txt"]
    assert done["text"].startswith("Session: voice\nStatus: done")
    assert (repo / "hi.txt").read_text() == "hi\n"

    status, listed = await call(http, "GET", f"{url}/api/sessions", params={"project": str(repo)})
    assert status == 200 and [s["name"] for s in listed["sessions"]] == ["voice"]
    finished = listed["sessions"][0]
    assert finished["status"] == "idle" and finished["headline"].startswith("done: ")
    assert finished["report"]["summary"] and finished["elapsedSeconds"] >= 0
    _, only_waiting = await call(http, "GET", f"{url}/api/sessions",
                                 params={"project": str(repo), "status": "waiting,running"})
    assert only_waiting["sessions"] == []

    _, rows = await call(http, "GET", f"{url}/api/sessions",
                         params={"project": str(repo), "fields": "name,status"})
    assert rows == {"sessions": [{"id": session["id"], "name": "voice", "status": "idle"}]}

    status, got = await call(http, "GET", f"{url}/api/sessions/{session['id']}")
    assert status == 200 and got["session"]["report"] == done["report"]

    status, page = await call(http, "GET", f"{url}/api/sessions/{session['id']}/transcript",
                              params={"after": "0", "limit": "100"})
    assert status == 200
    assert [i["seq"] for i in page["items"]] == list(range(1, len(page["items"]) + 1))
    assert page["items"][0] == {**page["items"][0], "kind": "user", "text": "run: echo hi > hi.txt"}
    assert any(i["kind"] == "command" and i["exitCode"] == 0 for i in page["items"])

    status, text = await call(http, "GET", f"{url}/api/sessions/{session['id']}/report",
                              params={"format": "text"})
    assert status == 200 and text == done["text"] + "\n"
    assert text.splitlines()[5] == "Blockers: none"

    # the protocol's start options pass through: an explorer only looks
    status, body = await call(http, "POST", f"{url}/api/sessions", json={
        "project": str(repo), "name": "look", "prompt": "say: looking", "role": "explorer"})
    assert status == 201 and body["session"]["role"] == "explorer"
    assert body["session"]["sandbox"] == "read-only" and body["warnings"] == []
    status, killed = await call(http, "POST", f"{url}/api/sessions/{body['session']['id']}/kill")
    assert status == 200 and killed["session"]["status"] == "stopped"
    status, body = await call(http, "POST", f"{url}/api/sessions", json={
        "project": str(repo), "name": "boss", "prompt": "say: hi", "role": "boss"})
    assert status == 400 and body["error"]["field"] == "role"

    # the same session, as an editor sees it
    editor = await connect_daemon(http_daemon.world.state_dir)
    try:
        seen = await editor.request("codex/session/list", {"project": str(repo)})
    finally:
        await editor.stop()
    assert [s["id"] for s in seen["sessions"]] == [session["id"]]


async def test_send_cancel_kill_and_resume(http, http_daemon, repo):
    url = http_daemon.url
    async with Events(http, url, output=True) as events:
        _, body = await call(http, "POST", f"{url}/api/sessions", json={
            "project": str(repo), "name": "long", "prompt": "say: first"})
        sid = body["session"]["id"]
        thread = (await events.finished(sid))["session"]["threadId"]
        assert thread

        status, sent = await call(http, "POST", f"{url}/api/sessions/{sid}/messages",
                                  json={"text": "slow: 60"})
        assert status == 200 and sent["turnId"]
        await events.next("output", lambda d: d["id"] == sid and any(
            i["kind"] == "agentDelta" for i in d["items"]))
        status, busy = await call(http, "POST", f"{url}/api/sessions/{sid}/messages",
                                  json={"text": "say: too soon"})
        assert status == 409 and busy["error"]["code"] == -32002

        await asyncio.sleep(0.3)
        _, running = await call(http, "GET", f"{url}/api/sessions", params={"project": str(repo)})
        assert running["sessions"][0]["status"] == "running"
        assert running["sessions"][0]["elapsedSeconds"] >= 0.3

        status, cancelled = await call(http, "POST", f"{url}/api/sessions/{sid}/cancel")
        assert status == 200
        done = await events.finished(sid, turns=2, timeout=20)
        assert done["session"]["lastTurn"]["status"] == "interrupted"
        status, again = await call(http, "POST", f"{url}/api/sessions/{sid}/cancel")
        assert status == 409 and again["error"]["code"] == -32007

        status, killed = await call(http, "POST", f"{url}/api/sessions/{sid}/kill")
        assert status == 200 and killed["session"]["status"] == "stopped"
        _, listed = await call(http, "GET", f"{url}/api/sessions", params={"project": str(repo)})
        assert listed["sessions"] == []  # stopped ones only with all=1
        _, listed = await call(http, "GET", f"{url}/api/sessions",
                               params={"project": str(repo), "all": "1"})
        assert [s["status"] for s in listed["sessions"]] == ["stopped"]

        # the next message resumes a stopped session, on the same thread
        status, resumed = await call(http, "POST", f"{url}/api/sessions/{sid}/messages",
                                     json={"text": "say: back again"})
        assert status == 200
        done = await events.finished(sid, turns=3)
    assert done["session"]["status"] == "idle"
    assert done["session"]["threadId"] == thread
    assert "back again" in done["report"]["summary"]


async def test_answer_an_approval(http, http_daemon, repo):
    url = http_daemon.url
    async with Events(http, url) as events:
        _, body = await call(http, "POST", f"{url}/api/sessions", json={
            "project": str(repo), "name": "ask", "prompt": "run-approved: touch approved.txt"})
        sid = body["session"]["id"]
        asked = (await events.next("request", lambda d: d["id"] == sid))["data"]["request"]
        assert asked["kind"] == "command" and asked["command"] == "touch approved.txt"
        _, got = await call(http, "GET", f"{url}/api/sessions/{sid}")
        assert got["session"]["status"] == "waiting"
        assert got["session"]["headline"] == "waits: touch approved.txt"
        assert not (repo / "approved.txt").exists()

        status, bad = await call(http, "POST", f"{url}/api/sessions/{sid}/requests/{asked['requestId']}",
                                 json={"decision": "maybe"})
        assert status == 400 and bad["error"]["field"] == "decision"
        status, answered = await call(
            http, "POST", f"{url}/api/sessions/{sid}/requests/{asked['requestId']}",
            json={"decision": "accept"})
        assert status == 200
        done = await events.finished(sid)
    assert (repo / "approved.txt").exists()
    assert done["report"]["status"] == "done"
    assert done["report"]["verified"] == ["touch approved.txt (exit 0)"]


async def test_the_seven_errors_and_no_cors(http_daemon, repo, tmp_path):
    url = http_daemon.url
    async with aiohttp.ClientSession() as bare:
        status, body = await call(bare, "GET", f"{url}/api/sessions")
        assert status == 401 and body["error"]["code"] == -32600
        assert str(http_daemon.token_file) in body["error"]["message"]
        status, body = await call(bare, "GET", f"{url}/api/sessions",
                                  headers={"Authorization": "Bearer not-the-token"})
        assert status == 401 and "wrong token" in body["error"]["message"]
        assert http_daemon.token not in json.dumps(body)
        status, body = await call(bare, "GET", f"{url}/api/sessions",
                                  headers={**http_daemon.auth, "Host": "evil.example:8080"})
        assert status == 403 and "Host" in body["error"]["message"]
        status, _ = await call(bare, "GET", f"{url}/api/sessions",
                               headers={**http_daemon.auth, "Host": "localhost"})
        assert status == 200
        # no CORS: a preflight gets no Access-Control-* header, nor does an answer
        async with bare.options(f"{url}/api/sessions", headers={
                "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}) as pre:
            assert not any(h.lower().startswith("access-control") for h in pre.headers)
        async with bare.get(f"{url}/api/sessions", headers={
                **http_daemon.auth, "Origin": "http://evil.example"}) as answer:
            assert answer.status == 200
            assert not any(h.lower().startswith("access-control") for h in answer.headers)

    async with aiohttp.ClientSession(headers=http_daemon.auth) as http:
        status, body = await call(http, "POST", f"{url}/api/sessions", data=b'{"project": ',
                                  headers={"Content-Type": "application/json"})
        assert status == 400 and body["error"]["code"] == -32700
        status, body = await call(http, "POST", f"{url}/api/sessions", json={"project": str(repo)})
        assert status == 400 and body["error"] == {"code": -32602, "message": "prompt: is required",
                                                    "field": "prompt"}
        status, body = await call(http, "POST", f"{url}/api/sessions", json={
            "project": str(repo), "prompt": "say: hi", "approvalPolicy": "sometimes"})
        assert status == 400 and body["error"]["field"] == "approvalPolicy"
        status, body = await call(http, "GET", f"{url}/api/sessions/0123456789ab")
        assert status == 404 and body["error"]["code"] == -32001
        status, body = await call(http, "POST", f"{url}/api/sessions/0123456789ab/kill")
        assert status == 404
        status, body = await call(http, "GET", f"{url}/api/nothing")
        assert status == 404 and body["error"]["code"] == -32601

        crowded = make_git_project(tmp_path / "crowded")
        made = await asyncio.gather(*(call(http, "POST", f"{url}/api/sessions", json={
            "project": str(crowded), "name": f"s{i}", "prompt": "say: hi"}) for i in range(10)))
        assert [s for s, _ in made] == [201] * 10
        status, body = await call(http, "POST", f"{url}/api/sessions", json={
            "project": str(crowded), "name": "one-more", "prompt": "say: hi"})
        assert status == 429 and body["error"]["code"] == -32003
        assert "maxSessionsPerProject" in body["error"]["message"]
        status, body = await call(http, "POST", f"{url}/api/sessions", json={
            "project": str(crowded), "name": "s0", "prompt": "say: hi", "reuse": False})
        assert status == 409 and body["error"]["code"] == -32004 and body["error"]["field"] == "name"
        for _, made_one in made:
            await call(http, "POST", f"{url}/api/sessions/{made_one['session']['id']}/kill")


async def test_sse_reconnect_with_last_event_id_misses_nothing(http, http_daemon, repo):
    url = http_daemon.url
    async with Events(http, url, output=True) as control:
        async with Events(http, url, output=True) as first:
            _, body = await call(http, "POST", f"{url}/api/sessions", json={
                "project": str(repo), "name": "stream", "prompt": "slow: 3"})
            sid = body["session"]["id"]
            await first.next("output", lambda d: d["id"] == sid, start=0)
            await asyncio.sleep(0.3)
        seen = list(first.events[1:])  # after `ready`
        last_seen = seen[-1]["id"]
        await asyncio.sleep(1.2)  # the turn streams on meanwhile
        gap_end = control.events[-1]["id"]
        async with Events(http, url, True, last_seen) as second:
            await second.finished(sid, timeout=30)
            await control.finished(sid, timeout=30)
            after = second.events[1:]
        everything = [e for e in control.events[1:]]
        start = next(i for i, e in enumerate(everything) if e["id"] == seen[0]["id"])
        upto = next(i for i, e in enumerate(everything) if e["id"] == after[-1]["id"])
        assert seen + after == everything[start:upto + 1]
        numbers = [int(e["id"].rsplit("-", 1)[1]) for e in seen + after]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        replayed = [e for e in after if int(e["id"].rsplit("-", 1)[1])
                    <= int(gap_end.rsplit("-", 1)[1])]
        assert sum(1 for e in replayed if e["event"] == "output") >= 3  # what the gap held

        # `ready` has an id too: a client that saw nothing else still resumes from there
        ready = second.events[0]
        assert ready["event"] == "ready" and ready["id"] == ready["data"]["lastEventId"]
        # an id from another daemon run (or one no longer kept): `reset`, then live events
        async with Events(http, url, last_event_id="0badcafe-12") as stale:
            assert stale.events[0]["event"] == "reset"
            assert "read the sessions again" in stale.events[0]["data"]["reason"]
        # without ?output=1 there is no output event
        async with Events(http, url) as quiet:
            await call(http, "POST", f"{url}/api/sessions/{sid}/messages", json={"text": "stream: a b c"})
            await quiet.finished(sid, turns=2)
            assert {e["event"] for e in quiet.events} <= {"ready", "changed", "finished"}


async def test_status_token_file_and_login_link(http_daemon):
    env = http_daemon.world.env()
    status = json.loads(subprocess.run([*CLI, "daemon", "status", "--json"], env=env,
                                       capture_output=True, text=True, timeout=60).stdout)
    assert status["http"]["url"] == http_daemon.url
    mode = stat.S_IMODE(os.stat(status["http"]["tokenFile"]).st_mode)
    assert mode == 0o600 and len(http_daemon.token) >= 32

    printed = subprocess.run([*CLI, "panel"], env=env, capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    link = printed.stdout.strip()
    assert link.startswith(http_daemon.url + "/login?code=") and http_daemon.token not in link
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(link, allow_redirects=False) as answer:
            assert answer.status == 303 and answer.headers["Location"] == "/"
            cookie = answer.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert http_daemon.token not in cookie
        async with browser.get(link, allow_redirects=False) as again:
            assert again.status == 401  # once only
        async with browser.get(http_daemon.url + "/") as page:
            html = await page.text()
            assert page.status == 200 and "codex-sessions" in html
            assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert http_daemon.token not in html
        status, body = await call(browser, "GET", http_daemon.url + "/api/sessions")
        assert status == 200
        # a change made with the cookie must come from the panel's own origin
        status, body = await call(browser, "POST", http_daemon.url + "/api/sessions/x/kill",
                                  headers={"Origin": "http://evil.example"})
        assert status == 403
    log = http_daemon.log.read_text()
    assert http_daemon.token not in log and link.split("code=")[1] not in log
    assert "http GET /login " in log


def test_http_from_the_config_file_and_bad_addresses(tmp_path):
    world = OfflineCodex(tmp_path / "world")
    try:
        config = tmp_path / "config" / "codex-sessions"
        config.mkdir(parents=True)
        (config / "config.toml").write_text('http = "127.0.0.1:0"\n')
        env = world.env(XDG_CONFIG_HOME=str(tmp_path / "config"))
        # a daemon started the way editors start it (by whichever client comes first) reads it
        listed = subprocess.run([*CLI, "panel"], env=env, capture_output=True, text=True,
                                timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.startswith("http://127.0.0.1:")
        world.stop_daemon()

        (config / "config.toml").write_text('http = "192.0.2.1:8765"\n')
        off = subprocess.run([*CLI, "panel"], env=env, capture_output=True, text=True, timeout=60)
        assert off.returncode == 1 and "HTTP API is off" in off.stderr
        assert "not a loopback address" in off.stderr
        world.stop_daemon()

        # a daemon serving HTTP does not leave for idleness: HTTP clients cannot start it
        daemon = subprocess.Popen([*CLI, "daemon", "--http", "127.0.0.1:0", "--idle-exit", "0.2"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                status = subprocess.run([*CLI, "daemon", "status", "--json"], env=env,
                                        capture_output=True, text=True, timeout=60)
                if status.returncode == 0:
                    break
            assert json.loads(status.stdout)["http"]["url"].startswith("http://127.0.0.1:")
            with pytest.raises(subprocess.TimeoutExpired):
                daemon.wait(timeout=2)
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)

        for address, problem in (("192.0.2.1:80", "not a loopback address"),
                                 ("127.0.0.1", "expected HOST:PORT"),
                                 ("example.com:80", "not a host name")):
            refused = subprocess.run([*CLI, "daemon", "--http", address], env=env,
                                     capture_output=True, text=True, timeout=60)
            assert refused.returncode == 2 and problem in refused.stderr, refused.stderr
    finally:
        world.close()
