"""Convert a LoRA adapter (PEFT, or mlx-lm's) to a GGUF LoRA adapter that llama.cpp applies to the base GGUF.

The file follows llama.cpp's ``convert_lora_to_gguf.py``: ``general.type`` "adapter", ``adapter.type`` "lora",
``adapter.lora.alpha``, and per adapted matrix ``blk.N.attn_q.weight.lora_a`` (PyTorch layout (rank, in), GGUF
ne [in, rank]) and ``.lora_b`` ((out, rank), ne [rank, out]). Q and K get llama.cpp's RoPE row order, which for
a product B·A means permuting the rows of B only. Load it with ``LoadOptions(lora_path=...)``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from backends.hf_gguf import gguf_tensor_name, permute_rows, read_config
from core.errors import FinetuneError

logger = logging.getLogger(__name__)


def read_adapter(adapter: Path) -> tuple[dict[str, tuple[Any, Any]], float, str | None]:
    """({hf module: (A (rank, in), B (out, rank))}, alpha, base model recorded in the adapter)."""
    import numpy as np
    from safetensors.numpy import load_file

    config_file = adapter / "adapter_config.json"
    if not config_file.is_file():
        raise FinetuneError(f"{adapter} is not a LoRA adapter folder (it has no adapter_config.json).")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    pairs: dict[str, dict[str, Any]] = {}
    if (adapter / "adapter_model.safetensors").is_file():  # PEFT
        for name, value in load_file(str(adapter / "adapter_model.safetensors")).items():
            stem, _, leaf = name.rpartition(".lora_")
            module = stem.removeprefix("base_model.model.")
            pairs.setdefault(module, {})[leaf.split(".")[0]] = np.asarray(value, dtype=np.float32)
        alpha = float(config["lora_alpha"])
        rank = int(config["r"])
        base = config.get("base_model_name_or_path")
        result = {m: (p["A"], p["B"]) for m, p in pairs.items() if "A" in p and "B" in p}
    elif (adapter / "adapters.safetensors").is_file():  # mlx-lm: x @ a @ b with a (in, rank), b (rank, out)
        for name, value in load_file(str(adapter / "adapters.safetensors")).items():
            module, _, leaf = name.rpartition(".")
            pairs.setdefault(module, {})[leaf] = np.asarray(value, dtype=np.float32)
        params = config["lora_parameters"]
        rank = int(params["rank"])
        alpha = float(params["scale"]) * rank
        base = config.get("base_model") or config.get("model")
        result = {m: (p["lora_a"].T, p["lora_b"].T) for m, p in pairs.items() if "lora_a" in p and "lora_b" in p}
    else:
        raise FinetuneError(f"{adapter} holds no adapter weights.")
    if not result:
        raise FinetuneError(f"{adapter} holds no LoRA matrices.")
    for module, (a, b) in result.items():
        if a.shape[0] != rank or b.shape[1] != rank:
            raise FinetuneError(f"The adapter matrix for {module} does not have rank {rank}.")
    return result, alpha, base


def convert_lora_to_gguf(adapter: str | Path, output: str | Path, base_model: str | Path | None = None) -> Path:
    """Write ``output`` (a GGUF LoRA). ``base_model`` is the Hugging Face folder it was trained on (for the
    head counts that order Q and K); by default the one recorded in the adapter."""
    import gguf
    import numpy as np

    adapter, output = Path(adapter), Path(output)
    matrices, alpha, recorded_base = read_adapter(adapter)
    base = Path(base_model or recorded_base or "")
    if not (base / "config.json").is_file():
        raise FinetuneError(
            f"The base model of {adapter.name} was not found ({base}).", hint="Pass the base model folder."
        )
    config = read_config(base)
    n_head = int(config["num_attention_heads"])
    n_head_kv = int(config.get("num_key_value_heads", n_head))
    writer = gguf.GGUFWriter(str(output), "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    writer.add_name(f"{adapter.name} (LoRA)")
    skipped = []
    for module, (a, b) in sorted(matrices.items()):
        name = gguf_tensor_name(module)
        if name is None:
            skipped.append(module)
            continue
        if name.endswith("attn_q"):
            b = permute_rows(b, n_head)
        elif name.endswith("attn_k"):
            b = permute_rows(b, n_head_kv)
        writer.add_tensor(f"{name}.weight.lora_a", np.ascontiguousarray(a, dtype=np.float32))
        writer.add_tensor(f"{name}.weight.lora_b", np.ascontiguousarray(b, dtype=np.float32))
    if skipped:
        raise FinetuneError(f"These adapted layers have no llama.cpp equivalent: {', '.join(skipped[:4])}.")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return output
