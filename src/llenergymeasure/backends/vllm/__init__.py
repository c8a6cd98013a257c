"""The vllm backend: vLLM's AsyncLLM engine, streamed per token (imported only when used)."""
