"""Estimate vs allocation per device for a load over RPC workers: llama.cpp's buffers grouped by device, the
chat window's load info listing each device, per-device records counted by the accuracy and kept out of the
corrections of local estimates, and llama.cpp's layer split."""

from __future__ import annotations

from pathlib import Path

from core.chat.models import memory_lines
from core.devkit.modelgen import write_tiny_gguf
from core.engine.protocol import LoadOptions, ModelInfo
from core.estimate.calibrate import estimate_accuracy, memory_correction
from core.estimate.records import device_allocation, load_history, record_load, split_by_device
from core.hardware import detect_hardware
from core.remote.split import estimate_for_load
from core.store import Store

MIB = 1024 * 1024
A, B = "RPC0[127.0.0.1:50052]", "RPC0[127.0.0.1:50053]"


def _load(tmp_path: Path) -> tuple[ModelInfo, object]:
    model = write_tiny_gguf(tmp_path / "tiny-F16.gguf")
    options = LoadOptions(context_length=512, rpc_servers=("127.0.0.1:50052", "127.0.0.1:50053"))
    info = ModelInfo(
        path=str(model),
        engine="llama",
        context_length=512,
        vocab_size=512,
        has_chat_template=True,
        allocated={"model:CPU_Mapped": MIB, "compute:CPU": 5 * MIB, f"model:{A}": MIB, f"compute:{A}": 9 * MIB},
        device="gpu",
        rpc_memory={A: (8 << 30, 8 << 30), B: (8 << 30, 8 << 30)},
    )
    return info, estimate_for_load(model, options, detect_hardware(), info)


def test_buffers_are_grouped_by_the_device_they_live_on() -> None:
    sizes = {"model:CPU_Mapped": 1, "compute:CPU": 2, "output:CUDA_Host": 3, "model:CUDA0": 4, f"kv:{A}": 5}
    assert split_by_device(sizes) == {
        "CPU": {"model:CPU_Mapped": 1, "compute:CPU": 2, "output:CUDA_Host": 3},
        "CUDA0": {"model:CUDA0": 4},
        A: {f"kv:{A}": 5},
    }


def test_the_estimate_of_a_split_load_names_each_worker_and_the_load_info_lists_them(tmp_path: Path) -> None:
    info, estimate = _load(tmp_path)
    assert estimate is not None
    assert [d.device for d in estimate.devices] == ["CPU", A, B]  # type: ignore[attr-defined]
    rows = device_allocation(estimate, info.allocated)  # type: ignore[arg-type]
    assert [r["device"] for r in rows] == ["CPU", A, B]
    assert rows[0]["actual_mib"] == 6.0 and rows[2]["actual_mib"] == 0.0
    assert all(r["estimate_mib"] for r in rows)
    lines = memory_lines(info, estimate)  # type: ignore[arg-type]
    assert "Per device:" in lines
    assert any(line.strip().startswith(f"{A}: 10.0 MiB (estimated ") for line in lines)


def test_per_device_records_are_counted_but_correct_no_local_estimate(tmp_path: Path) -> None:
    info, estimate = _load(tmp_path)
    store = Store(tmp_path / "hangar.db")
    for _ in range(3):
        record_load(store, estimate, info.allocated)  # type: ignore[arg-type]
    history = load_history(store)
    assert len(history) == 9 and {r.device for r in history} == {"CPU", A, B}
    accuracy = estimate_accuracy(store)
    assert accuracy.count == 9 and "9 of them per device of a load over RPC workers" in accuracy.words
    assert memory_correction(store) == {}  # the made-up allocation above is far off, yet corrects nothing local
