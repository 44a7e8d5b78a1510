"""cpu route: a reference engine with the TensorRT-LLM backend's tensor contract, in Triton's python backend.

Rendered by tritongen. It lets the whole stack (ensemble, preprocessing, postprocessing, BLS, clients) run for
real without a GPU or TensorRT-LLM, and it is what the engine route's pre/postprocessing are tested against.

- ``engine=torch`` runs a local Hugging Face causal LM with PyTorch (CUDA when available, else CPU).
- ``engine=mock`` is a MOCK: no model; it emits deterministic token ids from the tokenizer's vocabulary at a
  fixed pace (``mock_step_ms``), so the serving pipeline's own capacity can be measured.

Scheduling follows the real backend's in-flight batching at iteration level: one thread runs decode steps;
requests that arrive join the running batch between steps, finished or cancelled ones leave it. Each
sequence's forward pass runs on its own (batch of one), which keeps greedy output bit-identical to
``transformers`` ``generate()``; a fused batched kernel is what TensorRT-LLM adds on a GPU.

Semantics copied from TensorRT-LLM: greedy unless runtime_top_k > 1 or runtime_top_p > 0 (temperature alone
does not sample); seed defaults to 0; the end id is not part of the output; a stop word's tokens are; streaming
responses carry only new tokens; min_tokens suppresses the end id until reached.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import queue
import threading
import time
import traceback

import numpy as np
import triton_python_backend_utils as pb_utils
from engines import MockEngine, TorchEngine
from guided import Guides, request_guide
from llm_metrics import ENGINE_FAMILIES, Metrics, enabled
from lora import Adapters
from textcodec import LLM_TO_CLIENT, SAMPLING_RANGES, check_sampling, one_of

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
MOCK_NICE = 10
#: How often a running request asks Triton whether its client cancelled it. Each ask is a round trip between
#: this process and tritonserver; asking on every token of every request cost the engine loop more than its
#: own work at 0 ms/step. A cancelled request stops within this time.
CANCEL_CHECK_S = 0.01
#: stream_state's finish codes (postprocessing turns them into tritongen_requests_total{finish_reason}).
FINISH_NONE, FINISH_STOP, FINISH_LENGTH, FINISH_CANCELLED = 0, 1, 2, 3


def _param(config, key, default=""):
    value = config.get("parameters", {}).get(key, {}).get("string_value", default)
    return default if value is None else value


def _bool(value, default=False):
    if value in ("", None):
        return default
    return str(value).strip().lower() in ("true", "1", "yes", "on")


def _get(request, name):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


def _row_scalar(array, row, default):
    if array is None:
        return default
    arr = np.asarray(array)
    if arr.size == 0:
        return default
    if arr.ndim == 0:
        return arr.item()
    return arr.reshape(arr.shape[0], -1)[min(row, arr.shape[0] - 1)][0].item()


def _word_sequences(array, row) -> list[list[int]]:
    """Decode the [2, len] (ids, end offsets) format into token sequences."""
    if array is None:
        return []
    arr = np.asarray(array)
    if arr.ndim == 3:
        arr = arr[min(row, arr.shape[0] - 1)]
    if arr.ndim != 2 or arr.shape[0] != 2:
        raise ValueError(f"words list must have shape [2, len], got {list(arr.shape)}")
    ids, offsets = arr[0].tolist(), arr[1].tolist()
    seqs, start = [], 0
    for end in offsets:
        if end < 0:
            break
        if end > start:
            seqs.append(ids[start:end])
        start = end
    return seqs


#: tensorrt_llm inputs with a range to check, and how an error names them.
SAMPLING_INPUTS = tuple(n for n in SAMPLING_RANGES if n != "max_tokens" and n not in LLM_TO_CLIENT.values()) + tuple(
    n for n in LLM_TO_CLIENT if n != "request_output_len")
SAMPLING_LABELS = {llm: f"{client}/{llm}" for llm, client in LLM_TO_CLIENT.items()}


class Sequence:
    """One row of one request, decoding."""

    __slots__ = (
        "group", "row", "prompt", "max_new", "end_id", "stop_seqs", "bad_seqs", "temperature", "top_k", "top_p",
        "rep_penalty", "presence", "frequency", "min_tokens", "generator", "seed", "streaming", "exclude_input",
        "want_logprobs", "want_num_in", "want_num_out", "want_perf", "generated", "logprobs", "cum_logprob",
        "cache", "next_logits", "counts", "arrival_ns", "scheduled_ns", "first_token_ns", "last_token_ns",
        "done", "bias", "sent_upto", "draft", "key", "origin_ns", "finish", "emitted_ns", "want_length",
        "want_state", "top_n", "tops", "last_top", "guide", "lora", "lora_id",
    )


class Group:
    """A Triton request (possibly with several batch rows) and where its responses go."""

    def __init__(self, request, sender, rows: int, decoupled: bool):
        self.request = request
        self.request_id = _request_id(request)
        self.stopped = False  # set by a `stop` request carrying the same request id
        self.sender = sender
        self.pending = rows
        self.rows = rows
        self.decoupled = decoupled
        self.responses: list = []  # non-decoupled: collected here
        self.finished = threading.Event()
        self.failed = False
        self._checked = 0.0  # time.monotonic() of the last ask
        self._is_cancelled = None  # response_sender.is_cancelled when decoupled, else request.is_cancelled

    def cancelled(self) -> bool:
        if self.stopped:
            return True
        now = time.monotonic()
        if now - self._checked < CANCEL_CHECK_S:
            return False
        self._checked = now
        if self._is_cancelled is None:
            # One ask is enough: both read the same request's flag (older python backends lack one or the other).
            owner = self.sender if self.decoupled and self.sender is not None else self.request
            self._is_cancelled = getattr(owner, "is_cancelled", None) or getattr(self.request, "is_cancelled",
                                                                                 None) or (lambda: False)
        try:
            return bool(self._is_cancelled())
        except Exception:
            return False

    def send(self, response, final: bool) -> None:
        if self.decoupled:
            self.sender.send(response, flags=FINAL if final else 0)
        else:
            self.responses.append(response)
        if final:
            self.finished.set()

    def fail(self, message: str) -> None:
        if self.failed or self.finished.is_set():
            return
        self.failed = True
        self.pending = 0
        self.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(message)), final=True)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.decoupled = bool(config.get("model_transaction_policy", {}).get("decoupled", False))
        kind = _param(config, "engine", "torch")
        trust = _bool(_param(config, "trust_remote_code"), False)
        self.exclude_input_default = _bool(_param(config, "exclude_input_in_output"), True)
        self.max_beam_width = int(_param(config, "max_beam_width", "1") or 1)
        self.max_seq_len = int(_param(config, "max_seq_len", "0") or 0)
        self.tokens_per_block = 32
        self.stream_interval = max(int(_param(config, "stream_interval", "1") or 1), 1)
        self.stream_interval_ns = int(float(_param(config, "stream_interval_ms", "0") or 0) * 1e6)
        self._next_step = 0.0  # time.monotonic() the MOCK's next step starts (_pace)
        self._step_started = 0.0
        if kind == "mock":
            self.engine = MockEngine(_param(config, "tokenizer_dir"), trust, float(_param(config, "mock_step_ms", "0")),
                                     echo=_bool(_param(config, "mock_echo"), False))
        else:
            self.engine = TorchEngine(
                _param(config, "checkpoint_dir"), _param(config, "device", "auto"),
                _param(config, "torch_dtype", "auto"), trust, int(_param(config, "torch_threads", "0") or 0),
            )
        self.is_mock = kind == "mock"
        self._token_text_args = (_param(config, "tokenizer_dir"), trust)
        self.token_text = None  # topk.TokenText, loaded with the first request for top_logprobs
        # Structured output (guided.py): on when the repository was rendered with serving.guided_decoding=xgrammar.
        self.guides = (Guides(_param(config, "tokenizer_dir"), trust, self.engine.vocab_size)
                       if _param(config, "guided_decoding_backend") == "xgrammar" else None)
        # LoRA adapters by task id (lora.py); the MOCK has no weights to adapt and ignores LoRA inputs.
        self.lora = Adapters.from_param(_param(config, "lora_adapters"))
        if self.lora and not self.is_mock:
            self.lora.attach(self.engine)
            self.engine.lora = self.lora
        # The LLM metrics (templates/common/lib/llm_metrics.py): the engine's own figures here; request timings
        # travel to postprocessing in stream_state (tritongen.contract.STATE_STATS) when they are on.
        self.send_stats = enabled(config)
        self.metrics = Metrics(args["model_name"], enabled(config), ENGINE_FAMILIES)
        # Each sequence's stream key (tritongen.contract.STREAM_OUTPUTS): postprocessing keys its decoder by it, so
        # it must differ between all sequences in the server, whatever request ids clients send. The pid keeps
        # instances (one process each) apart; a random start keeps a restarted process with a reused pid apart.
        self._key_base = (os.getpid() & 0x1FFFFF) << 42  # 21 + 42 bits: a positive INT64
        self._keys = itertools.count(int.from_bytes(os.urandom(4), "little"))
        self.inbox: queue.Queue = queue.Queue()
        self.active: list[Sequence] = []
        self._stopped_ids: dict[str, None] = {}  # insertion-ordered, bounded
        self.stopping = False
        self.worker = threading.Thread(target=self._loop, name="cpu-engine", daemon=True)
        self.worker.start()
        # Everything loaded so far (tokenizer, model) lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise stall every request in flight (a TTFT tail).
        gc.freeze()

    def finalize(self):
        self.stopping = True
        self.inbox.put(None)
        self.worker.join(timeout=10)
        self.metrics.close()

    # -- request intake ----------------------------------------------------------------------------------

    def execute(self, requests):
        groups = []
        for request in requests:
            sender = request.get_response_sender() if self.decoupled else None
            if bool(_row_scalar(_get(request, "stop"), 0, False)):
                groups.append(self._stop(request, sender))
                continue
            try:
                group, seqs = self._parse(request, sender)
            except Exception as exc:  # a malformed request fails alone
                message = f"tensorrt_llm (cpu): {exc}"
                if self.decoupled:
                    sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(message)), flags=FINAL)
                    groups.append(None)
                else:
                    groups.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(message)))
                continue
            self.inbox.put(seqs)
            groups.append(group)
        if self.decoupled:
            return None
        # Without decoupled mode Triton needs exactly one response per request from execute().
        out = []
        for item in groups:
            if isinstance(item, Group):
                item.finished.wait()
                out.append(item.responses[-1] if item.failed or len(item.responses) == 1
                           else _merge_rows(item.responses))
            else:
                out.append(item)
        return out

    def _stop(self, request, sender):
        """The TensorRT-LLM backend's `stop` input: end the running request with the same request id. Sent
        by clients (and tensorrt_llm_bls) when a stream is abandoned, because Triton's ensemble does not pass a
        client's cancellation on to a step that is already running.

        Answered like the backend answers it: one response without outputs. A stop without a request id can
        name no request (ending every anonymous one would end other clients' requests), so it stops nothing;
        it is still answered that way rather than with an error, because tensorrtllm_backend's
        inflight_batcher_llm_client.py reads a response without output_ids as the stop's acknowledgement but
        raises on any error that is not CANCELLED - and it sends its stop with an empty id unless given one."""
        rid = _request_id(request)
        if rid:
            self.inbox.put(("stop", rid))
        else:
            pb_utils.Logger.log_warn("tensorrt_llm (cpu): a stop request without a request id stops nothing; "
                                     "send the id of the request to stop")
        if self.decoupled:
            sender.send(pb_utils.InferenceResponse(output_tensors=[]), flags=FINAL)
            return None
        return pb_utils.InferenceResponse(output_tensors=[])

    def _parse(self, request, sender):
        ids = _get(request, "input_ids")
        if ids is None:
            raise ValueError("input_ids is required")
        ids = np.asarray(ids)
        if ids.ndim == 1:
            ids = ids[None]
        rows = ids.shape[0]
        # The same ranges as TensorRT-LLM's own checks (textcodec.SAMPLING_RANGES), named both ways: a client of
        # the ensemble sent top_k, a client of this model runtime_top_k.
        check_sampling({name: _get(request, name) for name in SAMPLING_INPUTS}, SAMPLING_LABELS)
        lengths = _get(request, "input_lengths")
        out_len = _get(request, "request_output_len")
        group = Group(request, sender, rows, self.decoupled)
        wanted = _requested_outputs(request)
        now = time.time_ns()
        seqs = []
        for row in range(rows):
            n = int(_row_scalar(lengths, row, ids.shape[1]))
            if n < 1 or n > ids.shape[1]:
                raise ValueError(f"input_lengths {n} does not fit input_ids of width {ids.shape[1]}")
            beam = int(_row_scalar(_get(request, "beam_width"), row, 1))
            if beam != 1:
                raise ValueError(f"beam_width={beam}: the cpu reference engine does not do beam search")
            nret = int(_row_scalar(_get(request, "num_return_sequences"), row, 1))
            if nret != 1:
                raise ValueError(f"num_return_sequences={nret}: the cpu reference engine returns one sequence")
            max_new = int(_row_scalar(out_len, row, 0))
            if max_new < 1:
                raise ValueError(f"request_output_len must be at least 1, got {max_new}")
            if self.max_seq_len and n + max_new > self.max_seq_len:
                raise ValueError(f"input ({n}) + request_output_len ({max_new}) exceeds max_seq_len {self.max_seq_len}")
            s = Sequence()
            s.group, s.row = group, row
            s.prompt = ids[row, :n].astype(np.int64).tolist()
            s.max_new = max_new
            s.end_id = int(_row_scalar(_get(request, "end_id"), row, -1))
            s.guide = self._guide(request, row, s.end_id)
            s.stop_seqs = _word_sequences(_get(request, "stop_words_list"), row)
            s.bad_seqs = _word_sequences(_get(request, "bad_words_list"), row)
            s.temperature = float(_row_scalar(_get(request, "temperature"), row, 1.0))
            s.top_k = int(_row_scalar(_get(request, "runtime_top_k"), row, 0))
            s.top_p = float(_row_scalar(_get(request, "runtime_top_p"), row, 0.0))
            s.rep_penalty = float(_row_scalar(_get(request, "repetition_penalty"), row, 1.0))
            s.presence = float(_row_scalar(_get(request, "presence_penalty"), row, 0.0))
            s.frequency = float(_row_scalar(_get(request, "frequency_penalty"), row, 0.0))
            s.min_tokens = _aliased(request, row, "min_tokens", "min_length", 0)
            s.seed = _aliased(request, row, "seed", "random_seed", 0)
            s.streaming = bool(_row_scalar(_get(request, "streaming"), row, False)) and self.decoupled
            s.exclude_input = bool(_row_scalar(_get(request, "exclude_input_in_output"), row, self.exclude_input_default))
            s.want_logprobs = bool(_row_scalar(_get(request, "return_log_probs"), row, False))
            top = _row_scalar(_get(request, "top_logprobs"), row, 0)
            s.top_n = _topk().requested(top) if s.want_logprobs and top else 0
            s.tops, s.last_top = [], []
            if s.top_n and self.token_text is None:
                self.token_text = _topk().TokenText(*self._token_text_args)
            s.want_num_in = bool(_row_scalar(_get(request, "return_num_input_tokens"), row, False))
            s.want_num_out = bool(_row_scalar(_get(request, "return_num_output_tokens"), row, False))
            s.want_perf = bool(_row_scalar(_get(request, "return_perf_metrics"), row, False))
            # Only what the caller maps or asks for: every tensor of a streamed response costs CPU per token.
            s.want_length = wanted is None or "sequence_length" in wanted
            s.want_state = wanted is None or "stream_state" in wanted
            bias = _get(request, "embedding_bias")
            s.bias = None
            if bias is not None and np.asarray(bias).size:
                b = np.asarray(bias, dtype=np.float32)
                s.bias = b.reshape(b.shape[0], -1)[min(row, b.shape[0] - 1)] if b.ndim > 1 else b
            s.generated, s.logprobs, s.cum_logprob = [], [], 0.0
            s.cache, s.next_logits, s.counts = None, None, {}
            s.arrival_ns, s.scheduled_ns, s.first_token_ns, s.last_token_ns = now, 0, 0, 0
            s.done, s.sent_upto = False, 0
            s.key = self._key_base | (next(self._keys) & ((1 << 42) - 1))
            # Arrival at the ensemble's preprocessing (its ARRIVAL_NS output) when the ensemble passes it on.
            s.origin_ns = int(_row_scalar(_get(request, "tritongen_arrival_ns"), row, 0)) or now
            s.finish = FINISH_NONE
            s.generator = None
            s.lora = None
            s.lora_id = int(_row_scalar(_get(request, "lora_task_id"), row, 0) or 0)  # the metrics' adapter label
            if not self.is_mock:
                s.lora = self.lora.adapter_of(_row_scalar(_get(request, "lora_task_id"), row, None),
                                              _get(request, "lora_weights"), _get(request, "lora_config"))
            draft = _get(request, "draft_input_ids")
            s.draft = None
            if draft is not None and np.asarray(draft).size:
                d = np.asarray(draft)
                s.draft = (d.reshape(d.shape[0], -1)[min(row, d.shape[0] - 1)] if d.ndim > 1 else d).tolist()
            seqs.append(s)
        return group, seqs

    def _guide(self, request, row, end_id):
        """The row's grammar matcher (guided.py), None without guided_decoding_guide_type."""
        kind = request_guide(_get(request, "guided_decoding_guide_type"), _get(request, "guided_decoding_guide"), row)
        if kind is None:
            return None
        if self.guides is None:
            raise ValueError("guided decoding is off in this repository (serving.guided_decoding: none); render it "
                             "with serving.guided_decoding=xgrammar")
        return self.guides.open(*kind, end_id)

    # -- the engine loop ---------------------------------------------------------------------------------

    def _loop(self):
        if self.is_mock:
            # The MOCK's decode loop would take every free CPU cycle and flood the pipeline it exists to measure
            # (a GPU engine never competes with it for CPU): run it at a lower priority, so requests move through
            # preprocessing and postprocessing first and the mock makes tokens with what is left. Linux applies
            # nice per thread: request intake in execute() keeps its normal priority.
            os.nice(MOCK_NICE)
        while not self.stopping:
            try:
                self._admit(block=not self.active)
                if self.active:
                    self._step()
            except Exception:
                # A bug must not silently wedge every request: fail what is running and keep serving.
                message = "tensorrt_llm (cpu) engine error: " + traceback.format_exc(limit=3)
                for seq in self.active:
                    seq.group.fail(message)
                self.active = []

    def _admit(self, block: bool):
        new: list[Sequence] = []
        try:
            self._take(block, new)
        finally:
            # New sequences step first: like TensorRT-LLM's context phase, their first token leaves in the
            # iteration that admits them, instead of waiting behind every running request's next token.
            self.active[:0] = new

    def _take(self, block: bool, new: list) -> None:
        while True:
            try:
                item = self.inbox.get(block=block, timeout=0.5 if block else None)
            except queue.Empty:
                return
            if item is None:
                return
            block = False
            if isinstance(item, tuple) and item[0] == "stop":
                self._stopped_ids[item[1]] = None
                while len(self._stopped_ids) > 1024:
                    self._stopped_ids.pop(next(iter(self._stopped_ids)))
                for seq in self.active + new:
                    if seq.group.request_id == item[1]:
                        seq.group.stopped = True
                continue
            for seq in item:
                if seq.group.failed:
                    continue
                if seq.group.request_id and seq.group.request_id in self._stopped_ids:
                    seq.group.stopped = True
                try:
                    seq.scheduled_ns = time.time_ns()
                    seq.generator = self.engine.make_generator(seq.seed)
                    self.engine.prefill(seq)
                    new.append(seq)
                except Exception as exc:
                    seq.group.fail(f"tensorrt_llm (cpu): prefill failed: {exc}")

    def _step(self):
        self._step_started = time.monotonic()
        still = []
        metrics = self.metrics
        metrics.add("tritongen_engine_steps_total")
        metrics.add("tritongen_engine_step_sequences_total", len(self.active))
        for seq in self.active:
            group = seq.group
            if group.failed:
                continue
            if group.stopped:
                # A `stop` ends the request the way TensorRT-LLM ends a cancelled one: a final response with the
                # tokens so far (streaming: those not sent yet), not an error the client would have to parse.
                pb_utils.Logger.log_info(f"tensorrt_llm (cpu): request {group.request_id!r} cancelled after "
                                         f"{len(seq.generated)} tokens by a stop request")
                seq.finish = FINISH_CANCELLED
                self._emit(seq, final_row=True)
                continue
            if group.cancelled():
                # Logged so operators (and tests) can see a disconnected client stopped the work.
                pb_utils.Logger.log_info(
                    f"tensorrt_llm (cpu): request {group.request_id!r} cancelled after {len(seq.generated)} tokens")
                group.fail("request cancelled")
                continue
            token, logprob = self._choose(seq)
            if seq.guide is not None:
                seq.guide.accept(token)
            finished = False
            if token == seq.end_id and len(seq.generated) >= seq.min_tokens:
                finished, seq.finish = True, FINISH_STOP
            else:
                seq.generated.append(token)
                seq.logprobs.append(logprob)
                if seq.top_n:
                    seq.tops.append(seq.last_top)
                seq.cum_logprob += logprob
                seq.counts[token] = seq.counts.get(token, 0) + 1
                now = time.time_ns()
                seq.first_token_ns = seq.first_token_ns or now
                seq.last_token_ns = now
                if len(seq.generated) >= seq.max_new:
                    finished, seq.finish = True, FINISH_LENGTH
                elif (self._hit_stop(seq) or self._draft_rejected(seq, token)
                      or (seq.guide is not None and seq.guide.terminated)):  # the grammar is complete
                    finished, seq.finish = True, FINISH_STOP
                else:
                    self.engine.step(seq, token)
            if seq.streaming:
                if finished or self._due(seq):
                    self._emit(seq, final_row=finished)
            elif finished:
                self._emit(seq, final_row=True)
            if not finished:
                still.append(seq)
        self.active = still
        metrics.set("tritongen_engine_active_sequences", len(still))
        if self.is_mock and self.engine.step_s:
            self._pace(self.engine.step_s)

    def _pace(self, step_s: float) -> None:
        """The MOCK's step time, kept like a GPU iteration's: a step ends step_s after the later of its start and
        the last step's end, whatever sending its responses took (they leave through Triton, which a busy
        pipeline slows; a GPU does not wait for them). A late step is not caught up with a burst."""
        now = time.monotonic()
        self._next_step = max(self._next_step, self._step_started) + step_s
        if self._next_step > now:
            time.sleep(self._next_step - now)

    def _due(self, seq: Sequence) -> bool:
        """serving.stream_interval: a streamed response leaves with every N new tokens, or with what is held once
        stream_interval_ms have passed since the last one; the first token leaves at once (TTFT is unchanged).
        Each response costs the ensemble a postprocessing call and a response of its own, so fewer of them is
        the biggest saving the pipeline has (README, "Pipeline cost")."""
        pending = len(seq.generated) - seq.sent_upto
        if pending <= 0:
            return False
        if pending >= self.stream_interval or seq.sent_upto == 0:
            return True
        return self.stream_interval_ns > 0 and time.monotonic_ns() - seq.emitted_ns >= self.stream_interval_ns

    def _draft_rejected(self, seq: Sequence, token: int) -> bool:
        """Target verification of draft tokens (draft_tokens_external): keep going while the target agrees
        with the draft; the first token that differs is the target's correction and ends the request."""
        if seq.draft is None:
            return False
        i = len(seq.generated) - 1
        return i < len(seq.draft) and token != seq.draft[i]

    def _hit_stop(self, seq: Sequence) -> bool:
        gen = seq.generated
        return any(len(gen) >= len(s) and gen[-len(s):] == s for s in seq.stop_seqs)

    def _choose(self, seq: Sequence):
        if self.is_mock:
            if seq.guide is not None:
                return self._mock_guided(seq), 0.0
            token = self.engine.next_token(seq)
            if seq.top_n:  # a MOCK: the chosen token is certain
                seq.last_top = [(self.token_text(token), 0.0)]
            return token, 0.0
        torch = self.engine.torch
        logits = seq.next_logits.clone()
        if seq.bias is not None and seq.bias.shape[0]:
            n = min(seq.bias.shape[0], logits.shape[0])
            logits[:n] += torch.from_numpy(seq.bias[:n]).to(logits.device)
        if seq.rep_penalty != 1.0:
            seen = torch.tensor(sorted(set(seq.prompt) | set(seq.generated)), device=logits.device)
            vals = logits[seen]
            logits[seen] = torch.where(vals > 0, vals / seq.rep_penalty, vals * seq.rep_penalty)
        if seq.counts and (seq.presence or seq.frequency):
            ids = torch.tensor(list(seq.counts.keys()), device=logits.device)
            counts = torch.tensor(list(seq.counts.values()), dtype=logits.dtype, device=logits.device)
            logits[ids] -= seq.presence + seq.frequency * counts
        for bad in seq.bad_seqs:
            prefix = bad[:-1]
            if (not prefix or seq.generated[-len(prefix):] == prefix) and 0 <= bad[-1] < logits.shape[0]:
                logits[bad[-1]] = float("-inf")
        if 0 <= seq.end_id < logits.shape[0] and len(seq.generated) < seq.min_tokens:
            logits[seq.end_id] = float("-inf")
        if seq.guide is not None:
            seq.guide.mask(logits)
        sampling = seq.top_k > 1 or seq.top_p > 0.0
        if not sampling or seq.temperature == 0.0:
            token = int(torch.argmax(logits))
            if not seq.want_logprobs:
                return token, 0.0
            lps = torch.log_softmax(logits, dim=-1)
            if seq.top_n:
                seq.last_top = _topk().top(lps, seq.top_n, self.token_text)
            return token, float(lps[token])
        scaled = logits / max(seq.temperature, 1e-6)
        if seq.top_k > 0:
            k = min(seq.top_k, scaled.shape[0])
            kth = torch.topk(scaled, k).values[-1]
            scaled = torch.where(scaled < kth, torch.full_like(scaled, float("-inf")), scaled)
        if 0.0 < seq.top_p < 1.0:
            sorted_logits, order = torch.sort(scaled, descending=True)
            probs = torch.softmax(sorted_logits, dim=-1)
            cut = torch.cumsum(probs, dim=-1) - probs > seq.top_p
            sorted_logits[cut] = float("-inf")
            scaled = torch.full_like(scaled, float("-inf")).scatter(0, order, sorted_logits)
        probs = torch.softmax(scaled, dim=-1)
        token = int(torch.multinomial(probs, 1, generator=seq.generator))
        logprob = float(torch.log(probs[token])) if seq.want_logprobs else 0.0
        if seq.top_n:
            seq.last_top = _topk().top(torch.log(probs), seq.top_n, self.token_text)
        return token, logprob

    def _mock_guided(self, seq: Sequence) -> int:
        """MOCK under a grammar: the end id as soon as the grammar allows it, else a deterministic pick among
        the tokens it allows (the ordinary vocabulary first)."""
        allowed = seq.guide.allowed()
        if seq.end_id in allowed and len(seq.generated) >= seq.min_tokens:
            return seq.end_id
        plain = [t for t in allowed if t not in self.engine.special] or allowed
        return plain[(seq.cache >> 33) % len(plain)]

    # -- responses ---------------------------------------------------------------------------------------

    def _emit(self, seq: Sequence, final_row: bool):
        group = seq.group
        tops = seq.tops[seq.sent_upto:] if seq.streaming else seq.tops
        if seq.streaming:
            ids = seq.generated[seq.sent_upto:]
            lps = seq.logprobs[seq.sent_upto:]
        elif seq.exclude_input:
            ids, lps = seq.generated, seq.logprobs
        else:
            ids, lps = seq.prompt + seq.generated, seq.logprobs
        first = seq.sent_upto == 0
        seq.sent_upto = len(seq.generated)
        seq.emitted_ns = time.monotonic_ns()
        tensors = [pb_utils.Tensor("output_ids", np.array(ids, dtype=np.int32).reshape(1, 1, -1))]
        if seq.want_length:
            tensors.append(pb_utils.Tensor("sequence_length", np.array([[len(ids)]], dtype=np.int32)))
        if seq.want_state:
            state = [seq.key, int(final_row)]
            if self.send_stats and (final_row or first):
                # Only the first and the last response carry the timings: postprocessing needs the arrival time
                # once and the finish reason at the end.
                state += [seq.origin_ns, seq.scheduled_ns, len(seq.prompt), seq.finish if final_row else FINISH_NONE,
                          seq.lora_id]
            tensors.append(pb_utils.Tensor("stream_state", np.array([state], dtype=np.int64)))
        if seq.want_logprobs:
            tensors.append(pb_utils.Tensor("cum_log_probs", np.array([[seq.cum_logprob]], dtype=np.float32)))
            tensors.append(pb_utils.Tensor("output_log_probs", np.array(lps, dtype=np.float32).reshape(1, 1, -1)))
            if seq.top_n:
                texts, top_lps = _topk().tensors(tops, seq.top_n)
                tensors += [pb_utils.Tensor("top_tokens", texts), pb_utils.Tensor("top_log_probs", top_lps)]
        if group.rows > 1:
            tensors.append(pb_utils.Tensor("batch_index", np.array([[seq.row]], dtype=np.int32)))
        if seq.want_num_in:
            tensors.append(pb_utils.Tensor("num_input_tokens", np.array([[len(seq.prompt)]], dtype=np.int32)))
        if seq.want_num_out:
            tensors.append(pb_utils.Tensor("num_output_tokens", np.array([[len(seq.generated)]], dtype=np.int32)))
        if seq.want_perf:
            blocks = -(-(len(seq.prompt) + len(seq.generated)) // self.tokens_per_block)
            for name, value in (("arrival_time_ns", seq.arrival_ns), ("first_scheduled_time_ns", seq.scheduled_ns),
                                ("first_token_time_ns", seq.first_token_ns),
                                ("last_token_time_ns", seq.last_token_ns)):
                tensors.append(pb_utils.Tensor(name, np.array([[value]], dtype=np.int64)))
            for name, value in (("kv_cache_alloc_new_blocks", blocks), ("kv_cache_reused_blocks", 0),
                                ("kv_cache_alloc_total_blocks", blocks)):
                tensors.append(pb_utils.Tensor(name, np.array([[value]], dtype=np.int32)))
        if final_row:
            group.pending -= 1
        group.send(pb_utils.InferenceResponse(output_tensors=tensors), final=final_row and group.pending == 0)


def _topk():
    """top_logprobs' helpers (topk.py, next to this file), imported only by requests that ask for them."""
    import topk

    return topk


def _aliased(request, row, name, old_name, default) -> int:
    """Input ``name`` or its pre-1.0 name ``old_name`` (random_seed, min_length): clients of either
    tensorrtllm_backend generation may address this model directly. Both with different values is an error."""
    value = one_of(name, _row_scalar(_get(request, name), row, None),
                   old_name, _row_scalar(_get(request, old_name), row, None))
    return default if value is None else value


def _requested_outputs(request) -> frozenset | None:
    """The outputs the caller asked for (an ensemble step: those it maps); None when it cannot say (all)."""
    try:
        names = request.requested_output_names()
    except Exception:
        return None
    return frozenset(names) if names else None


def _request_id(request) -> str:
    try:
        return request.request_id() or ""
    except Exception:
        return ""


def _merge_rows(responses):
    """Non-decoupled requests with several rows: one response with the rows stacked (padded with -1)."""
    rows = [{t.name(): t.as_numpy() for t in r.output_tensors()} for r in responses]
    merged = []
    for name in rows[0]:
        arrays = [r[name] for r in rows]
        width = max(a.shape[-1] for a in arrays)
        fill = -1 if arrays[0].dtype.kind in "iu" else 0
        padded = [np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, width - a.shape[-1])], constant_values=fill)
                  for a in arrays]
        merged.append(pb_utils.Tensor(name, np.concatenate(padded, axis=0)))
    return pb_utils.InferenceResponse(output_tensors=merged)
