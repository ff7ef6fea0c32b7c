"""Start-up: spawning `codex-sessions serve` to its `initialize` answer while the daemon runs
(what an editor waits for), against a bare pygls server that imports nothing else; also
`serve --standalone`, and `serve` when no daemon runs yet (it starts one)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from codex_sessions.testing.client import SidecarClient

from .util import BARE_SERVER, SERVE, STANDALONE, Results, Side, median, ms, stop_daemon


async def once(argv: list[str], env: dict[str, str]) -> float:
    client = SidecarClient(argv, env=env)
    t0 = time.perf_counter()
    await client.start()
    took = time.perf_counter() - t0
    await client.stop()
    return took


async def run(res: Results, quick: bool) -> None:
    reps = 5 if quick else 15
    tmp = Path(tempfile.mkdtemp(prefix="bench-start-"))
    env = dict(os.environ, CODEX_SESSIONS_STATE_DIR=str(tmp / "state"),
               CODEX_SESSIONS_CODEX="/nonexistent/codex")
    alone = dict(env, CODEX_SESSIONS_STATE_DIR=str(tmp / "standalone"))
    cold_env = dict(env, CODEX_SESSIONS_STATE_DIR=str(tmp / "cold"))
    holder = await Side("daemon", env).start()  # an editor already connected: the daemon runs
    try:
        await once(SERVE, env)  # warm the page cache and .pyc files
        await once(BARE_SERVER, env)
        await once(STANDALONE, alone)
        serve, bare, standalone, cold = [], [], [], []
        for i in range(reps):  # interleaved
            serve.append(await once(SERVE, env))
            bare.append(await once(BARE_SERVER, env))
            standalone.append(await once(STANDALONE, alone))
            if i < 3:  # no daemon yet: serve starts one and waits for it
                cold.append(await once(SERVE, cold_env))
                await stop_daemon(tmp / "cold", cold_env)
    finally:
        await holder.close()
    res.raw.update(start_serve=serve, start_bare=bare, start_standalone=standalone, start_cold=cold)
    res.add("start-up: bare pygls server, spawn to initialize answer", f"median {ms(median(bare))} (n={reps})")
    took = median(serve)
    row = res.add("start-up: codex-sessions serve with the daemon running, spawn to initialize answer",
                  f"median {ms(took)} = {took / median(bare):.2f}x the bare server (n={reps})",
                  "< 150 ms", took < 0.150)
    row.note = (f"median {ms(took)} vs 150 ms ({took / 0.150:.2f}x the target); a bare pygls server "
                f"takes {ms(median(bare))} on this machine in the same run")
    res.add("start-up: serve --standalone, spawn to initialize answer",
            f"median {ms(median(standalone))} = {median(standalone) / median(bare):.2f}x the bare server")
    res.add("start-up: serve with no daemon running (it starts the daemon), spawn to initialize answer",
            f"median {ms(median(cold))} (n={len(cold)})")
