"""tensorrt_llm_bls: the ensemble's client contract as one python model (Business Logic Scripting).

Rendered by tritongen; runs in Triton's python backend with numpy and transformers. For each request it calls
``preprocessing``, then streams from ``tensorrt_llm``, and detokenizes incrementally in the same thread. The
decoder state lives in the request's own call, so streamed text is exact for every client, with or without a
request id. Requests run concurrently on a thread pool sized to max_batch_size.

Draft-target speculative decoding: when the ``draft_model`` parameter names a second model, each round asks
the draft for ``num_draft_tokens`` tokens and lets the target (``tensorrt_llm``) verify them through its
``draft_input_ids`` input; accepted tokens plus the target's own next token are streamed.

LLM metrics (llm_metrics.py, serving.metrics.enabled) are measured here, labelled with this model's name: a
request arrives when execute() receives it, and its tokens are counted as each response leaves.
"""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import triton_python_backend_utils as pb_utils
from contract_tables import CLIENT_TO_LLM, CLIENT_TO_PRE, PASSTHROUGH, PRE_TO_LLM
from llm_metrics import Metrics, Request, adapter_names, adapter_of_request, enabled
from textcodec import (
    DaemonPool,
    IncrementalDecoder,
    bool_param,
    byte_size,
    check_prompt_size,
    check_sampling,
    check_words,
    decode,
    int_param,
    max_tokens_problem,
    output_names,
    prompt_bounds,
    str_param,
    tokenizer_of,
)

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL

class RequestError(Exception):
    pass


