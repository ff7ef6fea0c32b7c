"""Connections: LSP-framed JSON-RPC over a byte stream, one pygls server per client.

pygls runs one protocol per server and reads frames in a way one bad header
derails for good, so everything that works around it lives here:
- each connection (stdio, or one client of the daemon's socket) is its own
  `Connection`, a pygls LanguageServer with the handlers registered on it;
- frames are read by framing.py, decoded with orjson, and handed to pygls's
  dispatch; what pygls would ignore (requests after `shutdown`, a second
  `initialize`, non-objects) is answered here with -32600;
- answers and notifications are written here: our results are plain JSON
  (or JSON text already, `Encoded`), so pygls's cattrs walk is skipped, and a
  notification for every client is encoded once (`Hub`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from typing import Any, Callable

import orjson
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import (JsonRPCNotification, JsonRPCRequestMessage, JsonRPCResponseMessage,
                            LanguageServerProtocol, default_converter, lsp_method)

from .. import __version__
from ..errors import ProtocolError
from ..wire import Encoded
from .framing import FrameError, FrameReader, frame

log = logging.getLogger(__name__)

INVALID_REQUEST = -32600
WRITE_BUFFER_LIMIT = 256 * 1024 * 1024  # a client this far behind is not reading: drop it
SPLICE_BYTES = 64 * 1024  # params this big go out as they are, not copied into one frame


def _keep_params_as_dicts(obj: dict[str, Any], cls: type) -> Any:
    return cls(**{"params": None, **obj})  # JSON-RPC lets a request leave params out


@functools.cache
def converter() -> Any:
    """pygls's converter, but custom methods get their params as plain dicts for pydantic.

    One for every connection: cattrs builds its (un)structure functions once per converter,
    and a fresh one made each client's `initialize` pay ~25 ms for them again.
    """
    conv = default_converter()
    conv.register_structure_hook(JsonRPCRequestMessage, _keep_params_as_dicts)
    conv.register_structure_hook(JsonRPCNotification, _keep_params_as_dicts)
    return conv


_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")  # an escaped U+0000, not an escaped backslash + "u0000"


def visible_nul(data: bytes) -> bytes:
    """JSON text whose strings hold no U+0000: it is sent as U+2400 (␀), as long, since
    Emacs's JSON parser refuses a whole message that holds one (a command printing NULs)."""
    if b"\\u0000" not in data:
        return data
    return _NUL.sub(rb"\1\\u2400", data)


def _error_body(msg_id: Any, code: int, message: str, data: Any = None) -> bytes:
    error = {"code": code, "message": message, **({"data": data} if data is not None else {})}
    return orjson.dumps({"jsonrpc": "2.0", "id": msg_id, "error": error})


def _result_body(msg_id: Any, result: Any) -> bytes:
    if isinstance(result, Encoded):
        return b'{"jsonrpc":"2.0","id":' + orjson.dumps(msg_id) + b',"result":' + result.json + b"}"
    return orjson.dumps({"jsonrpc": "2.0", "id": msg_id, "result": result})


def _notification_head(method: str) -> bytes:
    return b'{"jsonrpc":"2.0","method":' + orjson.dumps(method) + b',"params":'


def notification_body(method: str, params: Any) -> bytes:
    if isinstance(params, Encoded):
        return _notification_head(method) + params.json + b"}"
    return orjson.dumps({"jsonrpc": "2.0", "method": method, "params": params})


def notification_frame(method: str, params: Any) -> bytes | tuple[bytes | memoryview, ...]:
    """A framed notification. Params that are big JSON already (a command's output) are not
    copied into it: the frame is then its parts, written one after the other."""
    if not isinstance(params, Encoded):
        return frame(visible_nul(notification_body(method, params)))
    head = _notification_head(method)
    header = b"Content-Length: %d\r\n\r\n" % (len(head) + len(params.json) + 1)
    if len(params.json) < SPLICE_BYTES:
        return visible_nul(b"".join((header, head, params.json, b"}")))
    # asyncio keeps a view's unsent rest without copying it
    return (header + head, memoryview(visible_nul(params.json)), b"}")


class Protocol(LanguageServerProtocol):
    def _send_data(self, data: Any) -> None:
        """Our results are plain JSON (or JSON text already): no cattrs walk."""
        conn: Connection = self._server  # type: ignore[assignment]
        if isinstance(data, JsonRPCResponseMessage):
            result = data.result
            if result is None or isinstance(result, (dict, list, Encoded)):
                conn.write(_result_body(data.id, result))
                return
        if isinstance(data, JsonRPCNotification) and isinstance(data.params, (dict, Encoded)):
            conn.write(notification_body(data.method, data.params))
            return
        conn.write(orjson.dumps(data, default=self._serialize_message))

    def _serialize_message(self, data: Any) -> Any:
        if hasattr(data, "__attrs_attrs__"):
            return self._converter.unstructure(data)
        return super()._serialize_message(data)

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> None:
        """This client is done: close its connection (what else ends is the owner's call)."""
        conn: Connection = self._server  # type: ignore[assignment]
        conn.exit_code = 0 if self._shutdown else 1
        conn.close()


