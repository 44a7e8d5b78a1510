"""The LLM metrics without a server: the spec switch in the rendered configs, the monitoring artefacts (golden
files, promtool, the Grafana fields), the metrics-endpoint parser and quantiles, `tritongen metrics --once --json`
against a real HTTP endpoint, and the OpenAI front's /metrics. tests/test_metrics_server.py runs them for real."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO_ROOT, render
from tritongen.cli import cli
from tritongen.clients import metrics as m
from tritongen.deploy import monitoring

GOLDEN = REPO_ROOT / "tests" / "golden" / "monitoring" / "tiny"
UPDATE = os.environ.get("TRITONGEN_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def tiny_mock(tiny_dir, session_root) -> Path:
    return render("tiny", session_root / "repos" / "metrics-unit", **{"serving.bls": True, "cpu.engine": "mock",
                                                                      "name": "tiny"})


def _config(repo: Path, model: str) -> str:
    return (repo / model / "config.pbtxt").read_text()


def test_metrics_are_on_by_default_and_wired_through_the_cpu_ensemble(tiny_mock):
    for model in ("postprocessing", "tensorrt_llm_bls", "tensorrt_llm"):
        assert 'key: "metrics"\n  value: { string_value: "true" }' in _config(tiny_mock, model)
    assert 'key: "metrics_model"\n  value: { string_value: "ensemble" }' in _config(tiny_mock, "postprocessing")
    ens = _config(tiny_mock, "ensemble")
    for line in ('output_map { key: "ARRIVAL_NS" value: "_ARRIVAL_NS" }',
                 'input_map { key: "tritongen_arrival_ns" value: "_ARRIVAL_NS" }',
                 'output_map { key: "stream_state" value: "_stream_state" }',
                 'input_map { key: "STREAM_STATE" value: "_stream_state" }'):
        assert line in ens
    for model in ("postprocessing", "tensorrt_llm_bls", "tensorrt_llm"):
        assert (tiny_mock / model / "1" / "llm_metrics.py").is_file()


def test_the_switch_turns_them_off_and_drops_the_wiring(tiny_dir, session_root):
    repo = render("tiny", session_root / "repos" / "metrics-off", **{"cpu.engine": "mock",
                                                                     "serving.metrics.enabled": False})
    assert 'key: "metrics"\n  value: { string_value: "false" }' in _config(repo, "postprocessing")
    for model in ("ensemble", "preprocessing", "postprocessing", "tensorrt_llm"):
        text = _config(repo, model)
        assert "ARRIVAL_NS" not in text and "tritongen_arrival" not in text
    from tritongen.errors import UsageError

    with pytest.raises(UsageError, match="turns the LLM metrics off"):
        monitoring.facts_of(repo)


def test_triton_latency_summaries_reach_the_command_line(tiny_dir, session_root):
    from tritongen.runtime.command import ServeOptions, tritonserver_args

    plain = render("tiny", session_root / "repos" / "metrics-plain", **{"cpu.engine": "mock"})
    asked = render("tiny", session_root / "repos" / "metrics-summaries", **{
        "cpu.engine": "mock", "serving.metrics.triton_latency_summaries": True})
    assert not [a for a in tritonserver_args(str(plain), ServeOptions()) if a.startswith("--metrics-config")]
    assert "--metrics-config=summary_latencies=true" in tritonserver_args(str(asked), ServeOptions())
    assert "--metrics-config=summary_latencies=true" not in tritonserver_args(str(asked), ServeOptions(),
                                                                            with_metrics=False)


def _facts() -> monitoring.MonitoringFacts:
    return monitoring.MonitoringFacts(name="tiny", models=["ensemble", "tensorrt_llm_bls"])


def test_monitoring_artefacts_golden():
    files = monitoring.render_files(_facts())
    if UPDATE:
        shutil.rmtree(GOLDEN, ignore_errors=True)
        monitoring.write_files(files, GOLDEN)
    got = {str(p.relative_to(GOLDEN)): p.read_text() for p in sorted(GOLDEN.rglob("*")) if p.is_file()}
    assert got == files, "monitoring artefacts changed: TRITONGEN_UPDATE_GOLDEN=1 refreshes tests/golden/monitoring"


def test_facts_come_from_the_repository(tiny_mock):
    facts = monitoring.facts_of(tiny_mock)
    assert (facts.name, facts.models, facts.target) == ("tiny", ["ensemble", "tensorrt_llm_bls"], "127.0.0.1:8002")
    assert (facts.ttft_p99_slo_s, facts.max_error_ratio) == (2.0, 0.05)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing (apt-get install prometheus)")
def test_promtool_accepts_config_and_rules(tmp_path):
    facts = _facts()
    facts.extra_targets = ["127.0.0.1:9000"]
    monitoring.write_files(monitoring.render_files(facts), tmp_path)
    out = subprocess.run(["promtool", "check", "config", str(tmp_path / monitoring.PROMETHEUS_FILE)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 2 rule files found" in out.stdout
    out = subprocess.run(["promtool", "check", "rules", str(tmp_path / monitoring.RECORDING_FILE),
                          str(tmp_path / monitoring.ALERTS_FILE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 15 rules found" in out.stdout and "SUCCESS: 4 rules found" in out.stdout


def test_dashboard_has_what_grafana_needs():
    board = monitoring.dashboard(_facts())
    assert monitoring.dashboard_problems(board) == []
    assert [o["value"] for o in board["templating"]["list"][1]["options"]] == ["ensemble", "tensorrt_llm_bls"]
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p["targets"])
    for name in ("tritongen:time_to_first_token_seconds:p99", "tritongen:generation_tokens:rate1m",
                 "tritongen_requests_in_flight", "tritongen:error_ratio:rate5m"):
        assert name in exprs
    broken = json.loads(json.dumps(board))
    broken["panels"][1]["id"] = broken["panels"][0]["id"]
    del broken["panels"][2]["gridPos"]
    broken["panels"][3]["targets"][0]["expr"] = ""
    broken.pop("title")
    assert monitoring.dashboard_problems(broken) == [
        "dashboard: title must be a str", "dashboard: panel ids repeat",
        "panel 3: gridPos needs integer h, w, x, y", "panel 4: target 'A' has no expr"]


def test_monitoring_command_writes_into_its_folder_only(tiny_mock, tmp_path):
    out = tmp_path / "mon"
    result = CliRunner().invoke(cli, ["monitoring", str(tiny_mock), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(
        [monitoring.PROMETHEUS_FILE, monitoring.RECORDING_FILE, monitoring.ALERTS_FILE, monitoring.DASHBOARD_FILE])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mon"]
    result = CliRunner().invoke(cli, ["monitoring", str(tmp_path)])
    assert result.exit_code == 2 and "no tritongen.lock.yaml" in result.output


# -- reading an endpoint -----------------------------------------------------------------------------------

EXPOSITION = """# HELP tritongen_requests_total Requests
# TYPE tritongen_requests_total counter
tritongen_requests_total{finish_reason="length",model="ensemble"} %(req)s
tritongen_requests_total{finish_reason="error",model="ensemble"} 1
tritongen_generation_tokens_total{model="ensemble"} %(tok)s
tritongen_requests_in_flight{model="ensemble"} 2
tritongen_time_to_first_token_seconds_bucket{model="ensemble",le="0.01"} 0
tritongen_time_to_first_token_seconds_bucket{model="ensemble",le="0.02"} %(half)s
tritongen_time_to_first_token_seconds_bucket{model="ensemble",le="0.04"} %(req)s
tritongen_time_to_first_token_seconds_bucket{model="ensemble",le="+Inf"} %(req)s
nv_inference_count{model="ensemble",version="1"} 4
"""


def test_parse_and_quantiles_follow_promql():
    s = m.parse(EXPOSITION % {"req": 10, "tok": 100, "half": 5})
    assert s[("tritongen_generation_tokens_total", (("model", "ensemble"),))] == 100
    buckets = m._buckets(s, "tritongen_time_to_first_token_seconds")["ensemble"]
    # histogram_quantile: rank 5 of 10 is the top of the (0.01, 0.02] bucket; rank 9.9 interpolates in the next.
    assert m.quantile(0.5, buckets) == pytest.approx(0.02)
    assert m.quantile(0.99, buckets) == pytest.approx(0.02 + 0.02 * 4.9 / 5)
    assert m.quantile(0.5, []) is None


def test_figures_between_two_scrapes():
    a = m.parse(EXPOSITION % {"req": 10, "tok": 100, "half": 5})
    b = m.parse(EXPOSITION % {"req": 20, "tok": 300, "half": 15})
    f = m.figures(a, b, 2.0).models[0]
    assert (f.model, f.tokens_per_s, f.requests_per_s, f.in_flight, f.errors) == ("ensemble", 100.0, 5.0, 2.0, 1.0)
    # In the window all 10 new requests fell in (0.01, 0.02]: the p50 is inside that bucket.
    assert f.window == "window" and 0.01 < f.ttft_p50_s <= 0.02
    assert m.figures(b, b, 1.0).models[0].window == "life"


@pytest.fixture()
def endpoint():
    state = {"n": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            state["n"] += 1
            body = (EXPOSITION % {"req": 10 * state["n"], "tok": 100 * state["n"], "half": 5 * state["n"]}).encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_metrics_command_once_json(endpoint):
    result = CliRunner().invoke(cli, ["metrics", endpoint, "--once", "--json", "--interval", "0.2"])
    assert result.exit_code == 0, result.output
    snap = json.loads(result.output)
    assert snap["target"] == f"http://{endpoint}/metrics"
    (f,) = snap["models"]
    assert f["model"] == "ensemble" and f["requests"] == 20 + 1 and f["generation_tokens"] == 200  # + 1 error
    assert f["tokens_per_s"] == pytest.approx(100 / snap["interval_s"])
    table = CliRunner().invoke(cli, ["metrics", endpoint, "--once", "--interval", "0.1"])
    assert table.exit_code == 0 and "TTFT p50" in table.output and "ensemble" in table.output


def test_metrics_command_names_an_endpoint_that_does_not_answer():
    from conftest import free_ports

    (port,) = free_ports(1)
    result = CliRunner().invoke(cli, ["metrics", f"127.0.0.1:{port}", "--once"])
    assert result.exit_code == 9 and "cannot read" in result.output


def test_openai_front_metrics_count_refusals():
    from starlette.testclient import TestClient

    from tritongen.clients.openai.app import create_app
    from tritongen.clients.openai.serving import ServerConfig

    cfg = ServerConfig(triton_url="grpc://127.0.0.1:9", model_name="tiny", api_key="k" * 20, timeout=5)
    with TestClient(create_app(cfg)) as c:
        assert c.get("/metrics").status_code == 401  # behind the API key like every route
        auth = {"Authorization": "Bearer " + "k" * 20}
        assert c.post("/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 2},
                      headers=auth).status_code == 503  # nothing listens on port 9
        s = m.parse(c.get("/metrics", headers=auth).text)
    assert s[("tritongen_openai_requests_total", (("endpoint", "/metrics"), ("status", "401")))] == 1
    assert s[("tritongen_openai_requests_total", (("endpoint", "/v1/completions"), ("status", "503")))] == 1
    assert s[("tritongen_openai_requests_in_flight", (("model", "tiny"),))] == 0


# -- the template helper, with a stand-in for Triton's python backend --------------------------------------


class _Recorder:
    """triton_python_backend_utils' MetricFamily, recording every call the way Triton would receive it."""

    COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"
    calls: list = []

    def __init__(self, name, description, kind):
        self.name, self.kind = name, kind

    def Metric(self, labels=None, buckets=None):  # noqa: N802 - the python backend's name
        family = self

        class _M:
            def increment(self, v):
                _Recorder.calls.append((family.name, "inc", tuple(sorted(labels.items())), v))

            def set(self, v):
                _Recorder.calls.append((family.name, "set", tuple(sorted(labels.items())), v))

            def observe(self, v):
                _Recorder.calls.append((family.name, "observe", tuple(sorted(labels.items())), v))

        assert (buckets is not None) == (self.kind == "histogram")
        return _M()


