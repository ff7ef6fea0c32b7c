"""`codex/session/list` round trips with 10, 100 and 1,000 sessions in the database: full
session objects and the compact rows a list line needs (`fields`), through `serve` -> daemon,
against a no-op request on the same connection; the relay's cost per round trip, against
`serve --standalone` (and the daemon's socket without the relay) in the same run.
"""

from __future__ import annotations

import gc
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from codex_sessions.core.projects import project_from_root
from codex_sessions.core.session import Session
from codex_sessions.store import Store
from codex_sessions.testing.client import RpcError, SidecarClient

from .util import BARE_SERVER, Results, Side, ci, ci_diff, median, ms, p99

COMPACT = ["name", "status", "headline", "rank", "turnStartedAt"]
NOOP = "bench/nothing"  # no such method: the sidecar's error answer is its cheapest round trip
PATHS = {"daemon": "serve -> daemon", "standalone": "serve --standalone",
         "socket": "daemon socket, no relay"}


async def seed(state_dir: Path, count: int, projects: list[Path]) -> None:
    """Write `count` finished sessions through the sidecar's own Store and record shapes."""
    store = Store(state_dir, "bench-seed")
    await store.open()
    rng = random.Random(count)
    for i in range(count):
        project = project_from_root(str(projects[i % len(projects)]))
        session = Session.new(f"s{i}", project, 10 * 1024 * 1024)
        session.phase = rng.choice(["interrupted", "failed", "interrupted", "interrupted"])
        session.title = f"fix the flaky test number {i} in the parser and check the docs"
        session.thread_id = f"01a1fc7a-{i:04x}-7c81-9822-7129a26479e8"
        session.turns = rng.randint(1, 12)
        session.started_at = session.created_at
        session.finished_at = session.created_at
        session.last_turn = {"id": f"turn-{i}", "status": "completed", "error": None}
        session.changed_files = [f"src/module_{i % 7}.py", "tests/test_parser.py"]
        session.usage = {"inputTokens": 12000 + i, "outputTokens": 3400 + i}
        session.error = "Codex exited with code 1" if session.phase == "failed" else None
        session.report = {"session": session.name, "status": "done",
                          "summary": "Fixed the parser's flaky test; the suite passes.",
                          "changed": list(session.changed_files),
                          "verified": ["pytest -q (exit 0)"], "blockers": [],
                          "next": "Review the diff and merge."}
        session.updated_at = f"2026-11-20T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.000Z"
        store.save_session(session.record(), owned=False)
    await store.close()


async def timed_requests(client: SidecarClient, method: str, params: Any, n: int) -> list[float]:
    """n round trips, back to back. This Python client's own garbage collection is kept out
    of them (collected before, paused during): decoding a 1 MiB answer would otherwise add
    the bench's pauses, not the sidecar's, to the p99."""
    samples = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            try:
                await client.request(method, params)
            except RpcError:
                if method != NOOP:
                    raise
            samples.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return samples


async def interleaved(kinds: dict[str, tuple[SidecarClient, str, Any]], n: int,
                      batch: int = 50) -> dict[str, list[float]]:
    """n round trips of each kind, in alternating batches: drift of a busy machine hits all alike."""
    out: dict[str, list[float]] = {k: [] for k in kinds}
    for client, method, params in kinds.values():  # warm every path
        await timed_requests(client, method, params, 20)
    done = 0
    while done < n:
        step = min(batch, n - done)
        for key, (client, method, params) in kinds.items():
            out[key] += await timed_requests(client, method, params, step)
        done += step
    return out


def env_for(state: Path) -> dict[str, str]:
    return dict(os.environ, CODEX_SESSIONS_STATE_DIR=str(state),
                CODEX_SESSIONS_CODEX="/nonexistent/codex")


def stats(xs: list[float]) -> str:
    return f"median {ms(median(xs))}, p99 {ms(p99(xs))}"


