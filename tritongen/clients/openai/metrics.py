"""The OpenAI front's own ``GET /metrics`` (prometheus-client, ``pip install 'tritongen[metrics]'``): requests by
endpoint and HTTP status, request duration and time-to-first-token histograms, prompt and completion tokens, and
requests in flight - what the front itself sees, beside Triton's tritongen_* metrics on its own port.

Each app has its own registry (several apps in one process, as in the tests, do not share counters). Without
prometheus-client the front runs as before and ``/metrics`` answers 404 (logged once at start).
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("tritongen.openai")

#: Paths counted under their own name; anything else is "other" (so unknown paths cannot blow up the label set).
ENDPOINTS = ("/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics")
#: The same LLM-latency buckets as the repository's histograms (templates/common/lib/llm_metrics.py), in seconds.
TTFT_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 240.0, 480.0)


def endpoint_of(path: str) -> str:
    if path.startswith("/v1/models"):
        return "/v1/models"
    return path if path in ENDPOINTS else "other"


class FrontMetrics:
    """The front's metric families in a registry of their own."""

    def __init__(self, model: str):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.model = model
        self.requests = Counter("tritongen_openai_requests", "HTTP requests answered, by endpoint and status",
                                ["endpoint", "status"], registry=r)
        self.duration = Histogram("tritongen_openai_request_duration_seconds",
                                  "Time from a request's arrival to the last byte of its answer", ["endpoint"],
                                  buckets=DURATION_BUCKETS, registry=r)
        self.ttft = Histogram("tritongen_openai_time_to_first_token_seconds",
                              "Time from a completion request's start to its first generated text", ["model"],
                              buckets=TTFT_BUCKETS, registry=r)
        self.prompt_tokens = Counter("tritongen_openai_prompt_tokens", "Prompt tokens of completed requests",
                                     ["model"], registry=r)
        self.completion_tokens = Counter("tritongen_openai_completion_tokens",
                                         "Completion tokens of completed requests", ["model"], registry=r)
        self.in_flight = Gauge("tritongen_openai_requests_in_flight", "Completion requests being answered",
                               ["model"], registry=r)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    # what Service.run reports
    def started(self) -> float:
        self.in_flight.labels(self.model).inc()
        return time.perf_counter()

    def first_text(self, start: float) -> None:
        self.ttft.labels(self.model).observe(time.perf_counter() - start)

    def ended(self, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        self.in_flight.labels(self.model).dec()
        if prompt_tokens:
            self.prompt_tokens.labels(self.model).inc(prompt_tokens)
        if completion_tokens:
            self.completion_tokens.labels(self.model).inc(completion_tokens)


def make(model: str) -> FrontMetrics | None:
    """The front's metrics, or None (and a log line) without prometheus-client."""
    try:
        return FrontMetrics(model)
    except ImportError:
        log.warning("prometheus-client is not installed: no /metrics (pip install 'tritongen[metrics]')")
        return None


class Measured:
    """ASGI middleware: counts every HTTP request by endpoint and status, and times it to its last byte; answers
    ``GET /metrics`` itself (after the API-key check of the app it wraps, when the app has one)."""

    def __init__(self, app, metrics: FrontMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = endpoint_of(scope.get("path", ""))
        start = time.perf_counter()
        status = {"code": 500}

        async def sending(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.metrics.duration.labels(endpoint).observe(time.perf_counter() - start)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.requests.labels(endpoint, str(status["code"])).inc()

    def __getattr__(self, name):  # app.state etc. for tests
        return getattr(self.app, name)
