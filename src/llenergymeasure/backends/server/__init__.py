"""The ``server`` backend: any OpenAI-compatible inference server, driven over HTTP with
streaming requests while energy and telemetry are read on this machine (see
:mod:`.backend`)."""
