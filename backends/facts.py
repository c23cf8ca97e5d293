"""Ask the installed llama.cpp what it does here, in a child process (a native crash must not take the app down):

- ``engine_facts``: which extra buffer types the CPU backend uses (AMX, CPU_REPACK, KleidiAI, …) and which tensor
  types each takes, measured by loading one tiny generated model per type and reading the buffers llama.cpp
  reports; plus ggml's devices and their free memory. Cached per llama.cpp build and CPU.
- ``fit_pass``: llama.cpp's own memory-fit pass for a file on disk (``no_alloc`` with ``load_mode`` NONE: the
  model and context are built with empty buffers, the KV cache and the compute graphs are sized by the real
  allocator). It reads only the header, so a sparse file carrying a real header serves as well.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from backends.llama_log import LlamaLog, parse_buffer_sizes
from core.estimate.facts import FACTS_FILE, DeviceFact, EngineFacts, ExtraBuffer, cpu_key, load_cached, save_cached
from core.jobs import CancelToken
from core.process import describe_exit, run_child

logger = logging.getLogger(__name__)

_MIB = 1024 * 1024
#: The weight types found in GGUF files on the Hub; each is probed once per llama.cpp build and CPU.
PROBE_TYPES = (
    "F16",
    "BF16",
    "Q8_0",
    "Q4_0",
    "Q4_1",
    "Q5_0",
    "Q5_1",
    "Q2_K",
    "Q3_K",
    "Q4_K",
    "Q5_K",
    "Q6_K",
    "IQ4_NL",
    "IQ4_XS",
    "MXFP4",
)
_MEMORY_SIZE = re.compile(r"^(llama_kv_cache|llama_memory_recurrent)\w*:\s+size\s*=\s*([\d.]+)\s*MiB")
_N_CTX = re.compile(r"^llama_context:\s+n_ctx\s*=\s*(\d+)")
_DEVICE_KINDS = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel"}
_GGML_LIB = {"darwin": "libggml.dylib", "win32": "ggml.dll"}.get(sys.platform, "libggml.so")
FIT_TIMEOUT = 120.0


# -- in the child ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ZeroModel:
    """The shape of a llama model written with zero weights: llama.cpp loads, repacks and runs it exactly as a
    trained model of that shape (same buffers, same decode speed), without any training or quantizing."""

    weight_type: str = "Q4_K"
    n_embd: int = 512
    n_ff: int = 1536
    n_layer: int = 1
    n_head: int = 8
    n_head_kv: int = 2
    n_vocab: int = 512
    context_length: int = 2048
    #: Q4_K_M's mix: attn_v and ffn_down of every other layer, and the output head, one step up (Q6_K).
    k_m_mix: bool = False


def write_zero_gguf(path: Path, model: ZeroModel) -> int:
    """Write ``model`` (embedding F16, norms F32, matrices of ``weight_type``, all zeros: valid blocks for every
    type). Returns the bytes of the ``weight_type`` matrices, which the CPU backend may re-lay out."""
    import gguf
    import numpy as np

    def qtype(name: str, layer: int) -> Any:
        if model.k_m_mix and (name == "output" or (name in ("attn_v", "ffn_down") and layer % 2 == 0)):
            return gguf.GGMLQuantizationType.Q6_K
        return gguf.GGMLQuantizationType[model.weight_type]

    n_embd, n_vocab = model.n_embd, model.n_vocab
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("hangar-zero-model")
    writer.add_context_length(model.context_length)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(model.n_layer)
    writer.add_feed_forward_length(model.n_ff)
    writer.add_head_count(model.n_head)
    writer.add_head_count_kv(model.n_head_kv)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tokens += [f"▁w{i}" for i in range(n_vocab - len(tokens))]
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * n_vocab)
    writer.add_token_types([2, 3, 3] + [6] * 256 + [1] * (n_vocab - 259))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    matrices = 0

    def add_matrix(name: str, layer: int, rows: int, cols: int) -> None:
        nonlocal matrices
        kind = qtype(name, layer)
        block, type_size = gguf.GGML_QUANT_SIZES[kind]
        n_bytes = rows * (cols // block) * type_size
        tensor = f"blk.{layer}.{name}.weight" if layer >= 0 else f"{name}.weight"
        writer.add_tensor(tensor, np.zeros((rows, n_bytes // rows), dtype=np.uint8), raw_dtype=kind)
        if kind == gguf.GGMLQuantizationType[model.weight_type]:
            matrices += n_bytes

    head_dim = n_embd // model.n_head
    n_kv = model.n_head_kv * head_dim
    ones = np.ones(n_embd, dtype=np.float32)
    writer.add_tensor("token_embd.weight", np.zeros((n_vocab, n_embd), dtype=np.float16))
    for il in range(model.n_layer):
        writer.add_tensor(f"blk.{il}.attn_norm.weight", ones)
        add_matrix("attn_q", il, n_embd, n_embd)
        add_matrix("attn_k", il, n_kv, n_embd)
        add_matrix("attn_v", il, n_kv, n_embd)
        add_matrix("attn_output", il, n_embd, n_embd)
        writer.add_tensor(f"blk.{il}.ffn_norm.weight", ones)
        add_matrix("ffn_gate", il, model.n_ff, n_embd)
        add_matrix("ffn_up", il, model.n_ff, n_embd)
        add_matrix("ffn_down", il, n_embd, model.n_ff)
    writer.add_tensor("output_norm.weight", ones)
    add_matrix("output", -1, n_vocab, n_embd)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return matrices


def _devices() -> tuple[DeviceFact, ...]:
    import llama_cpp

    ggml = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", _GGML_LIB))
    ggml.ggml_backend_dev_count.restype = ctypes.c_size_t
    ggml.ggml_backend_dev_get.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    for fn in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
        getattr(ggml, fn).restype = ctypes.c_char_p
        getattr(ggml, fn).argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_dev_type.restype = ctypes.c_int
    ggml.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    size_p = ctypes.POINTER(ctypes.c_size_t)
    ggml.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, size_p, size_p]
    devices = []
    for index in range(ggml.ggml_backend_dev_count()):
        device = ggml.ggml_backend_dev_get(index)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        ggml.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
        devices.append(
            DeviceFact(
                name=(ggml.ggml_backend_dev_name(device) or b"").decode("utf-8", "replace"),
                kind=_DEVICE_KINDS.get(ggml.ggml_backend_dev_type(device), "other"),
                description=(ggml.ggml_backend_dev_description(device) or b"").decode("utf-8", "replace"),
                free_bytes=int(free.value),
                total_bytes=int(total.value),
            )
        )
    return tuple(devices)


def measure_facts(key: str) -> EngineFacts:
    """Load one probe model per weight type on the CPU and see which extra buffers llama.cpp fills (run in the
    engine child; loading tiny models takes about a second in all)."""
    import llama_cpp

    log = LlamaLog()
    llama_cpp.llama_backend_init()
    taken: dict[str, dict[str, float]] = {}
    probed = []
    with tempfile.TemporaryDirectory(prefix="hangar-probe-") as folder:
        for type_name in PROBE_TYPES:
            path = Path(folder) / f"{type_name}.gguf"
            try:
                matrices = write_zero_gguf(path, ZeroModel(weight_type=type_name))
            except (KeyError, ValueError) as error:  # a type this gguf-py does not know
                logger.info("probe for %s skipped: %s", type_name, error)
                continue
            params = llama_cpp.llama_model_default_params()
            params.n_gpu_layers = 0
            log.take()
            model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
            lines = log.take()
            if not model:
                logger.info("probe model for %s did not load: %s", type_name, lines[-1:] if lines else "")
                continue
            probed.append(type_name)
            for key_name, size in parse_buffer_sizes(lines).items():
                kind, name = key_name.split(":", 1)
                if kind != "model" or name in ("CPU", "CPU_Mapped") or size <= 0:
                    continue
                taken.setdefault(name, {})[type_name] = round(size / matrices, 2)
            llama_cpp.llama_model_free(model)
    return EngineFacts(
        llama_version=str(llama_cpp.__version__),
        cpu_key=key,
        extra_buffers=tuple(ExtraBuffer(name, types) for name, types in sorted(taken.items())),
        devices=_devices(),
        probed_types=tuple(probed),
        probed_at=time.time(),
    )


#: The decode probe's model: Q4_K_M-shaped, about 27 MiB of weights: long enough per token to measure, short to run.
DECODE_PROBE = ZeroModel("Q4_K", n_embd=1024, n_ff=2816, n_layer=4, n_head=16, n_head_kv=4, n_vocab=8000, k_m_mix=True)
#: The same shape at about 250 MB, beyond what a CPU core's caches hold (a 27 MiB model decodes twice as fast per
#: byte as a 200 MB one on a Xeon with large caches): real models' decode is this probe's, not the small one's.
DECODE_PROBE_LARGE = replace(DECODE_PROBE, n_layer=36)


def _decode_probe(
    folder: Path, model: ZeroModel = DECODE_PROBE, tokens: int = 16, extra_buffers: bool = True
) -> tuple[int, float]:
    """Decode a few tokens of ``model`` with llama-cpp-python's default threads (as Hangar's engine does) and
    return the bytes a token reads and the weight bytes read per second (GB/s), after the per-token work the
    speed model counts apart.
    Run in a child of its own (``engine_facts``): llama.cpp's repacked CPU paths can crash while decoding (AMX on
    some Xeons), and a crash here must not cost the buffer facts measured before it."""
    import llama_cpp

    from core.estimate.llama import EngineSettings, estimate_llama
    from core.estimate.speed import seconds_per_token
    from core.gguf import read_gguf

    path = folder / f"decode-probe-{model.n_layer}.gguf"
    write_zero_gguf(path, model)
    per_token = estimate_llama(read_gguf(path), EngineSettings(context_length=256, gpu_layers=0)).bytes_per_token
    from backends.llama import plain_load

    if extra_buffers and os.environ.get("HANGAR_TEST_ENGINE_CRASH") == "probe":  # the test-only fault switch
        from backends.worker import _TestFault

        _TestFault.crash()
    try:
        with plain_load(use_extra_bufts=extra_buffers):
            llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_gpu_layers=0, verbose=False)
    except Exception as error:  # the probe is a nicety: the bandwidth probe still answers
        logger.info("decode probe did not load: %s", error)
        return per_token, 0.0
    try:
        best = float("inf")
        for _ in range(2):
            started = None
            count = 0
            for _token in llm.generate([1, 300, 301], temp=0.0, reset=True):
                count += 1
                if started is None:
                    started = time.perf_counter()
                if count > tokens:
                    break
            if started is not None and count > 1:
                best = min(best, (time.perf_counter() - started) / (count - 1))
    finally:
        llm.close()
    fixed = seconds_per_token(0, 0, model.n_layer, 1.0, 1.0)  # the speed model's per-token work
    if best == float("inf") or best <= fixed:
        return per_token, 0.0
    return per_token, round(per_token / (best - fixed) / 1e9, 2)


def fit_pass(request: dict[str, Any]) -> dict[str, Any]:
    """llama.cpp's dry run: build the model and context with empty buffers and read the sizes its allocator
    reports. Returns {"n_ctx", "kv", "compute": {device: bytes}, "output": {device: bytes}, "model_buffers"}."""
    import llama_cpp

    log = LlamaLog()
    llama_cpp.llama_backend_init()
    if request.get("rpc"):  # the workers become devices of this child, as in the engine
        from backends.rpc_worker import register_workers

        register_workers(tuple(request["rpc"]))
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = int(request.get("gpu_layers", 0))
    params.no_alloc = True
    params.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE
    if not request.get("extra_buffers", True):
        params.use_extra_bufts = False
    model = llama_cpp.llama_model_load_from_file(str(request["path"]).encode(), params)
    if not model:
        raise RuntimeError(_last_error(log.take(), "llama.cpp could not read the model"))
    try:
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = int(request["n_ctx"])
        cparams.n_batch = int(request.get("n_batch", 512))
        cparams.n_ubatch = min(cparams.n_batch, int(request.get("n_ubatch", 512)))
        cparams.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if request.get("flash_attention")
            else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        kv_type = int(request.get("kv_type", 1))
        cparams.type_k = cparams.type_v = kv_type
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            raise RuntimeError(_last_error(log.take(), "llama.cpp could not build the context"))
        llama_cpp.llama_free(ctx)
    finally:
        llama_cpp.llama_model_free(model)
    return parse_fit_log(log.take())


def parse_fit_log(lines: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {"n_ctx": 0, "kv": 0, "compute": {}, "output": {}, "model_buffers": []}
    for line in lines:
        size = _MEMORY_SIZE.match(line)
        if size:
            result["kv"] += round(float(size.group(2)) * _MIB)
            continue
        n_ctx = _N_CTX.match(line)
        if n_ctx:
            result["n_ctx"] = int(n_ctx.group(1))
    for key, value in parse_buffer_sizes(lines).items():
        kind, name = key.split(":", 1)
        if kind in ("compute", "output"):
            result[kind][name] = result[kind].get(name, 0) + value
        elif kind == "model" and name not in result["model_buffers"]:
            result["model_buffers"].append(name)
    return result


def _last_error(lines: list[str], fallback: str) -> str:
    detail = next((ln.strip() for ln in reversed(lines) if "error" in ln.lower() or "failed" in ln.lower()), "")
    return f"{fallback}: {detail}" if detail else fallback


def _child(request: dict[str, Any], events: Any, cancel: Any) -> None:
    """Entry of the spawned child: one request ("facts" or "fit"), one answer on ``events``."""
    try:
        if request["what"] == "facts":
            events.put(("ok", measure_facts(request["key"]).as_dict()))
        elif request["what"] == "decode":
            extra = bool(request["extra_buffers"])
            with tempfile.TemporaryDirectory(prefix="hangar-probe-") as folder:
                small = _decode_probe(Path(folder), DECODE_PROBE, extra_buffers=extra)
                large = _decode_probe(Path(folder), DECODE_PROBE_LARGE, extra_buffers=extra)
            events.put(("ok", {"small": small, "large": large}))
        else:
            events.put(("ok", fit_pass(request)))
    except Exception as error:  # reported to the parent, which falls back to the analytic model
        events.put(("error", f"{type(error).__name__}: {error}"))


# -- in the app ------------------------------------------------------------------------------------------------
class ChildCrashed(RuntimeError):
    """The child died inside llama.cpp (a native crash), not of an error it could report."""


def _run(request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one request in a spawned child; raise RuntimeError with the reason if it fails (``ChildCrashed`` if it
    crashed natively)."""
    import threading

    from core.process import is_native_crash

    token = CancelToken()
    timer = threading.Timer(timeout, token.cancel)
    timer.start()
    try:
        outcome, exitcode = run_child(
            _child, request, token, lambda _event: None, is_final=lambda _event: True, grace=2.0, name="llama-fit"
        )
    finally:
        timer.cancel()
    if outcome is None:
        if exitcode is not None and is_native_crash(exitcode):
            raise ChildCrashed(describe_exit(exitcode))
        raise RuntimeError(describe_exit(exitcode))
    status, value = outcome
    if status != "ok":
        raise RuntimeError(str(value))
    return dict(value)


