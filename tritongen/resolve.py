"""The deployment, resolved once per command: the spec with everything derived from it that several steps need.

The container (image and its TensorRT-LLM release), the engine folder, the draft model of a draft-target spec
and the model names used to be worked out again by the renderer, the lock writer, the validator and the
commands; a :class:`Deployment` is computed once and passed down instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from . import versions
from .errors import GatingError
from .spec import Route, Spec, SpeculativeMethod


@dataclass(frozen=True)
class Deployment:
    """A spec and what follows from it. Costly facts (the engine cache entry, which may ask nvidia-smi for the
    GPU; the draft model's spec) are worked out on first use only."""

    spec: Spec
    #: The container image the repository is served in, and the TensorRT-LLM release inside it (None: unknown).
    image: str
    trtllm_version: str | None

    @property
    def route(self) -> Route:
        """The spec's route."""
        return self.spec.route

    @property
    def names(self) -> dict[str, str]:
        """Model role -> model name in the repository (serving.model_prefix applied)."""
        return self.spec.model_names

    @property
    def draft_target(self) -> bool:
        """Whether the spec decodes with a draft model (draft-target speculative decoding)."""
        return self.spec.decoding.speculative.method is SpeculativeMethod.draft_target

    @cached_property
    def engine_dir(self) -> Path:
        """The engine folder (:func:`engine_dir_for`); engine route only."""
        return engine_dir_for(self.spec)

    @cached_property
    def draft(self) -> Deployment | None:
        """The draft model of a draft-target spec, as its ``tensorrt_llm_draft`` model is rendered (None when the
        spec has no draft model). On the engine route it points at the draft engine."""
        if not self.draft_target:
            return None
        draft = draft_spec(self.spec)
        if self.route is Route.engine:
            from .engine import cache

            engine = self.spec.engine.draft_dir or cache.entry_dir(draft, role="draft")
            draft = draft.model_copy(update={"engine": draft.engine.model_copy(update={"dir": Path(engine)})})
        return resolve(draft)


def resolve(spec: Spec) -> Deployment:
    """The deployment of ``spec``: its container resolved against the version matrix."""
    image, trtllm_version = versions.resolve_container(spec)
    return Deployment(spec=spec, image=image, trtllm_version=trtllm_version)


def engine_dir_for(spec: Spec) -> Path:
    """Where the engine for this spec is: ``engine.dir`` if given, else its cache entry."""
    if spec.engine.dir is not None:
        return Path(spec.engine.dir)
    from .engine import cache

    return cache.entry_dir(spec)


def draft_spec(spec: Spec) -> Spec:
    """The draft model of a draft-target spec.

    On the engine route it is built like the target: same precision, limits, KV cache, GPU and container, on the
    target's first GPU (tp=pp=1), no speculative decoding of its own. On the cpu route it is served by the same
    cpu engine with the target's limits.
    """
    from .spec import load_spec

    sd = spec.decoding.speculative
    lim = spec.limits
    if spec.route is not Route.engine:
        return load_spec(sd.draft_model, options={
            "route": "cpu", "cpu.engine": spec.cpu.engine.value, "cpu.device": spec.cpu.device.value,
            "cpu.dtype": spec.cpu.dtype.value, "serving.streaming": spec.serving.streaming,
            "limits.max_batch_size": lim.max_batch_size, "limits.max_input_len": lim.max_input_len,
            "limits.max_seq_len": lim.max_seq_len, "limits.max_num_tokens": lim.max_num_tokens,
        })
    name = sd.draft_model
    kv, prec = spec.kv_cache, spec.precision
    options = {
        "route": "engine",
        "precision.format": prec.format.value,
        "precision.kv_cache_dtype": prec.kv_cache_dtype.value,
        "precision.calib_size": prec.calib_size,
        "precision.awq_block_size": prec.awq_block_size,
        "precision.smoothquant_alpha": prec.smoothquant_alpha,
        "limits.max_batch_size": lim.max_batch_size,
        "limits.max_input_len": lim.max_input_len,
        "limits.max_seq_len": lim.max_seq_len,
        "limits.max_num_tokens": lim.max_num_tokens,
        "kv_cache.tokens_per_block": kv.tokens_per_block,
        "kv_cache.enable_reuse": kv.enable_reuse,
        "scheduling.enable_chunked_context": spec.scheduling.enable_chunked_context,
        "parallelism.tp": 1,
        "parallelism.pp": 1,
        "parallelism.ep": 1,
        "parallelism.gpu_ids": [spec.parallelism.resolved_gpu_ids[0]],
        "decoding.gather_generation_logits": sd.acceptance_threshold is not None,
    }
    if prec.dtype is not None:
        options["precision.dtype"] = prec.dtype.value
    if spec.engine.gpu:
        options["engine.gpu"] = spec.engine.gpu
    if spec.container.image:
        options["container.image"] = spec.container.image
    if spec.container.trtllm_version:
        options["container.trtllm_version"] = spec.container.trtllm_version
    draft = load_spec(name, options=options)
    if draft.model.vocab_size != spec.model.vocab_size:
        raise GatingError(f"decoding.speculative.draft_model {name}: vocabulary {draft.model.vocab_size} differs from "
                          f"{spec.model.name}'s {spec.model.vocab_size}; draft and target must share a tokenizer",
                          hint="pick a draft model of the same family (e.g. llama3.2-1b for llama3-8b)")
    return draft
