"""llama.cpp's log, read in the engine processes: its lines through the log callback (nothing reaches stdout),
and the ``<device> <kind> buffer size = X MiB`` lines summed into what a load really allocated."""

from __future__ import annotations

import ctypes
import re
from collections.abc import Sequence

_MIB = 1024 * 1024
#: ``<device> <kind> buffer size = X MiB``; RPC devices are named ``RPC0[host:port]``.
_BUFFER_LINE = re.compile(
    r"^\s*([\w.\-]+(?:\[[^\]\s]+\])?)\s+(model|KV|compute|output|RS)\s+buffer size\s*=\s*([\d.]+)\s*MiB"
)


class LlamaLog:
    """Collects llama.cpp's log lines to read the real buffer sizes after a load."""

    def __init__(self) -> None:
        import llama_cpp

        self.lines: list[str] = []
        self._partial = ""

        @llama_cpp.llama_log_callback
        def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            self._partial += text.decode("utf-8", errors="replace")
            while "\n" in self._partial:
                line, self._partial = self._partial.split("\n", 1)
                self.lines.append(line)

        self._callback = callback  # keep a reference: llama.cpp holds only the pointer
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


def parse_buffer_sizes(lines: Sequence[str]) -> dict[str, int]:
    """Sum llama.cpp's ``<device> <kind> buffer size = X MiB`` lines into bytes per ``<kind>:<device>``."""
    sizes: dict[str, int] = {}
    for line in lines:
        text = line.split(":", 1)[1] if ":" in line else line
        match = _BUFFER_LINE.match(text)
        if match:
            device, kind, mib = match.groups()
            key = f"{kind.lower()}:{device}"
            sizes[key] = sizes.get(key, 0) + round(float(mib) * _MIB)
    return sizes
