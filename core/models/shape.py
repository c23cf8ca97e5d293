"""The few numbers about a transformer that memory estimates need, from a GGUF header or a ``config.json``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import ModelFileError, UsageError
from core.gguf.info import GGUFInfo


@dataclass(frozen=True)
class ModelShape:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int
    vocab_size: int
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_expert: int = 0
    sliding_window: int = 0
    n_swa_layers: int = 0  # layers that use the sliding window
    tied_embeddings: bool = False
    context_length: int = 0
    parameter_count: int = 0  # logical parameters (packed quantized weights unpacked)

    @property
    def attention_params_per_layer(self) -> int:
        q = self.n_head * self.head_dim_k
        return self.n_embd * q + 2 * self.n_embd * self.n_head_kv * self.head_dim_k + q * self.n_embd

    @property
    def mlp_params_per_layer(self) -> int:
        if self.n_expert:
            return 3 * self.n_embd * (self.n_ff_expert or self.n_ff) * self.n_expert
        return 3 * self.n_embd * self.n_ff

    @classmethod
    def from_gguf(cls, info: GGUFInfo) -> ModelShape:
        heads = max(info.head_count or (0,))
        up = next((t for t in info.tensors if t.name.endswith("ffn_up_exps.weight")), None)
        return cls(
            n_layer=info.block_count,
            n_embd=info.embedding_length,
            n_ff=info.feed_forward_length,
            n_head=heads,
            n_head_kv=max(info.head_count_kv or (0,)),
            head_dim_k=info.key_length,
            head_dim_v=info.value_length,
            vocab_size=info.vocab_size,
            n_expert=info.expert_count,
            n_expert_used=info.expert_used_count,
            n_ff_expert=up.shape[1] if up else 0,
            sliding_window=info.sliding_window,
            n_swa_layers=sum(info.swa_layers),
            tied_embeddings=info.tied_embeddings,
            context_length=info.context_length,
            parameter_count=info.parameter_count,
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        """From a transformers/MLX ``config.json`` (multimodal configs keep the LLM in ``text_config``)."""
        check_config_limits(config)
        nested = config.get("text_config")
        text: dict[str, Any] = nested if isinstance(nested, dict) else config

        def get(*keys: str, default: int = 0) -> int:
            for key in keys:
                value = text.get(key, config.get(key))
                if isinstance(value, int) and not isinstance(value, bool):
                    return value
            return default

        n_embd = get("hidden_size", "n_embd", "d_model")
        n_layer = get("num_hidden_layers", "n_layer", "num_layers")
        n_head = get("num_attention_heads", "n_head")
        if not (n_embd and n_layer and n_head):
            raise UsageError(
                "config.json lacks hidden_size, num_hidden_layers or num_attention_heads; "
                "Hangar cannot size this model."
            )
        head_dim = get("head_dim", default=n_embd // n_head)
        n_expert = get("num_local_experts", "num_experts", "n_routed_experts")
        window = get("sliding_window") if text.get("use_sliding_window", True) is not False else 0
        pattern = get("sliding_window_pattern")
        n_swa = 0
        if window:
            n_swa = n_layer - n_layer // pattern if pattern else n_layer
        shape = cls(
            n_layer=n_layer,
            n_embd=n_embd,
            n_ff=get("intermediate_size", "n_inner", default=4 * n_embd),
            n_head=n_head,
            n_head_kv=get("num_key_value_heads", default=n_head),
            head_dim_k=head_dim,
            head_dim_v=head_dim,
            vocab_size=get("vocab_size"),
            n_expert=n_expert,
            n_expert_used=get("num_experts_per_tok", "num_experts_per_token") if n_expert else 0,
            n_ff_expert=get("moe_intermediate_size") if n_expert else 0,
            sliding_window=window,
            n_swa_layers=n_swa,
            tied_embeddings=bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False))),
            context_length=get("max_position_embeddings"),
        )
        embed = shape.vocab_size * n_embd * (1 if shape.tied_embeddings else 2)
        params = embed + n_layer * (shape.attention_params_per_layer + shape.mlp_params_per_layer)
        return _with_params(shape, params)


#: The largest value a config.json field may hold (as for GGUF headers, ``core.gguf.info.LIMITS``); others 2^32.
_CONFIG_LIMITS = {
    "num_hidden_layers": 4096,
    "n_layer": 4096,
    "num_layers": 4096,
    "hidden_size": 1 << 20,
    "n_embd": 1 << 20,
    "d_model": 1 << 20,
    "num_attention_heads": 1 << 16,
    "n_head": 1 << 16,
    "num_key_value_heads": 1 << 16,
    "head_dim": 1 << 16,
    "vocab_size": 1 << 24,
    "intermediate_size": 1 << 22,
    "moe_intermediate_size": 1 << 22,
}


def check_config_limits(config: dict[str, Any], name: str = "config.json") -> None:
    """Refuse a ``config.json`` whose sizes no real model has (negative, or beyond ``_CONFIG_LIMITS``; 2^32 for
    other sizes such as ``max_position_embeddings``), at the top level and in ``text_config``."""
    nested = config.get("text_config")
    for part in (config, nested if isinstance(nested, dict) else {}):
        for key in (*_CONFIG_LIMITS, "max_position_embeddings", "sliding_window", "num_local_experts", "num_experts"):
            value = part.get(key)
            if not isinstance(value, int) or isinstance(value, bool):
                continue
            if not 0 <= value <= _CONFIG_LIMITS.get(key, 1 << 32):
                raise ModelFileError(
                    f"{name} says {key} = {value:,}, which no real model has; the file is damaged.",
                    hint="Download the model again, or delete it.",
                )


def _with_params(shape: ModelShape, params: int) -> ModelShape:
    from dataclasses import replace

    return replace(shape, parameter_count=params)
