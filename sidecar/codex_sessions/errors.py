"""The protocol's errors, as exceptions pygls turns into JSON-RPC error answers."""

from __future__ import annotations

from typing import Any

from pygls.exceptions import JsonRpcException

INVALID_PARAMS = -32602
SESSION_NOT_FOUND = -32001
SESSION_BUSY = -32002
LIMIT_REACHED = -32003
NAME_TAKEN = -32004
CODEX_UNAVAILABLE = -32005
INVALID_PROJECT = -32006
INVALID_STATE = -32007
STORAGE_UNAVAILABLE = -32008


class ProtocolError(JsonRpcException):
    """An error answer with the protocol's code, a sentence for people, and data."""

    CODE = -32000

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(code=self.CODE, message=message, data=data)


class InvalidParams(ProtocolError):
    CODE = INVALID_PARAMS

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", {"field": field})


class SessionNotFound(ProtocolError):
    CODE = SESSION_NOT_FOUND


class SessionBusy(ProtocolError):
    CODE = SESSION_BUSY


class LimitReached(ProtocolError):
    CODE = LIMIT_REACHED


class NameTaken(ProtocolError):
    CODE = NAME_TAKEN


class CodexUnavailable(ProtocolError):
    CODE = CODEX_UNAVAILABLE


class InvalidProject(ProtocolError):
    CODE = INVALID_PROJECT

    def __init__(self, message: str, field: str = "project") -> None:
        super().__init__(message, {"field": field})


class InvalidState(ProtocolError):
    CODE = INVALID_STATE


class StorageUnavailable(ProtocolError):
    """The database cannot be opened (unusable folder, newer schema): the message says what to do."""

    CODE = STORAGE_UNAVAILABLE
