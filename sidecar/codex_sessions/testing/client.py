"""The tests' and benchmarks' client: the protocol client, spawning `serve` as an editor would."""

from __future__ import annotations

from ..rpc.client import Client, Predicate, RpcError, connect_daemon

SidecarClient = Client

__all__ = ["Client", "Predicate", "RpcError", "SidecarClient", "connect_daemon"]
