"""Postprocessing for the tensorrt_llm ensemble: token ids -> text.

Rendered by tritongen; runs in Triton's python backend with only numpy and transformers.

Streaming: the engine sends a few new tokens per response, and the ensemble calls this model once per
response. Decoding each chunk on its own loses the spaces SentencePiece tokenizers attach to word starts and
splits multi-byte characters (accents, CJK, emoji) across chunks. Instead, each stream gets an incremental
decoder (constant work per token), keyed by STREAM_STATE's key: a value the engine makes unique per request inside
the server (the client's request id is not: clients leave it empty or all send "1"). Its final flag marks a
stream's last response; its chunk then carries what the decoder still holds, so the chunks add up to exactly the
full decode, and the stream's state is dropped. Only the cpu route's engine sends it (Triton's ensemble cannot
route a key from preprocessing to this step, see tritongen.contract.STREAM_OUTPUTS); without it - the
TensorRT-LLM C++ backend - each chunk is decoded on its own, as the reference postprocessing does (logged
once), since requests cannot be told apart. tensorrt_llm_bls is exact on every route.

LLM metrics (llm_metrics.py, serving.metrics.enabled): every response's tokens count as generated; with
STREAM_STATE's timings (the cpu route, first and last responses) a request's TTFT, mean inter-token time,
end-to-end and queue times are measured when its first and last tokens leave this model, from the arrival time
preprocessing took, and labelled with its LoRA adapter.
"""

from __future__ import annotations

import gc
import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils
from llm_metrics import Metrics, Request, adapter_names, enabled, served_name
from textcodec import StreamTable, bool_param, decode, tokenizer_of

#: stream_state's finish codes (tritongen.contract.STATE_STATS; templates/cpu/tensorrt_llm/1/model.py).
FINISH = {1: "stop", 2: "length", 3: "cancelled"}
#: A timed request that sends nothing for this long is counted as cancelled (its client went away and the
#: engine's error response never reaches this model).
STALE_NS = 120 * 10**9


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.tokenizer = tokenizer_of(config)
        self.skip_special = bool_param(config, "skip_special_tokens", True)
        self.streaming = bool_param(config, "streaming", False)
        self.streams = StreamTable(self.tokenizer, self.skip_special)
        self.logger = pb_utils.Logger
        self.warned_no_key = False
        self.metrics = Metrics(served_name(config, "ensemble"), enabled(config))
        self.adapters = adapter_names(config)  # LoRA task id -> name: the lora_adapter label
        self.timed: dict[int, Request] = {}  # stream key -> its request's timeline
        self.swept_ns = 0
        # Everything loaded so far (tokenizer, model) lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise stall every request in flight (a TTFT tail).
        gc.freeze()

    def execute(self, requests):
        # Called once per streamed response (one or a few tokens), so this path is kept lean: it is most of
        # what the ensemble adds to the engine's own cost (see the README's pipeline figures).
        responses = []
        for request in requests:
            try:
                responses.append(self._one(request))
            except Exception as exc:  # one bad response must not fail the batch
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"postprocessing: {exc}")))
        self.streams.evict()
        if self.timed:
            self._sweep()
        return responses

    def finalize(self):
        self.metrics.close()

    def _sweep(self):
        now = time.time_ns()
        if now - self.swept_ns < 10**9:
            return
        self.swept_ns = now
        for key in [k for k, r in self.timed.items() if now - (r.last_ns or r.arrival_ns) > STALE_NS]:
            self.timed.pop(key).finish("cancelled", now)

    def _one(self, request):
        tokens = lengths = state = None
        for tensor in request.inputs():  # one pass (get_input_tensor_by_name rescans the inputs per name)
            name = tensor.name()
            if name == "TOKENS_BATCH":
                tokens = tensor.as_numpy()
            elif name == "SEQUENCE_LENGTH":
                lengths = tensor.as_numpy()
            elif name == "STREAM_STATE":
                state = tensor.as_numpy()
        if tokens is None:
            raise ValueError("input TOKENS_BATCH is missing")
        if tokens.ndim == 2:  # [beam, len] from a caller without a batch dimension
            tokens = tokens[None]
        if lengths is None or lengths.size == 0:
            # The cpu route's ensemble sends no lengths: its engine never pads, except rows of one non-streamed
            # request stacked to one width with -1 (never a token id).
            lengths = (tokens >= 0).sum(axis=-1, dtype=np.int32) if tokens.size else np.zeros(tokens.shape[:2], np.int32)
        lengths = lengths.reshape(tokens.shape[:2])
        batch, beams = tokens.shape[0], tokens.shape[1]
        keys = finals = stats = None
        if state is not None and state.size:
            # [key, final] per row, then tritongen.contract.STATE_STATS on a sequence's first and last responses
            state = state.reshape(batch, -1) if state.size % batch == 0 else state.reshape(1, -1)
            keys, finals = state[:, 0], state[:, 1]
            stats = state[:, 2:] if state.shape[1] >= 6 and (state[:, 2] > 0).all() else None
        keyed = self.streaming and keys is not None and keys.size >= batch and beams == 1
        if self.streaming and not keyed and not self.warned_no_key:
            self.warned_no_key = True
            self.logger.log_warn(
                "postprocessing: this repository's tensorrt_llm sends no stream key (the TensorRT-LLM backend "
                "cannot), so each streamed chunk is decoded on its own, as the reference postprocessing does: "
                "characters and word spaces split across chunks may differ from the full decode; "
                "tensorrt_llm_bls streams exact text"
            )
        # The reference's shape: one string per sequence, [batch * beams] (clients read text_output[0]).
        out = np.empty(batch * beams, dtype=object)
        for b in range(batch):
            for k in range(beams):
                ids = tokens[b, k, : max(int(lengths[b, k]), 0)].tolist()
                if not keyed:
                    text = decode(self.tokenizer, ids, self.skip_special)
                elif finals is not None and finals.size > b and bool(finals[b]):
                    text = self.streams.finish(int(keys[b]), ids)
                else:
                    text = self.streams.push(int(keys[b]), ids)
                out[b * beams + k] = text.encode("utf-8")
        if self.metrics.on:
            self._measure(lengths, keys, finals, stats, batch)
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT", out)])

    def _measure(self, lengths, keys, finals, stats, batch):
        """The LLM metrics of one response (see the module docstring)."""
        now = time.time_ns()
        if stats is None or keys is None or keys.size < batch or stats.shape[0] < batch:
            # The engine route (no key, no stats), or a response between a timed request's first and last.
            for b in range(batch):
                n = int(max(lengths[b].max(), 0))
                request = self.timed.get(int(keys[b])) if keys is not None and keys.size > b else None
                if request is not None:
                    request.sent(n, now)
                else:
                    self.metrics.add("tritongen_generation_tokens_total", n)
            return
        for b in range(batch):
            key = int(keys[b])
            request = self.timed.get(key)
            if request is None:
                arrival, scheduled, prompt = (int(v) for v in stats[b][:3])
                adapter = self.adapters.get(int(stats[b][4])) if stats.shape[1] > 4 else None
                request = self.timed[key] = Request(self.metrics, arrival, prompt, adapter)
                request.scheduled_ns = scheduled
            request.sent(int(max(lengths[b].max(), 0)), now)
            if finals is not None and finals.size > b and bool(finals[b]):
                del self.timed[key]
                request.finish(FINISH.get(int(stats[b][3]), "stop"), now)
