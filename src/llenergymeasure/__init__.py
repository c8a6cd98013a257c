"""LLenergyMeasure: measure the energy, throughput and latency of LLM inference."""
