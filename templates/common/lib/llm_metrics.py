"""LLM metrics for tritongen's python-backend models, through Triton's custom-metrics API.

Rendered next to model.py by tritongen; imports only the standard library and triton_python_backend_utils. The
families appear on Triton's own metrics port (``/metrics``, 8002) beside its ``nv_inference_*`` counters.

Cost: every call into a metric (increment, set, observe) is a round trip between this process and tritonserver.
Doing that per streamed token would cost more server CPU than the pipeline's own work at high token rates, so the
hot path only adds to plain Python numbers under a lock, and one daemon thread hands them to Triton every
``FLUSH_S`` seconds: counters and gauges cost a few calls per interval whatever the token rate; histograms take
one observation per request and metric (TTFT, mean inter-token time, end-to-end, queue), never one per token.

Labels: ``model`` (the served name) on every family; ``lora_adapter`` on a request's series when it ran with a LoRA
adapter (the base model's have none), where the model knows the adapter: the cpu route's ensemble (the engine
passes the task id on in stream_state), tensorrt_llm_bls and the llmapi front (their lora_name input). The engine
route's ensemble cannot: the TensorRT-LLM backend's responses carry no request identity to postprocessing.

Names, kinds and buckets are the repository's monitoring contract: the README's "Monitoring" section lists them,
and tritongen renders its recording/alert rules and dashboard against them.
"""

from __future__ import annotations

import threading
import time

import triton_python_backend_utils as pb_utils

#: How often the accumulated figures reach Triton. A Prometheus scraping every second sees them at most this late.
FLUSH_S = 0.25

# Buckets in seconds, chosen for LLM serving: TTFT spans a cached short prompt (ms) to a long prefill under load
# (tens of s); inter-token time a fast GPU decode step (ms) to a stalled batch (s); end-to-end a short answer to a
# long generation (minutes); queue time from none to a saturated server.
TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0]
ITL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15,
               0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5]
E2E_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
               240.0, 480.0, 960.0]
QUEUE_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                 30.0, 60.0]

FINISH_REASONS = ("stop", "length", "cancelled", "error")

#: name -> (kind, description, buckets); the request-level families.
REQUEST_FAMILIES = {
    "tritongen_time_to_first_token_seconds": (
        "HISTOGRAM", "Time from a request's arrival at the serving model (ensemble or BLS) to its first token "
        "leaving it", TTFT_BUCKETS),
    "tritongen_inter_token_latency_seconds": (
        "HISTOGRAM", "Per request: mean time between its tokens after the first ((e2e - ttft) / (tokens - 1))",
        ITL_BUCKETS),
    "tritongen_e2e_request_latency_seconds": (
        "HISTOGRAM", "Time from a request's arrival to its last response", E2E_BUCKETS),
    "tritongen_request_queue_seconds": (
        "HISTOGRAM", "Time a request waited from arrival until the engine scheduled it", QUEUE_BUCKETS),
    "tritongen_prompt_tokens_total": ("COUNTER", "Prompt tokens of the requests served", None),
    "tritongen_generation_tokens_total": ("COUNTER", "Tokens generated and sent to clients", None),
    "tritongen_requests_total": ("COUNTER", "Requests finished, by finish_reason (stop, length, cancelled, error)",
                                 None),
    "tritongen_requests_in_flight": ("GAUGE", "Requests arrived and not yet finished", None),
}

#: The cpu engine's own figures (the TensorRT-LLM backend exports nv_trt_llm_* instead).
ENGINE_FAMILIES = {
    "tritongen_engine_active_sequences": ("GAUGE", "Sequences in the cpu engine's running batch", None),
    "tritongen_engine_steps_total": ("COUNTER", "Decode steps the cpu engine ran", None),
    "tritongen_engine_step_sequences_total": (
        "COUNTER", "Sum over decode steps of the sequences in the step (divided by steps: mean batch size)", None),
}

_KINDS = {"COUNTER": "COUNTER", "GAUGE": "GAUGE", "HISTOGRAM": "HISTOGRAM"}


