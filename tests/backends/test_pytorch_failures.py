"""What torch and transformers raise leaves the pytorch backend as llenergymeasure's errors.

A bad ``pytorch.model_kwargs`` key goes through the real ``from_pretrained``; out of memory is
injected where torch would raise it (``generate``, ``from_pretrained``). Through ``llem run`` the
result is the documented exit code and a one-line message, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from llenergymeasure.backends.pytorch.backend import PyTorchBackend  # noqa: E402
from llenergymeasure.cli import app  # noqa: E402
from llenergymeasure.config import ExperimentConfig  # noqa: E402
from llenergymeasure.errors import BackendError, ConfigError  # noqa: E402

CUDA_OOM = "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 8 GiB"


def config(model_dir: Path, **fields: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"model": str(model_dir), **fields})


def raising(exc: BaseException) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return call


def loaded(model_dir: Path, **fields: Any) -> PyTorchBackend:
    backend = PyTorchBackend()
    backend.load(config(model_dir, **fields))
    return backend


def test_unknown_model_kwargs_key_is_a_config_error_naming_it(tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"pytorch\.model_kwargs\.no_such_kwarg") as caught:
        loaded(tiny_model_dir, pytorch={"model_kwargs": {"no_such_kwarg": 1}})
    assert caught.value.exit_code == 2


def test_out_of_memory_while_generating_says_what_ran_out_and_what_to_lower(
    tiny_model_dir: Path,
) -> None:
    backend = loaded(tiny_model_dir, pytorch={"batch_size": 4})
    backend._model.generate = raising(torch.OutOfMemoryError(CUDA_OOM))
    with pytest.raises(BackendError) as caught:
        backend.run([[1, 2, 3]], 4)
    message = str(caught.value)
    assert "GPU memory ran out while generating" in message
    for setting in ("pytorch.batch_size (now 4)", "max_output_tokens", "max_input_tokens"):
        assert setting in message
    assert "smaller precision" in message and caught.value.exit_code == 1


@pytest.mark.parametrize(
    ("exc", "memory"),
    [
        (RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 9 GB"), "CPU"),
        (MemoryError(), "CPU"),
        (RuntimeError("MPS backend out of memory"), "CPU"),  # the tiny model sits on the CPU
    ],
)
def test_cpu_out_of_memory_while_generating(
    tiny_model_dir: Path, exc: BaseException, memory: str
) -> None:
    backend = loaded(tiny_model_dir)
    backend._model.generate = raising(exc)
    with pytest.raises(BackendError, match=f"{memory} memory ran out while generating"):
        backend.run([[1, 2, 3]], 4)


def test_out_of_memory_while_loading(tiny_model_dir: Path) -> None:
    backend = PyTorchBackend(model_loader=raising(torch.OutOfMemoryError(CUDA_OOM)))
    with pytest.raises(BackendError, match="GPU memory ran out while loading model") as caught:
        backend.load(config(tiny_model_dir, precision="fp32"))
    assert "smaller precision (now fp32)" in str(caught.value)


def test_other_generate_failures_keep_their_type_and_message(tiny_model_dir: Path) -> None:
    backend = loaded(tiny_model_dir)
    backend._model.generate = raising(IndexError("index 7 is out of bounds for dimension 0"))
    with pytest.raises(BackendError, match="IndexError: index 7 is out of bounds"):
        backend.run([[1, 2, 3]], 4)


def test_other_load_failures_keep_their_type_and_message(tiny_model_dir: Path) -> None:
    backend = PyTorchBackend(model_loader=raising(KeyError("model.embed_tokens.weight")))
    with pytest.raises(BackendError, match=r"failed to load: KeyError: 'model\.embed_tokens"):
        backend.load(config(tiny_model_dir))


# ---- through `llem run` -------------------------------------------------------------------------


def llem_run(tmp_path: Path, model_dir: Path, extra_yaml: str = "") -> tuple[int, str]:
    """``llem run exp.yaml``; the exit code, and the output with any escaped exception's text."""
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(
        f"model: {model_dir}\nn: 2\nmax_output_tokens: 3\nenergy:\n  sampler: 'null'\n"
        f"baseline:\n  enabled: false\n{extra_yaml}"
    )
    result = CliRunner().invoke(app, ["run", str(experiment), "--out", str(tmp_path / "out")])
    escaped = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.output + (f"\nTraceback: {escaped!r}" if escaped else "")


def test_llem_run_with_an_unknown_model_kwarg_exits_2(tiny_model_dir: Path, tmp_path: Path) -> None:
    code, output = llem_run(tmp_path, tiny_model_dir, "pytorch:\n  model_kwargs:\n    bogus: 1\n")
    assert code == 2, output
    assert "pytorch.model_kwargs.bogus" in output and "Traceback" not in output


def test_llem_run_out_of_memory_exits_1(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        transformers.LlamaForCausalLM, "generate", raising(torch.OutOfMemoryError(CUDA_OOM))
    )
    code, output = llem_run(tmp_path, tiny_model_dir)
    assert code == 1, output
    assert "GPU memory ran out" in output and "Traceback" not in output
