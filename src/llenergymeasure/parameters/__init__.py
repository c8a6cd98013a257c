"""Tooling built on the configuration schema: introspection of every parameter, the
generated config reference and support matrix, API coverage and the JSON Schemas."""
