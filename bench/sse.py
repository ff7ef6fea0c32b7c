"""Figure: events reach an SSE client (`GET /api/events`) as soon as they reach an editor.

One daemon with the HTTP API (`daemon --http 127.0.0.1:0`); an editor client the way
editors connect (`codex-sessions serve`, relayed to the daemon) and an SSE subscriber
(`?output=1`) in a process of its own, both stamping each event on arrival with the
system-wide monotonic clock. The editor sends a prompt that streams a word every 0.2 s
for a second (`slow: 1`), turn after turn. For every event of the session, the time it
took to reach each client is counted from the moment the prompt was sent; the figure is
their ratio (SSE / editor), judged at the median over all events (p90 and p99 shown
beside it: on 2 busy cores, which of two client processes runs first when both have
bytes to read decides a few ms), and the SSE client's lag behind the editor in ms. The
first event after each prompt (the `changed` to running, a few ms after the send) is
shown apart: there the fixed costs are the whole time.

    .venv/bin/python -m bench.run --only sse
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from codex_sessions.testing.sandbox import OfflineCodex, make_git_project

from .util import SIDECAR, Results, TimedClient, finished, median, ms, p99, start_session

PROMPT = "slow: 1"
SESSION_EVENTS = {"codex/session/changed": "changed", "codex/session/output": "output",
                  "codex/session/request": "request", "codex/session/finished": "finished"}

READER = r"""
import asyncio, json, sys, time
import aiohttp

async def main(url, token):
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer " + token}) as http:
        async with http.get(url + "/api/events?output=1",
                            timeout=aiohttp.ClientTimeout(total=None)) as stream:
            event, data = None, []
            async for raw in stream.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif not line and event:
                    now = time.monotonic()
                    body = json.loads("".join(data))
                    sid = body.get("id") or (body.get("session") or {}).get("id")
                    print(json.dumps([now, event, sid]), flush=True)
                    event, data = None, []

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def session_of(params: dict[str, Any]) -> str | None:
    return params.get("id") or (params.get("session") or {}).get("id")


def start_daemon(world: OfflineCodex, log: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "codex_sessions", "--state-dir", str(world.state_dir), "daemon",
         "--http", "127.0.0.1:0", "--log-file", str(log)], env=world.env(),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = subprocess.run([sys.executable, "-m", "codex_sessions", "--state-dir",
                                 str(world.state_dir), "daemon", "status", "--json"],
                                env=world.env(), capture_output=True, text=True)
        if status.returncode == 0:
            return proc, json.loads(status.stdout)["http"]
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the daemon with --http did not start")


async def run(res: Results, quick: bool) -> None:
    turns = 6 if quick else 20
    tmp = Path(tempfile.mkdtemp(prefix="bench-sse-"))
    world = OfflineCodex(tmp / "world")
    project = make_git_project(tmp / "project")
    daemon, http = start_daemon(world, tmp / "daemon.log")
    token = Path(http["tokenFile"]).read_text().strip()
    reader = await asyncio.create_subprocess_exec(
        sys.executable, "-c", READER, http["url"], token, stdout=asyncio.subprocess.PIPE)
    sse: list[tuple[float, str, str]] = []

    async def read() -> None:
        assert reader.stdout
        async for line in reader.stdout:
            stamp, event, sid = json.loads(line)
            sse.append((stamp, event, sid))

    reading = asyncio.create_task(read())
    editor = TimedClient(SIDECAR, env=world.env())
    try:
        await editor.start()
        await asyncio.sleep(1.0)  # the subscriber is connected
        sid = (await start_session(editor, project, "sse"))["id"]
        await editor.wait_status(sid, "idle")
        await asyncio.sleep(0.3)
        sends: list[tuple[float, int, int]] = []  # (t0, editor index, sse index) per turn
        for turn in range(1, turns + 1):
            mark = (time.monotonic(), len(editor.notifications), len(sse))
            await editor.request("codex/session/send", {"id": sid, "text": PROMPT})
            await finished(editor, sid, turn, timeout=60)
            await asyncio.sleep(0.3)  # the SSE client's copy of `finished` too
            sends.append(mark)
        sends.append((time.monotonic(), len(editor.notifications), len(sse)))
    finally:
        await editor.stop()
        reader.kill()
        reading.cancel()
        daemon.terminate()
        daemon.wait(timeout=30)
        world.close()

    ratios, lags, first_ed, first_sse, mismatched = [], [], [], [], 0
    for (t0, e0, s0), (_, e1, s1) in zip(sends, sends[1:]):
        ed = [(stamp, SESSION_EVENTS[m["method"]]) for stamp, m in
              zip(editor.stamps[e0:e1], editor.notifications[e0:e1])
              if m.get("method") in SESSION_EVENTS and session_of(m["params"]) == sid]
        ss = [(stamp, event) for stamp, event, s in sse[s0:s1] if s == sid]
        if [e for _, e in ed] != [e for _, e in ss]:
            mismatched += 1
            continue
        for i, ((t_ed, _), (t_sse, _)) in enumerate(zip(ed, ss)):
            ratios.append((t_sse - t0) / (t_ed - t0))
            lags.append(t_sse - t_ed)
            if i == 0:
                first_ed.append(t_ed - t0)
                first_sse.append(t_sse - t0)
    res.raw["sse_ratio"], res.raw["sse_lag"] = ratios, lags
    if not ratios:
        res.add("SSE vs editor: not measured", f"the two clients' events differed in all {turns} turns")
        return
    first_ratio = median(first_sse) / median(first_ed)
    p90 = sorted(ratios)[int(0.9 * (len(ratios) - 1))]
    value = (f"SSE / editor per event: median {median(ratios):.3f}x (p90 {p90:.3f}x, p99 "
             f"{p99(ratios):.3f}x) over {len(ratios)} events"
             + (f"; {mismatched} of {turns} turns not compared (event lists differed)"
                if mismatched else ""))
    row = res.add("SSE vs editor: time for an event to reach the client", value,
                  "median <= 1.1x", median(ratios) <= 1.1 and not mismatched)
    row.note = value
    res.add("SSE vs editor: SSE arrival minus editor arrival, per event",
            f"median {ms(median(lags))}, p99 {ms(p99(lags))}")
    res.add("SSE vs editor: first event after a prompt (changed to running)",
            f"editor median {ms(median(first_ed))}, SSE median {ms(median(first_sse))} "
            f"({first_ratio:.2f}x)")