def _raise_if_error(response, step):
    if response.has_error():
        raise RequestError(f"{step}: {response.error().message()}")


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.decoupled = bool(config.get("model_transaction_policy", {}).get("decoupled", False))
        self.tokenizer = tokenizer_of(config)
        self.skip_special = bool_param(config, "skip_special_tokens", True)
        self.draft_model = str_param(config, "draft_model", "")
        self.pre_model = str_param(config, "preprocessing_model", "preprocessing")
        self.llm_model = str_param(config, "llm_model", "tensorrt_llm")
        self.num_draft = max(1, int_param(config, "num_draft_tokens", 4))
        workers = max(4, int(config.get("max_batch_size", 0) or 0))
        self.pool = DaemonPool(workers, "bls")
        self.llm_decoupled = True  # tensorrt_llm is decoupled whenever the repository streams
        outputs = output_names(config)
        self.passthrough = tuple(name for name in PASSTHROUGH if name in outputs)
        # tensorrt_llm's own names where its TensorRT-LLM release differs ("random_seed", or none: it lacks the
        # tensor), rendered from tritongen's per-version contract.
        renames = dict(item.split("=", 1) for item in str_param(config, "llm_names", "").split(",") if item)
        self.pre_to_llm = {k: renames.get(v, v) for k, v in PRE_TO_LLM.items() if renames.get(v, v)}
        self.client_to_llm = {k: renames.get(v, v) for k, v in CLIENT_TO_LLM.items() if renames.get(v, v)}
        self.max_input_len = int_param(config, "max_input_len", 0)
        # Checked here too, so an over-long prompt is not copied on to preprocessing before it is refused.
        self.prompt_bytes, self.chat_bytes = prompt_bounds(config, self.tokenizer, self.max_input_len)
        self.metrics = Metrics(args["model_name"], enabled(config))
        self.adapters = adapter_names(config)  # LoRA task id -> name: the lora_adapter label

    def finalize(self):
        self.pool.shutdown()
        self.metrics.close()

    def execute(self, requests):
        arrival = time.time_ns()
        if self.decoupled:
            for request in requests:
                self.pool.submit(self._serve, request, request.get_response_sender(), False, arrival)
            return None
        futures = [self.pool.submit(self._collect, request, arrival) for request in requests]
        return [f.result() for f in futures]

    # -- one request -------------------------------------------------------------------------------------

    def _collect(self, request, arrival=0):
        """Non-decoupled: run the request to completion and return one response."""
        box = []

        class _Sink:
            def send(self, response=None, flags=0):
                if response is not None:
                    box.append(response)

            def is_cancelled(self):
                return False

        self._serve(request, _Sink(), True, arrival)
        errors = [r for r in box if r.has_error()]
        return errors[0] if errors else box[-1]

    def _serve(self, request, sender, force_final_text=False, arrival=0):
        timeline = Request(self.metrics, arrival, adapter=adapter_of_request(request, self.adapters))
        try:
            self._generate(request, sender, force_final_text, timeline)
        except RequestError as exc:
            timeline.finish("error")
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))), flags=FINAL)
        except Exception as exc:  # never leave a client waiting on an unanswered stream
            timeline.finish("error")
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"tensorrt_llm_bls: {exc}")),
                        flags=FINAL)

    def _generate(self, request, sender, force_final_text, timeline):
        # Inner requests carry the client's request id (or a fresh one), so a `stop` can reach them.
        rid = request.request_id() or uuid.uuid4().hex
        client = {}
        for name in list(CLIENT_TO_PRE) + list(CLIENT_TO_LLM):
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is not None:
                client[name] = tensor.as_numpy()
        stream = bool(np.asarray(client.get("stream", [[False]])).reshape(-1)[0]) and not force_final_text
        self._check(client)

        pre_inputs = [pb_utils.Tensor(CLIENT_TO_PRE[k], v) for k, v in client.items() if k in CLIENT_TO_PRE]
        pre = pb_utils.InferenceRequest(model_name=self.pre_model, inputs=pre_inputs,
                                        requested_output_names=list(self.pre_to_llm))
        pre_resp = pre.exec()
        _raise_if_error(pre_resp, self.pre_model)
        llm_inputs = {}
        for out_name, llm_name in self.pre_to_llm.items():
            tensor = pb_utils.get_output_tensor_by_name(pre_resp, out_name)
            if tensor is not None:
                llm_inputs[llm_name] = tensor.as_numpy()
        for k, v in client.items():
            if k in self.client_to_llm:
                llm_inputs[self.client_to_llm[k]] = v
        llm_inputs["streaming"] = np.array([[stream]], dtype=bool)
        timeline.prompt_tokens = int(np.asarray(llm_inputs.get("input_lengths", [[0]])).sum())
        budget = int(np.asarray(llm_inputs.get("request_output_len", [[0]])).reshape(-1)[0])

        if self.draft_model:
            self._speculate(llm_inputs, sender, stream, request, rid, timeline)
            return
        decoder = IncrementalDecoder(self.tokenizer, self.skip_special)
        all_ids: list[int] = []
        last = None
        count = 0
        for response in self._stream(self.llm_model, llm_inputs, rid):
            if _cancelled(sender, request):
                timeline.finish("cancelled")
                self._stop(rid)
                return
            _raise_if_error(response, self.llm_model)
            ids_t = pb_utils.get_output_tensor_by_name(response, "output_ids")
            if ids_t is None:
                continue
            lens = pb_utils.get_output_tensor_by_name(response, "sequence_length").as_numpy().reshape(-1)
            ids = ids_t.as_numpy().reshape(-1)[: int(lens[0])].tolist()
            count += len(ids)
            if stream:
                text = decoder.push(ids)
                sender.send(self._response(text, response), flags=0)
                timeline.sent(len(ids))
            else:
                all_ids.extend(ids)
            last = response
        if stream:
            sender.send(self._response(decoder.flush(), None), flags=FINAL)
        else:
            text = decode(self.tokenizer, all_ids, self.skip_special)
            sender.send(self._response(text, last), flags=FINAL)
            timeline.sent(len(all_ids))
        timeline.finish("length" if budget and count >= budget else "stop")

    def _check(self, client):
        """Refuse what the client got wrong by the names it sent, before anything reaches preprocessing (whose
        own errors would name its QUERY / REQUEST_OUTPUT_LEN inputs)."""
        for name, what in (("text_input", "the prompt"), ("max_tokens", "the number of tokens to generate at most")):
            if name not in client:
                raise RequestError(f"{name} is required: send {what} as {name}")
        chat = bool(np.asarray(client.get("apply_chat_template", [[False]])).reshape(-1)[0])
        try:
            for value in np.asarray(client["max_tokens"]).reshape(-1).tolist():
                problem = max_tokens_problem(value)
                if problem:
                    raise ValueError(problem)
            for row in np.asarray(client["text_input"], dtype=object).reshape(len(client["text_input"]), -1):
                check_prompt_size(byte_size(row), self.prompt_bytes, self.max_input_len,
                                  self.chat_bytes if chat else 0)
            check_sampling({k: v for k, v in client.items() if k != "max_tokens"})
            for name in ("stop_words", "bad_words", "embedding_bias_words"):
                if name in client:
                    for row in np.asarray(client[name], dtype=object).reshape(len(client[name]), -1):
                        check_words(name, row)
        except ValueError as exc:
            raise RequestError(str(exc)) from None

    def _stream(self, model, inputs, rid):
        tensors = [pb_utils.Tensor(k, v) for k, v in inputs.items()]
        req = pb_utils.InferenceRequest(model_name=model, inputs=tensors, request_id=rid,
                                        requested_output_names=["output_ids", "sequence_length", *self.passthrough])
        if self.llm_decoupled:
            yield from req.exec(decoupled=True)
        else:
            yield req.exec()

    def _stop(self, rid):
        """Ask tensorrt_llm to drop request ``rid`` (the backend's `stop` input). Triton's python backend before
        25.x cannot cancel a BLS child request directly, and the engine would otherwise run to max_tokens."""
        one = np.array([[1]], dtype=np.int32)
        inputs = {"input_ids": np.array([[0]], dtype=np.int32), "input_lengths": one, "request_output_len": one,
                  "stop": np.array([[True]], dtype=bool)}
        for model in {self.llm_model, self.draft_model} - {""}:
            try:
                for _ in self._stream(model, inputs, rid):
                    pass
            except Exception:  # best effort: the request may already be finished
                pass

    def _response(self, text, llm_response):
        # The reference's shape, [batch * beams]: its clients read text_output[0] as bytes.
        tensors = [pb_utils.Tensor("text_output", np.array([text.encode("utf-8")], dtype=object))]
        if llm_response is not None:
            for name in self.passthrough:
                t = pb_utils.get_output_tensor_by_name(llm_response, name)
                if t is not None:
                    tensors.append(pb_utils.Tensor(name, t.as_numpy()))
        return pb_utils.InferenceResponse(output_tensors=tensors)

    # -- draft-target speculative decoding ---------------------------------------------------------------

    def _speculate(self, llm_inputs, sender, stream, request, rid, timeline):
        prompt_len = int(np.asarray(llm_inputs["input_lengths"]).reshape(-1)[0])
        ids = np.asarray(llm_inputs["input_ids"]).reshape(-1)[:prompt_len].tolist()
        budget = int(np.asarray(llm_inputs["request_output_len"]).reshape(-1)[0])
        end_id = int(np.asarray(llm_inputs.get("end_id", [[-1]])).reshape(-1)[0])
        stop_seqs = _word_sequences(llm_inputs.get("stop_words_list"))
        decoder = IncrementalDecoder(self.tokenizer, self.skip_special)
        generated: list[int] = []
        drafted = accepted = 0
        base = {k: v for k, v in llm_inputs.items() if k not in ("input_ids", "input_lengths", "request_output_len")}
        base["streaming"] = np.array([[False]], dtype=bool)
        base["exclude_input_in_output"] = np.array([[True]], dtype=bool)
        while len(generated) < budget:
            if _cancelled(sender, request):
                timeline.finish("cancelled")
                self._stop(rid)
                return
            context = ids + generated
            # Leave room for the token the target adds after the accepted drafts.
            want = min(self.num_draft, budget - len(generated) - 1)
            draft = self._once(self.draft_model, base, context, want, None, rid) if want > 0 else []
            target = self._once(self.llm_model, base, context, len(draft) + 1, draft, rid)
            matched = 0
            while matched < min(len(draft), len(target)) and draft[matched] == target[matched]:
                matched += 1
            drafted += len(draft)
            accepted += matched
            # The target returns its matches plus one token of its own; returning no token of its own means it
            # stopped (end id, stop word or length), since the end id itself is never part of the output.
            finished = len(target) <= matched
            new = target[: budget - len(generated)]
            if end_id in new:
                new = new[: new.index(end_id)]
                finished = True
            generated.extend(new)
            if any(len(generated) >= len(s) and generated[-len(s):] == s for s in stop_seqs):
                finished = True
            if stream and new:
                sender.send(self._response(decoder.push(new), None), flags=0)
                timeline.sent(len(new))
            if finished:
                break
        tail = decoder.flush() if stream else decode(self.tokenizer, generated, self.skip_special)
        rate = accepted / drafted if drafted else 0.0
        tensors = self._response(tail, None).output_tensors() + [
            pb_utils.Tensor("acceptance_rate", np.array([[rate]], dtype=np.float32)),
            pb_utils.Tensor("total_accepted_draft_tokens", np.array([[accepted]], dtype=np.int32)),
            pb_utils.Tensor("total_draft_tokens", np.array([[drafted]], dtype=np.int32)),
        ]
        sender.send(pb_utils.InferenceResponse(output_tensors=tensors), flags=FINAL)
        if not stream:
            timeline.sent(len(generated))
        timeline.finish("length" if len(generated) >= budget else "stop")

    def _once(self, model, base, context, output_len, draft, rid):
        inputs = dict(base)
        inputs["input_ids"] = np.array([context], dtype=np.int32)
        inputs["input_lengths"] = np.array([[len(context)]], dtype=np.int32)
        inputs["request_output_len"] = np.array([[output_len]], dtype=np.int32)
        if draft:
            inputs["draft_input_ids"] = np.array([draft], dtype=np.int32)
        out: list[int] = []
        for response in self._stream(model, inputs, rid):
            _raise_if_error(response, model)
            ids_t = pb_utils.get_output_tensor_by_name(response, "output_ids")
            if ids_t is None:
                continue
            lens = pb_utils.get_output_tensor_by_name(response, "sequence_length").as_numpy().reshape(-1)
            out.extend(ids_t.as_numpy().reshape(-1)[: int(lens[0])].tolist())
        return out


def _cancelled(sender, request=None) -> bool:
    """The client went away (stream cancelled or closed)."""
    for obj in (sender, request):
        fn = getattr(obj, "is_cancelled", None) if obj is not None else None
        try:
            if fn is not None and fn():
                return True
        except Exception:
            pass
    return False



def _word_sequences(array) -> list[list[int]]:
    """Token sequences from the [2, len] (ids, end offsets) stop-words format."""
    if array is None:
        return []
    arr = np.asarray(array).reshape(-1, 2, np.asarray(array).shape[-1])[0]
    seqs, start = [], 0
    for end in arr[1].tolist():
        if end < 0:
            break
        if end > start:
            seqs.append(arr[0, start:end].tolist())
        start = end
    return seqs
