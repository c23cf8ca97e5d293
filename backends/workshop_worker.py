"""The workshop child process: ``run`` is the entry point handed to ``core.workshop.service``. It evaluates,
benchmarks, quantizes or converts, and turns every outcome into an event; a native crash ends only this process."""

from __future__ import annotations

import logging
import os
import signal
import traceback
from typing import Any

from core.errors import HangarError, InsufficientMemoryError
from core.workshop.types import (
    BenchRequest,
    ConvertRequest,
    EvalRequest,
    QuantizeRequest,
    WorkFailed,
    WorkFinished,
    WorkProgress,
)

logger = logging.getLogger(__name__)


def run(request: Any, events: Any, cancel: Any) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=os.environ.get("HANGAR_ENGINE_LOG", "WARNING"))
    from backends.workshop_eval import Stopped

    def progress(done: int, total: int, message: str) -> bool:
        events.put(WorkProgress(done, total, message))
        return bool(cancel.is_set())

    try:
        if isinstance(request, EvalRequest):
            from backends.workshop_eval import evaluate

            events.put(WorkFinished(evaluate(request, progress)))
        elif isinstance(request, BenchRequest):
            from backends.workshop_eval import bench

            events.put(WorkFinished(bench(request, progress)))
        elif isinstance(request, QuantizeRequest):
            from backends.workshop_quantize import quantize

            events.put(WorkFinished(details=quantize(request, progress)))
        elif isinstance(request, ConvertRequest):
            from backends.hf_gguf import convert_hf_to_gguf

            progress(0, 1, "Converting…")
            convert_hf_to_gguf(request.folder, request.output, weight_type=request.weight_type)
            events.put(WorkFinished())
        else:
            events.put(WorkFailed("usage", f"The workshop does not know {type(request).__name__}."))
    except Stopped:
        events.put(WorkFinished(stopped=True))
    except KeyboardInterrupt:
        events.put(WorkFinished(stopped=True))
    except HangarError as exc:
        events.put(WorkFailed(exc.code, str(exc)))
    except MemoryError:
        events.put(WorkFailed(InsufficientMemoryError.code, "The workshop ran out of memory."))
    except OSError as exc:
        logger.error("workshop task failed:\n%s", traceback.format_exc())
        code = "disk_full" if exc.errno == 28 else "error"
        events.put(WorkFailed(code, f"{type(exc).__name__}: {exc}"))
    except Exception as exc:
        logger.error("workshop task failed:\n%s", traceback.format_exc())
        events.put(WorkFailed("engine", f"The workshop task failed: {exc}"))
    finally:
        events.close()
        events.join_thread()
