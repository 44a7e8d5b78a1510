"""ensemble (llmapi route): the ensemble client contract in front of TensorRT-LLM's LLM-API model.

Rendered by tritongen; runs in Triton's python backend with numpy and transformers (textcodec.py and the rendered
contract_tables.py sit next to it).
Clients written for the engine route (tritongen infer and bench, Triton's generate endpoints, tensorrtllm_backend
clients, the OpenAI front) send text_input, max_tokens, stream, stop_words, temperature, top_k, top_p, seed, ... and
read text_output. This model maps each request onto the llmapi model's inputs (text_input, streaming,
sampling_param_*) and streams the text back.

What it does itself:
- apply_chat_template: formats text_input with the tokenizer's chat template (a JSON list of {role, content}
  messages, or one user message). The BOS text the template writes is dropped, because the LLM API adds BOS
  when it tokenizes the prompt.
- text deltas: the llmapi model sends the whole text so far in each response (RequestOutput.outputs[0].text);
  the client contract streams only what is new, so the front sends the difference. A trailing U+FFFD (a
  character still incomplete) is held back until it completes, and so is a tail that may be the start of a stop
  string (the LLM API leaves stop strings out of the final text, so streamed text must not show them either).
- exclude_input_in_output=false: the prompt text is put in front of the output (the llmapi model is always asked
  to leave the prompt out, so the result does not depend on its default).
- return_num_input_tokens / return_num_output_tokens: counted with the same tokenizer. The input count is exact
  (the LLM API tokenizes the same text the same way); the output count is max_tokens when the LLM API reports
  finish_reason "length", else the generated text re-tokenized, which can differ from the engine's own count by
  a token at a word boundary.
- limits: a prompt longer than max_input_len, or prompt + max_tokens beyond max_seq_len, is refused with the
  engine route's messages; a prompt over max_prompt_bytes is refused before it is tokenized, and sampling inputs
  are checked against TensorRT-LLM's ranges (textcodec.check_sampling).
- cancellation: when the client cancels (a dropped gRPC stream, for example), the llmapi request is cancelled
  (the response iterator's cancel(), where the python backend has it) and stopped by request id through the
  llmapi model's `stop` input, so the LLM API aborts it instead of generating up to max_tokens.

Client inputs the llmapi model has no input for (bad_words, end_id, pad_id, min_tokens, penalties other than
presence/frequency, log probs, logits, LoRA, beam search, several sequences) are refused with an
error naming them, never silently ignored. Guided decoding (guided_decoding_guide_type / guided_decoding_guide) is
forwarded when the repository has serving.guided_decoding=xgrammar, refused otherwise. length_penalty only matters for beam search and is ignored.

LLM metrics (llm_metrics.py, serving.metrics.enabled) are measured here, labelled with this model's name: arrival
when execute() receives the request, the first token when the first text leaves; the generated-token count is
the one return_num_output_tokens gives.
"""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import triton_python_backend_utils as pb_utils
from contract_tables import CLIENT_TO_LLMAPI, FRONT_HANDLED, LLMAPI_DTYPES, PASSTHROUGH, UNSUPPORTED
from llm_metrics import Metrics, Request, adapter_names, adapter_of_request, enabled
from textcodec import (
    DaemonPool,
    bool_param,
    byte_size,
    chat_prompt,
    check_prompt_size,
    check_sampling,
    check_words,
    int_param,
    length_problem,
    output_names,
    prompt_bounds,
    scalar,
    str_param,
    strings,
    tokenizer_of,
)

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL

CLIENT_INPUT_NAMES = (*FRONT_HANDLED, *CLIENT_TO_LLMAPI, *UNSUPPORTED)


class RequestError(Exception):
    pass


