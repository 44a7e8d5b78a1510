"""Structured output on the llmapi route: the request's guide as the LLM API's GuidedDecodingParams.

Copied next to tensorrt_llm/1/model.py by tritongen. Upstream's LLM-API Triton model has no guided-decoding input;
tritongen's config of it adds ``guided_decoding_guide_type`` / ``guided_decoding_guide`` (the TensorRT-LLM backend's
names, which the front forwards), and model.py wraps upstream's ``get_sampling_params_from_request`` (helpers.py:
it returns the keyword arguments of ``SamplingParams``) with :func:`with_guide`, which adds
``guided_decoding=GuidedDecodingParams(...)`` (tensorrt_llm/sampling_params.py: json, regex, grammar, json_object,
structural_tag). The LLM needs ``guided_decoding_backend: xgrammar`` in model.yaml (serving.guided_decoding).
"""

from __future__ import annotations

import numpy as np

#: Guide type -> GuidedDecodingParams field (json: json_object=True, no guide text).
FIELDS = {"json": "json_object", "json_schema": "json", "regex": "regex", "ebnf_grammar": "grammar",
          "structural_tag": "structural_tag"}


def _text(array):
    if array is None:
        return None
    flat = np.asarray(array, dtype=object).reshape(-1)
    if flat.size == 0:
        return None
    value = flat[0]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def guided_kwargs(kind, guide) -> dict | None:
    """GuidedDecodingParams' keyword arguments for a guide type and text; None without a type."""
    if not kind:
        return None
    kind = kind.strip().lower()
    if kind not in FIELDS:
        raise ValueError(f"guided_decoding_guide_type {kind!r} is not one of {', '.join(FIELDS)}")
    if kind == "json":
        return {"json_object": True}
    if not guide:
        raise ValueError(f"guided_decoding_guide_type {kind} needs guided_decoding_guide")
    return {FIELDS[kind]: guide}


def with_guide(original, get_tensor, params_class):
    """``original`` (upstream's get_sampling_params_from_request) with the request's guide added.
    ``get_tensor(request, name)`` gives an input as an array or None; ``params_class()`` the GuidedDecodingParams
    class (imported late: tensorrt_llm is imported in initialize(), after the GPUs are chosen)."""

    def sampling_params_with_guide(request, *args, **kwargs):
        params = original(request, *args, **kwargs)
        found = guided_kwargs(_text(get_tensor(request, "guided_decoding_guide_type")),
                              _text(get_tensor(request, "guided_decoding_guide")))
        if found is not None:
            params["guided_decoding"] = params_class()(**found)
        return params

    return sampling_params_with_guide
