"""JSON Schemas of the experiment and study file formats (for editor completion and validation).

Both derive from the Pydantic models; ``docs/schema/*.schema.json`` are generated from here.
"""

from __future__ import annotations

import copy
from typing import Any

from llenergymeasure.config.loader import did_you_mean
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import STUDY_KEYS, StudyConfig
from llenergymeasure.errors import ConfigError

__all__ = ["SCHEMAS", "experiment_schema", "schema", "study_schema"]

_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def experiment_schema() -> dict[str, Any]:
    """The JSON Schema of an experiment YAML file (ExperimentConfig)."""
    return {"$schema": _DIALECT, **ExperimentConfig.model_json_schema()}


def study_schema() -> dict[str, Any]:
    """The JSON Schema of a study YAML file as written: experiment keys (the base) at the top
    level beside ``name``, ``sweep``, ``experiments`` and ``execution``; one of ``sweep`` and
    ``experiments`` is required."""
    experiment = ExperimentConfig.model_json_schema()
    study = StudyConfig.model_json_schema()
    definitions = {**experiment.pop("$defs", {}), **study.pop("$defs", {})}
    fields = {key: value for key, value in experiment.items() if key != "required"}
    fields["title"] = "Experiment fields"
    fields["description"] = "Experiment keys; in `experiments:` each entry is merged over the base."
    definitions["ExperimentFields"] = fields
    properties = copy.deepcopy(experiment["properties"])
    for key in STUDY_KEYS:
        properties[key] = study["properties"][key]
    properties["name"] = {**properties["name"], "description": _study_name_description(study)}
    properties["experiments"]["items"] = {"$ref": "#/$defs/ExperimentFields"}
    return {
        "$schema": _DIALECT,
        "title": "StudyConfig",
        "description": " ".join((StudyConfig.__doc__ or "").split("\n\n")[0].split()),
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "anyOf": [{"required": ["sweep"]}, {"required": ["experiments"]}],
        "$defs": definitions,
    }


def _study_name_description(study: dict[str, Any]) -> str:
    described = str(study["properties"]["name"].get("description", ""))
    return f"{described} Default: the file's stem."


SCHEMAS = {"experiment": experiment_schema, "study": study_schema}
"""Schema name -> function returning it (the names `llem config --schema` accepts)."""


def schema(name: str) -> dict[str, Any]:
    """The schema called ``name`` ("experiment" or "study").

    Raises:
        ConfigError: unknown name (with the valid ones).
    """
    if name not in SCHEMAS:
        raise ConfigError(f"unknown schema {name!r}" + did_you_mean(name, list(SCHEMAS)))
    return SCHEMAS[name]()
