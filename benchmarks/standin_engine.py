"""LEAN STAND-IN ENGINE for benchmarks/pipeline.py: the honest baseline of the pipeline's own cost.

Not an engine and not served by tritongen: the benchmark copies this file over a rendered cpu-route repository's
``tensorrt_llm/1/model.py``, keeping its config.pbtxt (the TensorRT-LLM backend's tensor contract). It does as
little as a python-backend model can while keeping that contract, so that what the ensemble adds on top of it is
not hidden by an expensive engine: one scheduler thread emits one token per active sequence per step (the
prompt's own tokens, cycled, so the text decodes to words), each response carries only the new token
(``output_ids``; ``sequence_length`` and ``num_output_tokens`` when asked, as TensorRT-LLM does) plus the one
small tensor tritongen's postprocessing keys exact streamed text by (``stream_state``: key and final flag, and
with the repository's metrics on, the timings on the first and last response). No tokenizer, no sampling, no per-token cancellation polling. Parameter
``standin_step_ms`` (default 0) paces the steps like a GPU iteration.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import threading
import time

import numpy as np
import triton_python_backend_utils as pb_utils

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class _Seq:
    __slots__ = ("sender", "prompt", "left", "made", "key", "origin_ns", "scheduled_ns", "count", "sent", "length",
                 "state")


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = config.get("parameters", {})
        self.step_s = float(params.get("standin_step_ms", {}).get("string_value", "0") or 0) / 1000
        # serving.stream_interval, as the cpu route's engine applies it (count only: the benchmark never sets ms).
        self.interval = max(int(params.get("stream_interval", {}).get("string_value", "1") or 1), 1)
        outputs = {o["name"] for o in config.get("output", [])}
        self.send_stats = any(i["name"] == "tritongen_arrival_ns" for i in config.get("input", []))
        self.outputs = outputs
        self.keys = itertools.count((os.getpid() & 0x1FFFFF) << 42)
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.stopping = False
        self.worker = threading.Thread(target=self._loop, daemon=True)
        self.worker.start()

    def finalize(self):
        self.stopping = True
        self.inbox.put(None)
        self.worker.join(timeout=5)

    def execute(self, requests):
        now = time.time_ns()
        for request in requests:
            seq = _Seq()
            seq.sender = request.get_response_sender()
            ids = pb_utils.get_input_tensor_by_name(request, "input_ids").as_numpy().reshape(-1)
            seq.prompt = ids.tolist() or [1]
            seq.left = int(pb_utils.get_input_tensor_by_name(request, "request_output_len").as_numpy().reshape(-1)[0])
            seq.made = seq.sent = 0
            # Like TensorRT-LLM, the running token count only when asked (clients count tokens by it).
            asked = pb_utils.get_input_tensor_by_name(request, "return_num_output_tokens")
            seq.count = asked is not None and bool(asked.as_numpy().reshape(-1)[0])
            wanted = set(request.requested_output_names() or ()) or self.outputs
            seq.length, seq.state = "sequence_length" in wanted, "stream_state" in wanted
            seq.key = next(self.keys)
            arrival = pb_utils.get_input_tensor_by_name(request, "tritongen_arrival_ns") if self.send_stats else None
            seq.origin_ns = int(arrival.as_numpy().reshape(-1)[0]) if arrival is not None else now
            seq.scheduled_ns = now
            self.inbox.put(seq)
        return None

    def _loop(self):
        active: list[_Seq] = []
        next_step = time.monotonic()
        while not self.stopping:
            if not active:
                try:
                    item = self.inbox.get(timeout=0.5)
                except queue.Empty:
                    continue
                if item is None:
                    return
                active.append(item)
            while True:  # everything that arrived since the last step joins this one
                try:
                    item = self.inbox.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    return
                active.append(item)
            started = time.monotonic()
            still = []
            for seq in active:
                seq.made += 1
                seq.left -= 1
                final = seq.left <= 0
                held = seq.made - seq.sent
                if not final and held < self.interval and seq.sent:
                    still.append(seq)
                    continue
                tokens = [seq.prompt[i % len(seq.prompt)] for i in range(seq.sent, seq.made)]
                seq.sent = seq.made
                tensors = [pb_utils.Tensor("output_ids", np.array([[tokens]], dtype=np.int32))]
                if seq.length:
                    tensors.append(pb_utils.Tensor("sequence_length", np.array([[len(tokens)]], dtype=np.int32)))
                if seq.count:
                    tensors.append(pb_utils.Tensor("num_output_tokens", np.array([[seq.made]], dtype=np.int32)))
                if seq.state:
                    state = [seq.key, int(final)]
                    if self.send_stats and (final or seq.sent == len(tokens)):  # first and last responses
                        state += [seq.origin_ns, seq.scheduled_ns, len(seq.prompt), 2 if final else 0]  # 2: length
                    tensors.append(pb_utils.Tensor("stream_state", np.array([state], dtype=np.int64)))
                seq.sender.send(pb_utils.InferenceResponse(output_tensors=tensors), flags=FINAL if final else 0)
                if not final:
                    still.append(seq)
            active = still
            if self.step_s:
                # A step every step_s, whatever sending took (as a GPU iteration; the cpu engine paces the same).
                now = time.monotonic()
                next_step = max(next_step, started) + self.step_s
                if next_step > now:
                    time.sleep(next_step - now)
