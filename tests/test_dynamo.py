"""`tritongen dynamo render`: the engine arguments come from the llmapi route's own mapping, the command lines
keep every address on loopback, the DynamoGraphDeployment validates against the pinned release's schema (and
Kubernetes 1.32 for its pod templates), and the goldens of issue 14 (tests/golden/dynamo/<case>/) hold.

No Dynamo process runs here; tests/test_dynamo_live.py starts real graphs.
"""

from __future__ import annotations

import copy
import importlib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import GOLDEN, check_golden_tree
from tritongen import catalog
from tritongen.cli import cli
from tritongen.deploy.dynamo import dgd, graph
from tritongen.deploy.dynamo.graph import DynamoOptions
from tritongen.spec import load_spec

# The module, not the function of the same name that tritongen.routes.llmapi exports.
model_yaml = importlib.import_module("tritongen.routes.llmapi.model_yaml")

CASES = {
    "llama3-8b-agg-h100": ["llama3-8b", "--gpu", "h100", "--workers", "2"],
    "llama3-70b-disagg": ["llama3-70b", "--gpu", "h100", "--tp", "4", "--disagg", "1:1"],
}


def _run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _spec(model="llama3-8b", **options):
    return load_spec(model, options={"route": "llmapi", "engine.gpu": "h100", **options})


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case, tmp_path):
    out = tmp_path / case
    result = _run("dynamo", "render", *CASES[case], "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "validated" in result.output
    check_golden_tree(out, GOLDEN / "dynamo" / case)


def test_engine_args_are_the_llmapi_mapping():
    """One function for both servers: the worker's YAML is llm_args() less the model, which moves to
    --model-path; changing the mapping changes both."""
    assert graph.llm_args is model_yaml.llm_args
    spec = _spec(**{"parallelism.tp": 2, "limits.max_batch_size": 48, "precision.kv_cache_dtype": "fp8"})
    agg = graph.engine_args(spec, "agg")
    expected = {k: v for k, v in model_yaml.llm_args(spec).items() if k != "model"}
    assert agg == expected
    assert agg["tensor_parallel_size"] == 2 and agg["max_batch_size"] == 48
    assert agg["kv_cache_config"]["dtype"] == "fp8"
    # Roles only add what disaggregation needs.
    prefill, decode = graph.engine_args(spec, "prefill"), graph.engine_args(spec, "decode")
    assert {k: v for k, v in prefill.items() if k not in ("cache_transceiver_config", "disable_overlap_scheduler")} \
        == expected
    assert decode["cache_transceiver_config"] == {"backend": "DEFAULT"} and "disable_overlap_scheduler" not in decode
    assert graph.model_path(spec) == model_yaml.llm_args(spec)["model"] == "meta-llama/Llama-3.1-8B-Instruct"


def test_kv_router_turns_on_block_reuse_unless_the_spec_says_otherwise(tmp_path):
    on = _run("dynamo", "render", "llama3-8b", "--gpu", "h100", "--dry-run")
    assert "enable_block_reuse: true" in on.output
    rr = _run("dynamo", "render", "llama3-8b", "--gpu", "h100", "--router", "round-robin", "--dry-run")
    assert "enable_block_reuse: false" in rr.output
    off = _run("dynamo", "render", "llama3-8b", "--gpu", "h100", "--set", "kv_cache.enable_reuse=false",
               "--dry-run")
    assert "enable_block_reuse: false" in off.output


def test_rendered_graph_validates_and_mutations_do_not():
    spec, opts = _spec(**{"parallelism.tp": 4}), DynamoOptions(prefill=2, decode=1)
    obj = dgd.build(spec, opts)
    assert dgd.validate(obj) == []
    types = [(c["name"], c["type"], c["replicas"]) for c in obj["spec"]["components"]]
    assert types == [("Frontend", "frontend", 1), ("prefill", "prefill", 2), ("decode", "decode", 1)]
    worker = obj["spec"]["components"][1]["podTemplate"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert worker["image"] == catalog.load("dynamo/dynamo.yaml")["images"]["trtllm"]
    assert "--disaggregation-mode" in worker["args"] and "prefill" in worker["args"]

    def broken(edit):
        bad = copy.deepcopy(obj)
        edit(bad)
        return dgd.validate(bad)

    assert any("replicas" in p for p in broken(lambda o: o["spec"]["components"][0].update(replicas="two")))
    assert any("typo" in p for p in broken(lambda o: o["spec"]["components"][0].update(typo=1)))
    assert any("'router' is not one of" in p
               for p in broken(lambda o: o["spec"]["components"][0].update(type="router")))
    assert any("podTemplate" in p for p in broken(
        lambda o: o["spec"]["components"][1]["podTemplate"]["spec"]["containers"][0].update(imagePullPolicy=3)))
    assert any("appears more than once" in p for p in broken(
        lambda o: o["spec"]["components"].append(copy.deepcopy(o["spec"]["components"][1]))))
    assert any("apiVersion" in p for p in broken(lambda o: o.update(apiVersion="nvidia.com/v1alpha1")))


def test_a_worker_larger_than_a_node_spans_nodes():
    spec = _spec("llama3-70b", **{"parallelism.tp": 8, "parallelism.pp": 2})
    obj = dgd.build(spec, DynamoOptions())
    assert dgd.validate(obj) == []
    worker = obj["spec"]["components"][1]
    assert worker["multinode"] == {"nodeCount": 2}
    assert worker["podTemplate"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert "multinode" not in dgd.build(_spec(), DynamoOptions())["spec"]["components"][1]


def test_schema_is_data_with_source_and_version():
    text = (Path(catalog.__file__).parent / dgd.SCHEMA_FILE).read_text()
    assert "Release: ai-dynamo 1.6.1" in text and "Source:" in text
    stored = catalog.load(dgd.SCHEMA_FILE)
    assert (stored["group"], stored["kind"], stored["version"]) == ("nvidia.com", "DynamoGraphDeployment", "v1beta1")
    rel = catalog.load("dynamo/dynamo.yaml")
    assert rel["version"] == "1.6.1" and rel["images"]["trtllm"].endswith(":" + rel["version"])
    assert rel["dgd_api_version"] == f"{stored['group']}/{stored['version']}"


def test_local_commands_are_loopback_only():
    spec = load_spec("tiny", options={"route": "llmapi"})
    procs = graph.local_processes(spec, DynamoOptions(workers=2, mocker=True), python="python3")
    assert [p.name for p in procs] == ["frontend", "worker-0", "worker-1"]
    for p in procs:
        assert {k: p.env[k] for k in graph.HOST_VARS} == dict.fromkeys(graph.HOST_VARS, "127.0.0.1")
        assert p.argv[p.argv.index("--discovery-backend") + 1] == "file"
        assert p.argv[p.argv.index("--request-plane") + 1] == "tcp"
    fe = procs[0].argv
    assert fe[fe.index("--http-host") + 1] == "127.0.0.1"
    worker = procs[1].argv
    assert worker[worker.index("--engine-type") + 1] == "trtllm"
    assert worker[worker.index("--max-num-seqs") + 1] == str(spec.limits.max_batch_size)


def test_run_script_sets_every_host_var_and_a_loopback_broker(tmp_path):
    out = tmp_path / "r"
    assert _run("dynamo", "render", "llama3-8b", "--gpu", "h100", "--out", str(out)).exit_code == 0
    script = (out / "run-local.sh").read_text()
    for var in graph.HOST_VARS:
        assert f"export {var}=127.0.0.1" in script
    assert "DYN_ZMQ_BROKER_URL" in script and "0.0.0.0" not in script.replace("bind 0.0.0.0", "")
    assert (out / "run-local.sh").stat().st_mode & 0o111
    docs = list(yaml.safe_load_all((out / "k8s" / "dynamo-graph.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["ConfigMap", "DynamoGraphDeployment"]
    assert docs[0]["data"]["engine-agg.yaml"] == (out / "engine-agg.yaml").read_text().split("\n", 2)[2]


@pytest.mark.parametrize("args, code, words", [
    (["--disagg", "1:0"], 3, "prefill and one decode"),
    (["--disagg", "x"], 2, "give P:D"),
    (["--route", "engine"], 2, "llmapi"),
    (["--workers", "0"], 3, "--workers"),
    (["--precision", "int8_wo"], 6, "pre-quantized"),
])
def test_bad_options_fail_in_one_line(args, code, words):
    result = CliRunner().invoke(cli, ["dynamo", "render", "llama3-8b", "--gpu", "h100", "--dry-run", *args])
    assert result.exit_code == code, result.output
    assert words in result.output


def test_refuses_to_overwrite_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["dynamo", "render", "llama3-8b", "--gpu", "h100", "--out", str(out)])
    assert result.exit_code == 5 and (out / "notes.txt").exists()
    assert _run("dynamo", "render", "llama3-8b", "--gpu", "h100", "--out", str(out), "--force").exit_code == 0
    assert _run("dynamo", "render", "llama3-8b", "--gpu", "h100", "--out", str(out)).exit_code == 0


def test_up_without_mocker_or_tensorrt_llm_says_so():
    result = CliRunner().invoke(cli, ["dynamo", "up", "tiny", "--http-port", "1"])
    assert result.exit_code != 0 and "--mocker" in result.output


def test_a_dead_graph_is_reported_and_its_record_removed_by_stop(tmp_path):
    """The registry knows the dynamo runtime: status/stop handle a graph record whose processes are gone."""
    from tritongen.runtime import base, state

    assert isinstance(base.RUNTIMES["dynamo"], base.DynamoRuntime)
    gone = 2 ** 22 + 12345  # above the usual pid range: no such process
    record = state.ServerRecord(
        name="deadgraph", repo=str(tmp_path), runtime="dynamo", launcher="dynamo", host="127.0.0.1", http_port=1,
        grpc_port=0, metrics_port=1, log=str(tmp_path / "frontend.log"), pid=gone,
        extra={"processes": [{"name": n, "role": r, "pid": gone + i, "log": str(tmp_path / f"{n}.log")}
                             for i, (n, r) in enumerate([("broker", "broker"), ("frontend", "frontend"),
                                                         ("worker-0", "agg")])],
               "model": "tiny", "workers": 1})
    record.save()
    status = _run("status").output
    assert "deadgraph" in status and "dead" in status.split("deadgraph", 1)[1].splitlines()[0]
    assert "==> worker-0 (pid" in _run("logs", "deadgraph").output
    result = _run("stop", "deadgraph")
    assert "removed stale record of 'deadgraph' (dynamo" in result.output
    assert not state.find("deadgraph")