def enabled(config: dict) -> bool:
    """The model's ``metrics`` parameter (rendered from the spec's serving.metrics.enabled); on when absent."""
    value = config.get("parameters", {}).get("metrics", {}).get("string_value", "true")
    return str(value).strip().lower() in ("true", "1", "yes", "on")


def adapter_names(config: dict) -> dict[int, str]:
    """LoRA task id -> adapter name, from the model's ``lora_adapters`` parameter (JSON {name: task id})."""
    import json

    text = config.get("parameters", {}).get("lora_adapters", {}).get("string_value", "")
    try:
        return {int(v): str(k) for k, v in json.loads(text).items()} if text.strip() else {}
    except (ValueError, AttributeError):
        return {}


def adapter_of_request(request, names: dict[int, str]) -> str | None:
    """The adapter a request names in its ``lora_name`` input, if it is one of ``names`` (else the base model)."""
    if not names:
        return None
    tensor = pb_utils.get_input_tensor_by_name(request, "lora_name")
    if tensor is None:
        return None
    value = tensor.as_numpy().reshape(-1)
    if not value.size:
        return None
    name = value[0].decode("utf-8", "replace") if isinstance(value[0], bytes) else str(value[0])
    return name if name in names.values() else None


def served_name(config: dict, default: str) -> str:
    """The served model name metrics are labelled with (``metrics_model`` parameter, else ``default``)."""
    value = config.get("parameters", {}).get("metrics_model", {}).get("string_value", "")
    return value or default


class _Family:
    """One metric family with one metric per label set, created on first use."""

    def __init__(self, name, kind, description, buckets, base_labels):
        self.family = pb_utils.MetricFamily(name=name, description=description,
                                            kind=getattr(pb_utils.MetricFamily, _KINDS[kind]))
        self.kind = kind
        self.buckets = buckets
        self.base = base_labels
        self.metrics = {}

    def metric(self, extra=()):
        metric = self.metrics.get(extra)
        if metric is None:
            labels = dict(self.base, **dict(extra))
            if self.kind == "HISTOGRAM":
                metric = self.family.Metric(labels=labels, buckets=list(self.buckets))
            else:
                metric = self.family.Metric(labels=labels)
            self.metrics[extra] = metric
        return metric


class Metrics:
    """The figures of one model process, accumulated locally and flushed to Triton by a daemon thread.

    ``families`` picks REQUEST_FAMILIES, ENGINE_FAMILIES or both; when ``on`` is false every method is a no-op
    and nothing is registered (the spec switch serving.metrics.enabled: false).
    """

    def __init__(self, model: str, on: bool = True, families=REQUEST_FAMILIES):
        self.on = on
        self.model = model
        self._lock = threading.Lock()
        self._counts = {}  # (family, extra labels) -> amount not yet flushed
        self._gauges = {}  # (family, extra labels) -> current value
        self._observed = []  # (family, extra labels, value) not yet flushed
        self._families = {}
        self._stop = threading.Event()
        if not on:
            return
        for name, (kind, description, buckets) in families.items():
            self._families[name] = _Family(name, kind, description, buckets, {"model": model})
        self._thread = threading.Thread(target=self._run, name="tritongen-metrics", daemon=True)
        self._thread.start()

    # -- the hot path: plain numbers under a lock --------------------------------------------------------

    def add(self, name: str, amount: float = 1, **labels) -> None:
        """Add to a counter (flushed later)."""
        if not self.on or not amount:
            return
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + amount

    def move(self, name: str, delta: float, **labels) -> None:
        """Move a gauge by ``delta`` (requests in flight, active sequences)."""
        if not self.on:
            return
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._gauges[key] = self._gauges.get(key, 0) + delta

    def set(self, name: str, value: float) -> None:
        if not self.on:
            return
        with self._lock:
            self._gauges[(name, ())] = value

    def observe(self, name: str, value: float, **labels) -> None:
        if not self.on:
            return
        with self._lock:
            self._observed.append((name, tuple(sorted(labels.items())), value))

    # -- flushing ------------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Hand what was accumulated to Triton (the daemon thread calls this every FLUSH_S)."""
        if not self.on:
            return
        with self._lock:
            counts, self._counts = self._counts, {}
            gauges = dict(self._gauges)
            observed, self._observed = self._observed, []
        for (name, extra), amount in counts.items():
            self._families[name].metric(extra).increment(amount)
        for (name, extra), value in gauges.items():
            self._families[name].metric(extra).set(value)
        for name, extra, value in observed:
            self._families[name].metric(extra).observe(value)

    def _run(self):
        while not self._stop.wait(FLUSH_S):
            try:
                self.flush()
            except Exception:  # a metric must never take the model down; the next interval tries again
                pass

    def close(self) -> None:
        """Flush once more and stop the thread (finalize)."""
        if not self.on:
            return
        self._stop.set()
        try:
            self.flush()
        except Exception:
            pass


