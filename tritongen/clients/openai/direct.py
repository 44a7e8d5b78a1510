"""The OpenAI front's direct path (``tritongen openai --direct``): tokenize and detokenize in the front process and
call the repository's ``tensorrt_llm`` model itself, as trtllm-serve and NIM keep the tokenizer in the HTTP server.

Behind the ensemble every streamed token costs Triton a postprocessing call in a python-backend stub and a second
response; here the engine's response goes straight to the front, which decodes it with the same incremental
decoder postprocessing uses (the repository's own ``textcodec.py``, loaded from it), so the streamed text is
byte for byte what the ensemble streams. The request checks preprocessing makes (prompt bytes and tokens,
prompt + max_tokens within max_seq_len, chat template, stop words) are the same functions, read from the same
file, with the same settings (the repository's preprocessing and postprocessing ``config.pbtxt``).

What the direct path does not do is refused with a 400 naming it, instead of being silently dropped: any client
input that preprocessing would have to translate and this module does not (see ``_translate``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import numpy as np

from ... import contract
from ...errors import UsageError
from .. import contract_io
from .backend import Piece, TritonBackend, _classify, log_probs, token_counts
from .mapping import Generation
from .protocol import OpenAIError

#: Client inputs the direct path turns into engine inputs itself (the rest of preprocessing's work).
_OWN = frozenset({"text_input", "apply_chat_template", "max_tokens", "stop_words", "seed", "min_tokens", "stream",
                  "end_id", "pad_id"})
_counter = itertools.count()


def _load_textcodec(path: Path) -> ModuleType:
    """The repository's own textcodec.py as a module (each repository may be of another tritongen release)."""
    name = f"_tritongen_textcodec_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and friends look their module up by name
    spec.loader.exec_module(module)
    return module


def _config_dict(path: Path) -> dict:
    """A model's config.pbtxt as the JSON dict Triton hands python models (``args["model_config"]``)."""
    from google.protobuf import json_format

    from ...repo.report import parse_config

    return json_format.MessageToDict(parse_config(path), preserving_proto_field_name=True)


class DirectBackend(TritonBackend):
    """The client contract answered from the repository's tensorrt_llm model, with tokenizing in this process."""

    def __init__(self, url: str, repo: Path, prefix: str = "", *, timeout: float = 300.0):
        pre_dir, post_dir = repo / f"{prefix}preprocessing", repo / f"{prefix}postprocessing"
        for d in (pre_dir, post_dir):
            if not (d / "config.pbtxt").is_file():
                raise UsageError(f"--direct: {d} is not there; the direct path needs the repository the server "
                                 "serves (its tokenizer settings)")
        super().__init__(url, f"{prefix}tensorrt_llm", timeout=timeout, stop_model=f"{prefix}tensorrt_llm")
        self.codec = _load_textcodec(pre_dir / "1" / "textcodec.py")
        pre, post = _config_dict(pre_dir / "config.pbtxt"), _config_dict(post_dir / "config.pbtxt")
        codec = self.codec
        self.tokenizer = codec.tokenizer_of(pre)
        tok = self.tokenizer
        self.add_special_tokens = codec.bool_param(pre, "add_special_tokens", True)
        self.skip_special = codec.bool_param(post, "skip_special_tokens", True)
        self.max_input_len = codec.int_param(pre, "max_input_len", 0)
        self.max_seq_len = codec.int_param(pre, "max_seq_len", 0)
        self.prompt_bytes, self.chat_bytes = codec.prompt_bounds(pre, tok, self.max_input_len)
        self.end_id = tok.eos_token_id if tok.eos_token_id is not None else 0
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.end_id

    def _translate(self, values: dict) -> dict:
        """Client-contract values -> tensorrt_llm inputs: what preprocessing does, for one request."""
        codec, tok = self.codec, self.tokenizer
        unknown = sorted(n for n in values if n not in _OWN and n not in contract.CLIENT_TO_LLM)
        if unknown:
            raise OpenAIError(400, f"{', '.join(unknown)}: not supported by the front's direct path (--direct); "
                              "use the front over the ensemble", code="unsupported_parameter")
        text, chat = values["text_input"], bool(values.get("apply_chat_template"))
        try:
            codec.check_prompt_size(len(text.encode("utf-8")), self.prompt_bytes, self.max_input_len,
                                    self.chat_bytes if chat else 0)
            if not text.strip():
                raise ValueError("text_input is empty; send a non-empty prompt")
            if chat:
                text = codec.chat_prompt(tok, text)
        except ValueError as exc:  # the message (and so the OpenAI error) preprocessing would have given
            raise _classify(str(exc)) from None
        ids = tok(text, add_special_tokens=self.add_special_tokens and not chat)["input_ids"]
        max_tokens = int(values["max_tokens"])
        if self.max_input_len and len(ids) > self.max_input_len:
            raise _classify(f"prompt is {len(ids)} tokens, longer than max_input_len={self.max_input_len}")
        problem = codec.length_problem(len(ids), max_tokens, self.max_seq_len)
        if problem:
            raise _classify(problem)
        out = {"input_ids": ids, "input_lengths": len(ids), "request_output_len": max_tokens,
               "end_id": int(values.get("end_id", self.end_id)), "pad_id": int(values.get("pad_id", self.pad_id)),
               "streaming": bool(values.get("stream", True))}
        for name in ("seed", "min_tokens"):
            if name in values:
                out[name] = values[name]
        if values.get("stop_words"):
            out["stop_words_list"] = codec.to_word_list(tok, list(values["stop_words"]))
        for name, value in values.items():
            if name in contract.CLIENT_TO_LLM and name != "stream":
                out[contract.CLIENT_TO_LLM[name]] = value
        return out

    def _encode(self, request_id: str, gen: Generation, counts: list[str]):
        values = gen.values()
        for name in ("num_input_tokens", "num_output_tokens"):
            if name not in counts:
                values.pop("return_" + name, None)
        inputs = contract_io.llm_inputs(self._translate(values))
        outputs = ["output_ids", *counts, *(["output_log_probs"] if gen.logprobs else [])]
        return inputs.infer_request(self.model, request_id, outputs)

    async def stream(self, request_id: str, gen: Generation) -> AsyncIterator[Piece]:
        """Yield the text pieces of one request, decoded here from the engine's token ids."""
        decoder = self.codec.IncrementalDecoder(self.tokenizer, self.skip_special)
        from tritonclient.grpc import InferResult

        async with contextlib.aclosing(self._messages(request_id, gen)) as messages:
            async for message, final in messages:
                result = InferResult(message.infer_response)
                ids = result.as_numpy("output_ids")
                text = decoder.push(np.asarray(ids).reshape(-1).tolist()) if ids is not None else ""
                if final:
                    text += decoder.flush()
                counts = token_counts(result)
                lps = log_probs(result) if gen.logprobs else None
                if text or counts or lps:
                    yield Piece(text, counts, lps)

