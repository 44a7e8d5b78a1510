"""tensorrt_llm (llmapi route): TensorRT-LLM's LLM-API Triton model, loaded from the serving container.

Rendered by tritongen. tritongen does not ship NVIDIA's implementation; the NGC image
nvcr.io/nvidia/tritonserver:<tag>-trtllm-python-py3 (25.06 and newer) carries it in
/app/all_models/llmapi/tensorrt_llm/1/ (model.py and helpers.py). This file loads that module and serves its
TritonPythonModel, so what runs is the model NVIDIA builds and tests together with the container's TensorRT-LLM.
It is configured by model.yaml next to this file: the container's model reads model.yaml from
pb_utils.get_model_dir(), which is this folder.

Additions, the first two before the container's initialize() runs:
- a warning when the container's TensorRT-LLM differs from the release this repository was rendered for
  (parameter tritongen_trtllm_version; model.yaml keys are checked against that release);
- CUDA_VISIBLE_DEVICES from the parameter tritongen_gpu_ids (the spec's parallelism.gpu_ids), unless the
  environment already sets it. TensorRT-LLM is imported inside initialize(), after this;
- with LoRA adapters (parameter tritongen_lora_adapters), a request's lora_name becomes the LLM API's
  lora_request (lora_request.py).

TRITONGEN_LLMAPI_IMPL_DIR names another folder holding the implementation's model.py (a patched copy, or the
FAKE that tritongen's tests serve on machines without TensorRT-LLM).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import triton_python_backend_utils as pb_utils
from lora_request import LoraRequests

DEFAULT_IMPL_DIR = "/app/all_models/llmapi/tensorrt_llm/1"
IMPL_ENV = "TRITONGEN_LLMAPI_IMPL_DIR"


def _load_implementation():
    impl_dir = os.environ.get(IMPL_ENV) or DEFAULT_IMPL_DIR
    path = os.path.join(impl_dir, "model.py")
    if not os.path.isfile(path):
        raise ImportError(
            f"tensorrt_llm (llmapi): TensorRT-LLM's LLM-API Triton model is not at {path}; serve this repository in "
            "nvcr.io/nvidia/tritonserver:<25.06 or newer>-trtllm-python-py3 (tritongen.lock.yaml names the tag), "
            f"or set {IMPL_ENV} to the folder holding its model.py"
        )
    # The implementation imports `helpers` from its own folder.
    if impl_dir not in sys.path:
        sys.path.insert(0, impl_dir)
    spec = importlib.util.spec_from_file_location("tritongen_llmapi_impl", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "TritonPythonModel"):
        raise ImportError(f"tensorrt_llm (llmapi): {path} defines no TritonPythonModel")
    return module


_IMPL = _load_implementation()


def _guided_decoding_params():
    from tensorrt_llm.sampling_params import GuidedDecodingParams

    return GuidedDecodingParams


def _input(request, name):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


# Structured output (llmapi_guided.py): upstream builds SamplingParams from this function's result.
if hasattr(_IMPL, "get_sampling_params_from_request"):
    from llmapi_guided import with_guide

    _IMPL.get_sampling_params_from_request = with_guide(_IMPL.get_sampling_params_from_request, _input,
                                                        _guided_decoding_params)


def _param(config, key):
    value = config.get("parameters", {}).get(key, {}).get("string_value", "")
    return value or ""


def _installed_trtllm():
    """The container's TensorRT-LLM version, read from package metadata (importing it here would start CUDA)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tensorrt_llm")
    except PackageNotFoundError:
        return None


class TritonPythonModel(_IMPL.TritonPythonModel):
    """The container's model, with the GPU selection and the version check applied first."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        expected = _param(config, "tritongen_trtllm_version")
        installed = _installed_trtllm()
        if expected and installed and not installed.startswith(expected):
            pb_utils.Logger.log_warn(
                f"tensorrt_llm (llmapi): this repository was rendered for TensorRT-LLM {expected} but the container "
                f"has {installed}; model.yaml keys may differ (regenerate with container.image set to this image)"
            )
        gpu_ids = _param(config, "tritongen_gpu_ids")
        if gpu_ids and not os.environ.get("CUDA_VISIBLE_DEVICES"):
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu_ids
        self._lora = LoraRequests(_param(config, "tritongen_lora_adapters"))
        result = super().initialize(args)
        engine = getattr(self, "_llm_engine", None)  # set on the leader rank only
        if self._lora and engine is not None and not isinstance(engine, Exception):
            self._lora.wrap(engine)
        return result

    def _convert_request(self, request):
        if self._lora:
            self._lora.select(request, pb_utils)
        return super()._convert_request(request)
