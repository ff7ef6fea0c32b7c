"""Fixtures: the real Codex, a scripted model on 127.0.0.1, a sidecar over stdio."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from codex_sessions.testing.client import SidecarClient
from codex_sessions.testing.sandbox import OfflineCodex, make_git_project


@pytest.fixture
def offline(tmp_path: Path):
    """A scripted model server, a private CODEX_HOME and state folder."""
    world = OfflineCodex(tmp_path / "world")
    yield world
    world.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_git_project(tmp_path / "ultra")


@pytest.fixture
def other_project(tmp_path: Path) -> Path:
    return make_git_project(tmp_path / "other")


@pytest.fixture
async def sidecar(offline: OfflineCodex):
    """A running `codex-sessions serve`, initialized, shut down after the test."""
    client = SidecarClient([sys.executable, "-m", "codex_sessions", "serve"], env=offline.env())
    client.model = offline.model  # type: ignore[attr-defined]
    await client.start()
    yield client
    await client.stop()


class HttpDaemon:
    """`codex-sessions daemon --http 127.0.0.1:0` in an offline world: its URL and token."""

    def __init__(self, world: OfflineCodex) -> None:
        import json
        import subprocess
        import time
        self.world = world
        self.log = world.root / "daemon.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "codex_sessions", "--state-dir", str(world.state_dir), "daemon",
             "--http", "127.0.0.1:0", "--log-file", str(self.log)],
            env=world.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            status = subprocess.run(
                [sys.executable, "-m", "codex_sessions", "--state-dir", str(world.state_dir),
                 "daemon", "status", "--json"], env=world.env(), capture_output=True, text=True)
            if status.returncode == 0:
                self.status = json.loads(status.stdout)
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not start: {self.proc.stderr.read()}")
            time.sleep(0.1)
        self.url: str = self.status["http"]["url"]
        self.token_file = Path(self.status["http"]["tokenFile"])
        self.token = self.token_file.read_text().strip()
        self.auth = {"Authorization": f"Bearer {self.token}"}

    def close(self) -> None:
        self.proc.terminate()  # the daemon stops cleanly on SIGTERM (as on `daemon stop`)
        try:
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        self.world.close()


@pytest.fixture(scope="module")
def http_daemon(tmp_path_factory):
    """One daemon with the HTTP API for a whole test module (each test uses its own project)."""
    daemon = HttpDaemon(OfflineCodex(tmp_path_factory.mktemp("http-world")))
    yield daemon
    daemon.close()


def pytest_unconfigure(config):
    """Threads left running would keep the test run from exiting, and a hang costs CI its
    hour: name them and fail at once instead (a test left something open)."""
    import threading
    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if stuck:
        print("\nFAILED: threads still alive at the end (a test left them open):",
              [(t.name, type(t).__name__) for t in stuck], file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(3)
