"""Preprocessing for the tensorrt_llm ensemble: text -> token ids and the engine's request tensors.

Rendered by tritongen; runs in Triton's python backend (NGC TensorRT-LLM container or a local tritonserver)
with only numpy and transformers. Settings come from config.pbtxt ``parameters``.

Per batch: all prompts are tokenized in one call of the fast tokenizer. A bad request (missing, empty or
over-long prompt, max_tokens < 1 or beyond INT32, prompt + max_tokens beyond max_seq_len, chat template missing,
over-long word lists) gets its own error response; the other requests of the batch are answered normally. A
prompt over max_prompt_bytes is refused from its byte length, before it is decoded or tokenized.
"""

from __future__ import annotations

import gc
import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils
from lora_names import OUTPUT as LORA_OUTPUT
from lora_names import LoraNames
from textcodec import (
    bool_param,
    byte_size,
    chat_prompt,
    check_prompt_size,
    check_words,
    int_param,
    length_problem,
    one_of,
    prompt_bounds,
    scalar,
    strings,
    to_word_list,
    tokenizer_of,
)


def _input(request, name):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.tokenizer = tokenizer_of(config)
        self.add_special_tokens = bool_param(config, "add_special_tokens", True)
        self.max_input_len = int_param(config, "max_input_len", 0)
        self.max_seq_len = int_param(config, "max_seq_len", 0)
        tok = self.tokenizer
        self.end_id = tok.eos_token_id if tok.eos_token_id is not None else 0
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.end_id
        self.vocab = len(tok)
        self.empty_words = np.array([[0], [-1]], dtype=np.int32)
        # A prompt longer than this surely has more than max_input_len tokens: refused before it is decoded or
        # tokenized (tokenizing 50 MB took 7 GB and minutes of CPU).
        self.prompt_bytes, self.chat_bytes = prompt_bounds(config, tok, self.max_input_len)
        self.lora = LoraNames(config)  # adapter name -> task id (spec lora.adapters)
        self.send_arrival = any(o.get("name") == "ARRIVAL_NS" for o in config.get("output", []))
        self.arrival_ns = 0
        # Everything loaded so far (tokenizer, model) lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise stall every request in flight (a TTFT tail).
        gc.freeze()

    def execute(self, requests):
        # The LLM metrics' arrival time (tritongen.contract.ARRIVAL_OUTPUT): taken once, as the batch arrives.
        self.arrival_ns = time.time_ns()
        # Gather prompts of the whole batch, then tokenize each kind (plain / chat-formatted) in one call.
        rows = []  # (request, batch_row, text, chat)
        errors: dict[int, str] = {}
        for r_idx, request in enumerate(requests):
            query = _input(request, "QUERY")
            chat_flags = _input(request, "APPLY_CHAT_TEMPLATE")
            if query is None:  # optional in the ensemble, so a stream without it gets this error, not silence
                errors[r_idx] = "text_input is required: send the prompt as text_input"
                continue
            batch = query.shape[0] if query.ndim else 1
            for b in range(batch):
                chat = bool(scalar(chat_flags[b] if chat_flags is not None else None, False))
                try:
                    check_prompt_size(byte_size(query[b]), self.prompt_bytes, self.max_input_len,
                                      self.chat_bytes if chat else 0)
                except ValueError as exc:
                    errors[r_idx] = str(exc)
                    break
                texts = strings(query[b])
                text = texts[0] if texts else ""
                if not text.strip():
                    errors[r_idx] = "text_input is empty; send a non-empty prompt"
                elif chat:
                    try:
                        text = chat_prompt(self.tokenizer, text)
                    except Exception as exc:  # a broken template or message list is the request's error
                        errors[r_idx] = f"apply_chat_template: {exc}"
                rows.append((r_idx, b, text, chat))
        ids_by_row = self._tokenize(rows, errors)

        responses = []
        for r_idx, request in enumerate(requests):
            if r_idx in errors:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(errors[r_idx])))
                continue
            try:
                responses.append(self._response(request, r_idx, ids_by_row))
            except ValueError as exc:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
        return responses

    def _tokenize(self, rows, errors) -> dict[tuple[int, int], list[int]]:
        out: dict[tuple[int, int], list[int]] = {}
        for chat in (False, True):
            group = [(r, b, t) for r, b, t, c in rows if c == chat and r not in errors]
            if not group:
                continue
            # Chat templates already place BOS and friends; adding special tokens again would double them.
            encoded = self.tokenizer(
                [t for _, _, t in group],
                add_special_tokens=self.add_special_tokens and not chat,
            )["input_ids"]
            for (r, b, _), ids in zip(group, encoded):
                out[(r, b)] = ids
        return out

    def _response(self, request, r_idx, ids_by_row):
        out_len = _input(request, "REQUEST_OUTPUT_LEN")
        end_in = _input(request, "END_ID")
        pad_in = _input(request, "PAD_ID")
        stop_in = _input(request, "STOP_WORDS_DICT")
        bad_in = _input(request, "BAD_WORDS_DICT")
        bias_words = _input(request, "EMBEDDING_BIAS_WORDS")
        bias_weights = _input(request, "EMBEDDING_BIAS_WEIGHTS")
        if out_len is None:
            raise ValueError("max_tokens is required: send the number of tokens to generate at most")
        batch = out_len.shape[0]

        ids_rows, lens, out_lens, ends, pads, stops, bads, biases = [], [], [], [], [], [], [], []
        for b in range(batch):
            ids = ids_by_row[(r_idx, b)]
            n = len(ids)
            if self.max_input_len and n > self.max_input_len:
                raise ValueError(f"prompt is {n} tokens, longer than max_input_len={self.max_input_len}; "
                                 "shorten it (or raise limits.max_input_len and rebuild)")
            max_tokens = int(scalar(out_len[b], 0))
            problem = length_problem(n, max_tokens, self.max_seq_len)
            if problem:
                raise ValueError(problem)
            ids_rows.append(ids)
            lens.append(n)
            out_lens.append(max_tokens)
            for name, words in (("stop_words", stop_in), ("bad_words", bad_in), ("embedding_bias_words", bias_words)):
                check_words(name, words[b] if words is not None else None)
            ends.append(self._token_id("end_id", end_in, b, self.end_id))
            pads.append(self._token_id("pad_id", pad_in, b, self.pad_id))
            stops.append(to_word_list(self.tokenizer, strings(stop_in[b])) if stop_in is not None else self.empty_words)
            bads.append(to_word_list(self.tokenizer, strings(bad_in[b])) if bad_in is not None else self.empty_words)
            biases.append(self._bias(
                strings(bias_words[b]) if bias_words is not None else [],
                bias_weights[b] if bias_weights is not None else None,
            ))

        width = max(lens)
        input_ids = np.full((batch, width), self.pad_id, dtype=np.int32)
        for b, ids in enumerate(ids_rows):
            input_ids[b, : len(ids)] = ids
        tensors = [
            pb_utils.Tensor("INPUT_ID", input_ids),
            pb_utils.Tensor("REQUEST_INPUT_LEN", np.array(lens, dtype=np.int32).reshape(batch, 1)),
            pb_utils.Tensor("REQUEST_OUTPUT_LEN", np.array(out_lens, dtype=np.int32).reshape(batch, 1)),
            pb_utils.Tensor("STOP_WORDS_IDS", _stack_word_lists(stops)),
            pb_utils.Tensor("BAD_WORDS_IDS", _stack_word_lists(bads)),
            pb_utils.Tensor("EMBEDDING_BIAS", _stack_bias(biases)),
            pb_utils.Tensor("OUT_END_ID", np.array(ends, dtype=np.int32).reshape(batch, 1)),
            pb_utils.Tensor("OUT_PAD_ID", np.array(pads, dtype=np.int32).reshape(batch, 1)),
        ]
        for out_name, new_name, old_name, dtype in _ALIASED:
            values = _one_of(request, new_name, old_name, batch)
            if values is not None:
                tensors.append(pb_utils.Tensor(out_name, np.asarray(values, dtype=dtype).reshape(batch, 1)))
        lora_ids = self.lora.task_ids(_input(request, "LORA_NAME"), _input(request, "LORA_TASK_ID"), batch)
        if lora_ids is not None:
            tensors.append(pb_utils.Tensor(LORA_OUTPUT, lora_ids))
        for name, array in self.lora.weights(lora_ids, _input(request, "LORA_WEIGHTS"), _input(request, "LORA_CONFIG")):
            tensors.append(pb_utils.Tensor(name, array))
        if self.send_arrival:
            tensors.append(pb_utils.Tensor("ARRIVAL_NS", np.full((batch, 1), self.arrival_ns, dtype=np.int64)))
        if _wants(request, "DECODER_INPUT_ID"):
            # What the reference preprocessing gives a decoder-only model: one pad token of length 1, which the
            # backend ignores unless the engine is an encoder-decoder.
            tensors.append(pb_utils.Tensor("DECODER_INPUT_ID", np.array(pads, dtype=np.int32).reshape(batch, 1)))
            tensors.append(pb_utils.Tensor("REQUEST_DECODER_INPUT_LEN", np.ones((batch, 1), dtype=np.int32)))
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _token_id(self, name, array, row, default) -> int:
        value = int(scalar(array[row] if array is not None else None, default))
        if not -1 <= value < self.vocab:  # -1: no end id (the backend's convention)
            raise ValueError(f"{name}={value} is not a token id of this model: it must be in [-1, {self.vocab - 1}]")
        return value

    def _bias(self, words, weights):
        if not words:
            return np.zeros((0,), dtype=np.float32)
        weights = np.asarray(weights, dtype=np.float32).reshape(-1) if weights is not None else None
        if weights is None or weights.size < len(words):
            raise ValueError("embedding_bias_weights needs one weight per embedding_bias_words entry")
        if not np.isfinite(weights[: len(words)]).all():
            raise ValueError("embedding_bias_weights must be finite numbers (no NaN or inf)")
        bias = np.zeros((self.vocab,), dtype=np.float32)
        for word, weight in zip(words, weights):
            for token in self.tokenizer.encode(word, add_special_tokens=False):
                bias[token] += weight
        return bias