def _number(value):
    """A perf/speculative value as a number (some releases send these outputs as strings)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _used(name, array) -> bool:
    """Whether an unsupported client input carries a value that would change the result."""
    neutral = UNSUPPORTED[name]
    if neutral == "ignore" or array is None or np.asarray(array).size == 0:
        return False
    arr = np.asarray(array)
    if arr.dtype == object or arr.dtype.kind in "SU":
        return bool(strings(arr))
    if neutral is None:
        return True
    value = scalar(arr)
    if isinstance(neutral, bool):
        return bool(value) != neutral
    return float(value) > float(neutral) if name == "min_tokens" else float(value) != float(neutral)


def _stop_cut(text: str, stops: list[str]) -> tuple[int, bool]:
    """Where the text the client may see ends: before a stop string (True) or before a tail that could still
    become one (False). Stop strings are left out of the output, as the LLM API does."""
    hits = [text.find(s) for s in stops if s in text]
    if hits:
        return min(hits), True
    keep = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                keep = max(keep, k)
                break
    return len(text) - keep, False


def _cancelled(sender) -> bool:
    fn = getattr(sender, "is_cancelled", None)
    try:
        return bool(fn()) if fn is not None else False
    except Exception:
        return False


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.decoupled = bool(config.get("model_transaction_policy", {}).get("decoupled", False))
        self.tokenizer = tokenizer_of(config)
        self.llm = str_param(config, "llm_model", "tensorrt_llm")
        self.llm_decoupled = bool_param(config, "llm_decoupled", self.decoupled)
        self.exclude_input_default = bool_param(config, "exclude_input_in_output", True)
        self.max_input_len = int_param(config, "max_input_len", 0)
        self.max_seq_len = int_param(config, "max_seq_len", 0)
        self.guided = str_param(config, "guided_decoding", "none") == "xgrammar"
        tok = self.tokenizer
        probe = tok("a", add_special_tokens=True)["input_ids"]
        adds_bos = tok.bos_token_id is not None and bool(probe) and probe[0] == tok.bos_token_id
        self.bos_text = tok.bos_token if adds_bos and tok.bos_token else ""
        # Refused before tokenizing: a prompt this long surely has more than max_input_len tokens.
        self.prompt_bytes, self.chat_bytes = prompt_bounds(config, tok, self.max_input_len)
        self.outputs = output_names(config)
        workers = max(4, int(config.get("max_batch_size", 0) or 0))
        self.pool = DaemonPool(workers, "llmapi-front")
        self.metrics = Metrics(args["model_name"], enabled(config))
        self.adapters = adapter_names(config)  # LoRA task id -> name: the lora_adapter label

    def finalize(self):
        self.pool.shutdown()
        self.metrics.close()

    def execute(self, requests):
        # Every request runs on the pool and answers through its response sender - a stream when decoupled,
        # exactly one response otherwise (as upstream's llmapi model does) - so execute() returns at once and
        # requests run concurrently in both modes.
        arrival = time.time_ns()
        for request in requests:
            self.pool.submit(self._serve, request, request.get_response_sender(), not self.decoupled, arrival)
        return None

    # -- one request -------------------------------------------------------------------------------------

    def _serve(self, request, sender, final_only, arrival=0):
        timeline = Request(self.metrics, arrival, adapter=adapter_of_request(request, self.adapters))
        try:
            self._generate(request, sender, final_only, timeline)
        except RequestError as exc:
            timeline.finish("error")
            self._send(sender, pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))), FINAL)
        except Exception as exc:  # never leave a client waiting on an unanswered stream
            message = f"ensemble (llmapi front): {type(exc).__name__}: {exc}"
            timeline.finish("error")
            self._send(sender, pb_utils.InferenceResponse(error=pb_utils.TritonError(message)), FINAL)

    @staticmethod
    def _send(sender, response, flags):
        try:
            sender.send(response, flags=flags)
        except Exception as exc:  # the client is gone (cancelled): nothing to answer
            pb_utils.Logger.log_verbose(f"ensemble (llmapi front): response not sent: {exc}")

    def _inputs(self, request) -> dict:
        found = {}
        for name in CLIENT_INPUT_NAMES:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is not None:
                found[name] = tensor.as_numpy()
        text = found.get("text_input")
        if text is not None and np.asarray(text).ndim > 1 and np.asarray(text).shape[0] > 1:
            raise RequestError(f"the llmapi route takes one prompt per request; this request has a batch of "
                               f"{np.asarray(text).shape[0]}")
        used = sorted(name for name in UNSUPPORTED if _used(name, found.get(name)))
        if int(scalar(found.get("beam_width"), 1)) != 1:
            used.append("beam_width")
        if int(scalar(found.get("num_return_sequences"), 1)) != 1:
            used.append("num_return_sequences")
        if used:
            raise RequestError(f"{', '.join(used)}: not supported by the llmapi route (TensorRT-LLM's LLM-API Triton "
                               "model has no input for it); leave it unset or use the engine route")
        if not self.guided and strings(found.get("guided_decoding_guide_type")):
            raise RequestError("guided decoding is off in this repository (serving.guided_decoding: none); render it "
                               "with serving.guided_decoding=xgrammar")
        try:
            check_sampling({k: v for k, v in found.items() if k != "max_tokens"})
            check_words("stop_words", found.get("stop_words"))
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        return found

    def _prompt(self, found) -> tuple[str, int]:
        if found.get("text_input") is None:
            raise RequestError("text_input is required: send the prompt as text_input")
        chat = bool(scalar(found.get("apply_chat_template"), False))
        try:
            check_prompt_size(byte_size(found["text_input"]), self.prompt_bytes, self.max_input_len,
                              self.chat_bytes if chat else 0)
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        texts = strings(found.get("text_input"))
        prompt = texts[0] if texts else ""
        if not prompt.strip():
            raise RequestError("text_input is empty; send a non-empty prompt")
        if chat:
            try:
                prompt = chat_prompt(self.tokenizer, prompt)
            except Exception as exc:  # a broken template or message list is the request's error
                raise RequestError(f"apply_chat_template: {exc}") from None
            if self.bos_text and prompt.startswith(self.bos_text):
                prompt = prompt[len(self.bos_text):]
        n_in = len(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])
        if self.max_input_len and n_in > self.max_input_len:
            raise RequestError(f"prompt is {n_in} tokens, longer than max_input_len={self.max_input_len}; shorten "
                               "it (or raise limits.max_input_len)")
        return prompt, n_in

    def _llm_inputs(self, found, prompt, max_tokens, streaming) -> list:
        tensors = [
            pb_utils.Tensor("text_input", np.array([prompt.encode("utf-8")], dtype=object)),
            pb_utils.Tensor("streaming", np.array([streaming], dtype=np.bool_)),
            pb_utils.Tensor("sampling_param_max_tokens", np.array([max_tokens], dtype=np.int32)),
            pb_utils.Tensor("sampling_param_exclude_input_from_output", np.array([True], dtype=np.bool_)),
            pb_utils.Tensor("return_finish_reason", np.array([True], dtype=np.bool_)),
        ]
        for client, target in CLIENT_TO_LLMAPI.items():
            if client in ("max_tokens", "stream") or client not in found:
                continue
            if client == "stop_words":
                words = strings(found[client])
                if words:
                    tensors.append(pb_utils.Tensor(target, np.array([w.encode("utf-8") for w in words],
                                                                    dtype=object)))
                continue
            if LLMAPI_DTYPES.get(target) == "object":  # the guide inputs: one string
                texts = strings(found[client])
                if texts:
                    tensors.append(pb_utils.Tensor(target, np.array([texts[0].encode("utf-8")], dtype=object)))
                continue
            value = scalar(found[client])
            if value is not None:
                tensors.append(pb_utils.Tensor(target, np.array([value], dtype=LLMAPI_DTYPES[target])))
        return tensors

    def _generate(self, request, sender, final_only, timeline):
        found = self._inputs(request)
        prompt, n_in = self._prompt(found)
        timeline.prompt_tokens = n_in
        if found.get("max_tokens") is None:
            raise RequestError("max_tokens is required: send the number of tokens to generate at most")
        max_tokens = int(scalar(found.get("max_tokens"), 0))
        problem = length_problem(n_in, max_tokens, self.max_seq_len)
        if problem:
            raise RequestError(problem)
        stream = bool(scalar(found.get("stream"), False)) and self.decoupled and not final_only
        exclude = bool(scalar(found.get("exclude_input_in_output"), self.exclude_input_default))
        want_in = bool(scalar(found.get("return_num_input_tokens"), False))
        want_out = bool(scalar(found.get("return_num_output_tokens"), False))
        want_perf = bool(scalar(found.get("return_perf_metrics"), False))

        # The llmapi request carries the client's request id (or a fresh one), so a `stop` sent to tensorrt_llm
        # with the client's id reaches it too.
        request_id = request.request_id() or f"tritongen-{uuid.uuid4().hex}"
        llm_request = pb_utils.InferenceRequest(
            model_name=self.llm,
            inputs=self._llm_inputs(found, prompt, max_tokens, stream),
            requested_output_names=["text_output", "finish_reason", *(PASSTHROUGH if want_perf else ())],
            request_id=request_id,
        )
        responses = llm_request.exec(decoupled=True) if self.llm_decoupled else [llm_request.exec()]
        stops = strings(found.get("stop_words"))
        full = ""  # the llmapi model's text so far
        sent = 0  # characters of it the client has
        prefix = "" if exclude else prompt
        extras: dict = {}
        finish = ""
        for response in responses:
            if _cancelled(sender):
                timeline.finish("cancelled")
                self._abort(responses, request_id)
                # Answer the cancelled request (its one final response) so Triton can release it.
                self._send(sender, pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    "request cancelled by the client", pb_utils.TritonError.CANCELLED)), FINAL)
                return
            if response.has_error():
                raise RequestError(f"tensorrt_llm: {response.error().message()}")
            extras.update(self._passthrough(response))
            reason = pb_utils.get_output_tensor_by_name(response, "finish_reason")
            if reason is not None:
                finish = (strings(reason.as_numpy()) or [finish])[0]
            tensor = pb_utils.get_output_tensor_by_name(response, "text_output")
            if tensor is None:
                continue
            texts = [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)
                     for x in np.asarray(tensor.as_numpy()).reshape(-1)]
            text = texts[0] if texts else ""
            if len(text) >= sent:  # cumulative text; a response that would take back sent text is skipped
                full = text
            if stream:
                # Hold back an incomplete character and anything that may turn out to be a stop string.
                upto = min(len(full.rstrip("\ufffd")), _stop_cut(full, stops)[0])
                if upto > sent:
                    self._send(sender, self._response(prefix + full[sent:upto], {}), 0)
                    timeline.mark()
                    prefix = ""
                    sent = upto
        end, hit = _stop_cut(full, stops)
        full = full[:end] if hit else full
        counts = {}
        if want_in:
            counts["num_input_tokens"] = n_in
        n_out = 0
        if want_out or self.metrics.on:
            # Exact when the LLM API stopped for length; otherwise the generated text re-tokenized.
            n_out = max_tokens if finish == "length" else (
                len(self.tokenizer(full, add_special_tokens=False)["input_ids"]) if full else 0)
        if want_out:
            counts["num_output_tokens"] = n_out
        tail = prefix + full[sent:]
        self._send(sender, self._response(tail, {**extras, **counts}), FINAL)
        timeline.sent(n_out)
        timeline.finish(finish if finish in ("stop", "length", "cancelled") else "stop")

    def _passthrough(self, response) -> dict:
        out = {}
        for name in PASSTHROUGH:
            tensor = pb_utils.get_output_tensor_by_name(response, name)
            if tensor is not None:
                values = np.asarray(tensor.as_numpy()).reshape(-1)
                if values.size:
                    out[name] = _number(values[0])
        return out

    def _response(self, text, values):
        # The reference's shape, [batch * beams]: its clients read text_output[0] as bytes.
        tensors = [pb_utils.Tensor("text_output", np.array([text.encode("utf-8")], dtype=object))]
        for name, value in values.items():
            if name not in self.outputs:
                continue
            dtype = PASSTHROUGH.get(name, np.int32)
            tensors.append(pb_utils.Tensor(name, np.array([[value]], dtype=dtype)))
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _abort(self, responses, request_id):
        """The client cancelled: cancel the llmapi request and stop it by id so the LLM API aborts it."""
        cancel = getattr(responses, "cancel", None)
        if cancel is not None:
            try:
                cancel()
            except Exception as exc:
                pb_utils.Logger.log_verbose(f"ensemble (llmapi front): cancel(): {exc}")
        stop = pb_utils.InferenceRequest(
            model_name=self.llm,
            inputs=[pb_utils.Tensor("text_input", np.array([b""], dtype=object)),
                    pb_utils.Tensor("stop", np.array([True], dtype=np.bool_))],
            requested_output_names=["text_output"],
            request_id=request_id,
        )
        try:
            if self.llm_decoupled:
                for _ in stop.exec(decoupled=True):
                    pass
            else:
                stop.exec()
        except Exception as exc:
            pb_utils.Logger.log_warn(f"ensemble (llmapi front): stop request for {request_id} failed: {exc}")
        pb_utils.Logger.log_info(f"ensemble (llmapi front): request {request_id} cancelled by the client")
