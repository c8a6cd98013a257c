"""Small real models for tests, benchmarks and the validation campaign: the embedded model as a
safetensors folder, a tiny random Llama, a LoRA adapter (these need llenergymeasure[pytorch]),
and the shortest experiment config that runs one of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ADAPTER_CONFIG = "adapter_config.json"


def tiny_experiment(model_dir: Path, **fields: Any) -> dict[str, Any]:
    """The shortest real experiment on ``model_dir``: 2 prompts, 3 tokens, no warmup, no
    baseline, timing only; ``fields`` override or add keys (a name, a sweep...)."""
    return {
        "model": str(model_dir),
        "n": 2,
        "max_output_tokens": 3,
        "chat_template": False,
        "warmup": {"n_warmup": 0},
        "baseline": {"enabled": False},
        "energy": {"sampler": "null"},
        **fields,
    }


def embedded_model_folder() -> Path:
    """The embedded SmolLM2 model as a safetensors folder (converted from its GGUF once)."""
    from llenergymeasure.backends.model_source import DEFAULT_EMBEDDED_MODEL, resolve_model
    from llenergymeasure.backends.pytorch.gguf_cache import converted_folder

    gguf_path = resolve_model(DEFAULT_EMBEDDED_MODEL).gguf_path
    assert gguf_path is not None, "the embedded model is a GGUF file"
    return converted_folder(gguf_path)


def build_tiny_llama(folder: Path, tokenizer_folder: Path | None = None) -> Path:
    """Save a 2-layer random Llama (hidden size 32, seed 0) with the tokenizer of
    ``tokenizer_folder`` (default: the embedded model) into ``folder``: loads and runs in ms."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder or embedded_model_folder())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_lora_adapter(folder: Path, model_folder: Path | None = None) -> Path:
    """Save a rank-4 PEFT LoRA adapter (q_proj, v_proj; B drawn with std 0.01 so it acts)
    for ``model_folder`` (default: the embedded model) into ``folder``; an adapter already
    there is reused. Needs torch, transformers and peft (``llenergymeasure[pytorch]``)."""
    if (folder / ADAPTER_CONFIG).is_file():
        return folder
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_folder or embedded_model_folder())
    adapter = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    torch.manual_seed(0)
    with torch.no_grad():
        for name, weights in adapter.named_parameters():
            if "lora_B" in name:
                weights.normal_(std=0.01)  # PEFT starts B at zero: make the adapter act
    adapter.save_pretrained(folder)
    return folder
