"""An offline world for Codex: a scripted model, a private CODEX_HOME, a git project."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from .model_server import ModelServer

PINNED_CODEX = Path(__file__).resolve().parents[3] / ".tools" / "node_modules" / ".bin" / "codex"


def find_codex() -> str | None:
    """The Codex for tests and the demo: $CODEX_SESSIONS_TEST_CODEX, the pinned one, or PATH's."""
    explicit = os.environ.get("CODEX_SESSIONS_TEST_CODEX")
    if explicit:
        return explicit
    if PINNED_CODEX.exists():
        return str(PINNED_CODEX)
    return shutil.which("codex")


def make_git_project(path: Path, files: dict[str, str] | None = None) -> Path:
    """Create a git repository at `path` with one commit of `files`."""
    path.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {"README.md": "# demo project\n"}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    env = dict(os.environ, GIT_AUTHOR_NAME="demo", GIT_AUTHOR_EMAIL="demo@example.invalid",
               GIT_COMMITTER_NAME="demo", GIT_COMMITTER_EMAIL="demo@example.invalid")
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                 ["git", "commit", "-q", "-m", "initial"]):
        subprocess.run(argv, cwd=path, check=True, env=env)
    return path.resolve()


class OfflineCodex:
    """Everything a sidecar needs to run the real Codex offline, under one folder."""

    def __init__(self, root: Path, codex: str | None = None) -> None:
        self.root = root
        self.codex = codex or find_codex()
        if not self.codex:
            raise RuntimeError("no Codex binary: run scripts/setup (installs the pinned @openai/codex)")
        self.model = ModelServer().start()
        self.codex_home = root / "codex-home"
        self.state_dir = root / "state"
        # Codex runs commands in login shells: a private HOME keeps the machine's shell
        # start-up files (pyenv rehash and its lock, prompts) out of the scripted world.
        self.home = root / "home"
        self.codex_home.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)

    @property
    def codex_command(self) -> list[str]:
        return [self.codex, *self.model.codex_flags()]

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for a sidecar: CODEX_HOME, state folder and Codex command."""
        env = dict(os.environ)
        env.update(HOME=str(self.home), CODEX_HOME=str(self.codex_home),
                   CODEX_SESSIONS_STATE_DIR=str(self.state_dir),
                   CODEX_SESSIONS_CODEX=shlex.join(self.codex_command))
        env.update(extra)
        return env

    def stop_daemon(self) -> None:
        """Stop this world's daemon, if one runs (as `codex-sessions daemon stop` does)."""
        if (self.state_dir / "daemon.pid").exists():
            subprocess.run([sys.executable, "-m", "codex_sessions", "--state-dir",
                            str(self.state_dir), "daemon", "stop"], env=self.env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def close(self) -> None:
        self.stop_daemon()
        self.model.stop()
