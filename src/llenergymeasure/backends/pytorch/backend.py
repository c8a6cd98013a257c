"""PyTorchBackend: transformers `AutoModelForCausalLM` + batched `generate` with step timing;
``load.mode: rate | concurrency`` through transformers' continuous batching (``continuous``)."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessorList,
)

from llenergymeasure.backends.base import (
    MemoryReading,
    ProgressCallback,
    TokenizedBackend,
    TokenProgress,
    forced_lengths,
)
from llenergymeasure.backends.model_source import ModelSource, check_hub_model, resolve_model
from llenergymeasure.backends.prompts import wants_chat_template
from llenergymeasure.backends.pytorch.continuous import ContinuousBatcher, continuous_generation
from llenergymeasure.backends.pytorch.continuous_settings import requests_per_step
from llenergymeasure.backends.pytorch.failures import generate_error, load_error
from llenergymeasure.backends.pytorch.forced_lengths import forced_length_kwargs
from llenergymeasure.backends.pytorch.gguf_cache import converted_folder
from llenergymeasure.backends.pytorch.lora import apply_lora
from llenergymeasure.backends.pytorch.no_weights import build_random_model, wants_random_weights
from llenergymeasure.backends.pytorch.options import (
    DTYPES,
    check_environment,
    check_random_weights,
    generation_config,
    load_kwargs,
)
from llenergymeasure.backends.pytorch.records import batch_records
from llenergymeasure.backends.pytorch.step_timer import LogitsStepTimer, StepTimer
from llenergymeasure.backends.registry import BACKENDS, check_tested_versions
from llenergymeasure.config.models import ExperimentConfig, Precision
from llenergymeasure.errors import BackendError, LLEMError
from llenergymeasure.flops import architecture_summary
from llenergymeasure.load import LoadPlan
from llenergymeasure.load.schedule import OFFLINE
from llenergymeasure.results.models import ModelInfo
from llenergymeasure.results.records import RequestRecord


def resolve_dtype(precision: Precision) -> torch.dtype:
    """Map a precision name to a torch dtype; 'auto' = bf16 on a capable GPU, else fp32."""
    if precision != "auto":
        return DTYPES[precision]
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def compile_kwargs(config: ExperimentConfig) -> dict[str, Any]:
    """``torch.compile`` keyword arguments: the set mode and backend."""
    options = config.pytorch_options
    kwargs: dict[str, Any] = {"mode": options.torch_compile_mode}
    if options.torch_compile_backend is not None:
        kwargs["backend"] = options.torch_compile_backend
    return kwargs


class PyTorchBackend(TokenizedBackend):
    """Runs prompts through transformers in left-padded batches, timing every decoding step;
    under a serving load (rate, concurrency) through continuous batching, timing every
    streamed token.

    Args:
        clock: monotonic clock in seconds used for every timestamp.
        model_loader: ``AutoModelForCausalLM.from_pretrained`` unless a test injects a spy.
        tokenizer_loader: ``AutoTokenizer.from_pretrained`` unless a test injects a spy.
        model_builder: ``AutoModelForCausalLM.from_config`` (random weights, ``no_weights``)
            unless a test injects a spy.
    """

    name = "pytorch"

    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        model_loader: Callable[..., Any] | None = None,
        tokenizer_loader: Callable[..., Any] | None = None,
        model_builder: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._model_loader = model_loader or AutoModelForCausalLM.from_pretrained
        self._tokenizer_loader = tokenizer_loader or AutoTokenizer.from_pretrained
        self._model_builder = model_builder or AutoModelForCausalLM.from_config
        self._model: Any = None
        self._batcher: ContinuousBatcher | None = None

    def load(self, config: ExperimentConfig) -> ModelInfo:
        """Load model and tokenizer as the config says (hub, folder, GGUF or embedded).

        With ``pytorch.no_weights`` or an architecture model, the model is built from its config
        with random weights and forced output length instead (see ``no_weights``).

        Raises:
            DependencyError: torch or transformers outside the tested range (unless
                ``LLEM_ALLOW_UNTESTED=1``); bitsandbytes missing.
            ConfigError: a setting this machine or transformers cannot honour (under a serving
                load: transformers without continuous batching, or a setting it cannot
                honour); a ``pytorch.model_kwargs`` key nothing accepts.
            ModelNotFoundError: a hub id that cannot be loaded.
            BackendError: loading failed; out of memory says which memory and what to lower.
        """
        versions = {"torch": torch.__version__, "transformers": transformers.__version__}
        check_tested_versions(BACKENDS[self.name], versions)
        check_environment(config, transformers.__version__, torch.cuda.is_available())
        source = resolve_model(config.model)
        if source.kind == "hub":
            check_hub_model(source.location)
        transformers.utils.logging.disable_progress_bar()  # llem shows its own progress
        location = self._local_location(source)
        dtype = resolve_dtype(config.precision)
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            model, made = self._make_model(config, source, location, dtype, device_type)
        except LLEMError:
            raise
        except Exception as exc:  # torch, transformers and accelerate raise many types
            raise load_error(exc, config, source, device_type) from None
        if self._tokenizer.pad_token_id is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._model, self._config = model, config
        self._use_template = wants_chat_template(self._tokenizer, config.chat_template)
        if config.load.is_serving:
            self._batcher = self._start_batcher(config)
        return ModelInfo(
            model_id=config.model,
            source_kind=source.kind,
            dtype=str(dtype).removeprefix("torch."),
            device=str(model.device),
            n_parameters=sum(p.numel() for p in model.parameters()),
            details={
                "location": location,
                "chat_template": self._use_template,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
                "architecture": architecture_summary(model.config),
                **made,
            },
        )

    def _make_model(
        self,
        config: ExperimentConfig,
        source: ModelSource,
        location: str,
        dtype: torch.dtype,
        device_type: str,
    ) -> tuple[Any, dict[str, Any]]:
        """Set the tokenizer; return the model ready to generate and how it was made."""
        made: dict[str, Any] = {}
        if wants_random_weights(config, source):
            check_random_weights(config)
            built = build_random_model(
                config, source, location, dtype, self._tokenizer_loader, self._model_builder
            )
            self._tokenizer, model = built.tokenizer, built.model
            made.update(built.details)
        else:
            self._tokenizer = self._tokenizer_loader(location, padding_side="left")
            model = self._model_loader(location, **load_kwargs(config, dtype))
        if config.lora is not None:
            model, lora_details = apply_lora(model, config.lora)
            made.update(lora_details)
        if config.pytorch_options.device_map is None:
            model = model.to(device_type)
        model.eval()
        if config.pytorch_options.torch_compile:
            model.forward = torch.compile(model.forward, **compile_kwargs(config))
        return model, made

    @staticmethod
    def _local_location(source: ModelSource) -> str:
        gguf_path = source.gguf_path
        if gguf_path is not None:
            return str(converted_folder(gguf_path))
        return source.location

    def _start_batcher(self, config: ExperimentConfig) -> ContinuousBatcher:
        """The continuous-batching manager for this model, created and its cache allocated.

        Raises:
            ConfigError: the model's generation config adds a processor continuous batching
                cannot apply.
            BackendError: the manager could not be created (e.g. memory for its cache).
        """
        generation = continuous_generation(
            self._model.generation_config, config, self._tokenizer.pad_token_id
        )
        batcher = ContinuousBatcher(self._model, config, generation, self._eos_ids(), self._clock)
        try:
            batcher.start()
        except LLEMError:
            raise
        except Exception as exc:  # cache allocation, attention kernel, CUDA errors
            raise generate_error(exc, config, self._model.device.type) from None
        return batcher

    @property
    def concurrency(self) -> int:
        """Prompts per generate call; under a serving load, requests per forward pass."""
        config = self._require_config()
        if config.load.is_serving:
            return requests_per_step(config)
        return config.pytorch_options.batch_size

    def run(
        self,
        prompts: Sequence[list[int]],
        max_output_tokens: int,
        on_progress: ProgressCallback | None = None,
        load: LoadPlan | None = None,
        output_lengths: Sequence[int] | None = None,
    ) -> list[RequestRecord]:
        """Generate for every prepared prompt, in batches of ``batch_size``, in order.

        With a rate or concurrency ``load:`` in the config, every run (warmup too) goes
        through continuous batching instead, each prompt submitted by the shared load
        generator on ``load`` (None: all at once). ``output_lengths`` forces each request's
        length: per row of a batch (:mod:`.forced_lengths`), or per continuous-batching
        request (its own ``max_new_tokens``, EOS off).

        Raises:
            BackendError: a serving ``load`` plan for a model loaded with ``load.mode:
                offline``; generation failed.
        """
        config = self._require_config()
        transformers.set_seed(config.random_seed)
        lengths = forced_lengths(len(prompts), output_lengths, max_output_tokens)
        if self._batcher is not None:
            return self._serve(
                self._batcher, prompts, max_output_tokens, on_progress, load, lengths
            )
        if load is not None and load.mode != "offline":
            raise BackendError(
                f"a load.mode: {load.mode} plan needs the model loaded with that load.mode "
                "(continuous batching is set up when the model loads); it was loaded with "
                "load.mode: offline"
            )
        size = config.pytorch_options.batch_size
        generation, extra = generation_config(
            self._model.generation_config, config, max_output_tokens, self._tokenizer.pad_token_id
        )  # once per call, not per batch: the window is for generate()
        if config.decoder.stop is not None:
            extra["tokenizer"] = self._tokenizer  # transformers matches stop strings with it
        records: list[RequestRecord] = []
        for start in range(0, len(prompts), size):
            batch = list(prompts[start : start + size])
            indices = range(start, start + len(batch))
            rows = lengths[start : start + len(batch)] if lengths is not None else None
            progress = TokenProgress(on_progress, len(batch) * max_output_tokens)
            records += self._run_batch(indices, batch, generation, dict(extra), progress, rows)
            progress.finish()
        return records

    def _serve(
        self,
        batcher: ContinuousBatcher,
        prompts: Sequence[list[int]],
        max_output_tokens: int,
        on_progress: ProgressCallback | None,
        load: LoadPlan | None,
        lengths: list[int] | None,
    ) -> list[RequestRecord]:
        config = self._require_config()
        try:
            return batcher.run(prompts, max_output_tokens, load or OFFLINE, on_progress, lengths)
        except LLEMError:
            raise
        except Exception as exc:  # out of memory, shape or dtype errors in the loop
            raise generate_error(exc, config, self._model.device.type) from None

    def _run_batch(
        self,
        indices: Sequence[int],
        batch: list[list[int]],
        generation: GenerationConfig,
        extra: dict[str, Any],
        progress: TokenProgress,
        lengths: list[int] | None,
    ) -> list[RequestRecord]:
        """Generate one batch; every decoding step reports one token per row to ``progress``.
        ``lengths``: each row's forced output length (None: up to the generation config's)."""
        padded = self._tokenizer.pad({"input_ids": batch}, padding=True, return_tensors="pt")
        padded = padded.to(self._model.device)
        if lengths is not None:
            prompt_length = padded["input_ids"].shape[1]
            extra.update(forced_length_kwargs(extra, lengths, prompt_length, self._eos_ids()))

        def step() -> None:
            progress.add(len(batch))

        timer: StepTimer | LogitsStepTimer
        if (generation.num_beams or 1) > 1:  # beam search cannot stream: time via the logits
            timer = LogitsStepTimer(self._clock, step)
            processors = [*extra.pop("logits_processor", []), timer]
            hook: dict[str, Any] = {"logits_processor": LogitsProcessorList(processors)}
        else:
            timer = StepTimer(self._clock, step)
            hook = {"streamer": timer}
        submit_s = self._clock()
        try:
            with torch.inference_mode():
                output = self._model.generate(
                    **padded,
                    generation_config=generation,
                    **hook,
                    **extra,
                )
        except Exception as exc:  # CUDA out of memory, shape or dtype errors from the model
            raise generate_error(exc, self._require_config(), self._model.device.type) from None
        sequences = output.sequences if generation.return_dict_in_generate else output
        generated = sequences[:, padded["input_ids"].shape[1] :].tolist()
        return batch_records(
            indices,
            [len(ids) for ids in batch],
            generated,
            self._eos_ids(),
            submit_s,
            timer.step_times_s,
            lengths,
        )

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (self._model.generation_config.eos_token_id, self._tokenizer.eos_token_id):
            if isinstance(source, int):
                ids.add(source)
            elif source is not None:
                ids.update(source)
        return ids

    def reset_peak_memory(self) -> None:
        """Reset CUDA's peak counters (CPU peak RSS cannot be reset)."""
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def peak_memory(self) -> MemoryReading:
        """CUDA max allocated since the reset, or the process's peak RSS on CPU."""
        if self._model is not None and self._model.device.type == "cuda":
            peak_b = torch.cuda.max_memory_allocated(self._model.device)
            return MemoryReading(peak_b / 2**20, "cuda max allocated during the window")
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return MemoryReading(peak_kb / 1024, "process peak RSS, incl. model load")

    def unload(self) -> None:
        """Stop continuous batching, drop the model and free accelerator memory."""
        if self._batcher is not None:
            self._batcher.close()
            self._batcher = None
        self._model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
