"""The MLX engine (mlx-lm): Hugging Face-format folders on Apple Silicon, and on the CPU build elsewhere.

Generation goes through ``mlx_lm.stream_generate`` (the path the benchmark compares against) with samplers
and logits processors from ``mlx_lm.sample_utils``. Stop strings, cancellation, token counts and timings are
Hangar's own, so both engines report the same statistics. mlx-lm has no constrained decoding, so JSON and
JSON-schema modes are refused with a clear message rather than silently ignored.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from backends.chat_template import ChatTemplate
from backends.textstream import StopFilter, role_text_prompt
from core.engine.protocol import ChatMessage, GenerationParams, GenerationStats, ModelInfo, ModelSpec
from core.errors import EngineError, InsufficientMemoryError, ModelFileError, UnsupportedModelError

logger = logging.getLogger(__name__)

STRUCTURED_OUTPUT_UNSUPPORTED = (
    "Structured output (JSON mode and JSON-schema mode) is not supported by the MLX engine: "
    "mlx-lm has no constrained decoding."
)
_KV_BITS = {"f16": None, "bf16": None, "f32": None, "q8_0": 8, "q4_0": 4}


class MlxEngine:
    def __init__(self) -> None:
        self._model: Any = None
        self._tokenizer: Any = None
        self._context_length = 0
        self._kv_bits: int | None = None
        self._path: str | None = None
        self._template: ChatTemplate | None = None

    # -- load ------------------------------------------------------------------------------------------------
    def load(self, spec: ModelSpec, progress: Callable[[float | None], None]) -> ModelInfo:
        import mlx.core as mx
        from mlx_lm import load as mlx_load

        path = Path(spec.path)
        config = _read_config(path)
        opts = spec.options
        if opts.kv_cache_type not in _KV_BITS:
            raise EngineError(f"Unknown KV cache type {opts.kv_cache_type!r}; use f16, q8_0 or q4_0.")
        if opts.lora_path and not (Path(opts.lora_path) / "adapter_config.json").is_file():
            raise ModelFileError(
                f"{opts.lora_path} is not an MLX LoRA adapter folder (it has no adapter_config.json).",
                hint="Choose the folder a fine-tune wrote its adapters to.",
            )
        started = time.perf_counter()
        progress(0.0)
        try:
            loaded: Any = mlx_load(str(path), adapter_path=opts.lora_path or None)
            model, tokenizer = loaded
        except MemoryError as exc:
            raise InsufficientMemoryError(
                f"Not enough memory to load {path.name}.", hint="Choose a smaller or more quantized model."
            ) from exc
        except ValueError as exc:
            if "not supported" in str(exc):
                raise UnsupportedModelError(
                    f"{path.name}: the {config.get('model_type', 'unknown')!s} architecture is not supported "
                    "by this mlx-lm version.",
                    hint="Update Hangar, or choose a model with a supported architecture.",
                ) from exc
            raise ModelFileError(f"MLX could not load {path.name}: {exc}") from exc
        except (FileNotFoundError, OSError, RuntimeError, KeyError) as exc:
            text = str(exc)
            if "memory" in text.lower() and "allocat" in text.lower():
                raise InsufficientMemoryError(
                    f"Not enough memory to load {path.name}.",
                    hint="Choose a smaller or more quantized model.",
                ) from exc
            raise ModelFileError(f"MLX could not load {path.name}: {text}") from exc
        progress(1.0)
        self._template = _sandboxed_template(tokenizer)
        self._model, self._tokenizer = model, tokenizer
        self._path = str(path)
        self._kv_bits = _KV_BITS[opts.kv_cache_type]
        model_max = int(config.get("max_position_embeddings") or opts.context_length)
        self._context_length = min(opts.context_length, model_max) if opts.context_length > 0 else model_max
        if opts.seed >= 0:
            mx.random.seed(opts.seed)
        weights = sum(v.nbytes for _, v in _flatten(model.parameters()))
        return ModelInfo(
            path=str(path),
            engine="mlx",
            context_length=self._context_length,
            vocab_size=int(config.get("vocab_size") or len(tokenizer.get_vocab())),
            has_chat_template=bool(getattr(tokenizer, "has_chat_template", False)),
            allocated={f"model:{_device_name()}": int(weights)},
            load_seconds=time.perf_counter() - started,
            device=_device_name(),
        )

    # -- prompts ---------------------------------------------------------------------------------------------
    def _prompt_tokens(self, messages: Sequence[ChatMessage], continue_last: bool) -> list[int]:
        tokenizer = self._tokenizer
        items = [{"role": m.role, "content": m.content} for m in messages]
        continuing = continue_last and bool(items) and items[-1]["role"] == "assistant"
        if getattr(tokenizer, "has_chat_template", False):
            head = items[:-1] if continuing else items
            prompt = self._apply_template(head)
            if continuing:
                prompt += items[-1]["content"]
        else:
            prompt = role_text_prompt(items, continue_last)
        bos = tokenizer.bos_token
        add_special = bos is None or not prompt.startswith(bos)
        return list(tokenizer.encode(prompt, add_special_tokens=add_special))

    def _apply_template(self, items: list[dict[str, str]]) -> str:
        try:
            if self._template is not None:
                return self._template.render(items)
            return str(self._tokenizer.apply_chat_template(items, add_generation_prompt=True, tokenize=False))
        except ModelFileError:  # the sandbox stopped a hostile template: no second try
            raise
        except Exception as exc:
            # Some templates (Gemma's, say) reject a system role: fold it into the first user message.
            if items and items[0]["role"] == "system":
                rest = items[1:]
                if rest and rest[0]["role"] == "user":
                    merged = {"role": "user", "content": items[0]["content"] + "\n\n" + rest[0]["content"]}
                    return self._apply_template([merged, *rest[1:]])
            raise EngineError(f"The model's chat template failed: {exc}") from exc

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        self._require_model()
        return len(self._prompt_tokens(messages, continue_last=False))

    def _require_model(self) -> None:
        if self._model is None:
            raise EngineError("No model is loaded.")

    # -- generation ------------------------------------------------------------------------------------------
    def generate(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        emit: Callable[[str], None],
        should_stop: Callable[[], bool],
    ) -> GenerationStats:
        import mlx.core as mx
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_logits_processors, make_sampler

        self._require_model()
        if params.response_format != "text":
            raise EngineError(STRUCTURED_OUTPUT_UNSUPPORTED, hint="Use a GGUF model (llama.cpp) for JSON output.")
        started = time.perf_counter()
        prompt = self._prompt_tokens(messages, params.continue_last)
        budget = self._context_length - len(prompt)
        if budget <= 0:
            raise EngineError(
                f"The conversation ({len(prompt)} tokens) does not fit in the context ({self._context_length} tokens).",
                hint="Start a new chat, shorten the history, or load the model with a longer context.",
            )
        max_tokens = min(params.max_tokens, budget)
        if params.seed is not None:
            mx.random.seed(params.seed)
        sampler = make_sampler(temp=params.temperature, top_p=params.top_p, min_p=params.min_p, top_k=params.top_k)
        processors = make_logits_processors(
            repetition_penalty=params.repeat_penalty if params.repeat_penalty != 1.0 else None
        )
        if params.ignore_eos:
            processors.append(self._eos_suppressor())
        kwargs: dict[str, Any] = {"sampler": sampler, "logits_processors": processors}
        if self._kv_bits is not None:
            kwargs.update(kv_bits=self._kv_bits, quantized_kv_start=0)
        stops = StopFilter(params.stop, emit)
        eos = set(self._tokenizer.eos_token_ids)
        completion = 0
        first_token_at: float | None = None
        stop_reason = "length"
        responses = stream_generate(self._model, self._tokenizer, mx.array(prompt), max_tokens, **kwargs)
        try:
            for response in responses:
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                if response.finish_reason == "stop" and response.token in eos:
                    stop_reason = "stop"  # the EOS token itself is not part of the reply
                else:
                    completion += 1
                if stops.add(response.text):
                    stop_reason = "stop"
                    break
                if response.finish_reason is not None:
                    break
                if should_stop():
                    stop_reason = "cancelled"
                    break
        finally:
            responses.close()
        if not stops.stopped:
            stops.flush()
        finished = time.perf_counter()
        first = first_token_at or finished
        decode_time = finished - first
        return GenerationStats(
            prompt_tokens=len(prompt),
            completion_tokens=completion,
            time_to_first_token_ms=(first - started) * 1000.0,
            tokens_per_second=(completion - 1) / decode_time if completion > 1 and decode_time > 0 else 0.0,
            stop_reason=stop_reason,
            text=stops.text,
        )

    def _eos_suppressor(self) -> Callable[[Any, Any], Any]:
        import mlx.core as mx

        vocab = int(self._model.args.vocab_size) if hasattr(self._model, "args") else len(self._tokenizer)
        bias = [0.0] * vocab
        for token in self._tokenizer.eos_token_ids:
            if 0 <= token < vocab:
                bias[token] = -float("inf")
        mask = mx.array(bias)

        def suppress(_tokens: Any, logits: Any) -> Any:
            return logits + mask

        return suppress

    def unload(self) -> None:
        if self._model is not None:
            import mlx.core as mx

            self._model = None
            self._tokenizer = None
            self._template = None
            mx.clear_cache()


def _sandboxed_template(tokenizer: Any) -> ChatTemplate | None:
    """The tokenizer's chat template in Hangar's sandbox (Transformers' own renderer has no time or size limits),
    with the tokenizer's special tokens as Transformers passes them. None: let the tokenizer render it."""
    source = getattr(tokenizer, "chat_template", None)
    if not isinstance(source, str) or not source:
        return None
    special = getattr(tokenizer, "special_tokens_map", None) or {}
    extra = {key: value for key, value in dict(special).items() if isinstance(value, str)}
    try:
        return ChatTemplate(
            source,
            bos_token=str(getattr(tokenizer, "bos_token", None) or ""),
            eos_token=str(getattr(tokenizer, "eos_token", None) or ""),
            extra=extra,
        )
    except ModelFileError:
        raise
    except EngineError as exc:
        logger.warning("%s; the tokenizer renders the template instead", exc)
        return None


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise ModelFileError(
            f"{path} is not an MLX model folder.",
            hint="Choose a folder with config.json and .safetensors files.",
        )
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelFileError(f"{path.name} has no config.json, so it is not a Hugging Face / MLX model folder.")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path.name}/config.json is damaged: {exc}") from exc
    if not isinstance(config, dict):
        raise ModelFileError(f"{path.name}/config.json is not a JSON object.")
    if not any(path.glob("*.safetensors")):
        raise ModelFileError(f"{path.name} has no .safetensors weights.", hint="The download may be incomplete.")
    return config


def _flatten(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    from mlx.utils import tree_flatten

    flat: Any = tree_flatten(tree, prefix=prefix)
    return list(flat)


def _device_name() -> str:
    import mlx.core as mx

    return "gpu" if mx.default_device().type == mx.DeviceType.gpu else "cpu"
