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
SIDECAR = [str(VENV_BIN / "codex-sessions"), "serve"] if (VENV_BIN / "codex-sessions").exists() \
    else [PYTHON, "-m", "codex_sessions", "serve"]
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
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

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
