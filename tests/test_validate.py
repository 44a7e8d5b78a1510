"""Every validation rule has a failing case whose one-line message is asserted.

Structural rules are exercised by mutating a rendered repository through Triton's own ModelConfig protobuf;
engine rules by editing a copy of an engine config.json in the format trtllm-build writes; the user-facing
path (`tritongen repo ... --set <wrong>`) is checked through the CLI.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from google.protobuf import text_format

from conftest import FIXTURES
from tritongen.cli import cli
from tritongen.render import write_repo
from tritongen.repo.validate import dtype_name, parse_config, validate_repo
from tritongen.spec import load_spec

ENGINES = FIXTURES / "engines"


@pytest.fixture
def engine_dir(tmp_path) -> Path:
    dest = tmp_path / "engine"
    shutil.copytree(ENGINES / "llama3-8b-fp16-tp1", dest)
    return dest


@pytest.fixture
def repo(tmp_path, engine_dir) -> Path:
    spec = load_spec("llama3-8b", options={"model.checkpoint_dir": "/models/llama3-8b", "engine.dir": engine_dir})
    return write_repo(spec, tmp_path / "repo")


def edit_engine(engine_dir: Path, fn) -> None:
    path = engine_dir / "config.json"
    cfg = json.loads(path.read_text())
    fn(cfg)
    path.write_text(json.dumps(cfg, indent=2))


def edit_config(repo: Path, model: str, fn) -> None:
    path = repo / model / "config.pbtxt"
    msg = parse_config(path)
    fn(msg)
    path.write_text(text_format.MessageToString(msg))


def errors(repo: Path, **kwargs) -> list[str]:
    return [str(p) for p in validate_repo(repo, **kwargs).errors]


def assert_one_error(repo: Path, *needles: str, **kwargs) -> str:
    found = [e for e in errors(repo, **kwargs) if all(n in e for n in needles)]
    assert found, f"no error containing {needles}: {errors(repo, **kwargs)}"
    line = found[0]
    assert "\n" not in line and " -> " in line  # one line: where, what, how to fix
    return line


def test_a_rendered_repository_with_its_engine_is_valid(repo):
    report = validate_repo(repo)
    assert report.errors == [] and report.engine is not None and report.engine.max_batch_size == 64


# -- structure -------------------------------------------------------------------------------------------


def test_unrendered_placeholders(repo):
    path = repo / "preprocessing" / "config.pbtxt"
    path.write_text(path.read_text() + '\nparameters: { key: "x" value: { string_value: "${tokenizer_dir}" } }\n')
    assert_one_error(repo, "preprocessing/config.pbtxt", "unrendered placeholder '${tokenizer_dir}'")
    (repo / "postprocessing" / "1" / "model.py").write_text("x = '{{ oops }}'\n")
    assert_one_error(repo, "postprocessing/1/model.py", "unrendered placeholder '{{'")


def test_protobuf_parse_errors_name_the_file(repo):
    path = repo / "tensorrt_llm" / "config.pbtxt"
    path.write_text(path.read_text().replace("max_batch_size: 64", "max_batch_size: sixty-four"))
    line = assert_one_error(repo, "tensorrt_llm/config.pbtxt", "protobuf", "Triton cannot parse it")
    assert ":" in line.split("Triton cannot parse it:")[1]  # line:column from the parser


def test_name_must_match_the_folder(repo):
    edit_config(repo, "postprocessing", lambda m: setattr(m, "name", "post"))
    assert_one_error(repo, "postprocessing/config.pbtxt", "name", "differs from its folder 'postprocessing'")


def test_version_folder_and_model_py_are_required(repo):
    shutil.rmtree(repo / "ensemble" / "1")
    assert_one_error(repo, "ensemble", "no numeric version folder")
    (repo / "preprocessing" / "1" / "model.py").unlink()
    assert_one_error(repo, "preprocessing/1", "python backend model without model.py")


def _step(cfg, name):
    return next(s for s in cfg.ensemble_scheduling.step if s.model_name == name)


def test_ensemble_input_map_key_must_be_a_model_input(repo):
    def bad(m):
        step = _step(m, "tensorrt_llm")
        step.input_map["runtime_top_kk"] = step.input_map.pop("runtime_top_k")
    edit_config(repo, "ensemble", bad)
    assert_one_error(repo, "step 1 (tensorrt_llm).input_map runtime_top_kk", "has no input 'runtime_top_kk'")


def test_ensemble_output_map_key_must_be_a_model_output(repo):
    def bad(m):
        step = _step(m, "postprocessing")
        step.output_map["TEXT"] = step.output_map.pop("OUTPUT")
    edit_config(repo, "ensemble", bad)
    assert_one_error(repo, "output_map TEXT", "postprocessing has no output 'TEXT'")


def test_ensemble_dtypes_must_agree(repo):
    from tritonclient.grpc import model_config_pb2 as pb

    def bad(m):
        next(t for t in m.input if t.name == "max_tokens").data_type = pb.TYPE_FP32
    edit_config(repo, "ensemble", bad)
    assert_one_error(repo, "input_map REQUEST_OUTPUT_LEN", "max_tokens is TYPE_FP32", "expects TYPE_INT32")


def test_ensemble_dims_must_agree(repo):
    def bad(m):
        t = next(t for t in m.input if t.name == "top_p")
        del t.dims[:]
        t.dims.extend([2, 2])
    edit_config(repo, "ensemble", bad)
    assert_one_error(repo, "input_map runtime_top_p", "top_p has dims [2, 2]", "expects [1]")


def test_required_inputs_must_be_mapped(repo):
    edit_config(repo, "ensemble", lambda m: _step(m, "tensorrt_llm").input_map.pop("input_lengths"))
    assert_one_error(repo, "required input 'input_lengths' of tensorrt_llm is not mapped")


def test_every_ensemble_output_is_produced(repo):
    edit_config(repo, "ensemble", lambda m: _step(m, "tensorrt_llm").output_map.pop("cum_log_probs"))
    assert_one_error(repo, "output cum_log_probs", "no step produces it")


def test_unused_ensemble_inputs_and_tensors_are_refused(repo):
    from tritonclient.grpc import model_config_pb2 as pb

    def bad(m):
        t = m.input.add()
        t.name, t.data_type = "unused_flag", pb.TYPE_BOOL
        t.dims.append(1)
        _step(m, "postprocessing").input_map.pop("SEQUENCE_LENGTH")
    edit_config(repo, "ensemble", bad)
    assert_one_error(repo, "input unused_flag", "is not used by any step")
    assert_one_error(repo, "output_map _SEQUENCE_LENGTH", "never used")


def test_step_models_must_exist(repo):
    shutil.rmtree(repo / "postprocessing")
    assert_one_error(repo, "step 2 (postprocessing).model_name", "no model 'postprocessing'")


def test_inputs_from_different_decoupled_streams_are_refused(repo):
    # Triton itself refuses this ("receives inputs originated from different decoupled models"): feed the
    # postprocessing step one tensor that comes from tensorrt_llm (decoupled) and one from preprocessing.
    from tritonclient.grpc import model_config_pb2 as pb

    def post_input(m):
        t = m.input.add()
        t.name, t.data_type, t.optional = "PROMPT_IDS", pb.TYPE_INT32, True
        t.dims.append(-1)
    edit_config(repo, "postprocessing", post_input)
    edit_config(repo, "ensemble", lambda m: _step(m, "postprocessing").input_map.__setitem__("PROMPT_IDS", "_INPUT_ID"))
    assert_one_error(repo, "step 2 (postprocessing).input_map", "different decoupled models")


def test_ensemble_batch_size_cannot_exceed_its_steps(repo):
    edit_config(repo, "preprocessing", lambda m: setattr(m, "max_batch_size", 8))
    assert_one_error(repo, "ensemble/config.pbtxt", "max_batch_size", "exceeds preprocessing's max_batch_size 8")


def test_streaming_needs_decoupled_mode(repo):
    edit_config(repo, "tensorrt_llm", lambda m: setattr(m.model_transaction_policy, "decoupled", False))
    assert_one_error(repo, "model_transaction_policy.decoupled", "streaming needs decoupled mode")


# -- engine cross-checks ---------------------------------------------------------------------------------


def test_triton_batch_size_vs_engine(repo, engine_dir):
    edit_engine(engine_dir, lambda c: c["build_config"].update(max_batch_size=32))
    assert_one_error(repo, "tensorrt_llm/config.pbtxt: max_batch_size", "64 exceeds the engine's max_batch_size 32")


def test_beam_width_vs_engine(tmp_path, engine_dir):
    spec = load_spec("llama3-8b", options={"engine.dir": engine_dir}, sets=["limits.max_beam_width=4"])
    out = write_repo(spec, tmp_path / "r", validate=False)
    assert_one_error(out, "parameters.max_beam_width", "4 exceeds the engine's max_beam_width 1")
    assert_one_error(out, "parameters.decoding_mode", "beam_search but the engine's max_beam_width is 1")


def test_input_and_sequence_lengths_vs_engine(repo, engine_dir):
    edit_engine(engine_dir, lambda c: c["build_config"].update(max_input_len=2048, max_seq_len=4096))
    assert_one_error(repo, "preprocessing/config.pbtxt", "parameters.max_input_len", "4096 exceeds the engine's max_input_len 2048")
    assert_one_error(repo, "parameters.max_seq_len", "8192 exceeds the engine's max_seq_len 4096")


def test_kv_cache_reuse_needs_paged_context_fmha(tmp_path, engine_dir):
    edit_engine(engine_dir, lambda c: c["build_config"]["plugin_config"].update(use_paged_context_fmha=False))
    spec = load_spec("llama3-8b", options={"engine.dir": engine_dir}, sets=["kv_cache.enable_reuse=true",
                                                                            "scheduling.enable_chunked_context=true"])
    out = write_repo(spec, tmp_path / "r", validate=False)
    assert_one_error(out, "enable_kv_cache_reuse", "without paged context FMHA", "--use_paged_context_fmha enable")
    assert_one_error(out, "enable_chunked_context", "without paged context FMHA")


def test_paged_kv_cache_is_required(repo, engine_dir):
    edit_engine(engine_dir, lambda c: c["build_config"].update(kv_cache_type="CONTINUOUS"))
    assert_one_error(repo, "in-flight batching needs a paged KV cache")


def test_logits_outputs_need_gathered_logits(tmp_path, engine_dir):
    spec = load_spec("llama3-8b", options={"engine.dir": engine_dir}, sets=["decoding.gather_generation_logits=true",
                                                                            "decoding.gather_context_logits=true"])
    out = write_repo(spec, tmp_path / "r", validate=False)
    assert_one_error(out, "output generation_logits", "--gather_generation_logits")
    assert_one_error(out, "output context_logits", "--gather_context_logits")


def test_world_size_must_equal_tp_times_pp(tmp_path, engine_dir):
    spec = load_spec("llama3-8b", options={"engine.dir": engine_dir}, sets=["parallelism.tp=2"])
    out = write_repo(spec, tmp_path / "r", validate=False)
    assert_one_error(out, "parallelism", "tp x pp = 2 x 1 = 2 but the engine was built for world size 1")
    assert_one_error(out, "parameters.gpu_device_ids", "2 GPU(s) for an engine of world size 1")


def test_gpu_ids_must_match_the_spec_world_size(repo):
    def bad(m):
        m.parameters["gpu_device_ids"].string_value = "0,1,2"
    edit_config(repo, "tensorrt_llm", bad)
    assert_one_error(repo, "parameters.gpu_device_ids", "3 GPU id(s) but tp x pp = 1")


def test_two_gpu_engine_matches_tp2(tmp_path):
    spec = load_spec("llama3-8b", options={"engine.dir": ENGINES / "llama3-8b-fp8-tp2"},
                     sets=["parallelism.tp=2", "precision.format=fp8", "precision.kv_cache_dtype=fp8"])
    out = write_repo(spec, tmp_path / "r")
    report = validate_repo(out)
    assert report.errors == [] and report.engine.world_size == 2


def test_speculative_mode_must_match_the_engine(tmp_path):
    medusa = ENGINES / "llama3-8b-medusa"
    plain = load_spec("llama3-8b", options={"engine.dir": medusa})
    out = write_repo(plain, tmp_path / "a", validate=False)
    assert_one_error(out, "parameters.decoding_mode", "'top_k_top_p' but the engine was built for medusa")
    ok = load_spec("llama3-8b", options={"engine.dir": medusa}, sets=["decoding.speculative.method=medusa"])
    assert errors(write_repo(ok, tmp_path / "b", validate=False)) == []
    wants_medusa = load_spec("llama3-8b", options={"engine.dir": ENGINES / "llama3-8b-fp16-tp1"},
                             sets=["decoding.speculative.method=medusa"])
    out = write_repo(wants_medusa, tmp_path / "c", validate=False)
    assert_one_error(out, "'medusa' needs an engine built for it", "no speculative decoding")


def test_engine_version_must_match_the_container(tmp_path, engine_dir):
    spec = load_spec("llama3-8b", options={"engine.dir": engine_dir,
                                           "container.image": "nvcr.io/nvidia/tritonserver:25.09-trtllm-python-py3"})
    out = write_repo(spec, tmp_path / "r", validate=False)
    assert_one_error(out, "engine version", "built by TensorRT-LLM 1.2.1", "runs 1.0.0")


def test_engine_gpu_architecture_must_match(repo, engine_dir):
    (engine_dir / "tritongen.json").write_text(json.dumps({"gpu_arch": "hopper", "gpu": "h100-sxm"}))
    assert errors(repo, gpu_arch="h200") == []
    assert_one_error(repo, "engine GPU", "built for hopper", "a100-80gb (ampere)", gpu_arch="a100-80gb")


def test_missing_engine_is_a_warning_not_an_error(tmp_path):
    out = write_repo(load_spec("llama3-8b", options={"engine.dir": "/nowhere"}), tmp_path / "r")
    report = validate_repo(out)
    assert report.errors == []
    assert any("no engine at /nowhere" in str(w) for w in report.warnings)


# -- the tensorrt_llm contract of the container's TensorRT-LLM release ------------------------------------


def _repo_for(tmp_path, tag: str) -> Path:
    spec = load_spec("llama3-8b", options={"engine.dir": "/nowhere",
                                           "container.image": f"nvcr.io/nvidia/tritonserver:{tag}-trtllm-python-py3"})
    return write_repo(spec, tmp_path / tag)


def _tensor(name: str, dtype: str, optional: bool = True):
    from tritonclient.grpc import model_config_pb2 as pb

    return pb.ModelInput(name=name, data_type=pb.DataType.Value(dtype), dims=[1], optional=optional)


def test_each_container_gets_the_contract_of_its_release(tmp_path):
    """What tensorrtllm_backend v0.19.0's config.pbtxt declares (random_seed UINT64, min_length INT32, no
    token counts) for 25.05; TensorRT-LLM 1.2's names for 26.07. Both validate."""
    old, new = _repo_for(tmp_path, "25.05"), _repo_for(tmp_path, "26.07")
    assert errors(old) == [] and errors(new) == []
    llm_old, llm_new = (parse_config(r / "tensorrt_llm" / "config.pbtxt") for r in (old, new))
    dtypes = {t.name: dtype_name(t.data_type) for t in llm_old.input}
    assert (dtypes["random_seed"], dtypes["min_length"]) == ("TYPE_UINT64", "TYPE_INT32")
    assert {"seed", "min_tokens", "return_num_input_tokens", "return_num_output_tokens"}.isdisjoint(dtypes)
    assert {"num_input_tokens", "num_output_tokens"}.isdisjoint(t.name for t in llm_old.output)
    assert {"seed", "min_tokens", "return_num_input_tokens"} <= {t.name for t in llm_new.input}
    assert {"random_seed", "min_length"}.isdisjoint(t.name for t in llm_new.input)
    assert {"num_input_tokens", "num_output_tokens"} <= {t.name for t in llm_new.output}


