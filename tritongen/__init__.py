"""tritongen: one deployment spec -> a validated Triton model repository for TensorRT-LLM, built and served."""

__version__ = "0.1.0"