@pytest.fixture()
def lib(monkeypatch):
    import importlib
    import types

    fake = types.ModuleType("triton_python_backend_utils")
    fake.MetricFamily = _Recorder
    fake.TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    monkeypatch.syspath_prepend(str(REPO_ROOT / "templates" / "common" / "lib"))
    monkeypatch.delitem(sys.modules, "llm_metrics", raising=False)
    _Recorder.calls = []
    module = importlib.import_module("llm_metrics")
    monkeypatch.setattr(module, "FLUSH_S", 3600)  # flushed by hand
    return module


def test_a_requests_timeline_becomes_its_histograms(lib):
    metrics = lib.Metrics("ensemble")
    s = 10**9
    r = lib.Request(metrics, arrival_ns=100 * s, prompt_tokens=7)
    r.scheduled_ns = 100 * s + s // 100
    r.sent(1, now_ns=100 * s + s // 4)  # first token 250 ms after arrival
    r.sent(2, now_ns=100 * s + s // 2)
    r.sent(1, now_ns=101 * s)
    r.finish("length", now_ns=101 * s)
    r.finish("length")  # once only
    metrics.flush()
    got = {(name, how, labels): v for name, how, labels, v in _Recorder.calls}
    model = (("model", "ensemble"),)
    assert got[("tritongen_time_to_first_token_seconds", "observe", model)] == pytest.approx(0.25)
    assert got[("tritongen_inter_token_latency_seconds", "observe", model)] == pytest.approx(0.75 / 3)
    assert got[("tritongen_e2e_request_latency_seconds", "observe", model)] == pytest.approx(1.0)
    assert got[("tritongen_request_queue_seconds", "observe", model)] == pytest.approx(0.01)
    assert got[("tritongen_generation_tokens_total", "inc", model)] == 4
    assert got[("tritongen_prompt_tokens_total", "inc", model)] == 7
    assert got[("tritongen_requests_total", "inc", (("finish_reason", "length"), ("model", "ensemble")))] == 1
    assert got[("tritongen_requests_in_flight", "set", model)] == 0
    assert len([c for c in _Recorder.calls if c[0] == "tritongen_requests_total"]) == 1


def test_counters_are_flushed_once_per_interval_whatever_the_token_rate(lib):
    metrics = lib.Metrics("m")
    for _ in range(100):
        r = lib.Request(metrics)
        for _ in range(50):
            r.sent(1)
        r.finish("stop")
    metrics.flush()
    incs = [c for c in _Recorder.calls if c[1] == "inc"]
    # 5000 tokens, 100 requests: one call per counter and label set, 3 observations per request (no queue time).
    assert sorted((c[0], c[3]) for c in incs) == [("tritongen_generation_tokens_total", 5000),
                                                  ("tritongen_requests_total", 100)]
    assert len([c for c in _Recorder.calls if c[1] == "observe"]) == 300
    _Recorder.calls.clear()
    metrics.flush()
    assert [c[1] for c in _Recorder.calls] == ["set"]  # nothing new: only the gauge is set again


def test_an_errored_request_counts_but_has_no_timings(lib):
    metrics = lib.Metrics("m")
    lib.Request(metrics).finish("error")
    lib.Request(metrics).finish("weird")
    metrics.flush()
    assert [c[3] for c in _Recorder.calls if c[0] == "tritongen_requests_total"] == [2]
    assert not [c for c in _Recorder.calls if c[1] == "observe"]


def test_switched_off_nothing_is_registered_or_called(lib):
    metrics = lib.Metrics("m", on=False)
    r = lib.Request(metrics)
    r.sent(3)
    r.finish("stop")
    metrics.flush()
    metrics.close()
    assert _Recorder.calls == []
    assert lib.enabled({"parameters": {"metrics": {"string_value": "false"}}}) is False
    assert lib.enabled({}) is True


def test_postprocessing_without_stream_stats_counts_tokens_only(lib, monkeypatch):
    """The engine route: the TensorRT-LLM backend sends no stream key or stats, so only tokens are counted; the
    cpu route's stats come on a request's first and last responses."""
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("post_model", REPO_ROOT / "templates/common/postprocessing/1/model.py")
    post = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(post)
    model = post.TritonPythonModel.__new__(post.TritonPythonModel)
    model.metrics, model.timed = lib.Metrics("ensemble"), {}
    model._measure(np.array([[3], [2]], dtype=np.int32), None, None, None, 2)
    model._measure(np.array([[1]], dtype=np.int32), None, None, None, 1)
    # With stats (the cpu route): one request, first and final responses.
    stats = np.array([[1, 2, 5, 0]], dtype=np.int64)
    model._measure(np.array([[2]]), np.array([7], dtype=np.uint64), np.array([False]), stats, 1)
    # Responses in between carry no stats: timed by their stream key.
    model._measure(np.array([[4]]), np.array([7], dtype=np.uint64), np.array([False]), None, 1)
    assert model.timed[7].tokens == 6
    model._measure(np.array([[1]]), np.array([7], dtype=np.uint64), np.array([True]),
                   np.array([[1, 2, 5, 2]], dtype=np.int64), 1)
    assert model.timed == {}
    model.metrics.flush()
    got = {(c[0], c[2]): c[3] for c in _Recorder.calls if c[1] == "inc"}
    assert got[("tritongen_generation_tokens_total", (("model", "ensemble"),))] == 6 + 7
    assert got[("tritongen_requests_total", (("finish_reason", "length"), ("model", "ensemble")))] == 1
    assert got[("tritongen_prompt_tokens_total", (("model", "ensemble"),))] == 5


def test_a_request_with_a_lora_adapter_is_labelled_with_it(lib):
    """Every series of a request that ran with an adapter carries lora_adapter; the base model's have none."""
    metrics = lib.Metrics("ensemble")
    for adapter in ("sql", None):
        r = lib.Request(metrics, arrival_ns=10**9, prompt_tokens=3, adapter=adapter)
        r.sent(2, now_ns=2 * 10**9)
        r.finish("stop", now_ns=3 * 10**9)
    metrics.flush()
    labelled = {(name, labels) for name, _, labels, _ in _Recorder.calls if ("lora_adapter", "sql") in labels}
    plain = {(name, labels) for name, _, labels, _ in _Recorder.calls if not any(k == "lora_adapter" for k, _ in labels)}
    for name in ("tritongen_generation_tokens_total", "tritongen_prompt_tokens_total",
                 "tritongen_time_to_first_token_seconds", "tritongen_e2e_request_latency_seconds",
                 "tritongen_requests_in_flight"):
        assert any(n == name for n, _ in labelled), name
        assert any(n == name for n, _ in plain), name
    assert lib.adapter_names({"parameters": {"lora_adapters": {"string_value": '{"chef": 2, "sql": 1}'}}}) == {
        1: "sql", 2: "chef"}
    assert lib.adapter_names({}) == {}
