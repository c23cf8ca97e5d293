"""ggml's C API (backend registry, devices) through ctypes, on the very library instance llama.cpp uses.

Wheels carry ``libggml.so``, ``libggml.so.0`` and ``libggml.so.0.x`` as separate copies; loading the wrong one
gives a second, empty backend registry. So the copy libllama itself loaded is found and reused."""

from __future__ import annotations

import ctypes
import sys
from functools import cache
from pathlib import Path
from typing import Any

DEVICE_CPU, DEVICE_GPU, DEVICE_IGPU, DEVICE_ACCEL = 0, 1, 2, 3


@cache
def ggml_library() -> Any:
    import llama_cpp  # loads libllama, which loads ggml and its backends (CPU, RPC, GPUs of this build)

    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    lib = ctypes.CDLL(str(_loaded_copy(lib_dir) or _soname_copy(lib_dir)))
    vp, sz = ctypes.c_void_p, ctypes.c_size_t
    for fn, res, args in (
        ("ggml_backend_reg_by_name", vp, [ctypes.c_char_p]),
        ("ggml_backend_reg_get_proc_address", vp, [vp, ctypes.c_char_p]),
        ("ggml_backend_register", None, [vp]),
        ("ggml_backend_dev_count", sz, []),
        ("ggml_backend_dev_get", vp, [sz]),
        ("ggml_backend_dev_type", ctypes.c_int, [vp]),
        ("ggml_backend_dev_name", ctypes.c_char_p, [vp]),
        ("ggml_backend_dev_description", ctypes.c_char_p, [vp]),
    ):
        getattr(lib, fn).restype = res
        getattr(lib, fn).argtypes = args
    return lib


def devices() -> list[tuple[str, int]]:
    """Every device ggml knows in this process: (name, type)."""
    lib = ggml_library()
    found = []
    for index in range(lib.ggml_backend_dev_count()):
        device = lib.ggml_backend_dev_get(index)
        found.append((lib.ggml_backend_dev_name(device).decode("utf-8", "replace"), lib.ggml_backend_dev_type(device)))
    return found


def _loaded_copy(lib_dir: Path) -> Path | None:
    """The libggml file mapped into this process from ``lib_dir`` (Linux: /proc/self/maps)."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return None
    for line in maps.read_text(errors="replace").splitlines():
        path = Path(line.rsplit(" ", 1)[-1])
        if path.parent == lib_dir and path.name.startswith("libggml.so"):
            return path
    return None


def _soname_copy(lib_dir: Path) -> Path:
    names = {"darwin": ["libggml.0.dylib", "libggml.dylib"], "win32": ["ggml.dll"]}.get(
        sys.platform, ["libggml.so.0", "libggml.so"]
    )
    for name in names:
        if (lib_dir / name).exists():
            return lib_dir / name
    return lib_dir / names[-1]
