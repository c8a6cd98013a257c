"""The tensorrt backend: TensorRT-LLM 1.x (PyTorch runtime or built TensorRT engines)."""
