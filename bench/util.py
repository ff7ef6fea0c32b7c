"""Shared pieces of the benchmarks: statistics, /proc readings, a timestamping client."""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codex_sessions.testing.client import SidecarClient

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BARE_SERVER = [PYTHON, str(ROOT / "bench" / "bare_server.py")]
VENV_BIN = Path(PYTHON).parent
CLI = [str(VENV_BIN / "codex-sessions")] if (VENV_BIN / "codex-sessions").exists() \
    else [PYTHON, "-m", "codex_sessions"]
SERVE = [*CLI, "serve"]                       # what editors run: relays to the daemon
STANDALONE = [*CLI, "serve", "--standalone"]  # a sidecar of its own, sessions end with it
SIDECAR = SERVE  # the name bench/sse.py uses
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def p99(xs: list[float]) -> float:
    """Nearest-rank 99th percentile."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[max(0, math.ceil(0.99 * len(s)) - 1)]


def boot(a: list[float], b: list[float], how: Any, iters: int = 1000) -> tuple[float, float]:
    """95% bootstrap interval of how(median(a), median(b)): how sure a figure is on a noisy machine."""
    import random
    rng = random.Random(0)
    got = sorted(how(statistics.median(rng.choices(a, k=len(a))),
                     statistics.median(rng.choices(b, k=len(b)))) for _ in range(iters))
    return got[int(0.025 * iters)], got[int(0.975 * iters) - 1]


def ci(a: list[float], b: list[float]) -> str:
    """The interval of the ratio of medians a / b."""
    lo, hi = boot(a, b, lambda x, y: x / y)
    return f"95% CI {lo:.2f}-{hi:.2f}"


def ci_diff(a: list[float], b: list[float]) -> str:
    """The interval of the difference of medians a - b, in ms."""
    lo, hi = boot(a, b, lambda x, y: x - y)
    return f"95% CI {lo * 1000:.2f} to {hi * 1000:.2f} ms"


def ms(x: float) -> str:
    return f"{x * 1000:.2f} ms" if x < 0.1 else f"{x * 1000:.0f} ms"


@dataclass
class Row:
    figure: str
    value: str
    target: str = "-"
    met: bool | None = None  # None: informational (a baseline, or no target)
    note: str = ""           # for the closing notes when missed


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def add(self, *args: Any, **kw: Any) -> Row:
        row = Row(*args, **kw)
        self.rows.append(row)
        print(f"  {row.figure}: {row.value}" + (f"  [target {row.target}: "
              f"{'met' if row.met else 'MISSED'}]" if row.met is not None else ""), flush=True)
        return row


# ---- /proc ------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, found by parent pid in /proc, recursively."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def smaps_rollup(pid: int) -> dict[str, int]:
    """Bytes by field of /proc/PID/smaps_rollup (Rss, Pss, Private_Clean, ...); {} if gone."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return out


def tree_memory(pid: int) -> dict[str, int]:
    """PSS, USS (private pages) and RSS summed over `pid` and every descendant; process count."""
    total = {"pss": 0, "uss": 0, "rss": 0, "count": 0}
    for p in [pid, *descendants(pid)]:
        m = smaps_rollup(p)
        if not m:
            continue
        total["pss"] += m.get("Pss", 0)
        total["uss"] += m.get("Private_Clean", 0) + m.get("Private_Dirty", 0)
        total["rss"] += m.get("Rss", 0)
        total["count"] += 1
    return total


