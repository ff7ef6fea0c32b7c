"""Baseline: a bare pygls server with one do-nothing custom method, importing nothing else.

Run as `python bench/bare_server.py`; it speaks the same Content-Length framed
JSON-RPC over stdio as `codex-sessions serve`. `bench/noop` answers `{}`.
"""

from pygls.lsp.server import LanguageServer

server = LanguageServer("bench-bare", "0")


@server.feature("bench/noop")
def noop(ls, params):
    return {}


if __name__ == "__main__":
    server.start_io()
