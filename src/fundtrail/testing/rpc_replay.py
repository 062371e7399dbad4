"""A loopback JSON-RPC server that answers from recorded node responses.

Tests point a reader at :attr:`RpcReplayServer.url` instead of a real node. Answers come from a
*responder*: a mapping ``(method, params) -> result``, a folder of recorded files
(:class:`FolderResponder`), or any callable ``(method, params) -> result``; several are tried in
order with :class:`ChainedResponder`. A responder raises :class:`RpcFault` to answer with a
JSON-RPC error, and an unknown request is answered with error ``-32601``.

The server speaks JSON-RPC 1.0/2.0 over HTTP POST, single and batch requests, optionally checks
HTTP basic credentials (401 otherwise), and records every call in :attr:`RpcReplayServer.calls`.
It listens on 127.0.0.1 only, on a free port, in a daemon thread.
"""

from __future__ import annotations

import base64
import decimal
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Responder = Callable[[str, list[Any]], Any]

METHOD_NOT_FOUND = -32601


class RpcFault(Exception):
    """Raised by a responder to answer with a JSON-RPC error object."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


def _flat(value: Any) -> str:
    """A parameter flattened to lower case: ``{"tracer": "callTracer"}`` gives ``tracer_calltracer``."""
    if isinstance(value, dict):
        return "_".join(f"{key}_{_flat(value[key])}" for key in sorted(value))
    if isinstance(value, list | tuple):
        return "_".join(_flat(v) for v in value)
    return str(value).lower()


def _param_spellings(value: Any) -> list[str]:
    """How a parameter may appear in a recorded file name: Python's ``str``, JSON, flattened lower case."""
    if isinstance(value, bool):
        return ["True", "true"] if value else ["False", "false"]
    if value is None:
        return ["None", "null"]
    spellings = [json.dumps(value, separators=(",", ":"), sort_keys=True)] if isinstance(value, dict | list) \
        else [str(value)]
    flat = _flat(value)
    if flat not in spellings:
        spellings.append(flat)
    return spellings


def file_names(method: str, params: list[Any], prefix: str = "rpc_response_", separator: str = "_",
               suffix: str = ".json") -> Iterator[str]:
    """Candidate file names for a call, most specific first.

    ``getblock ["00ab", 2]`` gives ``rpc_response_getblock_00ab_2.json``, then names with trailing
    parameters dropped (``rpc_response_getblock_00ab.json``), since recordings often leave out a
    verbosity flag. Booleans are tried as ``True`` and ``true``, objects and lists also flattened in
    lower case (``eth_call_data_0x06fdde03_to_0x86fa...``); a call without parameters also as
    ``method_``.
    """
    for keep in range(len(params), -1, -1):
        names = [prefix + method]
        for value in params[:keep]:
            names = [n + separator + s for n in names for s in _param_spellings(value)]
        for name in names:
            yield name + suffix
    yield prefix + method + separator + suffix


def _loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=decimal.Decimal)


class FolderResponder:
    """Answers calls from files named after the method and its parameters.

    A file holds either the bare ``result`` or a whole JSON-RPC response envelope
    (``{"jsonrpc": ..., "id": ..., "result": ...}`` or with ``"error"``); both are understood.
    """

    def __init__(self, folder: Path | str, *, prefix: str = "rpc_response_", separator: str = "_",
                 suffix: str = ".json", name_for: Callable[[str, list[Any]], Iterable[str]] | None = None
                 ) -> None:
        self.folder = Path(folder)
        self.prefix = prefix
        self.separator = separator
        self.suffix = suffix
        self.name_for = name_for

    def __call__(self, method: str, params: list[Any]) -> Any:
        names = (self.name_for(method, params) if self.name_for is not None
                 else file_names(method, params, self.prefix, self.separator, self.suffix))
        for name in names:
            path = self.folder / name
            if path.is_file():
                return _unwrap(_loads(path.read_bytes()))
        raise RpcFault(METHOD_NOT_FOUND, f"no recorded response for {method} {params!r}")


_ENVELOPE_KEYS = {"jsonrpc", "id", "result", "error"}


def _unwrap(document: Any) -> Any:
    if isinstance(document, dict) and document.keys() <= _ENVELOPE_KEYS and (
            "result" in document or "error" in document):
        error = document.get("error")
        if error:
            raise RpcFault(int(error.get("code", -1)), str(error.get("message", "")))
        return document.get("result")
    return document


