"""``python -m llenergymeasure.testing <llem arguments>``: the ``llem`` CLI against the fakes.

Reads ``LLEM_FAKE_NVML`` (a JSON spec for :func:`~llenergymeasure.testing.fake_from_spec`),
``LLEM_FAKE_ZEUS`` (a JSON spec of :class:`~llenergymeasure.testing.fake_zeus.FakeZeusSpec`
fields) and ``LLEM_FAKE_TENSORRT`` (``1`` or a JSON spec of
:class:`~llenergymeasure.testing.FakeTrtLlmSpec` fields), installs the fakes as ``pynvml`` /
``zeus`` / ``tensorrt_llm`` for this process, then runs ``llem``::

    LLEM_FAKE_NVML='{"gpus": [{"power_w": 250}]}' \\
        python -m llenergymeasure.testing run experiment.yaml

This wrapper is the only reader of those variables, so neither ``llem`` nor the library can
be switched to synthetic energy by the environment; no sitecustomize or .pth hook is involved.
"""

from __future__ import annotations

import os
import sys

from llenergymeasure.testing import (
    FAKE_NVML_ENV,
    FAKE_TENSORRT_ENV,
    FAKE_ZEUS_ENV,
    fake_pynvml,
    fake_tensorrt_llm,
    fake_zeus,
)


def install_from_environment(environ: dict[str, str] | None = None) -> list[str]:
    """Install the fakes the environment asks for; return which ones (``pynvml``, ``zeus``,
    ``tensorrt_llm``).

    Raises:
        ValueError: a spec is not valid.
    """
    environ = dict(os.environ) if environ is None else environ
    installed = []
    if environ.get(FAKE_NVML_ENV):
        fake_pynvml.install(fake_pynvml.fake_from_spec(environ[FAKE_NVML_ENV]))
        installed.append("pynvml")
    if environ.get(FAKE_ZEUS_ENV):
        fake_zeus.install(fake_zeus.fake_zeus_from_spec(environ[FAKE_ZEUS_ENV]))
        installed.append("zeus")
    if environ.get(FAKE_TENSORRT_ENV):
        fake_tensorrt_llm.install(
            fake_tensorrt_llm.fake_tensorrt_from_spec(environ[FAKE_TENSORRT_ENV])
        )
        installed.append("tensorrt_llm")
    return installed


def main() -> None:
    """Install the fakes, then hand the command line to ``llem``."""
    try:
        installed = install_from_environment()
    except ValueError as exc:
        print(f"llenergymeasure.testing: bad fake spec: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    if not installed:
        print(
            f"llenergymeasure.testing: set {FAKE_NVML_ENV}, {FAKE_ZEUS_ENV} and/or "
            f"{FAKE_TENSORRT_ENV}; "
            "running llem with the real libraries",
            file=sys.stderr,
        )
    from llenergymeasure.cli import app

    app(prog_name="llem")


if __name__ == "__main__":
    main()