def test_a_name_of_the_other_generation_is_an_error_naming_the_release(tmp_path):
    old, new = _repo_for(tmp_path, "25.05"), _repo_for(tmp_path, "26.07")

    def rename(cfg, a, b):
        next(t for t in cfg.input if t.name == a).name = b

    edit_config(old, "tensorrt_llm", lambda c: rename(c, "random_seed", "seed"))
    assert_one_error(old, "input seed", "TensorRT-LLM 0.19.0", "does not read 'seed'", "reads 'random_seed' instead")
    edit_config(new, "tensorrt_llm", lambda c: rename(c, "min_tokens", "min_length"))
    assert_one_error(new, "input min_length", "TensorRT-LLM 1.2.1", "reads 'min_tokens' instead")


def test_an_input_the_release_lacks_is_an_error(tmp_path):
    old = _repo_for(tmp_path, "25.05")
    edit_config(old, "tensorrt_llm", lambda c: c.input.append(_tensor("return_num_input_tokens", "TYPE_BOOL")))
    assert_one_error(old, "input return_num_input_tokens", "TensorRT-LLM 0.19.0 (nvcr.io/nvidia/tritonserver:25.05",
                     "does not read 'return_num_input_tokens'; values sent to it are lost")


def test_an_output_the_release_never_produces_is_an_error(tmp_path):
    from tritonclient.grpc import model_config_pb2 as pb

    old = _repo_for(tmp_path, "25.05")
    edit_config(old, "tensorrt_llm", lambda c: c.output.append(
        pb.ModelOutput(name="num_output_tokens", data_type=pb.TYPE_INT32, dims=[1])))
    assert_one_error(old, "output num_output_tokens", "TensorRT-LLM 0.19.0", "does not produce 'num_output_tokens'")


