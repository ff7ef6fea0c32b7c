"""Fixtures: the real Codex, a scripted model on 127.0.0.1, a sidecar over stdio."""

from __future__ import annotations

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
