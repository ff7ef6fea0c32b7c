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
            "git", "status", "--porcelain=v1", "-z", "--untracked-files=all",
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
    """The last snapshot of one project's work tree, shared by its sessions.

    Each observation takes a new snapshot and returns what changed since the
    previous one, so concurrent sessions each get the changes that appeared
    around their own commands, not each other's.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.last: Snapshot | None = None
        self._lock = asyncio.Lock()

    async def advance(self) -> list[dict[str, str]]:
        async with self._lock:
            now = await snapshot(self.root)
            found = changed_between(self.last, now)
            self.last = now
            return found
