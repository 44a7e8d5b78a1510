"""`tritongen bench` against a real local tritonserver: the MOCK engine for speed, the tiny torch model for truth."""

from __future__ import annotations

import asyncio
import csv
import json

import pytest
from click.testing import CliRunner

from conftest import render
from tritongen.cli import cli
from tritongen.clients import bench

pytestmark = pytest.mark.server

STEP_MS = 3.0


@pytest.fixture(scope="module")
def mock_server(tiny_dir, session_root, server_factory):
    repo = render("tiny", session_root / "repos" / "bench-mock",
                  **{"cpu.engine": "mock", "cpu.mock_step_ms": STEP_MS})
    return server_factory(repo, "test-bench-mock")


def _bench(args, tmp_path):
    out = tmp_path / "results"
    result = CliRunner().invoke(cli, ["bench", *args, "--out", str(out)])
    return result, out


def test_grpc_bench_produces_every_metric_and_file(mock_server, tmp_path):
    result, out = _bench(["--url", mock_server.grpc_url, "--concurrency", "1,4", "--requests", "8",
                          "--input-len", "24", "--output-len", "12"], tmp_path)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert [lv["concurrency"] for lv in data["levels"]] == [1, 4]
    for lv in data["levels"]:
        assert (lv["requests"], lv["completed"], lv["errors"]) == (8, 8, 0)
        assert lv["output_tokens"] == 8 * 12 and lv["output_tokens_mean"] == 12  # min_tokens = max_tokens
        assert lv["input_tokens_mean"] == 25  # 24 prompt tokens + the BOS the preprocessing adds
        assert lv["token_count_source"] == "num_output_tokens"
        for name in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"):
            s = lv[name]
            assert 0 < s["min"] <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"], name
        assert lv["itl_ms"]["count"] == 8 * 11
        # the MOCK sleeps STEP_MS after every decode step, so tokens cannot come faster than that
        assert lv["tpot_ms"]["p50"] >= STEP_MS * 0.9
        assert lv["e2e_ms"]["min"] >= lv["ttft_ms"]["min"]
        assert lv["output_tokens_per_s"] > 0 and lv["request_throughput"] > 0
        assert lv["client_cpu_s"] > 0 and lv["client_cpu_ms_per_1k_tokens"] > 0
    # provenance: the spec comes from the served repository's lock file, plus versions and the revision
    assert data["spec_source"].endswith("tritongen.lock.yaml")
    assert data["spec"]["cpu"]["engine"] == "mock"
    assert data["versions"]["tritonserver"] and data["versions"]["tritongen"]
    assert data["prompts"].startswith("synthetic:")
    assert "git_revision" in data
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["concurrency"] for r in rows] == ["1", "4"]
    assert {"ttft_ms_p99", "itl_ms_p50", "e2e_ms_max", "output_tokens_per_s", "client_cpu_ms_per_1k_tokens"} \
        <= set(rows[0])
    assert (out / "throughput_latency.png").read_bytes()[:4] == b"\x89PNG"
    assert "TTFT p50/p99 ms" in result.output


def test_http_generate_stream_bench(mock_server, tmp_path):
    result, out = _bench(["--protocol", "http", "--url", mock_server.http_url, "--concurrency", "3",
                          "--requests", "6", "--input-len", "16", "--output-len", "10", "--no-plot"], tmp_path)
    assert result.exit_code == 0, result.output
    lv = json.loads((out / "results.json").read_text())["levels"][0]
    assert (lv["completed"], lv["output_tokens"], lv["input_tokens_mean"]) == (6, 60, 17)
    assert lv["ttft_ms"]["p50"] > 0 and lv["tpot_ms"]["p50"] >= STEP_MS * 0.9
    assert not (out / "throughput_latency.png").exists()


def test_slo_violation_exits_non_zero_after_writing_results(mock_server, tmp_path):
    result, out = _bench(["--url", mock_server.grpc_url, "--concurrency", "2", "--requests", "4",
                          "--input-len", "8", "--output-len", "6", "--no-plot",
                          "--slo", "ttft_p99=0.001ms,error_rate=0"], tmp_path)
    assert result.exit_code == 10, result.output
    assert "SLO violated" in result.output and "ttft_p99" in result.output
    data = json.loads((out / "results.json").read_text())
    assert data["slo"] == ["ttft_p99=0.001ms", "error_rate=0"]
    assert len(data["slo_violations"]) == 1 and data["slo_violations"][0].startswith("c=2: ttft_p99")
    ok, _ = _bench(["--url", mock_server.grpc_url, "--concurrency", "2", "--requests", "4", "--input-len", "8",
                    "--output-len", "6", "--no-plot", "--slo", "ttft_p99=60s,error_rate=0"], tmp_path / "ok")
    assert ok.exit_code == 0, ok.output
    assert "all met" in ok.output


def test_duration_mode_and_library_reuse(mock_server):
    config = bench.BenchConfig(url=mock_server.grpc_url, duration=0.6, input_len=8, output_len=4, warmup=0)
    prompts, _ = bench.load_prompts(config, count=4)
    seen = []
    level = asyncio.run(bench.run_level(config, 2, prompts, progress=lambda *a: seen.append(a)))
    assert level.completed >= 2 and level.errors == 0 and level.duration_s >= 0.6
    assert level.completed == len(seen) and seen[-1][1] == level.requests and seen[-1][2] is None
    assert json.loads(json.dumps(level.to_dict()))["concurrency"] == 2


def test_failed_requests_are_counted_and_reported(mock_server, tmp_path):
    # the tiny repository caps prompts at max_input_len=1024 tokens, so every request is refused
    result, out = _bench(["--url", mock_server.grpc_url, "--concurrency", "2", "--requests", "2",
                          "--input-len", "1500", "--output-len", "4", "--no-plot", "--warmup", "0"], tmp_path)
    assert result.exit_code == 9, result.output
    assert "every request failed" in result.output
    lv = json.loads((out / "results.json").read_text())["levels"][0]
    assert (lv["completed"], lv["errors"]) == (0, 2) and lv["error_messages"]


def test_unreachable_model_fails_fast(mock_server, tmp_path):
    result, _ = _bench(["--url", mock_server.grpc_url, "--model", "no_such_model", "--concurrency", "1",
                        "--requests", "1"], tmp_path)
    assert result.exit_code == 9
    assert "not ready" in result.output


def test_bench_the_tiny_torch_model(tiny_server):
    """The real (tiny) PyTorch model behind the streaming ensemble: exact output lengths and sane timings."""
    config = bench.BenchConfig(url=tiny_server.grpc_url, concurrency=[2], requests=4, input_len=16, output_len=8)
    result = bench.run(config)
    lv = result.levels[0]
    assert (lv.completed, lv.errors, lv.output_tokens) == (4, 0, 32)
    assert lv.input_tokens_mean == 17
    assert lv.ttft_ms.p50 > 0 and lv.itl_ms.count == 4 * 7 and lv.e2e_ms.p50 >= lv.ttft_ms.p50
    assert result.metadata["tokenizer_dir"] and result.metadata["spec"]
    assert result.metadata["prompts"].startswith("synthetic:")
