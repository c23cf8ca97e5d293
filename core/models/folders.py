"""MLX model folders and LoRA adapter folders: validation and metadata from config.json, the safetensors
headers (read, never the weights), the tokenizer files and the model card."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from core.errors import ModelFileError
from core.models.shape import check_config_limits
from core.models.types import Candidate, ModelFormat, ModelMetadata
from core.text import printable

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tiktoken.model", "vocab.json")
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


def is_hidden(path: Path) -> bool:
    # Our own in-progress copies (".importing-...") and dot-folders (.git, .cache) are never models.
    return path.name.startswith(".")


def folder_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not is_hidden(p))


def _load_json(path: Path, folder: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{folder.name}: {path.name} is not valid JSON ({exc}).") from exc
    if not isinstance(value, dict):
        raise ModelFileError(f"{folder.name}: {path.name} does not hold a JSON object.")
    return value


def safetensors_parameter_count(path: Path, *, bits: int | None = None) -> int:
    """Validate one safetensors file from its header and count its parameters (quantized weights unpacked)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        raw = handle.read(8)
        if len(raw) < 8:
            raise ModelFileError(f"{path.name} is truncated: only {size} bytes.")
        (header_len,) = struct.unpack("<Q", raw)
        if header_len > min(size - 8, _MAX_SAFETENSORS_HEADER):
            raise ModelFileError(f"{path.name} is not a valid safetensors file (or it is truncated).")
        try:
            header = json.loads(handle.read(header_len))
        except ValueError as exc:
            raise ModelFileError(f"{path.name} is not a valid safetensors file ({exc}).") from exc
    end = 0
    count = 0
    for key, tensor in header.items():
        if key == "__metadata__" or not isinstance(tensor, dict):
            continue
        end = max(end, int(tensor.get("data_offsets", [0, 0])[1]))
        n = 1
        for dim in tensor.get("shape", []):
            n *= int(dim)
        # MLX packs quantized weights into uint32: each element holds 32/bits weights. Scales and biases
        # are bookkeeping, not parameters.
        if bits and tensor.get("dtype") == "U32":
            n = n * 32 // bits
        if bits and (key.endswith(".scales") or key.endswith(".biases")):
            n = 0
        count += n
    if 8 + header_len + end > size:
        raise ModelFileError(
            f"{path.name} is truncated: {size:,} bytes present of {8 + header_len + end:,}.",
            hint="Download or copy the folder again.",
        )
    return count


def _weights(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    weights = sorted(p for p in folder.glob("*.safetensors") if not is_hidden(p))
    if index.is_file():
        shards = sorted(set(_load_json(index, folder).get("weight_map", {}).values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise ModelFileError(
                f"The MLX model {folder.name} is incomplete: {len(missing)} of {len(shards)} weight files are "
                f"missing (first: {missing[0]}).",
                hint="Copy or download the whole folder again.",
            )
    return weights


def read_mlx_folder(folder: Path, *, source: str | None = None, name: str | None = None) -> Candidate:
    config = _load_json(folder / "config.json", folder)
    check_config_limits(config, f"{folder.name}/config.json")
    weights = _weights(folder)
    if not weights:
        others = [p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".npz")]
        detail = f" (it has {others[0]}, which MLX does not load)" if others else ""
        raise ModelFileError(
            f"The folder {folder.name} has a config.json but no .safetensors weights{detail}, so it is not a "
            "usable MLX model.",
            hint="Copy the *.safetensors files into the folder too, or download the model again.",
        )
    if not any((folder / t).is_file() for t in _TOKENIZER_FILES):
        raise ModelFileError(
            f"The MLX model {folder.name} has no tokenizer (tokenizer.json or tokenizer.model).",
            hint="Copy the tokenizer files from the model's repository into the folder.",
        )
    quant = config.get("quantization") or config.get("quantization_config") or {}
    bits = quant.get("bits") if isinstance(quant, dict) else None
    params = sum(safetensors_parameter_count(w, bits=bits if isinstance(bits, int) else None) for w in weights)
    files = folder_files(folder)
    raw_text_config = config.get("text_config")
    text_config: dict[str, Any] = raw_text_config if isinstance(raw_text_config, dict) else {}
    context = config.get("max_position_embeddings") or text_config.get("max_position_embeddings")
    dtype = config.get("torch_dtype") or config.get("dtype")
    metadata = ModelMetadata(
        architecture=printable(str(config.get("model_type"))) if config.get("model_type") else None,
        parameter_count=params or None,
        quant=f"{bits}-bit" if bits else (str(dtype).upper().replace("BFLOAT16", "BF16") if dtype else None),
        context_length=int(context) if isinstance(context, int) and context > 0 else None,
        has_chat_template=_has_chat_template(folder),
        license=_readme_license(folder),
        model_name=folder.name,
    )
    return Candidate(
        name=name or folder.name,
        format=ModelFormat.MLX,
        root=folder,
        files=tuple(files),
        size_bytes=sum(p.stat().st_size for p in files),
        metadata=metadata,
        source=source,
    )


def read_adapter_folder(folder: Path, *, source: str | None = None, name: str | None = None) -> Candidate:
    config = _load_json(folder / "adapter_config.json", folder)
    weights = [folder / n for n in ("adapters.safetensors", "adapter_model.safetensors") if (folder / n).is_file()]
    if not weights:
        raise ModelFileError(
            f"The adapter folder {folder.name} has an adapter_config.json but no adapter weights "
            "(adapters.safetensors or adapter_model.safetensors).",
            hint="The fine-tune may not have finished; copy the weights file into the folder.",
        )
    params = safetensors_parameter_count(weights[0])
    files = folder_files(folder)
    base = config.get("base_model_name_or_path") or config.get("model")
    metadata = ModelMetadata(
        architecture=str(config.get("peft_type") or config.get("fine_tune_type") or "lora").lower(),
        parameter_count=params or None,
        license=_readme_license(folder),
        model_name=folder.name,
        base_model=str(base) if base else None,
    )
    return Candidate(
        name=name or folder.name,
        format=ModelFormat.LORA,
        root=folder,
        files=tuple(files),
        size_bytes=sum(p.stat().st_size for p in files),
        metadata=metadata,
        source=source,
    )


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    config = folder / "tokenizer_config.json"
    if config.is_file():
        try:
            return bool(json.loads(config.read_text(encoding="utf-8")).get("chat_template"))
        except (ValueError, UnicodeDecodeError, AttributeError):
            return False
    return False


def _readme_license(folder: Path) -> str | None:
    """The ``license:`` line of a model card's YAML front matter (no YAML parser needed for one key)."""
    readme = folder / "README.md"
    if not readme.is_file():
        return None
    try:
        text = readme.read_text(encoding="utf-8", errors="replace")[:8192]
    except OSError:
        return None
    if not text.startswith("---"):
        return None
    front = text[3:].split("\n---", 1)[0]
    for line in front.splitlines():
        if line.startswith("license:"):
            return line.split(":", 1)[1].strip().strip("'\"") or None
    return None
