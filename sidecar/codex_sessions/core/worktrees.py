"""Git work trees for isolated sessions: create, diff, merge (staged, not committed), discard.

A `worktree` session works on its own branch `codex/NAME` from the project's HEAD,
in a folder under the state folder (outside the project, so the project's
tools never see it, and writable by Codex's sandbox, whose writable root is the
session's folder). Nothing here runs inside Codex's sandbox: the sidecar itself
commits and merges.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidProject, InvalidState

GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
AUTHOR = {"GIT_AUTHOR_NAME": "codex-sessions", "GIT_AUTHOR_EMAIL": "codex-sessions@localhost",
          "GIT_COMMITTER_NAME": "codex-sessions", "GIT_COMMITTER_EMAIL": "codex-sessions@localhost"}


class GitError(Exception):
    """A git command failed; the message is git's own."""


async def git(cwd: str, *args: str, ok: tuple[int, ...] = (0,), author: bool = False,
              env_extra: dict[str, str] | None = None) -> str:
    env = {**os.environ, **GIT_ENV, **(env_extra or {})}
    if author:  # the user's identity when git knows one, else ours
        for key, value in AUTHOR.items():
            env.setdefault(key, value)
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode not in ok:
        raise GitError((err or out).decode("utf-8", "replace").strip() or f"git {args[0]} failed")
    return out.decode("utf-8", "surrogateescape")


@dataclass
class Worktree:
    path: str
    branch: str
    base: str

    def to_wire(self) -> dict[str, Any]:
        return {"path": self.path, "branch": self.branch, "base": self.base}


async def is_git(root: str) -> bool:
    try:
        return (await git(root, "rev-parse", "--is-inside-work-tree")).strip() == "true"
    except (GitError, OSError):
        return False


async def create(root: str, folder: Path, name: str) -> tuple[Worktree, list[str]]:
    """A work tree on a new branch from HEAD; and warnings for the user."""
    if not await is_git(root):
        raise InvalidProject(f"{root} is not a git repository: worktree isolation needs git "
                             "(use isolation \"shared\", or `git init` the project)")
    try:
        base = (await git(root, "rev-parse", "HEAD")).strip()
    except GitError:
        raise InvalidProject(f"{root} has no commit yet: a work tree starts from HEAD; commit "
                             "once first") from None
    warnings = []
    dirty = [line[3:] for line in (await git(root, "status", "--porcelain")).splitlines() if line]
    if dirty:
        warnings.append(f"{len(dirty)} uncommitted change(s) in {root} are not in the work tree "
                        f"(it starts from HEAD {base[:12]}): " + ", ".join(dirty[:5]))
    branch = await _free_branch(root, name)
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    await git(root, "worktree", "add", "-q", "-b", branch, str(folder), base)
    return Worktree(str(folder), branch, base), warnings


async def copy(root: str, source: Worktree, folder: Path, name: str) -> Worktree:
    """A work tree on a new branch holding what `source` holds now, committed or not.

    The fork of a work-tree session continues a conversation about those files: it gets
    them as they are (changed, added, deleted: uncommitted, as in `source`), and the same
    base, so its diff and merge cover the source's work and its own."""
    index = folder.parent / f".{folder.name}.index"
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    own_index = {"GIT_INDEX_FILE": str(index)}
    head = (await git(source.path, "rev-parse", "HEAD")).strip()
    try:  # a snapshot commit of the source's files, through an index of our own
        await git(source.path, "read-tree", head, env_extra=own_index)  # tracked ignored files stay
        await git(source.path, "add", "-A", env_extra=own_index)
        tree = (await git(source.path, "write-tree", env_extra=own_index)).strip()
    finally:
        index.unlink(missing_ok=True)
    snapshot = (await git(source.path, "commit-tree", tree, "-p", head, "-m", "snapshot",
                          author=True)).strip()
    branch = await _free_branch(root, name)
    await git(root, "worktree", "add", "-q", "-b", branch, str(folder), head)
    await git(str(folder), "read-tree", "-u", "--reset", snapshot)  # the files as in source
    await git(str(folder), "reset", "-q")  # uncommitted again, as they were there
    return Worktree(str(folder), branch, source.base)


async def _free_branch(root: str, name: str) -> str:
    """`codex/NAME`, or `codex/NAME-N` when that branch exists."""
    branch = f"codex/{name}"
    existing = set((await git(root, "branch", "--list", "--format=%(refname:short)")).split())
    n = 1
    while branch in existing:
        n += 1
        branch = f"codex/{name}-{n}"
    return branch


