"""llama.cpp RPC workers: one model spread over several machines.

A worker (``hangar worker``) runs llama.cpp's RPC server, built from the same llama.cpp as the engine, in a child
process; the machine that loads the model registers the workers as devices, and llama.cpp splits the layers over
them by their free memory. This module is the part that needs no native code: endpoints, the exposure warning, a
small client of the RPC protocol that asks a worker for its devices and free memory without ever crashing the
caller (llama.cpp's own client aborts the process when a worker is down), and the supervisor of a worker process.

RPC has no authentication: whoever reaches a worker's port can use its memory and compute. Workers bind to
127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import NetworkError, UsageError
from core.events import EventHook
from core.process import ChildProcess

logger = logging.getLogger(__name__)

DEFAULT_PORT = 50052
#: The RPC protocol of the llama.cpp this Hangar is built with (ggml-rpc.h RPC_PROTO_MAJOR_VERSION).
PROTOCOL_MAJOR = 7
_CMD_GET_DEVICE_MEMORY, _CMD_HELLO, _CMD_DEVICE_COUNT = 11, 14, 15
_CAPS_SIZE = 24
MAX_WORKERS = 16  # GGML_RPC_MAX_SERVERS

EXPOSURE_WARNING = (
    "llama.cpp's RPC protocol has no authentication or encryption: anyone who can reach {endpoint} can allocate "
    "this machine's memory and run computations on it. Use it only on a private network you trust, or bind to "
    "127.0.0.1 and reach it through an SSH tunnel (ssh -L {port}:127.0.0.1:{port} THIS_HOST)."
)


def parse_endpoint(text: str) -> str:
    """``host:port`` (or ``[v6]:port``) → normalised endpoint; a bare host gets the default port."""
    value = text.strip()
    if not value:
        raise UsageError("An RPC worker is named HOST:PORT, for example 192.168.1.20:50052.")
    host, port = value, str(DEFAULT_PORT)
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.lstrip(":") or port
    elif value.count(":") == 1:
        host, port = value.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c.isspace() for c in host):
        raise UsageError(f"{text!r} is not HOST:PORT (for example 192.168.1.20:{DEFAULT_PORT}).")
    return f"[{host}]:{int(port)}" if ":" in host else f"{host}:{int(port)}"


def parse_endpoints(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    endpoints = tuple(dict.fromkeys(parse_endpoint(part) for part in text.split(",") if part.strip()))
    if len(endpoints) > MAX_WORKERS:
        raise UsageError(f"llama.cpp takes at most {MAX_WORKERS} RPC workers.")
    return endpoints


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, port: int) -> str | None:
    """What binding to ``host`` exposes, in words (None on loopback)."""
    if is_loopback(host):
        return None
    return EXPOSURE_WARNING.format(endpoint=f"{host}:{port}", port=port)


# -- asking a worker --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerDevice:
    index: int
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class WorkerInfo:
    endpoint: str
    answered: bool
    protocol: str | None = None
    devices: tuple[WorkerDevice, ...] = ()
    error: str | None = None
    seconds: float = 0.0

    @property
    def free_bytes(self) -> int:
        return sum(d.free_bytes for d in self.devices)


def query_worker(endpoint: str, timeout: float = 5.0) -> WorkerInfo:
    """HELLO, DEVICE_COUNT and GET_DEVICE_MEMORY over the worker's own protocol. A worker serves one client at a
    time, so one that is busy with a loaded model answers only after it (and is reported as busy)."""
    started = time.monotonic()
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            sock.settimeout(timeout)
            hello = _call(sock, _CMD_HELLO, bytes(_CAPS_SIZE), 4 + _CAPS_SIZE)
            major, minor, patch = hello[0], hello[1], hello[2]
            protocol = f"{major}.{minor}.{patch}"
            if major != PROTOCOL_MAJOR:
                return WorkerInfo(
                    endpoint,
                    answered=True,
                    protocol=protocol,
                    error=f"The worker at {endpoint} speaks RPC protocol {protocol}; this Hangar's llama.cpp speaks "
                    f"{PROTOCOL_MAJOR}.x. Run the same Hangar (or llama.cpp) version on every machine.",
                    seconds=time.monotonic() - started,
                )
            (count,) = struct.unpack("<I", _call(sock, _CMD_DEVICE_COUNT, b"", 4))
            devices = []
            for index in range(min(count, 64)):
                free, total = struct.unpack("<QQ", _call(sock, _CMD_GET_DEVICE_MEMORY, struct.pack("<I", index), 16))
                devices.append(WorkerDevice(index, free, total))
    except TimeoutError:
        return WorkerInfo(
            endpoint,
            answered=False,
            error=f"The RPC worker at {endpoint} did not answer within {timeout:.0f} s (it may be serving another "
            "machine: a worker serves one client at a time).",
            seconds=time.monotonic() - started,
        )
    except (OSError, ValueError, struct.error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        return WorkerInfo(
            endpoint,
            answered=False,
            error=f"The RPC worker at {endpoint} cannot be reached ({reason}). Start it with `hangar worker` there.",
            seconds=time.monotonic() - started,
        )
    return WorkerInfo(endpoint, True, protocol, tuple(devices), seconds=time.monotonic() - started)


def require_workers(endpoints: tuple[str, ...], timeout: float = 5.0) -> list[WorkerInfo]:
    """Every worker answers, or one line naming the first that does not (before llama.cpp, which would abort)."""
    infos = [query_worker(e, timeout) for e in endpoints]
    for info in infos:
        if not info.answered or info.error:
            raise NetworkError(info.error or f"The RPC worker at {info.endpoint} did not answer.")
        if not info.devices:
            raise NetworkError(f"The RPC worker at {info.endpoint} offers no device.")
    return infos


def _call(sock: socket.socket, command: int, payload: bytes, expected: int) -> bytes:
    sock.sendall(struct.pack("<BQ", command, len(payload)) + payload)
    (size,) = struct.unpack("<Q", _recv(sock, 8))
    if size != expected:
        raise ValueError(f"unexpected answer size {size} (expected {expected})")
    return _recv(sock, size)


def _recv(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ValueError("the worker closed the connection")
        data += chunk
    return data


# -- running a worker -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerRequest:
    host: str
    port: int
    cache_dir: str | None = None
    threads: int | None = None


@dataclass(frozen=True)
class WorkerStarted:
    endpoint: str
    devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClientConnected:
    peer: str | None = None


@dataclass(frozen=True)
class ClientDisconnected:
    peer: str | None = None


@dataclass(frozen=True)
class WorkerLog:
    line: str


@dataclass(frozen=True)
class WorkerStopped:
    message: str
    exitcode: int | None = None


WorkerEvent = WorkerStarted | ClientConnected | ClientDisconnected | WorkerLog | WorkerStopped
#: ``backends.rpc_worker.serve(request, events, cancel)``: llama.cpp's RPC server in the child; never returns.
WorkerEntry = Callable[[Any, Any, Any], None]


class WorkerProcess:
    """One RPC worker in a child process (``core.process.ChildProcess``): start, stop, and what it reports
    (connections come from the server's own lines; the peer address from the operating system's table)."""

    def __init__(self, entry: WorkerEntry, request: WorkerRequest) -> None:
        self.entry = entry
        self.request = request
        self.events: EventHook[[WorkerEvent]] = EventHook()
        self.connected: list[str] = []
        self._child: ChildProcess | None = None

    @property
    def endpoint(self) -> str:
        host = self.request.host
        return f"[{host}]:{self.request.port}" if ":" in host else f"{host}:{self.request.port}"

    @property
    def running(self) -> bool:
        return self._child is not None and self._child.is_alive()

    def start(self, wait: float = 15.0) -> WorkerStarted:
        _check_port_free(self.request.host, self.request.port)
        started = threading.Event()
        first: list[WorkerEvent] = []

        def forward(event: WorkerEvent) -> None:
            if isinstance(event, (WorkerStarted, WorkerStopped)) and not started.is_set():
                first.append(event)
                started.set()

        disconnect = self.events.connect(forward)
        self._child = ChildProcess(
            self.entry, name="rpc-worker", on_event=self._on_event, on_exit=self._on_exit, payload=self.request
        )
        try:
            self._child.start()
            if not started.wait(wait):
                self.stop()
                raise NetworkError(f"The RPC worker did not start within {wait:.0f} s.")
        finally:
            disconnect()
        event = first[0]
        if isinstance(event, WorkerStopped):
            raise NetworkError(event.message)
        assert isinstance(event, WorkerStarted)
        return event

    def stop(self, grace: float = 2.0) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.stop(timeout=0.1, grace=grace)

    def wait(self) -> None:
        """Block until the worker ends (Ctrl-C in ``hangar worker``)."""
        while self.running:
            time.sleep(0.2)

    def _on_event(self, event: WorkerEvent) -> None:
        if isinstance(event, ClientConnected):
            event = ClientConnected(_peer_of(self.request.port))
            self.connected.append(event.peer or "?")
        elif isinstance(event, ClientDisconnected):
            event = ClientDisconnected(self.connected.pop(0) if self.connected else None)
        self.events.emit(event)

    def _on_exit(self, exitcode: int | None, expected: bool) -> None:
        from core.process import describe_exit

        message = "The RPC worker stopped." if expected else "The RPC worker ended: " + describe_exit(exitcode)
        self.events.emit(WorkerStopped(message, exitcode))


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise NetworkError(
                f"Cannot listen on {host}:{port} ({exc.strerror or exc}).",
                hint="Another worker may be running there; choose another --port.",
            ) from None


def _peer_of(port: int) -> str | None:
    """The address of the client connected to our worker's port, from the OS connection table (best effort)."""
    try:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_ESTABLISHED and conn.laddr and conn.laddr.port == port and conn.raddr:
                return f"{conn.raddr.ip}:{conn.raddr.port}"
    except Exception as exc:  # permissions differ by system; the connection itself is still reported
        logger.debug("peer lookup failed: %s", exc)
    return None
