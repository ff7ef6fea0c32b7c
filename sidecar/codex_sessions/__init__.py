"""codex-sessions: named, persistent Codex sessions per project."""

__version__ = "0.1.0"
