"""The engine route: TensorRT engines built by trtllm-build, served by the tensorrtllm C++ backend."""

from __future__ import annotations

from ..repo.report import RepoCheck
from ..resolve import Deployment
from .common import EnsembleRoute, params
from .engine_checks import check_tensorrt_llm


def _tree(choices: list[list[int]] | None) -> str | None:
    """Medusa/Eagle choices as the backend's parameter text: "{0, 0}, {0, 1}"."""
    if not choices:
        return None
    return ", ".join("{" + ", ".join(str(c) for c in path) + "}" for path in choices)


class EngineRoute(EnsembleRoute):
    name = "engine"

    def llm_parameters(self, deployment: Deployment) -> dict[str, str]:
        """The tensorrt_llm model's ``parameters`` (only what the spec sets)."""
        spec = deployment.spec
        kv, sched, sv = spec.kv_cache, spec.scheduling, spec.serving
        values: dict[str, object] = {
            "gpt_model_type": sched.batching_strategy.value,
            "gpt_model_path": str(deployment.engine_dir),
            "max_beam_width": spec.limits.max_beam_width,
            "FORCE_CPU_ONLY_INPUT_TENSORS": "no",
            "batch_scheduler_policy": sched.batch_scheduler_policy.value,
            "kv_cache_free_gpu_mem_fraction": kv.free_gpu_mem_fraction,
            "enable_kv_cache_reuse": kv.enable_reuse,
            "enable_chunked_context": sched.enable_chunked_context,
            "exclude_input_in_output": sv.exclude_input_in_output,
            "normalize_log_probs": sv.normalize_log_probs,
            "decoding_mode": spec.resolved_decoding_mode.value,
            "gpu_device_ids": ",".join(str(g) for g in spec.parallelism.resolved_gpu_ids),
            "executor_worker_path": "/opt/tritonserver/backends/tensorrtllm/trtllmExecutorWorker",
            "tokenizer_dir": str(spec.tokenizer_dir),
        }
        if kv.max_tokens is not None:
            values["max_tokens_in_paged_kv_cache"] = kv.max_tokens
        if kv.host_memory_bytes:
            values["kv_cache_host_memory_bytes"] = kv.host_memory_bytes
        spec_dec = spec.decoding.speculative
        if spec_dec.method.value == "medusa" and spec_dec.medusa_choices:
            values["medusa_choices"] = _tree(spec_dec.medusa_choices)
        if spec_dec.method.value == "eagle" and spec_dec.eagle_choices:
            values["eagle_choices"] = _tree(spec_dec.eagle_choices)
        if spec_dec.method.value == "lookahead":
            values["lookahead_window_size"] = spec_dec.lookahead.window_size
            values["lookahead_ngram_size"] = spec_dec.lookahead.ngram_size
            values["lookahead_verification_set_size"] = spec_dec.lookahead.verification_set_size
        return params(values)

    def check_repo(self, check: RepoCheck) -> None:
        check_tensorrt_llm(check)


ROUTE = EngineRoute()
