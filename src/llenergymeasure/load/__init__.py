"""The load generator every backend shares: a seeded arrival schedule (:mod:`.schedule`) and the
asyncio driver that submits requests on it under a concurrency cap (:mod:`.driver`)."""

from llenergymeasure.load.driver import SubmitRequest, drive
from llenergymeasure.load.schedule import LoadPlan, arrival_offsets_s, plan_load

__all__ = ["LoadPlan", "SubmitRequest", "arrival_offsets_s", "drive", "plan_load"]