def test_a_missing_required_input_is_an_error(tmp_path):
    new = _repo_for(tmp_path, "26.07")

    def drop(cfg):
        kept = [t for t in cfg.input if t.name != "request_output_len"]
        del cfg.input[:]
        cfg.input.extend(kept)

    edit_config(new, "tensorrt_llm", drop)
    assert_one_error(new, "TensorRT-LLM 1.2.1", "needs input 'request_output_len', which is not declared")


def test_a_contract_tensor_with_another_dtype_is_an_error(tmp_path):
    from tritonclient.grpc import model_config_pb2 as pb

    old = _repo_for(tmp_path, "25.05")
    edit_config(old, "tensorrt_llm", lambda c: setattr(
        next(t for t in c.input if t.name == "random_seed"), "data_type", pb.TYPE_INT32))
    assert_one_error(old, "input random_seed", "declared TYPE_INT32", "TensorRT-LLM 0.19.0", "reads TYPE_UINT64")


def test_the_release_is_the_one_recorded_in_the_lock(tmp_path):
    """A 26.07 repository whose lock says 25.05 is checked against 0.19's contract."""
    import yaml

    new = _repo_for(tmp_path, "26.07")
    lock = new / "tritongen.lock.yaml"
    data = yaml.safe_load(lock.read_text())
    data["container"] = {"image": "nvcr.io/nvidia/tritonserver:25.05-trtllm-python-py3", "trtllm_version": "0.19.0"}
    lock.write_text(yaml.safe_dump(data))
    assert_one_error(new, "input seed", "TensorRT-LLM 0.19.0", "reads 'random_seed' instead")
    assert_one_error(new, "output num_input_tokens", "does not produce")
    assert errors(new, container_trtllm="1.2.1") == []  # --container-trtllm style override wins