async def run(res: Results, quick: bool) -> None:
    n = 300 if quick else 2000
    tmp = Path(tempfile.mkdtemp(prefix="bench-list-"))
    projects = []
    for k in range(10):
        p = tmp / "projects" / f"proj{k}"
        p.mkdir(parents=True)
        projects.append(p.resolve())

    bare = SidecarClient(BARE_SERVER, env=dict(os.environ))
    await bare.start()
    await timed_requests(bare, "bench/noop", {}, 50)
    base = await timed_requests(bare, "bench/noop", {}, n)
    await bare.stop()
    res.raw["bare_noop"] = base
    res.add("baseline: bare pygls server, do-nothing method over stdio", stats(base))

    for size in (10, 100, 1000):
        state = tmp / f"state{size}"
        await seed(state, size, projects)
        shutil.copytree(state, tmp / f"standalone{size}")  # its own copy: two sidecars, one db each
        sides = {"daemon": Side("daemon", env_for(state)),
                 "standalone": Side("standalone", env_for(tmp / f"standalone{size}"))}
        await sides["daemon"].start()
        sides["socket"] = Side("socket", env_for(state))
        try:
            await sides["standalone"].start()
            await sides["socket"].start()
            sizes = {}
            for form, params in (("full", {}), ("compact", {"fields": COMPACT})):
                answer = await sides["daemon"].client.request("codex/session/list", params)
                assert len(answer["sessions"]) == size, (size, len(answer["sessions"]))
                sizes[form] = len(orjson.dumps(answer))
            kinds = {}
            for path, side in sides.items():
                kinds[(path, "noop")] = (side.client, NOOP, {})
                kinds[(path, "full")] = (side.client, "codex/session/list", {})
                kinds[(path, "compact")] = (side.client, "codex/session/list", {"fields": COMPACT})
            reps = n if size < 1000 else max(100, n // 4)
            got = await interleaved(kinds, reps)
        finally:
            await sides["socket"].close()
            await sides["standalone"].close()
            await sides["daemon"].close()
        res.raw[f"list{size}"] = {f"{a}/{b}": v for (a, b), v in got.items()}
        report(res, size, got, sizes, reps, base)


def report(res: Results, size: int, got: dict[tuple[str, str], list[float]], sizes: dict[str, int],
           reps: int, bare: list[float]) -> None:
    noop = got[("daemon", "noop")]
    if size == 10:
        for path in ("daemon", "standalone", "socket"):
            res.add(f"baseline: no-op request (unknown method) round trip, {PATHS[path]}",
                    stats(got[(path, "noop")]))
    for form, label in (("full", "full session objects"), ("compact", f"compact rows (fields: {', '.join(COMPACT)})")):
        xs = got[("daemon", form)]
        value = (f"{stats(xs)}; {median(xs) / median(noop):.2f}x the no-op's median, p99 "
                 f"{p99(xs) / p99(noop):.1f}x its p99; answer {sizes[form] / 1024:.0f} KiB; n={reps}")
        figure = f"list, {size} sessions, {label}, serve -> daemon"
        if size == 10:
            ratio = median(xs) / median(noop)
            value = value.replace("x the no-op's median", f"x the no-op's median ({ci(xs, noop)})", 1)
            row = res.add(figure, value, "median < 1.5x the no-op's", ratio < 1.5)
            row.note = (f"median {ms(median(xs))} = {ratio:.2f}x the no-op request's {ms(median(noop))} "
                        f"on the same connection ({median(xs) / median(bare):.2f}x the bare pygls server's "
                        f"do-nothing method over stdio, {ms(median(bare))})")
        else:
            target = 0.002 if size == 100 else 0.010
            row = res.add(figure, value, f"p99 < {target * 1000:.0f} ms", p99(xs) < target)
            row.note = (f"p99 {ms(p99(xs))} vs {target * 1000:.0f} ms ({p99(xs) / target:.1f}x the target; "
                        f"median {ms(median(xs))}); the answer is {sizes[form] / 1024:.0f} KiB. Through "
                        f"serve --standalone: p99 {ms(p99(got[('standalone', form)]))}; the daemon's "
                        f"socket without the relay: p99 {ms(p99(got[('socket', form)]))}")
    # The relay: what serve -> daemon costs over a standalone sidecar, per round trip.
    diffs = {form: median(got[("daemon", form)]) - median(got[("standalone", form)])
             for form in ("noop", "full", "compact")}
    sock = {form: median(got[("daemon", form)]) - median(got[("socket", form)])
            for form in ("noop", "full", "compact")}
    value = (f"list (full) {ms(diffs['full'])} ({ci_diff(got[('daemon', 'full')], got[('standalone', 'full')])}; "
             f"median {ms(median(got[('daemon', 'full')]))} vs "
             f"{ms(median(got[('standalone', 'full')]))}); compact {ms(diffs['compact'])}; no-op "
             f"{ms(diffs['noop'])}. Over the daemon's socket alone: full {ms(sock['full'])}, "
             f"compact {ms(sock['compact'])}, no-op {ms(sock['noop'])}")
    figure = f"relay cost per round trip, {size} sessions: serve -> daemon minus serve --standalone (medians)"
    if size == 10:
        row = res.add(figure, value, "< 0.3 ms (list)", diffs["full"] < 0.0003)
        row.note = (f"the relay path's list median is {ms(diffs['full'])} above serve --standalone's; "
                    f"{ms(sock['full'])} of it is the relay process itself (vs the daemon's socket)")
    else:
        res.add(figure, value)
