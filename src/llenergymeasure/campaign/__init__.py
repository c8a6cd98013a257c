"""The validation campaign: run each parameter's test values on a backend, as one study.

For one backend, every parameter of the support matrix that applies to it
(:func:`campaign_parameters`, from introspection, never a hand list) gets one experiment per
test value: the smallest config that sets it and lets it act (:func:`acting_config`). The
experiments, plus an unchanged ``reference`` experiment, form a study file that ``llem run``
executes in isolated children, so one crash or hang costs one entry. The study's manifest
and results become one :class:`~llenergymeasure.parameters.support.SupportOutcome` per parameter
(:func:`collect`, :func:`combine`), merged into ``docs/parameter-support.json``; the support
matrix is then regenerated from it.

Outcomes per value:

- ``supported``: the experiment finished and the result carries no warning beyond those of
  the reference experiment (measurement caveats such as the missing baseline are common to
  every run and say nothing about the parameter).
- ``supported_with_warnings``: it finished with extra result warnings (the message).
- ``fails``: it failed (the message is the error), unless the error says a GPU, CUDA or another
  hardware feature is required (:func:`needs_hardware_reason`): then ``needs_hardware``.
- ``needs_hardware`` without running: no GPU is visible and a parameter the experiment sets
  declares a hardware requirement for that value (the field's ``hardware`` metadata, e.g.
  ``"bf16: NVIDIA Ampere or newer"`` concerns only bf16), or the whole backend needs a GPU.

The first test value of each parameter runs by default (``all_values`` runs them all; the
cell is then the worst outcome that ran, and values needing hardware are noted).
"""

from llenergymeasure.campaign.collect import (
    BACKEND_LIBRARIES,
    Collected,
    by_parameter,
    collect,
    combine,
    merge,
    needs_hardware_reason,
    root_cause,
    verified_on,
)
from llenergymeasure.campaign.plan import (
    CPU_SETTINGS,
    MEASUREMENT,
    REFERENCE,
    CampaignError,
    Plan,
    Trial,
    ValueOutcome,
    acting_config,
    campaign_base,
    campaign_parameters,
    hardware_requirement,
    plan_campaign,
    study_data,
    write_study,
)
from llenergymeasure.campaign.run import (
    Options,
    Report,
    main,
    run_campaign,
    run_study,
)

__all__ = [
    "BACKEND_LIBRARIES",
    "CPU_SETTINGS",
    "MEASUREMENT",
    "REFERENCE",
    "CampaignError",
    "Collected",
    "Options",
    "Plan",
    "Report",
    "Trial",
    "ValueOutcome",
    "acting_config",
    "by_parameter",
    "campaign_base",
    "campaign_parameters",
    "collect",
    "combine",
    "hardware_requirement",
    "main",
    "merge",
    "needs_hardware_reason",
    "plan_campaign",
    "root_cause",
    "run_campaign",
    "run_study",
    "study_data",
    "verified_on",
    "write_study",
]
