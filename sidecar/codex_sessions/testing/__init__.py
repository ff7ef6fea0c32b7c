"""Helpers shared by the tests, the benchmarks and `codex-sessions demo`."""
