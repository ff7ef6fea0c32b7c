"""Projects and names: project roots, their hash, session names, buffer names."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from ..errors import InvalidParams, InvalidProject

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,19}$")
DEFAULT_NAME = "main"


@dataclass(frozen=True)
class Project:
    root: str
    name: str
    hash: str

    def to_wire(self) -> dict[str, str]:
        return {"root": self.root, "name": self.name, "hash": self.hash}


def project_hash(root: str) -> str:
    """First 8 hex digits of SHA-1 over `root + "/"`, as Emacs's secure-hash gives."""
    return hashlib.sha1((root.rstrip("/") + "/").encode("utf-8")).hexdigest()[:8]


def project_from_root(root: str) -> Project:
    root = root.rstrip("/") or "/"
    return Project(root=root, name=os.path.basename(root) or "/", hash=project_hash(root))


PSEUDO_FILE_SYSTEMS = ("/proc", "/sys", "/dev", "/run")


def _is_repository(here: str) -> bool:
    """`.git` that is a worktree's file, or a folder that really is a repository."""
    dot_git = os.path.join(here, ".git")
    if os.path.isfile(dot_git):
        return True
    return os.path.isdir(dot_git) and os.path.exists(os.path.join(dot_git, "HEAD"))


def resolve_project(path: object, field: str = "project") -> Project:
    """The project holding `path`: nearest ancestor that is a git repository, else `path`."""
    if not isinstance(path, str) or not path:
        raise InvalidParams(field, "an absolute path inside a project is required")
    if any(c in path for c in "\0\n\r") or not path.isprintable():
        raise InvalidParams(field, f"must be a path without control characters (got {path!r})")
    if not os.path.isabs(path):
        raise InvalidProject(f"{field}: must be an absolute path (got {path!r})", field)
    real = os.path.realpath(path)
    if not os.path.exists(real):
        raise InvalidProject(f"{field}: {path} does not exist", field)
    if real == "/" or any(real == p or real.startswith(p + "/") for p in PSEUDO_FILE_SYSTEMS):
        raise InvalidProject(f"{field}: {path} is not a project folder (the file system root or a "
                             "pseudo file system)", field)
    start = real if os.path.isdir(real) else os.path.dirname(real)
    here = start
    while True:
        if _is_repository(here) and here != "/":
            return project_from_root(here)
        parent = os.path.dirname(here)
        if parent == here:
            break
        here = parent
    if not os.path.isdir(real):
        raise InvalidProject(f"{field}: {path} is not a directory and not inside a git project", field)
    return project_from_root(real)


def check_name(name: object, field: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidParams(
            field, f"must be 1-20 letters, digits, '-' or '_', starting with a letter or digit "
                   f"(got {name!r})")
    return name


def buffer_name(project: Project, session: str) -> str:
    return f"*codex:{project.name}:{session}:{project.hash}*"
