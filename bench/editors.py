"""The Emacs (batch) and Neovim (headless) front-ends taking streamed agent text into a
session buffer, through `serve` -> daemon as users run them; the cost of the last MiB over
the first.

Each editor starts the session through its public entry with `stream-bytes: N`, and
samples its buffer's size with its own CPU time (Emacs: get-internal-run-time; Neovim:
getrusage) and the wall clock. The cost of a MiB is the editor's CPU time spent while
its buffer grew by that MiB (interpolated between samples)."""

from __future__ import annotations

import asyncio
import shlex
import shutil
import tempfile
from pathlib import Path

from codex_sessions.testing.sandbox import make_git_project

from .textmodel import offline_world
from .util import MIB, PYTHON, ROOT, VENV_BIN, Results, stop_daemon


def at(samples: list[tuple[int, float, float]], growth: float, col: int) -> float:
    """Column `col` (1: cpu, 2: wall) interpolated at buffer growth `growth`."""
    for (g0, *a), (g1, *b) in zip(samples, samples[1:]):
        if g0 <= growth <= g1:
            if g1 == g0:
                return a[col - 1]
            f = (growth - g0) / (g1 - g0)
            return a[col - 1] + f * (b[col - 1] - a[col - 1])
    raise ValueError(growth)


def analyse(samples: list[tuple[int, float, float]]) -> dict:
    # Start where the agent text starts (the prompt and status lines come first).
    first = next((i for i, s in enumerate(samples) if s[0] >= 4096), None)
    if first is None:
        return {"mib": 0}
    samples = samples[max(0, first - 1):]
    g_s = samples[0][0]
    top = samples[-1][0]
    whole = int((top - g_s) // MIB)
    cpu = [at(samples, g_s + k * MIB, 1) - at(samples, g_s + (k - 1) * MIB, 1) for k in range(1, whole + 1)]
    wall = [at(samples, g_s + k * MIB, 2) - at(samples, g_s + (k - 1) * MIB, 2) for k in range(1, whole + 1)]
    return {"mib": whole, "cpu": cpu, "wall": wall, "grown": top,
            "total_wall": samples[-1][2] - samples[0][2], "total_cpu": samples[-1][1] - samples[0][1]}


def read_samples(path: Path) -> list[tuple[int, float, float]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().split("\n"):
        if line.strip():
            g, c, w = line.split()
            rows.append((int(g), float(c), float(w)))
    return rows


async def run_editor(argv: list[str], env: dict[str, str], out: Path, timeout: float) -> str:
    proc = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, env=env,
                                                stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        text, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        text, _ = await proc.communicate()
    return (text or b"").decode(errors="replace")


def pick(runs: list[dict]) -> dict:
    """The run with the median last/first ratio (runs that took under 2 MiB rank last)."""
    def ratio(a: dict) -> float:
        return a["cpu"][-1] / a["cpu"][0] if a.get("mib", 0) >= 2 and a["cpu"][0] > 0 else float("inf")
    ranked = sorted(runs, key=ratio)
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    chosen["ratios"] = [ratio(a) for a in runs]
    return chosen


def report(res: Results, label: str, a: dict, size: int, limit: float, log: str) -> None:
    if a.get("mib", 0) < 2:
        row = res.add(f"editor: {label} takes {size // MIB} MiB of streamed agent text",
                      f"not measured: only {a.get('grown', 0) / MIB:.1f} MiB arrived in {limit:.0f} s",
                      "last/first MiB < 1.5x", False)
        row.note = f"{label}: the buffer grew by {a.get('grown', 0) / MIB:.1f} MiB in {limit:.0f} s; {log[-300:]}"
        return
    ratio = a["cpu"][-1] / a["cpu"][0] if a["cpu"][0] > 0 else float("inf")
    done = a["mib"] >= size // MIB
    took = (f"{a['mib']} MiB in {a['total_wall']:.1f} s wall, {a['total_cpu']:.1f} s of its CPU"
            + ("" if done else f" (stopped at the {limit:.0f} s limit, short of {size // MIB} MiB)"))
    runs = ", ".join(f"{r:.2f}" for r in a.get("ratios", [ratio]))
    row = res.add(f"editor: {label}, CPU cost of the last MiB / the first (paced stream)",
                  f"{ratio:.2f}x, median of {len(a.get('ratios', [1]))} runs ({runs}); median run: (CPU {a['cpu'][0] * 1000:.0f} ms for MiB 1, "
                  f"{a['cpu'][-1] * 1000:.0f} ms for MiB {a['mib']}; {took})",
                  "< 1.5x", ratio < 1.5 and done)
    row.note = (f"{label}: MiB {a['mib']} cost {ratio:.1f}x MiB 1 of its CPU "
                f"({a['cpu'][-1] * 1000:.0f} vs {a['cpu'][0] * 1000:.0f} ms)"
                + ("" if done else f"; only {a['mib']} of {size // MIB} MiB within {limit:.0f} s")
                + f"; CPU per MiB in that run: {', '.join(f'{c * 1000:.0f}' for c in a['cpu'])} ms")


async def run(res: Results, quick: bool) -> None:
    size = (3 if quick else 10) * MIB
    limit = 45.0 if quick else 150.0
    reps = 1 if quick else 3
    tmp = Path(tempfile.mkdtemp(prefix="bench-editors-"))
    offline = offline_world(tmp / "world")
    sidecar = shlex.join([PYTHON, "-m", "codex_sessions", "serve"])
    emacs = shutil.which("emacs")
    nvim = shutil.which("nvim", path=str(VENV_BIN)) or shutil.which("nvim")
    editors = {
        "Emacs (batch)": (emacs and (ROOT / "elisp" / "my-codex.el").exists(),
                          [emacs or "emacs", "-Q", "--batch", "-L", str(ROOT / "elisp"), "-l",
                           str(ROOT / "bench" / "emacs_stream.el")]),
        "Neovim (headless)": (nvim and (ROOT / "lua" / "codex_sessions" / "init.lua").exists(),
                              [nvim or "nvim", "--headless", "--clean", "-l",
                               str(ROOT / "bench" / "nvim_stream.lua")]),
    }
    count = 0

    async def once(argv: list[str], directive: str) -> tuple[dict, str]:
        nonlocal count
        count += 1
        project = make_git_project(tmp / f"proj{count}")
        out = tmp / f"samples{count}.txt"
        env = offline.env(BENCH_OUT=str(out), BENCH_BYTES=str(size), BENCH_LIMIT=str(limit),
                          BENCH_PROJECT=str(project), BENCH_SIDECAR=sidecar, BENCH_ROOT=str(ROOT),
                          BENCH_DIRECTIVE=directive)
        log = await run_editor(argv, env, out, limit + 60)
        # The editor's exit ends its connection only: stop the daemon and the session's
        # Codex, so that the next run starts as alone as this one did.
        await stop_daemon(offline.state_dir, offline.env())
        return analyse(read_samples(out)), log

    try:
        for label, (available, argv) in editors.items():
            if not available:
                res.add(f"editor: {label}", "not measured: front-end not available",
                        "last/first MiB < 1.5x")
                continue
            # As fast as Codex streams: how long the front-end takes for the whole text.
            fast, log = await once(argv, "stream-bytes")
            if fast.get("mib", 0) >= 1:
                res.add(f"editor: {label} takes {size // MIB} MiB streamed as fast as Codex sends it",
                        f"{fast['mib']} MiB in {fast['total_wall']:.1f} s wall, "
                        f"{fast['total_cpu']:.2f} s of its CPU")
            # Paced, so each MiB arrives in ~10 batches: the cost of each MiB.
            found = []
            for _ in range(reps):
                a, log = await once(argv, "stream-bytes-paced")
                found.append(a)
                if a.get("mib", 0) < size // MIB:
                    break  # it hit the time limit: once is enough
            res.raw[label] = {"fast": fast, "paced": found}
            report(res, label, pick(found), size, limit, log)
    finally:
        offline.close()
