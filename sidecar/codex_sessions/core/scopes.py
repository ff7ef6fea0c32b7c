"""Write scopes and overlaps: who may write where, and who wrote the same file.

A scope is a list of globs relative to the work tree (`**` any depth, `*` and `?`
within one path part). Two scopes intersect when one's fixed prefix lies inside
the other's (a cautious test: it may warn where the files never meet).
"""

from __future__ import annotations

import functools
import re

WILD = re.compile(r"[*?\[]")


@functools.lru_cache(maxsize=512)
def _pattern(glob: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            if glob.startswith("/", i):
                out[-1] = "(?:.*/)?"
                i += 1
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out) + "(?:/.*)?")


def in_scope(path: str, scope: list[str]) -> bool:
    return any(_pattern(glob.strip("/")).fullmatch(path) for glob in scope)


def _prefix(glob: str) -> str:
    match = WILD.search(glob)
    return glob[:match.start()] if match else glob


def intersect(a: list[str], b: list[str]) -> list[tuple[str, str]]:
    """The pairs of globs of two scopes that may match the same file."""
    found = []
    for x in a:
        for y in b:
            px, py = _prefix(x.strip("/")), _prefix(y.strip("/"))
            if px.startswith(py) or py.startswith(px):
                found.append((x, y))
    return found
