"""Postprocessing for the tensorrt_llm ensemble: token ids -> text.

Rendered by tritongen; runs in Triton's python backend with only numpy and transformers.

Streaming: the engine sends a few new tokens per response, and the ensemble calls this model once per
response. Decoding each chunk on its own loses the spaces SentencePiece tokenizers attach to word starts and
splits multi-byte characters (accents, CJK, emoji) across chunks. Instead, each stream gets an incremental
decoder (constant work per token), keyed by STREAM_KEY: a value the engine makes unique per request inside the
server (the client's request id is not: clients leave it empty or all send "1"). STREAM_FINAL marks a stream's
last response; its chunk then carries what the decoder still holds, so the chunks add up to exactly the full
decode, and the stream's state is dropped. Only the cpu route's engine sends the two (Triton's ensemble cannot
route a key from preprocessing to this step, see tritongen.contract.STREAM_OUTPUTS); without them - the
TensorRT-LLM C++ backend - each chunk is decoded on its own, as the reference postprocessing does (logged
once), since requests cannot be told apart. tensorrt_llm_bls is exact on every route.
"""

from __future__ import annotations

import gc
import json

import numpy as np
import triton_python_backend_utils as pb_utils
from textcodec import StreamTable, bool_param, decode, tokenizer_of


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.tokenizer = tokenizer_of(config)
        self.skip_special = bool_param(config, "skip_special_tokens", True)
        self.streaming = bool_param(config, "streaming", False)
        self.streams = StreamTable(self.tokenizer, self.skip_special)
        self.logger = pb_utils.Logger
        self.warned_no_key = False
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
        tokens = lengths = keys = finals = None
        for tensor in request.inputs():  # one pass (get_input_tensor_by_name rescans the inputs per name)
            name = tensor.name()
            if name == "TOKENS_BATCH":
                tokens = tensor.as_numpy()
            elif name == "SEQUENCE_LENGTH":
                lengths = tensor.as_numpy()
            elif name == "STREAM_KEY":
                keys = tensor.as_numpy().reshape(-1)
            elif name == "STREAM_FINAL":
                finals = tensor.as_numpy().reshape(-1)
        if tokens is None:
            raise ValueError("input TOKENS_BATCH is missing")
        if tokens.ndim == 2:  # [beam, len] from a caller without a batch dimension
            tokens = tokens[None]
        if lengths is None or lengths.size == 0:
            lengths = np.full(tokens.shape[:2], tokens.shape[2], dtype=np.int32)
        lengths = lengths.reshape(tokens.shape[:2])
        batch, beams = tokens.shape[0], tokens.shape[1]
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
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT", out)])
