"""llmapi route: rendering (golden files), the LLM() arguments the spec implies, what the route refuses, and the
validator's llmapi checks. No server here; tests/test_llmapi_server.py serves the repository for real."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import GOLDEN, REPO_ROOT, check_golden_tree
from tritongen import contract
from tritongen.cli import cli
from tritongen.errors import GatingError, SpecError
from tritongen.render import write_repo
from tritongen.repo.validate import dtype_name, params_of, parse_config, validate_repo
from tritongen.routes.llmapi import tensors as llmapi
from tritongen.spec import load_spec

FIXED = {"route": "llmapi", "model.checkpoint_dir": "/models/llama3-8b"}
TEMPLATES = REPO_ROOT / "templates" / "llmapi"



def _render(tmp_path: Path, model: str = "llama3-8b", sets: list[str] | None = None, **options) -> Path:
    spec = load_spec(model, options={**FIXED, **options}, sets=sets or [])
    return write_repo(spec, tmp_path / "repo", force=True)


def _yaml(repo: Path) -> dict:
    return yaml.safe_load((repo / "tensorrt_llm" / "1" / "model.yaml").read_text())


def test_golden_llmapi_llama3_8b_repository(tmp_path):
    """The llmapi repository for llama3-8b, byte for byte (TRITONGEN_UPDATE_GOLDEN=1 refreshes it)."""
    out = write_repo(load_spec("llama3-8b", options=FIXED), tmp_path / "llama3-8b")
    got = check_golden_tree(out, GOLDEN / "llmapi" / "llama3-8b")
    assert sorted(got) == ["ensemble/1/contract_tables.py", "ensemble/1/llm_metrics.py", "ensemble/1/model.py",
                           "ensemble/1/textcodec.py",
                           "ensemble/config.pbtxt",
                           "tensorrt_llm/1/llmapi_guided.py", "tensorrt_llm/1/lora_request.py",
                           "tensorrt_llm/1/model.py", "tensorrt_llm/1/model.yaml",
                           "tensorrt_llm/config.pbtxt", "tritongen.lock.yaml"]


def test_llmapi_repository_validates_and_follows_upstreams_contract(tmp_path):
    repo = _render(tmp_path)
    report = validate_repo(repo)
    assert report.errors == []
    # The only warning: the checkpoint path does not exist on this machine.
    assert [p.field for p in report.warnings] == ["model"]
    llm = parse_config(repo / "tensorrt_llm" / "config.pbtxt")
    assert llm.backend == "python" and llm.max_batch_size == 0 and llm.model_transaction_policy.decoupled
    assert [(t.name, dtype_name(t.data_type), list(t.dims), t.optional) for t in llm.input] == [
        (t.name, t.dtype, list(t.dims), t.optional) for t in llmapi.LLMAPI_INPUTS]
    assert [(t.name, dtype_name(t.data_type), list(t.dims)) for t in llm.output] == [
        (t.name, t.dtype, list(t.dims)) for t in llmapi.LLMAPI_OUTPUTS]
    assert params_of(llm) == {"tritongen_trtllm_version": "1.2.1"}
    front = parse_config(repo / "ensemble" / "config.pbtxt")
    assert front.name == "ensemble" and front.backend == "python" and front.max_batch_size == 64
    assert [t.name for t in front.input] == [t.name for t in contract.CLIENT_INPUTS]
    assert [t.name for t in front.output] == [t.name for t in contract.CLIENT_OUTPUTS]
    assert params_of(front) == {
        "tokenizer_dir": "/models/llama3-8b", "trust_remote_code": "false", "llm_model": "tensorrt_llm",
        "llm_decoupled": "true", "exclude_input_in_output": "true", "max_input_len": "4096", "max_seq_len": "8192",
        "max_prompt_bytes": "0", "guided_decoding": "none", "metrics": "true",
    }
    data = _yaml(repo)
    assert data["triton_config"] == {"max_batch_size": 0, "decoupled": True}
    assert data["model"] == "/models/llama3-8b" and data["backend"] == "pytorch"
    lock = yaml.safe_load((repo / "tritongen.lock.yaml").read_text())
    assert lock["route"] == "llmapi"
    assert lock["container"] == {"image": "nvcr.io/nvidia/tritonserver:26.07-trtllm-python-py3",
                                 "trtllm_version": "1.2.1"}


def test_model_yaml_carries_what_the_spec_implies(tmp_path):
    repo = _render(tmp_path, "mixtral-8x7b", sets=[
        "model.checkpoint_dir=/models/mixtral", "parallelism.tp=4", "parallelism.ep=2", "parallelism.pp=2",
        "parallelism.gpu_ids=[0,1,2,3,4,5,6,7]", "kv_cache.enable_reuse=true", "kv_cache.free_gpu_mem_fraction=0.75",
        "kv_cache.max_tokens=200000", "kv_cache.host_memory_bytes=1000000", "precision.kv_cache_dtype=fp8",
        "limits.max_batch_size=32", "limits.max_num_tokens=4096", "limits.max_seq_len=16384",
        "limits.max_input_len=8192", "scheduling.batch_scheduler_policy=max_utilization",
        "scheduling.enable_chunked_context=true", "serving.streaming=false", "model.trust_remote_code=true",
    ])
    data = _yaml(repo)
    assert data["tensor_parallel_size"] == 4 and data["pipeline_parallel_size"] == 2
    assert data["moe_expert_parallel_size"] == 2 and data["moe_tensor_parallel_size"] == 2
    assert data["kv_cache_config"] == {"free_gpu_memory_fraction": 0.75, "enable_block_reuse": True, "dtype": "fp8",
                                       "max_tokens": 200000, "host_cache_size": 1000000}
    assert (data["max_batch_size"], data["max_num_tokens"], data["max_seq_len"], data["max_input_len"]) == (
        32, 4096, 16384, 8192)
    assert data["scheduler_config"] == {"capacity_scheduler_policy": "MAX_UTILIZATION"}
    assert data["enable_chunked_prefill"] is True and data["trust_remote_code"] is True
    assert data["triton_config"] == {"max_batch_size": 0, "decoupled": False}
    llm = parse_config(repo / "tensorrt_llm" / "config.pbtxt")
    assert llm.model_transaction_policy.decoupled is False
    assert params_of(llm)["tritongen_gpu_ids"] == "0,1,2,3,4,5,6,7"
    assert params_of(parse_config(repo / "ensemble" / "config.pbtxt"))["llm_decoupled"] == "false"
    text = (repo / "tensorrt_llm" / "1" / "model.yaml").read_text()
    assert "one worker per GPU" in text and "CUDA_VISIBLE_DEVICES" in text
    assert validate_repo(repo).errors == []


def test_eagle_and_prequantized_fp8(tmp_path):
    repo = _render(tmp_path, sets=["decoding.speculative.method=eagle",
                                   "decoding.speculative.heads_dir=/models/eagle3-llama3.1-8b",
                                   "precision.format=fp8"])
    data = _yaml(repo)
    assert data["speculative_config"] == {"decoding_type": "Eagle", "max_draft_len": 3,
                                          "speculative_model_dir": "/models/eagle3-llama3.1-8b"}
    assert "quant_config" not in data  # the PyTorch LLM reads the quantization from the checkpoint
    assert "pre-quantized" in (repo / "tensorrt_llm" / "1" / "model.yaml").read_text()
    assert validate_repo(repo).errors == []


def test_prequantized_checkpoint_is_checked_when_it_is_here(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    spec_sets = [f"model.checkpoint_dir={ckpt}", "precision.format=fp8"]
    with pytest.raises(GatingError, match="pre-quantized to FP8"):
        _render(tmp_path, sets=spec_sets)
    (ckpt / "hf_quant_config.json").write_text(json.dumps({"quantization": {"quant_algo": "NVFP4"}}))
    with pytest.raises(GatingError, match="has quantization NVFP4"):
        _render(tmp_path, sets=spec_sets)
    (ckpt / "hf_quant_config.json").write_text(json.dumps({"quantization": {"quant_algo": "FP8"}}))
    repo = _render(tmp_path, sets=spec_sets)
    assert _yaml(repo)["model"] == str(ckpt)
    assert [p for p in validate_repo(repo).problems if p.field == "model"] == []


def test_hf_id_when_no_checkpoint_is_given(tmp_path):
    spec = load_spec("llama3-8b", options={"route": "llmapi"})
    repo = write_repo(spec, tmp_path / "r")
    assert _yaml(repo)["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert params_of(parse_config(repo / "ensemble" / "config.pbtxt"))["tokenizer_dir"] == \
        "meta-llama/Llama-3.1-8B-Instruct"


@pytest.mark.parametrize("sets, message", [
    (["decoding.speculative.method=medusa"], "medusa is not supported by TensorRT-LLM's PyTorch backend"),
    (["decoding.speculative.method=lookahead"], "lookahead is not supported"),
    (["decoding.speculative.method=eagle"], "needs the Eagle3 draft checkpoint"),
    (["precision.format=int8_wo"], "int8_wo is quantized at engine build time"),
    (["precision.kv_cache_dtype=int8"], "int8 KV cache is a TensorRT-engine feature"),
    (["precision.kv_cache_dtype=fp16"], "differs from the model dtype bf16"),
    (["limits.max_beam_width=2"], "no beam search input"),
    (["decoding.gather_generation_logits=true"], "returns no logits"),
    (["container.image=nvcr.io/nvidia/tritonserver:25.05-trtllm-python-py3"], "does not support the llmapi route"),
])
def test_what_the_llmapi_route_refuses(tmp_path, sets, message):
    with pytest.raises(GatingError, match=message):
        _render(tmp_path, sets=sets)


def test_refusals_are_one_line_each(tmp_path):
    with pytest.raises(GatingError) as err:
        _render(tmp_path, sets=["precision.format=w8a8_sq", "limits.max_beam_width=2"])
    assert len(str(err.value).splitlines()) == 2


def test_draft_target_is_refused_by_the_spec():
    with pytest.raises(SpecError, match="draft_target runs on the engine route"):
        load_spec("llama3-8b", options=FIXED, sets=["decoding.speculative.method=draft_target",
                                                     "decoding.speculative.draft_model=llama3.2-1b",
                                                     "serving.bls=true"])


def _edit_yaml(repo: Path, change) -> None:
    path = repo / "tensorrt_llm" / "1" / "model.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _errors(repo: Path) -> list[str]:
    return [f"{p.field}: {p.message}" for p in validate_repo(repo).errors]


@pytest.mark.parametrize("change, expected", [
    (lambda d: d.update(quant_config={"quant_algo": "FP8"}), "quant_config: not an argument of the PyTorch LLM()"),
    (lambda d: d.update(speculative_config={"decoding_type": "Medusa", "max_draft_len": 4}),
     "speculative_config.decoding_type: Medusa is not supported by the PyTorch backend"),
    (lambda d: d["triton_config"].update(decoupled=False),
     "model_transaction_policy.decoupled: true but model.yaml's triton_config.decoupled is false"),
    (lambda d: d.pop("triton_config"), "triton_config: missing"),
    (lambda d: d.update(backend="trt"), "backend: 'trt'; the llmapi Triton model runs the PyTorch backend"),
    (lambda d: d.update(tensor_parallel_size=0), "tensor_parallel_size: 0 must be a positive integer"),
    (lambda d: d["kv_cache_config"].update(free_gpu_memory_fraction=1.5),
     "kv_cache_config.free_gpu_memory_fraction: 1.5 is not in (0, 1]"),
    (lambda d: d["kv_cache_config"].update(dtype="int8"), "kv_cache_config.dtype: 'int8'"),
])
def test_validate_catches_broken_model_yaml(tmp_path, change, expected):
    repo = _render(tmp_path)
    _edit_yaml(repo, change)
    assert any(e.startswith(expected) for e in _errors(repo)), _errors(repo)


def test_validate_warns_on_unknown_llm_arguments(tmp_path):
    repo = _render(tmp_path)
    _edit_yaml(repo, lambda d: d.update(max_batchsize=8, cuda_graph_config={"enable_padding": True}))
    warnings = {p.field: p.message for p in validate_repo(repo).warnings}
    assert "max_batchsize" in warnings and "extra=forbid" in warnings["max_batchsize"]
    assert "cuda_graph_config" not in warnings  # a real TorchLlmArgs field


def test_validate_catches_bad_yaml_and_contract_drift(tmp_path):
    repo = _render(tmp_path)
    cfg = repo / "tensorrt_llm" / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace('name: "sampling_param_seed"\n    data_type: TYPE_UINT64',
                                           'name: "sampling_param_seed"\n    data_type: TYPE_INT64')
                   .replace('name: "return_stop_reason"', 'name: "return_stop_reasons"'))
    (repo / "tensorrt_llm" / "1" / "model.yaml").write_text("model: [unclosed\n")
    errors = _errors(repo)
    assert any(e.startswith("line ") and "not valid YAML" in e for e in errors)
    assert "input return_stop_reasons: not part of the llmapi model's contract; it never reads it" in errors
    assert any(e.startswith("input sampling_param_seed: TYPE_INT64 but the llmapi model uses TYPE_UINT64")
               for e in errors)
    assert any(e.startswith("input seed: TYPE_UINT64 but tensorrt_llm.sampling_param_seed is TYPE_INT64")
               for e in errors)


def test_cli_renders_and_validates_the_llmapi_route(tmp_path):
    out = tmp_path / "llmapi"
    runner = CliRunner()
    result = runner.invoke(cli, ["repo", "llama3-8b", "--route", "llmapi", "--checkpoint", "/models/llama3-8b",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "llmapi route: ensemble, tensorrt_llm" in result.output
    result = runner.invoke(cli, ["validate", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["repo", "llama3-8b", "--route", "llmapi", "--checkpoint", "/models/llama3-8b",
                                 "--out", str(tmp_path / "x"), "--set", "decoding.speculative.method=medusa"])
    assert result.exit_code == GatingError.exit_code and "PyTorch backend" in result.output


def _constants(path: Path) -> dict:
    """Module-level literal assignments of a model.py (it imports triton_python_backend_utils, so not importable)."""
    out = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def test_front_and_loader_agree_with_the_python_side(tmp_path):
    rendered = _render(tmp_path) / "ensemble" / "1"
    front = {**_constants(rendered / "model.py"), **_constants(rendered / "contract_tables.py")}
    assert front["CLIENT_TO_LLMAPI"] == llmapi.CLIENT_TO_LLMAPI
    assert set(front["UNSUPPORTED"]) == set(llmapi.UNSUPPORTED_CLIENT_INPUTS)
    assert set(llmapi.CLIENT_TO_LLMAPI) | set(llmapi.FRONT_HANDLED) | set(llmapi.UNSUPPORTED_CLIENT_INPUTS) == {
        t.name for t in contract.CLIENT_INPUTS}
    assert set(llmapi.CLIENT_TO_LLMAPI.values()) <= {t.name for t in llmapi.LLMAPI_INPUTS}
    assert set(llmapi.PASSTHROUGH_OUTPUTS) <= {t.name for t in contract.CLIENT_OUTPUTS}
    assert set(llmapi.PASSTHROUGH_OUTPUTS) <= {t.name for t in llmapi.LLMAPI_OUTPUTS}
    loader = _constants(TEMPLATES / "tensorrt_llm" / "1" / "model.py")
    assert loader["DEFAULT_IMPL_DIR"] == llmapi.CONTAINER_IMPL_DIR
    assert loader["IMPL_ENV"] == llmapi.IMPL_ENV
    # The client tensors the front forwards have the dtype of the llmapi input they go to.
    client = {t.name: t.dtype for t in contract.CLIENT_INPUTS}
    llm = {t.name: t.dtype for t in llmapi.LLMAPI_INPUTS}
    for src, dst in llmapi.CLIENT_TO_LLMAPI.items():
        assert client[src] == llm[dst], (src, dst)


def test_no_upstream_code_is_shipped():
    """tritongen loads NVIDIA's llmapi model from the container; it never carries a copy of it."""
    for path in TEMPLATES.rglob("*.py"):
        text = path.read_text()
        # Naming upstream's helper to wrap it (structured output, llmapi_guided.py) is not carrying a copy of it.
        assert "NVIDIA CORPORATION" not in text and "def get_sampling_params_from_request" not in text, path
