"""codex-sessions benchmarks: run `scripts/bench` (or `.venv/bin/python -m bench.run`)."""