def sharers(path: str, exclude: set[int]) -> int:
    """Processes outside `exclude` running the executable `path` (they share its pages)."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in exclude:
            try:
                if os.readlink(f"/proc/{entry}/exe") == path:
                    count += 1
            except OSError:
                pass
    return count


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in descendants(pid):
        try:
            total += cpu_seconds(p)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


# ---- a client that stamps every notification ---------------------------------------------

class TimedClient(SidecarClient):
    """SidecarClient that records when each notification arrived (time.monotonic())."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.stamps: list[float] = []
        self.watchers: list[Any] = []

    async def _dispatch(self, message: dict[str, Any]) -> None:
        if "method" in message:
            self.stamps.append(time.monotonic())
        await super()._dispatch(message)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def since(self, index: int, method: str, sid: str | None = None):
        """(stamp, params) of notifications `method` from index on, for session sid."""
        out = []
        for stamp, m in zip(self.stamps[index:], self.notifications[index:]):
            if m.get("method") != method:
                continue
            p = m["params"]
            if sid is not None and p.get("id", (p.get("session") or {}).get("id")) != sid:
                continue
            out.append((stamp, p))
        return out


class Side:
    """One codex-sessions under test, seen from a client.

    "daemon": `serve` (what editors run), relaying to the state folder's daemon, which it
    starts; closing it stops that daemon. "socket": a client of an already running daemon's
    socket, no relay (what the CLI does). "standalone": `serve --standalone`, a sidecar of
    the client's own. `options` are initialization options (e.g. codexProcess).
    """

    def __init__(self, kind: str, env: dict[str, str], **options: Any) -> None:
        assert kind in ("daemon", "socket", "standalone")
        self.kind = kind
        self.env = env
        self.options = options
        self.state_dir = Path(env["CODEX_SESSIONS_STATE_DIR"])
        argv = STANDALONE if kind == "standalone" else SERVE
        self.client = TimedClient(argv, env=env)
        self.server_pid = 0  # the process that owns the sessions: daemon or standalone sidecar

    async def start(self) -> "Side":
        if self.kind == "socket":
            from codex_sessions.relay import ensure_daemon
            sock = await asyncio.to_thread(ensure_daemon, self.state_dir, False)
            await self.client.connect(sock, **self.options)
        else:
            await self.client.start(**self.options)
        if self.kind == "standalone":
            self.server_pid = self.client.pid
        else:
            self.server_pid = (await self.client.request("codex/daemon/status", {}))["pid"]
        return self

    @property
    def relay_pid(self) -> int | None:
        return self.client.pid if self.kind == "daemon" else None

    async def close(self) -> None:
        await self.client.stop()
        if self.kind == "daemon":
            await stop_daemon(self.state_dir, self.env)


async def stop_daemon(state_dir: Path, env: dict[str, str]) -> None:
    """`codex-sessions daemon stop` for that folder (it waits until the daemon is gone)."""
    proc = await asyncio.create_subprocess_exec(
        *CLI, "--state-dir", str(state_dir), "daemon", "stop", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await asyncio.wait_for(proc.wait(), 60)


async def finished(client: SidecarClient, sid: str, turns: int, timeout: float = 300) -> dict[str, Any]:
    return await client.wait_for(
        "codex/session/finished",
        lambda p: p["session"]["id"] == sid and p["session"]["turns"] >= turns, timeout)


async def start_session(client: SidecarClient, project: Path, name: str,
                        prompt: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"project": str(project), "name": name}
    if prompt:
        params["prompt"] = prompt
    return (await client.request("codex/session/start", params))["session"]


def machine() -> dict[str, str]:
    import platform
    import subprocess
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    free = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.rstrip()

    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout
            return out.strip().splitlines()[0] if out.strip() else "?"
        except (OSError, subprocess.SubprocessError):
            return "not found"
    import shutil
    from codex_sessions.testing.sandbox import find_codex
    tools = ", ".join([version([find_codex() or "codex", "--version"]),
                       version([shutil.which("emacs") or "emacs", "--version"]),
                       version([shutil.which("nvim", path=str(VENV_BIN)) or "nvim", "--version"])])
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    dirty = git("status", "--porcelain", "--", "sidecar", "elisp", "lua", "plugin")
    code = (git("rev-parse", "--short", "HEAD") or "?") + (
        f" + uncommitted changes in {len(dirty.splitlines())} files of sidecar/elisp/lua" if dirty else "")
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "free": free, "tools": tools, "load": load, "code": code,
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


async def settle(seconds: float = 0.3) -> None:
    await asyncio.sleep(seconds)
