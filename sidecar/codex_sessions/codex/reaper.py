"""No orphans: kill Codex process trees, also when the sidecar itself is killed.

The sidecar starts `python -m codex_sessions.reaper` with a pipe on its stdin
and writes `+PID` / `-PID` lines for each Codex it starts and stops. When the
pipe closes (the sidecar exited, however it exited), the reaper kills the
trees of the PIDs still listed, then exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


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
    children = _children_map()
    tree, todo = [], [pid]
    while todo:
        here = todo.pop()
        tree.append(here)
        todo.extend(children.get(here, []))
    return tree


def kill_tree(pid: int) -> None:
    """SIGKILL `pid`, its process group and all its descendants."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for member in process_tree(pid):
        try:
            os.kill(member, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


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