class MappingResponder:
    """Answers calls from a mapping of ``(method, params tuple)`` or ``method`` to a result.

    A value that is an :class:`RpcFault` is raised; a callable value is called with the params.
    """

    def __init__(self, answers: Mapping[Any, Any]) -> None:
        self.answers = dict(answers)

    def __call__(self, method: str, params: list[Any]) -> Any:
        key: Any = (method, tuple(_freeze(p) for p in params))
        if key in self.answers:
            value = self.answers[key]
        elif method in self.answers:
            value = self.answers[method]
        else:
            raise RpcFault(METHOD_NOT_FOUND, f"no recorded response for {method} {params!r}")
        if isinstance(value, RpcFault):
            raise value
        if callable(value):
            return value(params)
        return value


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


class ChainedResponder:
    """Tries responders in order; the first that does not answer ``-32601`` wins."""

    def __init__(self, *responders: Responder) -> None:
        self.responders = responders

    def __call__(self, method: str, params: list[Any]) -> Any:
        for responder in self.responders:
            try:
                return responder(method, params)
            except RpcFault as fault:
                if fault.code != METHOD_NOT_FOUND:
                    raise
        raise RpcFault(METHOD_NOT_FOUND, f"no recorded response for {method} {params!r}")


def as_responder(source: Responder | Mapping[Any, Any] | Path | str) -> Responder:
    """A responder from a callable, a mapping or a folder of recorded files."""
    if isinstance(source, Path | str):
        return FolderResponder(source)
    if isinstance(source, Mapping):
        return MappingResponder(source)
    return source


def _dumps(document: Any) -> bytes:
    return _encode(document).encode()


def _encode(value: Any) -> str:
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + _encode(v) for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    return json.dumps(value)


class RpcReplayServer:
    """A JSON-RPC server on 127.0.0.1 answering from a responder; use as a context manager.

    ``auth=("user", "password")`` makes it answer 401 to requests without those credentials.
    ``calls`` lists every ``(method, params)`` served, ``requests`` the same grouped by HTTP post
    (a batch request is one group), ``http_requests`` counts HTTP posts.
    """

    def __init__(self, responder: Responder | Mapping[Any, Any] | Path | str, *,
                 auth: tuple[str, str] | None = None) -> None:
        self.responder = as_responder(responder)
        self.auth = auth
        self.calls: list[tuple[str, list[Any]]] = []
        self.requests: list[list[tuple[str, list[Any]]]] = []
        self.http_requests = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the server listens on (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (without credentials)."""
        return f"http://127.0.0.1:{self.port}"

    def url_with_auth(self) -> str:
        """The URL with the configured credentials as user-info."""
        if self.auth is None:
            return self.url
        return f"http://{self.auth[0]}:{self.auth[1]}@127.0.0.1:{self.port}"

    def start(self) -> RpcReplayServer:
        """Start serving in a daemon thread."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        # serve_forever notices shutdown() only between polls: poll often, so that stop() takes
        # milliseconds rather than up to the default half second
        self._thread = threading.Thread(target=server.serve_forever, args=(0.01,), name="rpc-replay",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> RpcReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def methods_called(self) -> list[str]:
        """The methods served so far, in order."""
        with self._lock:
            return [m for m, _ in self.calls]

    def answer(self, request: Any) -> dict[str, Any]:
        """The response envelope for one request object."""
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return {"result": None, "error": {"code": -32600, "message": "invalid request"}, "id": None}
        method = request["method"]
        params = request.get("params") or []
        if not isinstance(params, list):
            params = [params]
        with self._lock:
            self.calls.append((method, params))
        envelope: dict[str, Any] = {"id": request.get("id")}
        if request.get("jsonrpc") == "2.0":
            envelope["jsonrpc"] = "2.0"
        try:
            envelope["result"] = self.responder(method, params)
            envelope["error"] = None
        except RpcFault as fault:
            envelope["result"] = None
            envelope["error"] = {"code": fault.code, "message": fault.message}
        return envelope

    def _group(self, first: int) -> None:
        with self._lock:
            self.requests.append(self.calls[first:])

    def _authorised(self, header: str | None) -> bool:
        if self.auth is None:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:]).decode()
        except ValueError:
            return False
        return given == f"{self.auth[0]}:{self.auth[1]}"


def _handler_for(server: RpcReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            log.debug("rpc replay: " + format, *args)

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            with server._lock:
                server.http_requests += 1
            if not server._authorised(self.headers.get("Authorization")):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="jsonrpc"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            try:
                request = _loads(raw)
            except ValueError:
                self._send(500, _dumps({"result": None, "id": None,
                                        "error": {"code": -32700, "message": "parse error"}}))
                return
            with server._lock:
                first = len(server.calls)
            if isinstance(request, list):
                body = _dumps([server.answer(r) for r in request])
                server._group(first)
                self._send(200, body)
                return
            response = server.answer(request)
            server._group(first)
            # Bitcoin Core answers a failed single call with an HTTP error status and the error in the body.
            error = response.get("error")
            status = 200 if not error else 404 if error["code"] == METHOD_NOT_FOUND else 500
            self._send(status, _dumps(response))

    return Handler
