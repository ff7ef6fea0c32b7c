"""The command that starts Codex: npm's `codex` launcher replaced by the native binary.

npm installs `codex` as a Node script (`@openai/codex/bin/codex.js`) that finds the
platform package's binary and runs it; on Node without `process.execve` (Debian's
v20) it stays alive as a parent process for Codex's whole life, 41 MiB per Codex.
We resolve the binary the way the launcher does and start it directly, with the
same environment the launcher would give it. Any other command is left alone.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

TRIPLES = {
    ("Linux", "x86_64"): ("x86_64-unknown-linux-musl", "@openai/codex-linux-x64"),
    ("Linux", "aarch64"): ("aarch64-unknown-linux-musl", "@openai/codex-linux-arm64"),
    ("Darwin", "x86_64"): ("x86_64-apple-darwin", "@openai/codex-darwin-x64"),
    ("Darwin", "arm64"): ("aarch64-apple-darwin", "@openai/codex-darwin-arm64"),
}
LAUNCHER = Path("@openai") / "codex" / "bin" / "codex.js"


def _package_root(program: str) -> Path | None:
    """The `@openai/codex` folder when `program` is its npm launcher."""
    found = program if os.sep in program else shutil.which(program)
    if not found:
        return None
    real = Path(os.path.realpath(found))
    if real.parts[-len(LAUNCHER.parts):] != LAUNCHER.parts:
        return None
    return real.parent.parent


def _platform_binary(root: Path) -> Path | None:
    triple_package = TRIPLES.get((platform.system(), platform.machine()))
    if triple_package is None:
        return None
    triple, package = triple_package
    # Node's resolution from the package: its own node_modules, then each ancestor's.
    candidates = [root / "node_modules" / package]
    for folder in root.parents:
        if folder.name == "node_modules":
            candidates.append(folder / package)
    candidates.append(root)  # the launcher's fallback: a vendor/ folder in the package
    for candidate in candidates:
        binary = candidate / "vendor" / triple / "bin" / "codex"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    return None


def native(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """`argv` with npm's launcher replaced by its binary, and the env it would add."""
    root = _package_root(argv[0]) if argv else None
    binary = _platform_binary(root) if root else None
    if binary is None or root is None:
        return argv, {}
    return [str(binary), *argv[1:]], {"CODEX_MANAGED_PACKAGE_ROOT": str(root),
                                      "CODEX_MANAGED_BY_NPM": "1"}
