"""Structured output (``serving.guided_decoding``): what each route's tensorrt_llm model is told, and the
tokenizer-info file the engine route's C++ backend reads.

The TensorRT-LLM backend (tensorrtllm_backend inflight_batcher_llm/src/model_instance_state.cc,
``getGuidedDecodingConfigFromParams``) turns guided decoding on when both ``guided_decoding_backend`` (only
``xgrammar`` is accepted) and ``xgrammar_tokenizer_info_path`` are set; it reads from that JSON file
``encoded_vocab`` (the tokens, in id order), ``tokenizer_str`` (the fast tokenizer's tokenizer.json text) and
``stop_token_ids``. TensorRT-LLM writes the file with examples/generate_xgrammar_tokenizer_info.py, which calls
``tensorrt_llm.llmapi.tokenizer._xgrammar_tokenizer_info``; :func:`tokenizer_info` builds the same three fields,
so no TensorRT-LLM install is needed to make it.

The per-request inputs (``guided_decoding_guide_type``, ``guided_decoding_guide``) are in the contract
(tritongen.contract) and wired through the ensemble and tensorrt_llm_bls whatever this switch says.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from .. import contract
from ..errors import GatingError, MissingDependency, UsageError
from ..names import show_path
from ..paths import cache_dir

BACKEND = "xgrammar"
INFO_NAME = "xgrammar_tokenizer_info.json"
#: The guide types TensorRT-LLM's backends take (executor GuidedDecodingParams::GuideType).
GUIDE_TYPES = ("json", "json_schema", "regex", "ebnf_grammar", "structural_tag")


def enabled(spec) -> bool:
    """Whether the spec turns structured output on."""
    return spec.serving.guided_decoding.value == BACKEND


def guided_parameters(spec) -> dict[str, object]:
    """The cpu engine's parameter: which guided-decoding backend it runs (none: guides are refused)."""
    return {"guided_decoding_backend": BACKEND} if enabled(spec) else {}


def tokenizer_info_path(spec) -> Path:
    """Where the engine route's tokenizer-info file for this spec's tokenizer lives (the tritongen cache,
    keyed by the tokenizer folder), as the tensorrt_llm model's ``xgrammar_tokenizer_info_path`` names it."""
    key = hashlib.sha256(str(Path(spec.tokenizer_dir).absolute()).encode()).hexdigest()[:16]
    return cache_dir() / "xgrammar" / key / INFO_NAME


def engine_parameters(deployment) -> dict[str, object]:
    """The engine route's tensorrt_llm parameters for guided decoding (none when it is off). A TensorRT-LLM
    release whose backend has no guided-decoding inputs (before 0.19, catalog/trtllm_contract.yaml) is refused."""
    spec = deployment.spec
    if not enabled(spec):
        return {}
    version = deployment.trtllm_version
    if version and "guided_decoding_guide_type" in contract.llm_contract(version).absent:
        raise GatingError(f"serving.guided_decoding: the tensorrt_llm backend of TensorRT-LLM {version} "
                          f"({deployment.image}) has no guided-decoding inputs",
                          hint="use a newer container.image (TensorRT-LLM 0.19 or later), or "
                               "serving.guided_decoding: none")
    return {"guided_decoding_backend": BACKEND, "xgrammar_tokenizer_info_path": str(tokenizer_info_path(spec))}


def tokenizer_info(tokenizer) -> dict:
    """The tokenizer-info JSON of TensorRT-LLM's generate_xgrammar_tokenizer_info.py for a Hugging Face tokenizer:
    the vocabulary in id order, the fast tokenizer's serialised form, the end-of-sequence id."""
    vocab = tokenizer.get_vocab()
    encoded = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise UsageError(f"serving.guided_decoding: {type(tokenizer).__name__} is not a fast tokenizer; the "
                         "TensorRT-LLM backend's xgrammar needs its tokenizer.json",
                         hint="use a tokenizer folder with tokenizer.json, or serving.guided_decoding: none")
    return {"encoded_vocab": encoded, "tokenizer_str": backend.to_str(),
            "stop_token_ids": [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []}


def write_tokenizer_info(spec, warn) -> Path | None:
    """Write the engine route's tokenizer-info file for ``spec`` (when guided decoding is on and the tokenizer
    is on this machine); returns its path, or None when nothing was written (with a warning saying why)."""
    if not enabled(spec):
        return None
    tok_dir = Path(spec.tokenizer_dir)
    if not tok_dir.is_dir():
        warn(f"warning: serving.guided_decoding: tokenizer {show_path(tok_dir)} is not on this machine; "
             f"write {INFO_NAME} to {show_path(tokenizer_info_path(spec))} on the serving host (TensorRT-LLM's "
             "examples/generate_xgrammar_tokenizer_info.py)")
        return None
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise MissingDependency("serving.guided_decoding: transformers is needed to write the tokenizer info",
                                hint="pip install transformers") from None
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), trust_remote_code=spec.model.trust_remote_code)
    target = tokenizer_info_path(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside and renamed into place: a server starting meanwhile never reads half a file.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(tokenizer_info(tokenizer), fh)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def check_engine_params(ctx, path: Path, params: dict[str, str]) -> None:
    """``validate`` on a tensorrt_llm model of the engine route: the guided-decoding parameters as the backend
    reads them (both set or none; only xgrammar; the tokenizer-info file there)."""
    backend = params.get("guided_decoding_backend", "")
    info = params.get("xgrammar_tokenizer_info_path", "")
    if backend and not backend.startswith("${") and backend != BACKEND:
        ctx.add(path, "parameters.guided_decoding_backend", f"{backend!r}: the backend takes only {BACKEND}",
                f"set {BACKEND}, or leave it empty (serving.guided_decoding)")
    if backend == BACKEND and not info:
        ctx.add(path, "parameters.xgrammar_tokenizer_info_path", "not set: the backend leaves guided decoding off "
                "without it", "render with serving.guided_decoding=xgrammar", "warning")
    if backend == BACKEND and info and not info.startswith("${") and not Path(info).is_file():
        ctx.add(path, "parameters.xgrammar_tokenizer_info_path", f"{info} does not exist here; the backend refuses "
                "to load without it", "render on a machine with the tokenizer, or write it with TensorRT-LLM's "
                "examples/generate_xgrammar_tokenizer_info.py on the serving host", "warning")
