"""The llmapi route: TensorRT-LLM's LLM-API (PyTorch) Triton model, configured by ``model.yaml``, behind a front
that speaks the ensemble client contract.

Repository layout (everything but the lock file is rendered from ``templates/llmapi``)::

    ensemble/config.pbtxt          python model named "ensemble": text_input, max_tokens, stream, ... -> text_output
    ensemble/1/model.py            the front (ours): maps the client contract onto the llmapi model's inputs
    ensemble/1/textcodec.py        shared tokenizer helpers (chat template, parameters)
    tensorrt_llm/config.pbtxt      upstream's llmapi tensor contract (text_input, sampling_param_*, ...)
    tensorrt_llm/1/model.yaml      LLM() arguments the spec implies + triton_config
    tensorrt_llm/1/model.py        ours: loads the implementation that ships in the NGC container

Its parts: ``tensors`` (upstream's contract and the front's mapping), ``model_yaml`` (the LLM() arguments, what
the route refuses), ``checks`` (its validation rules). Facts about the upstream model and where they come from are
recorded in docs/reference/llmapi.md.
"""

from __future__ import annotations

from ...repo.report import RepoCheck
from ...resolve import Deployment
from ..base import BaseRoute, spec_gpu_ids
from ..common import context as common_context
from ..common import params
from . import checks, lora
from .model_yaml import check_supported, model_yaml, tokenizer_ref, yaml_notes
from .tensors import CONTAINER_IMPL_DIR, LLM_MODEL, LLMAPI_INPUTS, LLMAPI_OUTPUTS, front_tables


def llm_parameters(deployment: Deployment) -> dict[str, str]:
    """The tensorrt_llm model's config.pbtxt parameters (read by our model.py, ignored by upstream's)."""
    spec = deployment.spec
    values: dict[str, object] = {"tritongen_trtllm_version": deployment.trtllm_version or ""}
    if spec.parallelism.gpu_ids is not None:
        values["tritongen_gpu_ids"] = ",".join(str(g) for g in spec.parallelism.gpu_ids)
    return params(values)


def front_parameters(deployment: Deployment) -> dict[str, str]:
    """The front's config.pbtxt parameters."""
    spec = deployment.spec
    sv = spec.serving
    return params({
        "tokenizer_dir": tokenizer_ref(spec),
        "trust_remote_code": spec.model.trust_remote_code,
        "llm_model": spec.serving.model_prefix + LLM_MODEL,
        "llm_decoupled": sv.streaming,
        "exclude_input_in_output": sv.exclude_input_in_output,
        "max_input_len": spec.limits.max_input_len,
        "max_seq_len": spec.limits.max_seq_len,
        "max_prompt_bytes": sv.max_prompt_bytes,
        "guided_decoding": sv.guided_decoding.value,
    })


class LlmapiRoute(BaseRoute):
    name = "llmapi"

    def check(self, deployment: Deployment) -> None:
        check_supported(deployment.spec, deployment.image)

    def context(self, deployment: Deployment) -> dict:
        llm_yaml, triton_yaml = model_yaml(deployment.spec)
        ctx = {
            **common_context(deployment, {}),
            "llmapi_inputs": LLMAPI_INPUTS,
            "llmapi_outputs": LLMAPI_OUTPUTS,
            "llmapi_llm_yaml": llm_yaml,
            "llmapi_triton_yaml": triton_yaml,
            "llmapi_notes": yaml_notes(deployment.spec),
            "llmapi_llm_params": llm_parameters(deployment),
            "llmapi_front_params": front_parameters(deployment),
            "llmapi_image": deployment.image,
            "llmapi_trtllm": deployment.trtllm_version or "unknown",
            "llmapi_impl_dir": CONTAINER_IMPL_DIR,
            "llmapi_tables": front_tables(),
        }
        lora.extend_context(deployment.spec, ctx)
        return ctx

    def check_repo(self, check: RepoCheck) -> None:
        if not checks.is_llmapi_repo(check.repo, check.models, check.lock, check.prefix):
            return
        for problem in checks.check_repo(check.repo, check.models, check.lock, check.prefix):
            check.add(*problem)

    def launch_facts(self, spec: dict) -> dict:
        """The LLM API starts one worker per GPU itself: tritonserver runs as one process on the spec's GPUs."""
        par = spec.get("parallelism") or {}
        return {"world_size": int(par.get("tp") or 1) * int(par.get("pp") or 1), "gpu_ids": spec_gpu_ids(spec)}


ROUTE = LlmapiRoute()
