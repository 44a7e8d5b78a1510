"""The engine route: TensorRT engines built by trtllm-build, served by the tensorrtllm C++ backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import UsageError
from ..names import show_path
from ..repo.report import RepoCheck
from ..resolve import Deployment, resolve
from . import guided, lora
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
        values.update(guided.engine_parameters(deployment))
        if lora.enabled(spec):
            values.update(lora.engine_parameters(spec, deployment.engine_dir))
        return params(values)

    def prepare(self, deployment: Deployment, *, build: bool, echo: Callable[[str], None],
                warn: Callable[[str], None]) -> Deployment:
        """A prebuilt engine (``--engine-dir``) must be there; else the engine cache is filled first (unless not
        ``build``), and the deployment then points at the built engine."""
        spec = deployment.spec
        guided.write_tokenizer_info(spec, warn)
        if spec.engine.dir is not None:
            check_engine_dir(Path(spec.engine.dir), build, warn)
            if spec._from_engine:
                taken = ", ".join(f"{k}={v}" for k, v in spec._from_engine.items())
                echo(f"from the engine's config.json: {taken}")
            return deployment
        if not build:
            return deployment
        from ..engine import workflow

        return resolve(workflow.ensure_engine(spec, echo=echo))

    def check_repo(self, check: RepoCheck) -> None:
        check_tensorrt_llm(check)


def check_engine_dir(engine_dir: Path, build: bool, warn: Callable[[str], None]) -> None:
    """A prebuilt engine that is not there is an error, not a repository that cannot load (unless the engine is
    to be built later: not ``build`` (--no-build), which only warns)."""
    if engine_dir.joinpath("config.json").is_file():
        return
    what = "does not exist" if not engine_dir.exists() else "has no config.json (not a trtllm-build output)"
    if not build:
        warn(f"warning: --engine-dir {show_path(engine_dir)} {what}; rendering anyway (--no-build)")
        return
    raise UsageError(f"--engine-dir {show_path(engine_dir)} {what}",
                     hint="point it at the folder trtllm-build wrote (config.json + rank*.engine), or pass "
                          "--no-build to render for an engine built later")


ROUTE = EngineRoute()
