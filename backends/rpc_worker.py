"""llama.cpp's RPC server, run in a worker child process (``hangar worker``), and the registration of workers as
devices in the engine child. Both go through ggml's backend registry with ctypes, so the worker is the llama.cpp
that llama-cpp-python was built from (with ``-DGGML_RPC=ON``), not a separate binary."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from typing import Any

from backends.ggml import DEVICE_CPU as _DEVICE_CPU
from backends.ggml import DEVICE_GPU as _DEVICE_GPU
from backends.ggml import DEVICE_IGPU as _DEVICE_IGPU
from core.errors import EngineError
from core.remote.rpc import (
    ClientConnected,
    ClientDisconnected,
    WorkerLog,
    WorkerRequest,
    WorkerStarted,
    WorkerStopped,
    require_workers,
)

logger = logging.getLogger(__name__)

_registered: tuple[str, ...] = ()
_regs: list[tuple[str, int]] = []  # (endpoint, ggml backend registry of its devices)


def _ggml() -> Any:
    from backends.ggml import ggml_library

    return ggml_library()


def _rpc_function(lib: Any, name: str, restype: Any, argtypes: list[Any]) -> Any:
    reg = lib.ggml_backend_reg_by_name(b"RPC")
    if not reg:
        raise EngineError(
            "This llama.cpp build has no RPC support.",
            hint='Reinstall llama-cpp-python with CMAKE_ARGS="-DGGML_RPC=ON" (make run does).',
        )
    address = lib.ggml_backend_reg_get_proc_address(reg, name.encode())
    if not address:
        raise EngineError(f"This llama.cpp build lacks {name}.")
    return ctypes.CFUNCTYPE(restype, *argtypes)(address)


# -- the main machine: workers as devices ------------------------------------------------------------------------
def register_workers(endpoints: tuple[str, ...]) -> None:
    """Make the workers llama.cpp devices of this (engine child) process, once; llama.cpp then places layers on
    them, RPC devices first, split by their free memory. Workers are checked first: llama.cpp's own client ends
    the process when one is down."""
    global _registered
    if endpoints == _registered:
        return
    if _registered:
        raise EngineError(
            "This engine already uses other RPC workers.", hint="Unload the model (the engine restarts) and load again."
        )
    require_workers(endpoints)
    lib = _ggml()
    add_server = _rpc_function(lib, "ggml_backend_rpc_add_server", ctypes.c_void_p, [ctypes.c_char_p])
    for endpoint in endpoints:
        reg = add_server(endpoint.encode())
        if not reg:
            raise EngineError(f"The RPC worker at {endpoint} offers no device.")
        lib.ggml_backend_register(reg)
        _regs.append((endpoint, reg))
    _registered = endpoints
    logger.info("registered RPC workers %s", ", ".join(endpoints))


def worker_memory() -> dict[str, tuple[int, int]]:
    """Free and total bytes of each registered worker device, named as llama.cpp names its buffers
    (``RPC0[host:port]``), asked through ggml as llama.cpp asks when it splits the layers by free memory."""
    if not _regs:
        return {}
    lib = _ggml()
    size_p = ctypes.POINTER(ctypes.c_size_t)
    for fn, res, args in (
        ("ggml_backend_dev_memory", None, [ctypes.c_void_p, size_p, size_p]),
        ("ggml_backend_reg_dev_count", ctypes.c_size_t, [ctypes.c_void_p]),
        ("ggml_backend_reg_dev_get", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_size_t]),
    ):
        getattr(lib, fn).restype = res
        getattr(lib, fn).argtypes = args
    memory = {}
    for endpoint, reg in _regs:
        for index in range(lib.ggml_backend_reg_dev_count(reg)):
            device = lib.ggml_backend_reg_dev_get(reg, index)
            free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
            lib.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
            # the device's name counts over all workers (RPC1 for the second); its buffers count per worker
            memory[f"RPC{index}[{endpoint}]"] = (int(free.value), int(total.value))
    return memory


# -- a worker machine: the server ---------------------------------------------------------------------------------
def serve(request: WorkerRequest, events: Any, cancel: Any = None) -> None:
    """Child entry of ``hangar worker``: run llama.cpp's RPC server until terminated. Its console lines (devices,
    "Accepted client connection", ...) are read from a pipe and sent to the parent as events."""
    # Between a client's graphs the worker waits; OpenMP's default spin-wait would burn every core meanwhile (and
    # starve an engine on the same machine: decode 100x slower on loopback). Must be set before ggml loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    try:
        read_end = _capture_output()
        lib = _ggml()
        devices = _server_devices(lib)
        start = _rpc_function(
            lib,
            "ggml_backend_rpc_start_server",
            None,
            [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p)],
        )
    except Exception as exc:
        events.put(WorkerStopped(f"The RPC worker could not start: {exc}"))
        return
    host = request.host
    endpoint = f"[{host}]:{request.port}" if ":" in host else f"{host}:{request.port}"
    names = tuple(
        f"{lib.ggml_backend_dev_name(d).decode()} ({lib.ggml_backend_dev_description(d).decode()})" for d in devices
    )
    threading.Thread(target=_relay, args=(read_end, events, endpoint, names), daemon=True).start()
    array = (ctypes.c_void_p * len(devices))(*devices)
    threads = request.threads or max(1, (os.cpu_count() or 2))
    cache = request.cache_dir.encode() if request.cache_dir else None
    start(endpoint.encode(), cache, threads, len(devices), array)  # returns only if the socket cannot be opened
    sys.stdout.flush()
    os.write(1, b"\n")
    threading.Event().wait(0.5)  # let the relay pass on the server's last lines
    events.put(WorkerStopped(f"The RPC worker could not listen on {endpoint}."))


def _server_devices(lib: Any) -> list[int]:
    """As rpc-server chooses: every GPU of this build, else the CPU."""
    gpus, cpu = [], None
    for index in range(lib.ggml_backend_dev_count()):
        device = lib.ggml_backend_dev_get(index)
        kind = lib.ggml_backend_dev_type(device)
        name = lib.ggml_backend_dev_name(device).decode()
        if kind in (_DEVICE_GPU, _DEVICE_IGPU) and not name.startswith("RPC"):
            gpus.append(device)
        elif kind == _DEVICE_CPU and cpu is None:
            cpu = device
    if gpus:
        return gpus
    if cpu is None:
        raise EngineError("llama.cpp offers no device to serve.")
    return [cpu]


def _capture_output() -> int:
    """Send this process's native stdout and stderr into a pipe that the relay thread reads."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)
    return read_end


def _relay(read_end: int, events: Any, endpoint: str, devices: tuple[str, ...]) -> None:
    announced = False
    buffer = b""
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while True:
            chunk = pipe.read(4096)
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                raw, buffer = buffer.split(b"\n", 1)
                line = raw.decode("utf-8", "replace").rstrip()
                if not line:
                    continue
                if "transport" in line and not announced:
                    announced = True
                    events.put(WorkerStarted(endpoint, devices))
                elif line.startswith("Accepted client connection"):
                    events.put(ClientConnected())
                elif line.startswith("Client connection closed"):
                    events.put(ClientDisconnected())
                else:
                    events.put(WorkerLog(line[:500]))
