"""Which files a turn changed, observed with `git status` before and after it.

Shell commands change files without telling Codex's fileChange items, so the
sidecar looks for itself. A snapshot maps every dirty or untracked path to a
cheap signature (size and mtime); two snapshots differ where a file changed.
"""

from __future__ import annotations

import asyncio
import os

Snapshot = dict[str, tuple[bytes, int, int]]


async def snapshot(root: str) -> Snapshot | None:
    """Dirty and untracked files of the git work tree at `root`; None outside git."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "git", "--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=all",
            cwd=root, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
    except OSError:
        return None
    if proc.returncode != 0:
        return None
    result: Snapshot = {}
    entries = out.split(b"\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:].decode("utf-8", "surrogateescape")
        if code[:1] in (b"R", b"C"):
            i += 1  # the next entry is the original path
        try:
            st = os.lstat(os.path.join(root, path))
            result[path] = (code, st.st_size, st.st_mtime_ns)
        except OSError:
            result[path] = (code, -1, -1)  # deleted
    return result


def changed_between(before: Snapshot | None, after: Snapshot | None) -> list[dict[str, str]]:
    """`[{path, kind}]` for each file whose state differs between the snapshots."""
    if before is None or after is None:
        return []
    changes = []
    for path in sorted(before.keys() | after.keys()):
        now = after.get(path)
        if before.get(path) == now:
            continue
        if now is None or now[1] == -1:
            kind = "delete" if now is not None else "update"  # None: reverted to clean
        else:
            kind = "add" if now[0] == b"??" else "update"
        changes.append({"path": path, "kind": kind})
    return changes


class ProjectWatch:
    """The last seen state of one project's work tree, shared by its sessions.

    A command is credited with the files that changed since the last look and whose
    modification time falls inside the command's own run (Codex reports when it
    started and ended), so sessions running side by side in one work tree each get
    their own changes, and an edit the user makes meanwhile is nobody's.
    """

    SLACK_MS = 50  # file times come from the kernel's coarse clock

    def __init__(self, root: str) -> None:
        self.root = root
        self.last: Snapshot | None = None
        self._lock = asyncio.Lock()

    async def lock_free(self) -> None:
        """Wait for the observations already under way."""
        async with self._lock:
            pass

    async def reset(self) -> None:
        """Take the current state as the baseline."""
        async with self._lock:
            self.last = await snapshot(self.root)

    async def changes_during(self, start_ms: float, end_ms: float) -> list[dict[str, str]]:
        """Changed files whose modification time lies in [start_ms, end_ms]."""
        async with self._lock:
            now = await snapshot(self.root)
            if now is None or self.last is None:
                self.last = now
                return []
            credited = []
            for change in changed_between(self.last, now):
                path = change["path"]
                state = now.get(path)
                if state is not None and state[1] != -1:
                    mtime_ms = state[2] / 1e6
                    if not start_ms - self.SLACK_MS <= mtime_ms <= end_ms + self.SLACK_MS:
                        continue  # someone else's change
                credited.append(change)
                if state is None:
                    self.last.pop(path, None)
                else:
                    self.last[path] = state
            return credited