class Connection(LanguageServer):
    """One client: its writer, its state, its handlers."""

    def __init__(self, write: Callable[[bytes], None], close: Callable[[], None],
                 register: Callable[["Connection"], None], peer: str = "") -> None:
        super().__init__("codex-sessions", __version__, protocol_cls=Protocol,
                         converter_factory=converter)
        self._write = write
        self._close = close
        self.peer = peer
        self.initialized = False  # `initialize` answered: it gets notifications
        self.closed = False
        self.exit_code = 1  # 0 once it said shutdown, then exit
        self.state: Any = None  # what the handlers keep per client (their ClientConfig, ...)
        # reads answered without pygls when they can be: method -> handler(conn, params),
        # which returns the result, or None to leave the request to pygls
        self.at_once: dict[str, Callable[["Connection", Any], Any]] = {}
        self._held: list[bytes | memoryview] | None = None  # written at the end of this loop step
        register(self)

    def write(self, body: bytes) -> None:
        self._write_framed(frame(visible_nul(body)))

    def _write_framed(self, data: bytes | tuple[bytes | memoryview, ...]) -> None:
        """Hold the frame until the end of this step of the loop: what one step sends (a batch's
        output, changed and finished) leaves in one write. Each write wakes the reader (the
        relay, the editor), which then takes the CPU from us before our next write."""
        if self.closed:
            return
        first = self._held is None
        if first:
            self._held = []
        self._held += data if isinstance(data, tuple) else (data,)  # type: ignore[operator]
        if first:
            try:
                asyncio.get_running_loop().call_soon(self._release)
            except RuntimeError:  # no loop (a direct call): at once
                self._release()

    def _release(self) -> None:
        held, self._held = self._held, None
        if not held or self.closed:
            return
        try:
            if sum(len(part) for part in held) < SPLICE_BYTES:
                self._write(b"".join(held))
            else:  # a command's output: its big parts go as they are, not copied into one
                for part in held:
                    self._write(part)
        except (ConnectionError, OSError, RuntimeError):
            self.close()

    def notify(self, method: str, params: Any) -> None:
        self._write_framed(notification_frame(method, params))

    def close(self) -> None:
        if not self.closed:
            self._release()  # what this step said goes before the end
            self.closed = True
            self._close()

    def report_server_error(self, error: Exception, source: Any) -> None:
        if not isinstance(error, ProtocolError):
            log.error("%s: %s", source.__name__ if isinstance(source, type) else source, error)

    def handle(self, message: Any) -> None:
        """One decoded message: checked here, then dispatched by pygls."""
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            self.write(_error_body(message.get("id") if isinstance(message, dict) else None,
                                   INVALID_REQUEST, "a JSON-RPC 2.0 object is expected"))
            return
        method, msg_id = message.get("method"), message.get("id")
        if isinstance(msg_id, (dict, list, bool)) or (msg_id is not None and method is None
                                                       and "result" not in message
                                                       and "error" not in message):
            self.write(_error_body(None, INVALID_REQUEST, "id must be a string or a number"))
            return
        if method is not None and not isinstance(method, str):
            self.write(_error_body(msg_id, INVALID_REQUEST, "method must be a string"))
            return
        if "id" in message and method is not None:
            problem = None
            if self.protocol._shutdown and method != types.EXIT:
                problem = "the server was shut down; only exit is accepted"
            elif method == types.INITIALIZE and self.initialized:
                problem = "initialize was already received on this connection"
            if problem:
                self.write(_error_body(msg_id, INVALID_REQUEST, problem))
                return
        quick = self.at_once.get(method) if msg_id is not None else None  # type: ignore[arg-type]
        if quick is not None and not self.protocol._shutdown:
            try:
                result = quick(self, message.get("params"))
            except JsonRpcException as exc:
                self.write(_error_body(msg_id, exc.code, exc.message, exc.data))
                return
            if result is not None:
                self.write(_result_body(msg_id, result))
                return
        try:
            structured = self.protocol.structure_message(message)
        except Exception as exc:  # pygls could not shape it: its params are wrong
            if msg_id is not None and method is not None:
                self.write(_error_body(msg_id, -32602, f"params: {exc.__cause__ or exc}"))
            return
        self.protocol.handle_message(structured)


async def serve_stream(conn: Connection, read: Callable[[int], Any]) -> None:
    """Read frames until the client goes away (or `exit`), handing each to `conn`."""
    reader = FrameReader(read)
    while not conn.closed:
        try:
            message = await reader.next()
        except EOFError:
            break
        except FrameError as exc:
            conn.write(_error_body(None, exc.code, str(exc)))
            continue
        except (ConnectionError, OSError):
            break
        conn.handle(message)


class Hub:
    """Every connection of this process; a notification for all is encoded once."""

    def __init__(self) -> None:
        self.connections: list[Connection] = []

    def add(self, conn: Connection) -> None:
        self.connections.append(conn)

    def remove(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.remove(conn)

    def emit(self, method: str, params: Any) -> None:
        listeners = [c for c in self.connections if c.initialized and not c.closed]
        if not listeners:
            return
        data = notification_frame(method, params)
        for conn in listeners:
            conn._write_framed(data)


def stream_writer(writer: asyncio.StreamWriter) -> Callable[[bytes], None]:
    """A write function that drops a client that stopped reading, rather than hoard for it."""
    def write(data: bytes) -> None:
        if writer.is_closing():
            raise ConnectionError("closed")
        writer.write(data)
        if writer.transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            log.warning("a client is %d bytes behind: disconnecting it",
                        writer.transport.get_write_buffer_size())
            writer.close()
    return write
