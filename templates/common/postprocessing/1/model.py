"""Postprocessing for the tensorrt_llm ensemble: token ids -> text.

Rendered by tritongen; runs in Triton's python backend with only numpy and transformers.

Streaming: the engine sends a few new tokens per response, and the ensemble calls this model once per
response. Decoding each chunk on its own loses the spaces SentencePiece tokenizers attach to word starts and
splits multi-byte characters (accents, CJK, emoji) across chunks. Instead, each stream gets an incremental
decoder, keyed by the Triton request id (which the ensemble passes to every step and clients set - gRPC
``request_id``, the generate endpoint's ``"id"``): chunks then concatenate to exactly the full decode, with
constant work per token. A streamed request without an id cannot be told apart from others, so its chunks are
decoded on their own, as the reference postprocessing does (logged once). tensorrt_llm_bls has no such limit.
"""

from __future__ import annotations

import gc
import json

import numpy as np
import triton_python_backend_utils as pb_utils
from textcodec import StreamTable, bool_param, decode, load_tokenizer, str_param


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.tokenizer = load_tokenizer(
            str_param(config, "tokenizer_dir"), bool_param(config, "trust_remote_code", False)
        )
        self.skip_special = bool_param(config, "skip_special_tokens", True)
        self.streaming = bool_param(config, "streaming", False)
        self.streams = StreamTable(self.tokenizer, self.skip_special)
        self.logger = pb_utils.Logger
        self.warned_no_id = False
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
        return responses

    def _one(self, request):
        tokens = lengths = None
        for tensor in request.inputs():  # one pass (get_input_tensor_by_name rescans the inputs per name)
            name = tensor.name()
            if name == "TOKENS_BATCH":
                tokens = tensor.as_numpy()
            elif name == "SEQUENCE_LENGTH":
                lengths = tensor.as_numpy()
        if tokens is None:
            raise ValueError("input TOKENS_BATCH is missing")
        if tokens.ndim == 2:  # [beam, len] from a caller without a batch dimension
            tokens = tokens[None]
        if lengths is None or lengths.size == 0:
            lengths = np.full(tokens.shape[:2], tokens.shape[2], dtype=np.int32)
        lengths = lengths.reshape(tokens.shape[:2])
        key = request.request_id() if self.streaming else ""
        if self.streaming and not key and not self.warned_no_id:
            self.warned_no_id = True
            self.logger.log_warn(
                "postprocessing: streamed requests without a request id are decoded chunk by chunk; set the "
                "gRPC request_id (or the generate endpoint's \"id\") for exact streamed text"
            )
        batch, beams = tokens.shape[0], tokens.shape[1]
        if batch == 1 and beams == 1:  # the streaming case: a single sequence, a few new tokens
            ids = tokens[0, 0, : max(int(lengths[0, 0]), 0)].tolist()
            text = self.streams.push(key + "/0", ids) if key else decode(self.tokenizer, ids, self.skip_special)
            return pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("OUTPUT", np.array([[text.encode("utf-8")]], dtype=object))]
            )
        out = np.empty((batch, beams), dtype=object)
        for b in range(batch):
            for k in range(beams):
                ids = tokens[b, k, : max(int(lengths[b, k]), 0)].tolist()
                if key and beams == 1:
                    text = self.streams.push(f"{key}/{b}", ids)
                else:
                    text = decode(self.tokenizer, ids, self.skip_special)
                out[b, k] = text.encode("utf-8")
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT", out)])
