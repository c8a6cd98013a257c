"""Reports from result files: a results DataFrame, ranked tables, comparisons with Welch's
t-test, and a self-contained HTML page with Pareto, sweep and device-timeline plots.

Needs the ``[report]`` extra (pandas, plotly); ``import llenergymeasure`` does not load it.
"""

from llenergymeasure.reporting.api import Report, report
from llenergymeasure.reporting.compare import Comparison, MetricDifference, compare
from llenergymeasure.reporting.loading import load_results
from llenergymeasure.reporting.summary import ConfigurationSummary, summarise

__all__ = [
    "Comparison",
    "ConfigurationSummary",
    "MetricDifference",
    "Report",
    "compare",
    "load_results",
    "report",
    "summarise",
]
