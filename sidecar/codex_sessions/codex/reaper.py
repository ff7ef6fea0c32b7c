"""No orphans: kill Codex process trees, also when the sidecar itself is killed.

The sidecar starts `python -m codex_sessions.reaper` with a pipe on its stdin
and writes `+PID` / `-PID` lines for each Codex it starts and stops. When the
pipe closes (the sidecar exited, however it exited), the reaper kills the
trees of the PIDs still listed, then exits.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: parse after the last ')'
        fields = stat[stat.rfind(b")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def process_tree(pid: int) -> list[int]:
    """`pid` and every descendant of it, parents first."""
    return _walk(_children_map(), [pid])


def _walk(children: dict[int, list[int]], roots: list[int]) -> list[int]:
    tree, todo, seen = [], list(roots), set()
    while todo:
        here = todo.pop()
        if here in seen:
            continue
        seen.add(here)
        tree.append(here)
        todo.extend(children.get(here, []))
    return tree


def alive(pid: int | None) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_tree(pid: int) -> None:
    """SIGKILL `pid`, its process group and all its descendants, however they detached.

    The tree is frozen first (SIGSTOP) and walked again until it holds still: a
    stopped process cannot fork, and killing a parent first would hand its children
    (e.g. Codex's shells, which run in sessions of their own) to PID 1, out of reach.
    """
    members: set[int] = set()
    for _ in range(20):
        found = set(_walk(_children_map(), [pid, *members])) - members
        if not found:
            break
        for member in found:
            _signal(member, signal.SIGSTOP)
        members |= found
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for member in members:
        _signal(member, signal.SIGKILL)


def become_subreaper() -> None:
    """Orphans of our descendants come to us, not to PID 1 (Linux), so none escapes."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def kill_strays(known: set[int]) -> None:
    """Kill (and reap) children we never started: orphans of a Codex that ended.

    Ours stay: the processes in `known`, and those in our own process group (the
    git commands we run); a Codex and what it leaves run in groups of their own.
    """
    me, group = os.getpid(), os.getpgrp()
    for child in _children_map().get(me, []):
        if child in known:
            continue
        try:
            if os.getpgid(child) == group:
                continue
        except ProcessLookupError:
            continue
        kill_tree(child)
        for _ in range(20):  # SIGKILL takes a moment; then reap it (it is our child now)
            try:
                if os.waitpid(child, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                break
            time.sleep(0.005)


class Reaper:
    """The sidecar's side: a child process that outlives it long enough to clean up."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "codex_sessions.codex.reaper"], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, start_new_session=True, close_fds=True)

    def _say(self, line: str) -> None:
        try:
            assert self._proc.stdin
            self._proc.stdin.write(line.encode() + b"\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    @property
    def pid(self) -> int:
        return self._proc.pid

    def watch(self, pid: int) -> None:
        self._say(f"+{pid}")

    def forget(self, pid: int) -> None:
        self._say(f"-{pid}")

    def close(self) -> None:
        """Let the reaper kill whatever is still listed, and exit."""
        if self._proc.stdin:
            self._proc.stdin.close()
        try:
            self._proc.wait(3)
        except subprocess.TimeoutExpired:
            self._proc.kill()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # an editor's ^C is for the sidecar
    watched: set[int] = set()
    for line in sys.stdin:
        line = line.strip()
        if line[:1] == "+":
            watched.add(int(line[1:]))
        elif line[:1] == "-":
            watched.discard(int(line[1:]))
    for pid in watched:
        kill_tree(pid)


if __name__ == "__main__":
    main()