async def _untracked(cwd: str) -> list[str]:
    out = await git(cwd, "ls-files", "--others", "--exclude-standard", "-z")
    return [p for p in out.split("\0") if p]


async def diff(cwd: str, base: str, paths: list[str] | None = None) -> dict[str, Any]:
    """The unified diff of `cwd` against `base` (untracked files as added), and per-file counts."""
    limit = ["--", *paths] if paths is not None else []
    if paths == []:
        return {"diff": "", "files": []}
    text = await git(cwd, "diff", "--no-color", "--no-ext-diff", base, *limit)
    stat = await git(cwd, "diff", "--numstat", "--name-status", base, *limit)
    numstat = await git(cwd, "diff", "--numstat", base, *limit)
    files: dict[str, dict[str, Any]] = {}
    for line in stat.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0][:1] in "AMDRCT":
            files[parts[-1]] = {"path": parts[-1], "status": _STATUS.get(parts[0][:1], "modified"),
                                "added": 0, "removed": 0}
    for line in numstat.splitlines():
        added, removed, path = (line.split("\t") + ["", "", ""])[:3]
        if path in files:
            files[path]["added"] = int(added) if added.isdigit() else 0
            files[path]["removed"] = int(removed) if removed.isdigit() else 0
    for path in await _untracked(cwd):
        if paths is not None and path not in paths:
            continue
        body = await git(cwd, "diff", "--no-color", "--no-index", "--", "/dev/null", path, ok=(0, 1))
        text += body
        lines = body.count("\n+") - body.count("\n+++")
        files[path] = {"path": path, "status": "added", "added": max(lines, 0), "removed": 0}
    return {"diff": text, "files": sorted(files.values(), key=lambda f: f["path"])}


_STATUS = {"A": "added", "M": "modified", "D": "deleted", "R": "renamed", "C": "copied",
           "T": "modified"}


async def commit_all(worktree: Worktree, message: str) -> bool:
    """Commit everything in the work tree on its branch; False when there was nothing."""
    await git(worktree.path, "add", "-A")
    if not (await git(worktree.path, "status", "--porcelain")).strip():
        return False
    await git(worktree.path, "commit", "-q", "--no-verify", "-m", message, author=True)
    return True


async def merge(root: str, worktree: Worktree, strategy: str, message: str) -> list[str]:
    """Bring the branch into the main work tree, staged and not committed; the files.

    Refused (InvalidState, nothing touched) when the main tree has uncommitted changes
    in the same files, or when the merge would conflict; the files are named.
    """
    await commit_all(worktree, message)
    changed = [p for p in (await git(root, "diff", "--name-only", "HEAD", worktree.branch)).splitlines() if p]
    if not changed:
        return []
    dirty = {line[3:] for line in (await git(root, "status", "--porcelain")).splitlines() if line}
    clash = sorted(dirty & set(changed))
    if clash:
        raise InvalidState(f"the main work tree has uncommitted changes in {', '.join(clash)}; "
                           "commit or stash them first (nothing was merged)", {"files": clash})
    probe = await git(root, "merge-tree", "--write-tree", "--name-only", "HEAD", worktree.branch,
                      ok=(0, 1))
    # --name-only: the tree, then the conflicted files, a blank line, and git's messages
    lines = probe.splitlines()
    named = sorted(set(lines[1:lines.index("")])) if "" in lines else []
    if named or any(line.startswith("CONFLICT") for line in lines):
        raise InvalidState(f"merging {worktree.branch} would conflict in {', '.join(named)}; "
                           "nothing was merged", {"files": named})
    args = ["merge", "--no-commit"] + (["--squash"] if strategy == "squash" else ["--no-ff"])
    await git(root, *args, worktree.branch, author=True)
    return changed


async def discard(root: str, worktree: Worktree) -> None:
    """Remove the work tree and its branch; a folder deleted by hand is pruned, not an error."""
    if os.path.isdir(worktree.path):
        try:
            await git(root, "worktree", "remove", "--force", worktree.path)
        except GitError:
            shutil.rmtree(worktree.path, ignore_errors=True)
    await git(root, "worktree", "prune")
    await git(root, "branch", "-D", worktree.branch, ok=(0, 1))
