"""The cpu route: tritongen's reference engine (PyTorch, or the mock) in the python backend, behind the same
tensor contract as the engine route."""

from __future__ import annotations

from collections.abc import Callable

from ..resolve import Deployment
from . import lora
from .base import spec_gpu_ids
from .common import EnsembleRoute, params
from .guided import guided_parameters


class CpuRoute(EnsembleRoute):
    name = "cpu"

    def llm_parameters(self, deployment: Deployment) -> dict[str, str]:
        """What the reference engine needs to load and decode."""
        spec = deployment.spec
        return params({
            "engine": spec.cpu.engine.value,
            "checkpoint_dir": str(spec.checkpoint_dir),
            "tokenizer_dir": str(spec.tokenizer_dir),
            "device": spec.cpu.device.value,
            "torch_dtype": spec.cpu.dtype.value,
            "mock_step_ms": spec.cpu.mock_step_ms,
            "mock_echo": spec.cpu.mock_echo,
            "torch_threads": spec.cpu.threads or 0,
            "max_batch_size": spec.limits.max_batch_size,
            "max_input_len": spec.limits.max_input_len,
            "max_seq_len": spec.limits.max_seq_len,
            "max_beam_width": spec.limits.max_beam_width,
            "exclude_input_in_output": spec.serving.exclude_input_in_output,
            "stream_interval": spec.serving.stream_interval,
            "stream_interval_ms": spec.serving.stream_interval_ms,
            "trust_remote_code": spec.model.trust_remote_code,
            "decoding_mode": spec.resolved_decoding_mode.value,
            **guided_parameters(spec),
            **({"lora_adapters": lora.cpu_parameter(spec)} if lora.enabled(spec) else {}),
        })

    def prepare(self, deployment: Deployment, *, build: bool, echo: Callable[[str], None],
                warn: Callable[[str], None]) -> Deployment:
        """The checkpoint the reference engine loads: the tiny model is built offline when it is the one asked
        for and not there yet (whatever ``build`` says: it takes seconds and needs no GPU)."""
        from ..tiny import ensure_model

        ensure_model(deployment.spec, echo=echo)
        return deployment

    def launch_facts(self, spec: dict) -> dict:
        """On CUDA the reference engine uses the first GPU of the spec (no TensorRT-LLM world to start)."""
        if (spec.get("cpu") or {}).get("device") != "cuda":
            return {}
        return {"gpu_ids": spec_gpu_ids(spec)[:1] or [0]}


ROUTE = CpuRoute()
