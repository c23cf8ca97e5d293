"""Chat with a fine-tune in llama.cpp: the tiny HF base converted to GGUF, the PEFT adapter converted to a GGUF
LoRA, loaded together through Hangar's llama.cpp engine; and the merged-model export."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.engine.protocol import ChatMessage, GenerationParams, LoadOptions, ModelSpec
from core.errors import FinetuneError
from tests.support.fixtures_finetune import FACTS

pytest.importorskip("llama_cpp")

QUESTION, ANSWER = FACTS[0]
GREEDY = GenerationParams(max_tokens=6, temperature=0.0, top_k=1, repeat_penalty=1.0, min_p=0.0, seed=0)


def hf_greedy_ids(model: object, tokenizer: object, n: int = 6) -> list[int]:
    import torch

    ids = tokenizer.apply_chat_template(  # type: ignore[attr-defined]
        [{"role": "user", "content": QUESTION}], add_generation_prompt=True, return_dict=False
    )
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False)  # type: ignore[attr-defined]
    return out[0, len(ids) :].tolist()


@pytest.fixture(scope="module")
def base_gguf(tmp_path_factory: pytest.TempPathFactory, tiny_hf_model: Path) -> Path:
    from backends.hf_gguf import convert_hf_to_gguf

    return convert_hf_to_gguf(tiny_hf_model, tmp_path_factory.mktemp("gguf") / "tiny-F32.gguf", weight_type="F32")


@pytest.mark.slow
def test_gguf_lora_makes_llama_cpp_answer_like_the_peft_model(
    app, tiny_hf_model: Path, trained_peft_adapter: Path, base_gguf: Path, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from backends.lora_gguf import convert_lora_to_gguf

    lora = convert_lora_to_gguf(trained_peft_adapter, tmp_path / "facts-lora.gguf")
    import gguf

    reader = gguf.GGUFReader(str(lora))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    names = {t.name for t in reader.tensors}
    assert "blk.0.attn_q.weight.lora_a" in names and "blk.1.ffn_down.weight.lora_b" in names

    host = app.new_engine_host("lora-test")
    messages = [ChatMessage("user", QUESTION)]
    host.load_blocking(ModelSpec("llama", str(base_gguf), LoadOptions(context_length=256, seed=0)))
    plain = host.generate_blocking(messages, GREEDY).text
    host.load_blocking(ModelSpec("llama", str(base_gguf), LoadOptions(context_length=256, seed=0, lora_path=str(lora))))
    tuned = host.generate_blocking(messages, GREEDY).text
    assert ANSWER not in plain
    assert tuned.startswith(ANSWER), tuned

    # The same tokens as the PEFT model in transformers (orientation and RoPE row order are right).
    tokenizer = AutoTokenizer.from_pretrained(tiny_hf_model)
    base = AutoModelForCausalLM.from_pretrained(tiny_hf_model, dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, trained_peft_adapter)
    expected = tokenizer.decode(hf_greedy_ids(peft_model, tokenizer), skip_special_tokens=True)
    assert tuned.strip() == expected.strip()


def test_converted_base_gguf_matches_transformers(app, tiny_hf_model: Path, base_gguf: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_hf_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_hf_model, dtype=torch.float32)
    expected = tokenizer.decode(hf_greedy_ids(model, tokenizer), skip_special_tokens=True)
    host = app.new_engine_host("gguf-base")
    host.load_blocking(ModelSpec("llama", str(base_gguf), LoadOptions(context_length=256, seed=0)))
    got = host.generate_blocking([ChatMessage("user", QUESTION)], GREEDY).text
    assert got.strip() == expected.strip()


@pytest.mark.slow
def test_merged_export_answers_without_peft(tiny_hf_model: Path, trained_peft_adapter: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from backends.finetune_peft import merge_adapter

    merged = merge_adapter(tiny_hf_model, trained_peft_adapter, tmp_path / "merged")
    assert (merged / "model.safetensors").is_file() and not (merged / "adapter_config.json").exists()
    tokenizer = AutoTokenizer.from_pretrained(merged)
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)
    answer = tokenizer.decode(hf_greedy_ids(model, tokenizer), skip_special_tokens=True)
    assert answer.startswith(ANSWER)


def test_bad_adapters_are_refused(tmp_path: Path, tiny_hf_model: Path) -> None:
    from backends.lora_gguf import convert_lora_to_gguf

    with pytest.raises(FinetuneError, match="no adapter_config"):
        convert_lora_to_gguf(tmp_path, tmp_path / "x.gguf", tiny_hf_model)
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(FinetuneError, match="no adapter weights"):
        convert_lora_to_gguf(tmp_path, tmp_path / "x.gguf", tiny_hf_model)