class Request:
    """One request's timeline, from arrival to its final response, reported to ``metrics`` once it ends.

    ``arrival_ns`` is time.time_ns() at arrival (it may come from another process of the same server);
    ``scheduled_ns`` when the engine took it up, if known.
    """

    __slots__ = ("metrics", "arrival_ns", "scheduled_ns", "first_ns", "last_ns", "tokens", "prompt_tokens", "done",
                 "labels")

    def __init__(self, metrics: Metrics, arrival_ns: int | None = None, prompt_tokens: int = 0,
                 adapter: str | None = None):
        self.metrics = metrics
        #: The LoRA adapter it ran with (label lora_adapter); the base model's series have no such label.
        self.labels = {"lora_adapter": adapter} if adapter else {}
        self.arrival_ns = arrival_ns or time.time_ns()
        self.scheduled_ns = 0
        self.first_ns = 0
        self.last_ns = 0
        self.tokens = 0
        self.prompt_tokens = prompt_tokens
        self.done = False
        metrics.move("tritongen_requests_in_flight", 1, **self.labels)

    def sent(self, new_tokens: int, now_ns: int | None = None) -> None:
        """A response carrying ``new_tokens`` generated tokens left the model."""
        if new_tokens <= 0:
            return
        now = now_ns or time.time_ns()
        if not self.first_ns:
            self.first_ns = now
        self.last_ns = now
        self.tokens += new_tokens
        self.metrics.add("tritongen_generation_tokens_total", new_tokens, **self.labels)

    def mark(self, now_ns: int | None = None) -> None:
        """A response with new text left, whose tokens are counted at the end (the llmapi front gets text)."""
        now = now_ns or time.time_ns()
        if not self.first_ns:
            self.first_ns = now
        self.last_ns = now

    def finish(self, reason: str, now_ns: int | None = None) -> None:
        """The request ended (``reason`` one of FINISH_REASONS); reports its histograms once."""
        if self.done:
            return
        self.done = True
        m, labels = self.metrics, self.labels
        now = now_ns or time.time_ns()
        reason = reason if reason in FINISH_REASONS else "error"
        m.move("tritongen_requests_in_flight", -1, **labels)
        m.add("tritongen_requests_total", 1, finish_reason=reason, **labels)
        m.add("tritongen_prompt_tokens_total", self.prompt_tokens, **labels)
        if reason == "error":
            return
        m.observe("tritongen_e2e_request_latency_seconds", max(now - self.arrival_ns, 0) / 1e9, **labels)
        if self.scheduled_ns:
            m.observe("tritongen_request_queue_seconds", max(self.scheduled_ns - self.arrival_ns, 0) / 1e9, **labels)
        if self.first_ns:
            m.observe("tritongen_time_to_first_token_seconds", max(self.first_ns - self.arrival_ns, 0) / 1e9,
                      **labels)
            if self.tokens > 1:
                m.observe("tritongen_inter_token_latency_seconds",
                          max(self.last_ns - self.first_ns, 0) / 1e9 / (self.tokens - 1), **labels)