# -- the user-facing path ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sets, message",
    [
        (["limits.max_batch_size=128"], "128 exceeds the engine's max_batch_size 64"),
        (["limits.max_beam_width=2"], "2 exceeds the engine's max_beam_width 1"),
        (["limits.max_input_len=6000", "limits.max_num_tokens=8192"], "6000 exceeds the engine's max_input_len 4096"),
        (["decoding.gather_generation_logits=true"], "--gather_generation_logits"),
        (["parallelism.tp=2"], "the engine was built for world size 1"),
    ],
)
def test_repo_command_reports_each_wrong_setting_in_one_line(tmp_path, sets, message):
    args = ["repo", "llama3-8b", "--engine-dir", str(ENGINES / "llama3-8b-fp16-tp1"), "--out", str(tmp_path / "r")]
    for s in sets:
        args += ["--set", s]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 4, result.output
    assert message in result.output
    assert not (tmp_path / "r").exists()


def test_validate_command_exit_codes(repo):
    ok = CliRunner().invoke(cli, ["validate", str(repo)])
    assert ok.exit_code == 0 and "valid" in ok.output
    edit_config(repo, "postprocessing", lambda m: setattr(m, "name", "post"))
    bad = CliRunner().invoke(cli, ["validate", str(repo)])
    assert bad.exit_code == 4
    assert "differs from its folder" in bad.output and "1 error(s)" in bad.output
