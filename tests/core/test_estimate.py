"""The estimators on real generated models: llama.cpp buffer arithmetic, GPU offload placement and verdicts
(GPUs are described, since none runs here), MLX and LoRA/QLoRA sizes, and the estimate-vs-actual record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
from core.errors import UsageError
from core.estimate.llama import MIB, EngineSettings, Verdict, context_bytes_per_token, estimate_llama
from core.estimate.mlx import estimate_mlx, mlx_kv_bytes
from core.estimate.records import compare, load_history, record_load
from core.estimate.training import TrainingMethod, TrainingSettings, estimate_training, lora_parameters
from core.gguf import GGUFInfo, read_gguf
from core.hardware import GIB, EngineSupport, GpuDevice, Hardware
from core.models.safetensors import read_safetensors_dir
from core.models.shape import ModelShape


def machine(gpu_free: int | None = None, ram: int = 32 * GIB, unified: bool = False) -> Hardware:
    """A described machine (the estimator's input), with one CUDA GPU if ``gpu_free`` is given."""
    gpus = ()
    if gpu_free is not None:
        gpus = (
            GpuDevice(
                0,
                "Test GPU",
                "nvidia",
                "cuda",
                total_bytes=gpu_free + GIB,
                free_bytes=gpu_free,
                bandwidth_gbs=1000.0,
                unified_memory=unified,
            ),
        )
    return Hardware(
        os="Linux",
        machine="x86_64",
        cpu_name="cpu",
        cpu_cores=8,
        cpu_threads=16,
        cpu_family="x86_avx2",
        ram_total_bytes=ram,
        ram_available_bytes=ram,
        ram_bandwidth_gbs=60.0,
        gpus=gpus,
        engines=EngineSupport(llama_installed=True, llama_gpu_offload=True),
    )


@pytest.fixture(scope="module")
def gqa(tmp_path_factory: pytest.TempPathFactory) -> GGUFInfo:
    return read_gguf(
        write_tiny_gguf(
            tmp_path_factory.mktemp("est") / "gqa.gguf",
            TinyModelConfig(
                n_embd=256,
                n_head=8,
                n_head_kv=2,
                n_ff=768,
                n_layer=4,
                n_vocab=8000,
                weight_type="Q8_0",
                context_length=131072,
            ),
        )
    )


def test_cpu_only_breakdown(gqa: GGUFInfo) -> None:
    estimate = estimate_llama(gqa, EngineSettings(context_length=1000, gpu_layers=0))
    host = estimate.host
    assert estimate.n_ctx == 1024  # padded to 256 like llama.cpp
    # K and V: 4 layers x 2 KV heads x 32 dims x f16 x 1024 cells
    assert host.kv == 2 * 4 * 2 * 32 * 2 * 1024
    assert host.output == 4 * 8000
    assert host.weights == gqa.weights_bytes  # Q8_0 is not repacked on x86: one mapped span
    assert host.compute >= 4 * 512 * 8000  # logits of a whole micro-batch
    assert estimate.verdict is Verdict.CPU_ONLY and estimate.devices == (host,)
    q8 = estimate_llama(gqa, EngineSettings(context_length=1024, kv_cache_type="q8_0", flash_attention=True))
    assert q8.host.kv == 4 * 2 * (64 // 32 * 34) * 1024
    assert context_bytes_per_token(gqa) == 2 * 4 * 2 * 32 * 2
    with pytest.raises(UsageError, match="flash attention"):
        EngineSettings(kv_cache_type="q4_0")


def test_full_partial_and_no_fit_on_a_described_gpu(gqa: GGUFInfo, tmp_path: Path) -> None:
    roomy = estimate_llama(gqa, EngineSettings(context_length=2048), machine(gpu_free=8 * GIB))
    assert roomy.verdict is Verdict.FULL_GPU and roomy.gpu_layers == 5
    gpu = roomy.devices[1]
    assert gpu.device == "CUDA0" and gpu.kv == roomy.component("kv") and gpu.overhead == 450 * MIB
    assert roomy.host.kv == 0 and roomy.host.compute == 4 * 512 * (256 + 2048)  # only the graph inputs
    # a tiny model on a fast GPU: fast, but capped and rounded (never "about 37,235 tokens/s")
    assert roomy.speed is not None and roomy.speed.confidence == "probed"
    assert roomy.tokens_per_second and 100 < roomy.tokens_per_second <= 10000
    assert roomy.tokens_per_second == float(f"{roomy.tokens_per_second:.2g}")
    # A GPU with room for exactly two of a wide model's layers: auto picks two, three do not fit
    wide = read_gguf(
        write_tiny_gguf(
            tmp_path / "wide.gguf",
            TinyModelConfig(n_embd=512, n_head=4, n_head_kv=1, n_ff=2048, n_layer=6, n_vocab=1000),
        )
    )
    two = estimate_llama(wide, EngineSettings(context_length=512, gpu_layers=2), machine(gpu_free=8 * GIB))
    free = two.devices[1].total + 512 * MIB  # plus the safety margin
    tight = estimate_llama(wide, EngineSettings(context_length=512), machine(gpu_free=free))
    assert tight.verdict is Verdict.PARTIAL and tight.gpu_layers == 2
    assert tight.verdict_text == "Fits with 2 of 7 layers on the GPU"
    assert all(d.fits for d in tight.devices)
    more = estimate_llama(wide, EngineSettings(context_length=512, gpu_layers=3), machine(gpu_free=free))
    assert more.verdict is Verdict.TOO_LARGE and not more.devices[1].fits
    # -ngl 1 puts only the output layer on the GPU
    one = estimate_llama(gqa, EngineSettings(context_length=2048, gpu_layers=1), machine(gpu_free=8 * GIB))
    assert one.devices[1].weights == sum(t.n_bytes for t in gqa.tensors if t.name.startswith("output"))
    assert one.devices[1].kv == 0
    # no GPU and too little RAM
    nothing = estimate_llama(gqa, EngineSettings(context_length=2048), machine(ram=GIB + 10 * MIB))
    assert nothing.verdict is Verdict.TOO_LARGE and nothing.max_context < 2048


def test_max_context_grows_with_memory(gqa: GGUFInfo) -> None:
    small = estimate_llama(gqa, EngineSettings(context_length=512, gpu_layers=0), machine(ram=GIB + 400 * MIB))
    big = estimate_llama(gqa, EngineSettings(context_length=512, gpu_layers=0), machine(ram=64 * GIB))
    assert 512 <= small.max_context < big.max_context
    assert big.max_context == gqa.context_length  # capped at the trained context
    at_max = estimate_llama(
        gqa, EngineSettings(context_length=small.max_context, gpu_layers=0), machine(ram=GIB + 400 * MIB)
    )
    beyond = estimate_llama(
        gqa, EngineSettings(context_length=small.max_context + 256, gpu_layers=0), machine(ram=GIB + 400 * MIB)
    )
    assert at_max.verdict is Verdict.CPU_ONLY and beyond.verdict is Verdict.TOO_LARGE


def test_tied_embeddings_are_duplicated_on_the_gpu_and_moe_reads_active_experts(tmp_path: Path) -> None:
    tied = read_gguf(write_tiny_gguf(tmp_path / "tied.gguf", TinyModelConfig(tied_embeddings=True)))
    one = estimate_llama(tied, EngineSettings(context_length=512, gpu_layers=1), machine(gpu_free=GIB))
    embd = tied.tensor("token_embd.weight")
    assert embd is not None and one.devices[1].weights == embd.n_bytes + 64 * 4  # head copy + output_norm
    moe = read_gguf(
        write_tiny_gguf(
            tmp_path / "moe.gguf", TinyModelConfig(n_embd=128, n_ff=256, n_expert=8, n_expert_used=2, n_layer=2)
        )
    )
    estimate = estimate_llama(moe, EngineSettings(context_length=512), machine(gpu_free=GIB))
    experts = sum(t.n_bytes for t in moe.tensors if t.is_expert)
    assert estimate.bytes_per_token < moe.weights_bytes - experts * 0.7  # only 2 of 8 experts are read


def test_estimate_json_shape(gqa: GGUFInfo) -> None:
    data = estimate_llama(gqa, EngineSettings(context_length=2048), machine(gpu_free=8 * GIB)).as_dict()
    json.dumps(data)
    assert data["verdict"] == "full_gpu" and set(data["breakdown"]) == {"CPU", "CUDA0"}
    assert data["total_bytes"] == sum(d["total"] for d in data["breakdown"].values())
    assert {"weights", "kv", "compute", "output", "overhead"} <= set(data["breakdown"]["CUDA0"])


def test_record_estimate_against_actual(app, gqa: GGUFInfo) -> None:
    estimate = estimate_llama(gqa, EngineSettings(context_length=1024, gpu_layers=0))
    allocated = {
        "model:CPU_Mapped": estimate.host.weights,
        "kv:CPU": estimate.host.kv,
        "compute:CPU": estimate.host.compute + 2 * MIB,
        "output:CPU": estimate.host.output,
    }
    comparison = compare(estimate, allocated)
    assert comparison.error_pct < 0 and comparison.component_error_pct("kv") == 0
    record = record_load(app.store, estimate, allocated)
    assert record.error_pct == pytest.approx(comparison.error_pct)
    history = load_history(app.store)
    assert [r.id for r in history] == [record.id] and history[0].model == "gqa.gguf"
    assert load_history(app.store, model="other.gguf") == []


def _mlx_folder(folder: Path) -> Path:
    from safetensors.numpy import save_file

    folder.mkdir()
    config = {
        "model_type": "llama",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 1000,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": True,
    }
    (folder / "config.json").write_text(json.dumps(config))
    save_file({"model.embed_tokens.weight": np.zeros((1000, 64), np.float16)}, str(folder / "model-1.safetensors"))
    save_file(
        {f"model.layers.{i}.mlp.up_proj.weight": np.zeros((128, 64), np.float16) for i in range(2)},
        str(folder / "model-2.safetensors"),
    )
    weight_map = {"model.embed_tokens.weight": "model-1.safetensors"}
    weight_map |= {f"model.layers.{i}.mlp.up_proj.weight": "model-2.safetensors" for i in range(2)}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return folder


def test_mlx_and_safetensors(tmp_path: Path) -> None:
    model = read_safetensors_dir(_mlx_folder(tmp_path / "mlx"))
    assert model.tensor_bytes == (1000 * 64 + 2 * 128 * 64) * 2
    assert model.total_bytes > model.tensor_bytes and model.bytes_by_dtype == {"F16": model.tensor_bytes}
    shape = ModelShape.from_config(model.config)
    assert mlx_kv_bytes(shape, 1) == mlx_kv_bytes(shape, 256) == 2 * 256 * 2 * (16 + 16) * 2
    assert mlx_kv_bytes(shape, 257) == 2 * mlx_kv_bytes(shape, 256)  # grows in 256-token steps
    roomy = estimate_mlx(model, 4096, machine(ram=8 * GIB))
    assert roomy.fits and roomy.max_context == 8192
    tight = estimate_mlx(model, 4096, machine(ram=300 * MIB))
    assert not tight.fits and tight.max_context == 0
    (tmp_path / "mlx" / "model-2.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{}")
    from core.errors import ModelFileError

    with pytest.raises(ModelFileError):
        read_safetensors_dir(tmp_path / "mlx")


def test_lora_and_qlora() -> None:
    llama3_8b = ModelShape.from_config(
        {
            "hidden_size": 4096,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "intermediate_size": 14336,
            "vocab_size": 128256,
            "max_position_embeddings": 8192,
        }
    )
    assert 8.0e9 < llama3_8b.parameter_count < 8.1e9
    assert lora_parameters(llama3_8b, TrainingSettings(rank=16)) == 41_943_040  # known figure for Llama-3-8B
    lora = estimate_training(llama3_8b, TrainingSettings(rank=16))
    qlora = estimate_training(llama3_8b, TrainingSettings(rank=16, method=TrainingMethod.QLORA))
    assert lora.base_weights == llama3_8b.parameter_count * 2
    assert 5.3 * GIB < qlora.base_weights < 6.0 * GIB  # NF4 linears + bf16 embeddings ≈ 5.7 GB
    no_ckpt = estimate_training(llama3_8b, TrainingSettings(rank=16, gradient_checkpointing=False))
    assert no_ckpt.activations > 5 * lora.activations
    mlx = estimate_training(
        llama3_8b, TrainingSettings(layers_trained=16, engine="mlx", base_weights_bytes=4_500_000_000)
    )
    assert mlx.base_weights == 4_500_000_000 and mlx.trainable_parameters == lora_parameters(
        llama3_8b, TrainingSettings(layers_trained=16)
    )
    assert estimate_training(llama3_8b, TrainingSettings(), machine(gpu_free=8 * GIB)).fits is False
    with pytest.raises(UsageError):
        TrainingSettings(target_modules=("lm_head",))


def test_choose_gpu_layers_for_load_options(gqa: GGUFInfo) -> None:
    from core.estimate.fitting import choose_gpu_layers

    assert choose_gpu_layers(gqa, EngineSettings(context_length=2048), machine(gpu_free=8 * GIB)) == -1
    assert choose_gpu_layers(gqa, EngineSettings(context_length=2048), machine()) == 0
    assert choose_gpu_layers(gqa, EngineSettings(context_length=2048), None) == 0


def test_safetensors_headers_never_crash(tmp_path: Path) -> None:
    import struct

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from core.errors import ModelFileError
    from core.gguf.source import FileSource
    from core.models.safetensors import parse_safetensors_header

    entry = st.fixed_dictionaries(
        {
            "dtype": st.sampled_from(["F16", "BF16", "U32", "X9", 3]),
            "shape": st.lists(st.integers(-2, 2**40), max_size=3),
            "data_offsets": st.lists(st.integers(-5, 2**40), min_size=0, max_size=3),
        }
    )

    @settings(max_examples=100, deadline=None)
    @given(
        header=st.dictionaries(st.text(max_size=8), entry, max_size=4),
        claimed=st.integers(0, 2**64 - 1),
        honest=st.booleans(),
        tail=st.binary(max_size=64),
    )
    def check(header: dict, claimed: int, honest: bool, tail: bytes) -> None:
        body = json.dumps(header).encode()
        path = tmp_path / "x.safetensors"
        path.write_bytes(struct.pack("<Q", len(body) if honest else claimed) + body + tail)
        source = FileSource(path)
        try:
            tensors = parse_safetensors_header(source)
        except ModelFileError:
            return
        finally:
            source.close()
        assert all(t.n_bytes >= 0 for t in tensors)

    check()
