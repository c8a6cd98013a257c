"""Every file in examples/ loads through the real loaders; all-parameters files stay complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure.config.dotted import has_dotted
from llenergymeasure.config.loader import load_experiment_config, read_yaml
from llenergymeasure.config.study import is_study_data, load_study_config
from llenergymeasure.parameters import introspection

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))


def test_there_are_examples_for_every_backend_and_the_studies() -> None:
    names = {path.name for path in FILES}
    for backend in introspection.BACKENDS:
        assert f"{backend}-all-parameters.yaml" in names
    for study in ("batch-size-sweep", "precision-sweep", "backend-comparison"):
        assert f"study-{study}.yaml" in names


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_example_loads(path: Path) -> None:
    if is_study_data(read_yaml(path)):
        study = load_study_config(path)
        assert len(study.experiments_resolved) >= 2
    else:
        config = load_experiment_config(path)
        assert path.name.startswith(config.backend)


@pytest.mark.parametrize("backend", introspection.BACKENDS)
def test_all_parameters_example_sets_every_backend_parameter(backend: str) -> None:
    data = read_yaml(EXAMPLES / f"{backend}-all-parameters.yaml")
    missing = [
        info.path
        for info in introspection.backend_parameters(backend)
        if not has_dotted(data, info.path)
    ]
    assert not missing, f"add to examples/{backend}-all-parameters.yaml: {', '.join(missing)}"
