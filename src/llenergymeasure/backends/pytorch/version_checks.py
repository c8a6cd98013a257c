"""The pytorch backend's checks of a config against the installed transformers version.

Imports neither torch nor transformers: a run makes these checks before loading a model
(:func:`~llenergymeasure.backends.pytorch.options.check_environment`), and
`llem run --dry-run` makes the same ones with the version installed here.
"""

from __future__ import annotations

from packaging.version import Version

from llenergymeasure.backends.pytorch.continuous_settings import check_continuous_batching
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import ConfigError

REMOVED_IN = {
    "pytorch.low_cpu_mem_usage": "5.0",
    "decoder.low_memory": "4.50",
}
"""Fields a transformers version at or above this one no longer acts on (refused there)."""


def check_transformers_version(config: ExperimentConfig, transformers_version: str) -> None:
    """Refuse settings the installed transformers cannot honour.

    Raises:
        ConfigError: a field it no longer acts on (see :data:`REMOVED_IN`); under a serving
            load, transformers without continuous batching or a setting it cannot honour (see
            :func:`~llenergymeasure.backends.pytorch.continuous_settings.check_continuous_batching`).
    """
    installed = Version(transformers_version)
    for path, removed in REMOVED_IN.items():
        section, name = path.split(".")
        value = getattr(config.decoder if section == "decoder" else config.pytorch_options, name)
        if value is not None and installed >= Version(removed):
            raise ConfigError(
                f"{path} is not acted on by transformers >= {removed} (installed: "
                f"{transformers_version}); remove it, or install an older transformers to "
                "measure its effect"
            )
    if config.load.is_serving:
        check_continuous_batching(config, transformers_version)
