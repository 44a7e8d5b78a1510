"""`tritongen bench` without a server: statistics, token accounting, SLO parsing and checking, prompts, files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tritongen.clients import bench
from tritongen.errors import SloViolation, UsageError


def test_percentile_matches_numpy_linear():
    rng = np.random.default_rng(7)
    values = sorted(rng.exponential(20.0, size=257).tolist())
    for q in (0, 1, 50, 90, 99, 100):
        assert bench.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    stats = bench.Stats.of([3.0, 1.0, 2.0], scale=1e3)
    assert (stats.count, stats.min, stats.p50, stats.max, stats.mean) == (3, 1000.0, 2000.0, 3000.0, 2000.0)
    assert bench.Stats.of([]).p99 is None


def test_cumulative_token_counts_and_text_fallback():
    rec = bench.RequestRecord("r", 0.0)
    bench.record_tokens(rec, 0.010, 0, False)  # an empty first response carries no token
    bench.record_tokens(rec, 0.020, 1, True)
    bench.record_tokens(rec, 0.030, 3, True)  # two tokens in one response
    bench.record_tokens(rec, 0.031, 3, False)  # the empty final response
    assert (rec.ttft, rec.output_tokens, rec.token_times, rec.token_counts) == (0.020, 3, [0.020, 0.030], [1, 2])
    text_only = bench.RequestRecord("t", 0.0)
    for t in (0.1, 0.2):
        bench.record_tokens(text_only, t, None, True)
    bench.record_tokens(text_only, 0.3, None, False)
    assert (text_only.output_tokens, text_only.counted_by) == (2, "text chunks")


def _rec(start, times, counts, end, err=None, inp=10):
    r = bench.RequestRecord(f"id{start}", start, end=end, ttft=times[0] if times else None,
                            token_times=list(times), token_counts=list(counts), output_tokens=sum(counts),
                            input_tokens=inp, error=err)
    return r


def test_summarize_hand_computed():
    records = [
        _rec(0.0, [0.1, 0.2, 0.3, 0.4], [1, 1, 1, 1], 0.4),  # ttft 100 ms, gaps 100 ms, e2e 400 ms
        _rec(0.1, [0.2, 0.6], [1, 3], 0.8),  # ttft 200 ms, one response of 3 tokens after 400 ms
        _rec(0.2, [], [], 0.3, err="boom"),
    ]
    lv = bench.summarize(2, records, duration=2.0, cpu_s=0.016)
    assert (lv.requests, lv.completed, lv.errors) == (3, 2, 1)
    assert lv.output_tokens == 8 and lv.output_tokens_per_s == 4.0 and lv.request_throughput == 1.0
    assert lv.ttft_ms.p50 == pytest.approx(150.0) and lv.ttft_ms.max == pytest.approx(200.0)
    # ITL: 3 gaps of 100 ms, then 400 ms shared by 3 tokens -> 3 x 133.3 ms
    assert lv.itl_ms.count == 6 and lv.itl_ms.min == pytest.approx(100.0) and lv.itl_ms.max == pytest.approx(400 / 3)
    # TPOT: (0.4-0.1)/3 = 100 ms and (0.6-0.2)/3 = 133.3 ms
    assert sorted([lv.tpot_ms.min, lv.tpot_ms.max]) == pytest.approx([100.0, 400 / 3])
    assert lv.e2e_ms.min == pytest.approx(400.0) and lv.e2e_ms.max == pytest.approx(700.0)
    assert lv.client_cpu_ms_per_1k_tokens == pytest.approx(16 / 8 * 1000)
    assert lv.client_cpu_cores == pytest.approx(0.008)
    assert lv.error_messages == {"boom": 1}
    row = lv.flat()
    assert row["ttft_ms_p50"] == pytest.approx(150.0) and row["error_messages"] == "1x boom"


def test_parse_slo_units_and_errors():
    slos = bench.parse_slo("ttft_p99=500ms, itl_p99=0.05s,e2e_max=2000,tpot_p50=800us,error_rate=1%,output_tps=100")
    assert [(s.metric, s.limit, s.upper) for s in slos] == [
        ("ttft_p99", 500.0, True), ("itl_p99", 50.0, True), ("e2e_max", 2000.0, True), ("tpot_p50", 0.8, True),
        ("error_rate", 0.01, True), ("output_tps", 100.0, False)]
    for bad in ("ttft=5ms", "ttft_p99", "latency_p99=5", "ttft_p99=fast", "output_tps=5ms", "itl_p50=3%", ","):
        with pytest.raises(UsageError):
            bench.parse_slo(bad)


def test_check_slos_reports_each_broken_level():
    fast = bench.summarize(1, [_rec(0.0, [0.01, 0.02], [1, 1], 0.02)], 1.0, 0.0)
    slow = bench.summarize(8, [_rec(0.0, [0.9, 1.0], [1, 1], 1.0), _rec(0, [], [], 1, err="x")], 1.0, 0.0)
    slos = bench.parse_slo("ttft_p99=500ms,error_rate=0,output_tps=1.5")
    broken = bench.check_slos([fast, slow], slos)
    assert broken == ["c=8: ttft_p99 900 ms > 500 ms", "c=8: error_rate 0.5 > 0"]
    result = bench.BenchResult(bench.BenchConfig(), [fast, slow], {})
    assert bench.apply_slos(result, slos) == broken
    with pytest.raises(SloViolation) as info:
        bench.raise_for_slos(result)
    assert info.value.exit_code == 10 and "2 objective(s) broken" in str(info.value)
    empty = bench.summarize(4, [_rec(0, [], [], 1, err="x")], 1.0, 0.0)
    assert bench.check_slos([empty], bench.parse_slo("itl_p50=5ms")) == ["c=4: itl_p50 has no samples (limit itl_p50=5ms)"]


def test_config_validation():
    with pytest.raises(UsageError, match="not both"):
        bench.BenchConfig(requests=4, duration=3).validate()
    with pytest.raises(UsageError, match="positive"):
        bench.BenchConfig(concurrency=[0]).validate()
    with pytest.raises(UsageError, match="protocol"):
        bench.BenchConfig(protocol="udp").validate()
    assert bench.BenchConfig().requests_for(64) == 256 and bench.BenchConfig().requests_for(1) == 8
    assert bench.BenchConfig(duration=5).requests_for(8) is None


def test_prompts_file(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "hello"}\n\n"plain string"\n{"prompt": "p", "output_len": 7}\n')
    prompts, source = bench.load_prompts(bench.BenchConfig(prompts_file=str(path)))
    assert [(p.text, p.output_len) for p in prompts] == [("hello", None), ("plain string", None), ("p", 7)]
    assert source == f"file:{path}"
    path.write_text('{"text": "ok"}\n{"nope": 1}\n')
    with pytest.raises(UsageError, match=r"p.jsonl:2: expected a string"):
        bench.load_prompts(bench.BenchConfig(prompts_file=str(path)))


def test_synthetic_prompts_have_the_exact_token_count(tiny_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    prompts = bench.synthetic_prompts(str(tiny_dir), 100, 6)
    assert len({p.text for p in prompts}) == 6
    for p in prompts:
        assert p.tokens == 100 == len(tok.encode(p.text, add_special_tokens=False))


def test_prompts_without_tokenizer_fall_back_to_words():
    prompts, source = bench.load_prompts(bench.BenchConfig(input_len=20), count=3)
    assert source.startswith("words") and all(len(p.text.split()) == 20 for p in prompts)


def test_results_files(tmp_path):
    lv = bench.summarize(2, [_rec(0.0, [0.1, 0.2], [1, 1], 0.2), _rec(0.0, [0.1, 0.3], [1, 1], 0.3)], 1.0, 0.01)
    lv4 = bench.summarize(4, [_rec(0.0, [0.2, 0.4], [1, 1], 0.5)], 1.0, 0.01)
    result = bench.BenchResult(bench.BenchConfig(concurrency=[2, 4]), [lv, lv4],
                               {"git_revision": "abc", "versions": {"tritongen": "0.1.0"}, "spec": {"x": 1}})
    files = bench.write_results(result, tmp_path / "out")
    data = json.loads(files["json"].read_text())
    assert data["schema"] == bench.SCHEMA and data["spec"] == {"x": 1} and len(data["levels"]) == 2
    rows = list(csv.DictReader(files["csv"].open()))
    assert [r["concurrency"] for r in rows] == ["2", "4"] and rows[0]["git_revision"] == "abc"
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