def engine_facts(cache_dir: Path, *, refresh: bool = False, timeout: float = 60.0) -> EngineFacts | None:
    """This machine's llama.cpp facts: from the cache when measured with this build on this CPU, else measured
    now in a child process. None when llama.cpp is missing or the probe failed (the estimator then says so)."""
    try:
        import llama_cpp
    except ImportError:
        return None
    version = str(llama_cpp.__version__)
    key = cpu_key(llama_cpp.llama_print_system_info().decode("utf-8", "replace"))
    path = cache_dir / FACTS_FILE
    if not refresh:
        cached = load_cached(path, version, key)
        if cached is not None:
            return cached
    try:
        facts = EngineFacts.from_dict(_run({"what": "facts", "key": key}, timeout))
    except RuntimeError as error:
        logger.warning("llama.cpp facts probe failed: %s", error)
        return None
    facts = decode_speed(facts, timeout)
    try:
        save_cached(path, facts)
    except OSError as error:
        logger.info("engine facts not cached: %s", error)
    return facts


def decode_speed(facts: EngineFacts, timeout: float = 60.0) -> EngineFacts:
    """``facts`` with llama.cpp's own CPU decode here (``_decode_probe``, a small and a large model) measured in a
    child process; after a native crash measured again with the extra buffer types off, as safe mode would
    load. Unchanged (no decode rate) when neither ran."""
    crashed = False
    for extra_buffers in (True, False):
        try:
            answer = _run({"what": "decode", "extra_buffers": extra_buffers}, timeout)
        except RuntimeError as error:
            logger.warning("llama.cpp decode probe failed (extra buffer types %s): %s", extra_buffers, error)
            crashed = crashed or (extra_buffers and isinstance(error, ChildCrashed))
            continue
        (small_bytes, small_gbs), (large_bytes, large_gbs) = answer["small"], answer["large"]
        return replace(
            facts,
            # crashed with them on, ran with them off: the engine loads every model that way here
            extra_buffers_crash=crashed and not extra_buffers and bool(facts.extra_buffers),
            decode_gbs=float(small_gbs),
            decode_bytes=float(small_bytes),
            decode_gbs_large=float(large_gbs),
            decode_bytes_large=float(large_bytes),
        )
    return facts


def fit_in_child(request: dict[str, Any], timeout: float = FIT_TIMEOUT) -> dict[str, Any]:
    """llama.cpp's memory-fit pass for ``request["path"]`` in a child process (see ``fit_pass``)."""
    return _run({**request, "what": "fit"}, timeout)


__all__ = ["PROBE_TYPES", "ZeroModel", "engine_facts", "fit_in_child", "fit_pass", "measure_facts", "write_zero_gguf"]
