"""How much throughput does measuring with llem cost? (target: ratio >= 0.99)

Runs the same prompts with the same settings through (a) a plain transformers `generate`
loop and (b) `llem.run`, alternating in one process, and prints the ratio of output
tokens/s (llem / plain). Both count only the tokens generated before EOS, and both time
only generation (model load and warmup are excluded on both sides).

    python benchmarks/overhead.py [--model smollm2-135m] [-n 16] [--batch-size 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import llenergymeasure as llem
from llenergymeasure.backends.model_source import resolve_model
from llenergymeasure.backends.prompts import encode_prompt, wants_chat_template
from llenergymeasure.backends.pytorch.gguf_cache import converted_folder
from llenergymeasure.backends.pytorch.records import count_generated
from llenergymeasure.datasets import load_prompts


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("-n", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-output-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sampler", default="auto", help="llem's energy sampler")
    return parser.parse_args()


def experiment(args: argparse.Namespace) -> llem.ExperimentConfig:
    return llem.ExperimentConfig.model_validate(
        {
            "model": args.model,
            "n": args.n,
            "max_output_tokens": args.max_output_tokens,
            "warmup": {"n_warmup": 1, "max_output_tokens": 4},
            "energy": {"sampler": args.sampler},
            "pytorch": {"batch_size": args.batch_size},
        }
    )


def plain_tokens_per_s(
    model: Any, tokenizer: Any, batches: list[list[list[int]]], max_new: int
) -> float:
    """The reference: a bare generate loop over the same token ids."""
    import torch

    eos = {model.generation_config.eos_token_id, tokenizer.eos_token_id} - {None}
    tokens, t0 = 0, time.perf_counter()
    for batch in batches:
        padded = tokenizer.pad({"input_ids": batch}, padding=True, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(
                **padded,
                max_new_tokens=max_new,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        for row in out[:, padded["input_ids"].shape[1] :].tolist():
            tokens += count_generated(row, eos)[0]
    return tokens / (time.perf_counter() - t0)


def load_plain(config: llem.ExperimentConfig) -> tuple[Any, Any, list[list[int]]]:
    """Model, tokenizer and prompt ids for the plain loop, loaded straight from transformers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model(config.model)
    location = str(converted_folder(source.gguf_path)) if source.gguf_path else source.location
    tokenizer = AutoTokenizer.from_pretrained(location, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32).eval()
    use_template = wants_chat_template(tokenizer, config.chat_template)
    prompts = load_prompts(config.dataset, config.n, config.random_seed)
    ids = [encode_prompt(tokenizer, p, use_template, config.max_input_tokens) for p in prompts]
    return model, tokenizer, ids


def main() -> None:
    args = parse_args()
    config = experiment(args)
    model, tokenizer, ids = load_plain(config)
    batches = [ids[i : i + args.batch_size] for i in range(0, len(ids), args.batch_size)]
    plain_tokens_per_s(model, tokenizer, batches[:1], 4)  # warm the plain side up too

    plain, measured = [], []
    for round_index in range(args.rounds):
        plain.append(plain_tokens_per_s(model, tokenizer, batches, args.max_output_tokens))
        result = llem.run(config, save=False)
        measured.append(result.metrics.output_tokens_per_s or 0.0)
        print(
            f"round {round_index + 1}: plain {plain[-1]:.1f} tok/s, llem {measured[-1]:.1f} tok/s"
        )
    ratio = statistics.median(measured) / statistics.median(plain)
    print(f"energy sampler: {result.measurement_method}")
    print(
        f"median output tokens/s: plain {statistics.median(plain):.2f}, "
        f"llem {statistics.median(measured):.2f}"
    )
    print(f"ratio llem/plain: {ratio:.3f} (target >= 0.99)")


if __name__ == "__main__":
    main()