#: (output, input, older name of the input, dtype): clients of TensorRT-LLM <= 0.19 send the older names. The
#: output is left out when the request sent neither, so tensorrt_llm keeps its own default.
_ALIASED = (
    ("OUT_SEED", "SEED", "RANDOM_SEED", np.uint64),
    ("OUT_MIN_TOKENS", "MIN_TOKENS", "MIN_LENGTH", np.int32),
)
_CLIENT_NAME = {"SEED": "seed", "RANDOM_SEED": "random_seed", "MIN_TOKENS": "min_tokens", "MIN_LENGTH": "min_length"}


def _one_of(request, name, old_name, batch):
    """The per-row values of ``name`` or its older name (None: neither sent); both with different values is
    the request's error."""
    new, old = _input(request, name), _input(request, old_name)
    if new is None and old is None:
        return None
    return [one_of(_CLIENT_NAME[name], None if new is None else scalar(new[min(b, len(new) - 1)], None),
                   _CLIENT_NAME[old_name], None if old is None else scalar(old[min(b, len(old) - 1)], None))
            for b in range(batch)]


def _wants(request, name) -> bool:
    """Whether the caller asked for output ``name`` (the ensemble asks only for what it maps)."""
    try:
        return name in request.requested_output_names()
    except Exception:  # a python backend without the call: produce it
        return True


def _stack_word_lists(lists):
    width = max(x.shape[1] for x in lists)
    out = np.zeros((len(lists), 2, width), dtype=np.int32)
    out[:, 1, :] = -1
    for i, x in enumerate(lists):
        out[i, :, : x.shape[1]] = x
    return out


def _stack_bias(biases):
    width = max(b.shape[0] for b in biases)
    out = np.zeros((len(biases), width), dtype=np.float32)
    for i, b in enumerate(biases):
        out[i, : b.shape[0]] = b
    return out
