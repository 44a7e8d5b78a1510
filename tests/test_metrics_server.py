"""The LLM metrics on a real tritonserver, scraped by a real Prometheus (Debian's `prometheus` package), every
second, with the rules `tritongen monitoring` renders.

Known requests go in (the MOCK engine makes exactly max_tokens tokens, 30 ms apart); Prometheus' HTTP API must
then show the counters equal to what the clients got, TTFT and inter-token quantiles inside the range the clients
measured (to the histogram's bucket resolution: histogram_quantile interpolates within a bucket), and every
recording and alert rule loaded and evaluating.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import free_ports, render
from tritongen.clients.triton import GenerateParams, LLMClient

pytestmark = pytest.mark.server

STEP_MS = 30
MAX_TOKENS = [3, 4, 5, 6, 7, 8]
#: llm_metrics.TTFT_BUCKETS / ITL_BUCKETS (the template is not importable here: it needs the python backend).
TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0]
ITL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2]


def _floor(value: float, buckets: list[float]) -> float:
    return max([0.0] + [b for b in buckets if b <= value])


def _ceil(value: float, buckets: list[float]) -> float:
    return min([b for b in buckets if b >= value] or [float("inf")])


@pytest.fixture(scope="module")
def repo(tiny_dir, session_root) -> Path:
    return render("tiny", session_root / "repos" / "metrics-mock", **{
        "serving.bls": True, "cpu.engine": "mock", "cpu.mock_step_ms": STEP_MS,
        "serving.metrics.triton_latency_summaries": True, "name": "metrics-mock"})


@pytest.fixture(scope="module")
def server(repo, server_factory):
    return server_factory(repo, "test-metrics")


class Prometheus:
    def __init__(self, url: str, proc: subprocess.Popen):
        self.url, self.proc = url, proc

    def api(self, path: str, **params) -> dict:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> dict[str, float]:
        """An instant query -> {model label: value}."""
        return {r["metric"].get("model", ""): float(r["value"][1]) for r in self.api("query", query=expr)["result"]}

    def wait_for(self, expr: str, want: dict[str, float], timeout: float = 30.0) -> dict[str, float]:
        got: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.query(expr)
            if all(got.get(k) == v for k, v in want.items()):
                return got
            time.sleep(0.5)
        return got


@pytest.fixture(scope="module")
def openai_front(server):
    """The OpenAI front (a process, as `tritongen serve --openai` starts it) on the same server."""
    from tritongen import proc
    from tritongen.clients.openai import launch

    (port,) = free_ports(1)
    url, pid = launch._launch(server, port)
    yield url
    proc.stop_pid(pid, timeout=10)


@pytest.fixture(scope="module")
def prometheus(server, repo, openai_front, tmp_path_factory):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Debian's prometheus is not installed (apt-get install prometheus; .ci/run does)")
    from tritongen.deploy import monitoring

    root = tmp_path_factory.mktemp("prometheus")
    facts = monitoring.facts_of(repo, target=f"127.0.0.1:{server.metrics_port}", scrape_interval="1s",
                                openai_target=openai_front.split("//", 1)[1])
    monitoring.write_files(monitoring.render_files(facts), root / "conf")
    (port,) = free_ports(1)
    log = open(root / "prometheus.log", "wb")  # noqa: SIM115 - the process writes it until the fixture ends
    proc = subprocess.Popen(
        [binary, f"--config.file={root / 'conf' / monitoring.PROMETHEUS_FILE}", f"--storage.tsdb.path={root / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    prom = Prometheus(f"http://127.0.0.1:{port}", proc)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (root / "prometheus.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.3)
        yield prom
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _tokens(result) -> int:
    value = result.extras["num_output_tokens"]
    while isinstance(value, list):  # [[n]] over gRPC
        value = value[0]
    return int(value)


def _send(server, model: str) -> list:
    client = LLMClient(server.grpc_url, model=model)

    def one(n):
        return client.generate(f"Count to {n} please", GenerateParams(max_tokens=n, return_num_tokens=True),
                               stream=True)

    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(pool.map(one, MAX_TOKENS))


def test_prometheus_sees_what_the_clients_got(server, prometheus):
    results = {model: _send(server, model) for model in ("ensemble", "tensorrt_llm_bls")}
    for model, done in results.items():
        tokens = [_tokens(r) for r in done]
        assert tokens == MAX_TOKENS, (model, tokens)  # the MOCK runs to max_tokens

    n = len(MAX_TOKENS)
    want = {model: float(n) for model in results}
    got = prometheus.wait_for("sum by (model) (tritongen_requests_total)", want)
    assert got == want
    assert prometheus.query('sum by (model) (tritongen_requests_total{finish_reason="length"})') == want
    want_tokens = {m: float(sum(_tokens(r) for r in done)) for m, done in results.items()}
    assert prometheus.wait_for("sum by (model) (tritongen_generation_tokens_total)", want_tokens) == want_tokens
    assert prometheus.query("sum by (model) (tritongen_requests_in_flight)") == {m: 0.0 for m in results}
    # Prompt tokens: what the tokenizer made of each prompt, the same on both routes.
    prompts = prometheus.query("sum by (model) (tritongen_prompt_tokens_total)")
    assert prompts["ensemble"] == prompts["tensorrt_llm_bls"] > 0

    for model, done in results.items():
        ttfts = [r.ttft for r in done]
        q = prometheus.query(f'histogram_quantile(0.5, sum by (model, le) '
                             f'(tritongen_time_to_first_token_seconds_bucket{{model="{model}"}}))')[model]
        # The server's TTFT is part of the client's (no network, no client), so at most the client's largest;
        # histogram_quantile is exact to the bucket, hence the bucket edges around the client's range.
        assert _floor(min(ttfts) - 0.01, TTFT_BUCKETS) <= q <= _ceil(max(ttfts), TTFT_BUCKETS), (model, q, ttfts)
        itl = prometheus.query(f'histogram_quantile(0.5, sum by (model, le) '
                               f'(tritongen_inter_token_latency_seconds_bucket{{model="{model}"}}))')[model]
        texts = [[c for c in r.chunks if c.text] for r in done]
        client_itl = [(t[-1].at - t[0].at) / max(len(t) - 1, 1) for t in texts]
        assert _floor(STEP_MS / 1000 * 0.8, ITL_BUCKETS) <= itl <= _ceil(max(client_itl) * 1.5, ITL_BUCKETS), (
            model, itl, client_itl)
    # The queue time is known where the engine reports when it scheduled the request: the ensemble's.
    assert prometheus.query("sum by (model) (tritongen_request_queue_seconds_count)")["ensemble"] == n
    # The cpu engine's own figures, and Triton's latency summaries (serving.metrics.triton_latency_summaries).
    steps = prometheus.query("sum by (model) (tritongen_engine_steps_total)")["tensorrt_llm"]
    assert steps >= max(MAX_TOKENS)
    assert prometheus.query("count(nv_inference_request_summary_us_count)")


def test_rules_load_and_evaluate(server, prometheus):
    _send(server, "ensemble")
    # Every rule of both files is loaded and was evaluated without error.
    deadline = time.monotonic() + 30
    while True:
        groups = prometheus.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if rules and all(r.get("lastEvaluation", "").startswith("2") and r["health"] == "ok" for r in rules):
            break
        assert time.monotonic() < deadline, [(r["name"], r["health"], r.get("lastError")) for r in rules]
        time.sleep(0.5)
    names = {r["name"] for r in rules}
    assert {"TritongenTTFTAboveSLO", "TritongenErrorRatioHigh", "TritongenQueueTimeGrowing",
            "TritongenServerDown"} <= names
    assert "tritongen:time_to_first_token_seconds:p99" in names
    # Recorded series exist for the served models, with values in range.
    p99 = prometheus.wait_for("tritongen:time_to_first_token_seconds:p99 > 0", {}, timeout=1)
    deadline = time.monotonic() + 20
    while "ensemble" not in p99 and time.monotonic() < deadline:
        time.sleep(0.5)
        p99 = prometheus.query("tritongen:time_to_first_token_seconds:p99")
    assert 0 < p99["ensemble"] < 1.0
    assert prometheus.query("tritongen:generation_tokens:rate1m")["ensemble"] > 0
    # Nothing fires: the server is up, nothing failed, the TTFT is far below the 2 s SLO.
    alerts = {r["name"]: r["state"] for r in rules if r["type"] == "alerting"}
    assert set(alerts.values()) == {"inactive"}, alerts
    assert prometheus.query('up{job="tritongen-metrics-mock"}') == {"": 1.0}


def test_the_openai_fronts_own_metrics(openai_front, prometheus):
    import openai

    oai = openai.OpenAI(base_url=f"{openai_front}/v1", api_key="unused", max_retries=0, timeout=60)
    usage = [oai.completions.create(model=oai.models.list().data[0].id, prompt="The river", max_tokens=n).usage
             for n in (4, 6)]
    stream = oai.chat.completions.create(model=oai.models.list().data[0].id, max_tokens=5, stream=True,
                                         messages=[{"role": "user", "content": "Hi"}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    with pytest.raises(openai.NotFoundError):
        oai.completions.create(model="no-such-model", prompt="x", max_tokens=2)
    job = 'job="tritongen-metrics-mock-openai"'
    want = {"": float(sum(u.completion_tokens for u in usage) + 5)}
    assert prometheus.wait_for(f"sum(tritongen_openai_completion_tokens_total{{{job}}})", want) == want
    by = {(r["metric"]["endpoint"], r["metric"]["status"]): float(r["value"][1]) for r in prometheus.api(
        "query", query=f"sum by (endpoint, status) (tritongen_openai_requests_total{{{job}}})")["result"]}
    assert by[("/v1/completions", "200")] == 2 and by[("/v1/chat/completions", "200")] == 1
    assert by[("/v1/completions", "404")] == 1
    assert prometheus.query(f"sum(tritongen_openai_time_to_first_token_seconds_count{{{job}}})") == {"": 3.0}
    assert prometheus.query(f"sum(tritongen_openai_requests_in_flight{{{job}}})") == {"": 0.0}
