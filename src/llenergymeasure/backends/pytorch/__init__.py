"""The pytorch backend: Hugging Face transformers `generate` with per-step timing."""
