"""Rendering: golden files, Triton's protobuf, escaping, atomic writes, idempotence, ownership."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from conftest import GOLDEN, REPO_ROOT, check_golden_tree, file_tree
from tritongen import catalog
from tritongen.cli import cli
from tritongen.errors import RepoExistsError, TritongenError
from tritongen.render import pbtxt_quote, write_repo
from tritongen.repo.lock import LOCK_NAME
from tritongen.repo.validate import params_of, parse_config, validate_repo
from tritongen.spec import load_spec

FIXED = {"model.checkpoint_dir": "/models/llama3-8b", "engine.dir": "/engines/llama3-8b"}



def test_golden_llama3_8b_repository(tmp_path):
    """The engine-route repository for llama3-8b, byte for byte (TRITONGEN_UPDATE_GOLDEN=1 refreshes it)."""
    out = write_repo(load_spec("llama3-8b", options=FIXED), tmp_path / "llama3-8b")
    check_golden_tree(out, GOLDEN / "llama3-8b")
    assert (out / "ensemble" / "1").is_dir() and (out / "tensorrt_llm" / "1").is_dir()


def test_golden_configs_for_a_trtllm_0_19_container(tmp_path):
    """25.05 runs TensorRT-LLM 0.19: tensorrt_llm reads random_seed/min_length and has no token-count tensors,
    so the ensemble and BLS feed those names and carry no num_*_tokens. Only the configs that follow the
    container are golden (pre/postprocessing and the model.py files are the same for every container)."""
    spec = load_spec("llama3-8b", options={
        **FIXED, "container.image": "nvcr.io/nvidia/tritonserver:25.05-trtllm-python-py3", "serving.bls": True})
    out = write_repo(spec, tmp_path / "r")
    configs = tmp_path / "configs"
    for model in ("ensemble", "tensorrt_llm", "tensorrt_llm_bls"):
        (configs / model).mkdir(parents=True)
        shutil.copyfile(out / model / "config.pbtxt", configs / model / "config.pbtxt")
    check_golden_tree(configs, GOLDEN / "llama3-8b-trtllm-0.19")


def test_token_counts_are_refused_where_the_backend_has_none(tmp_path):
    """Asked for by name, token_counts on a TensorRT-LLM 0.19 container is an error naming the release; with
    optional_outputs=auto they are left out (the golden ensemble above says so in a comment)."""
    image = "nvcr.io/nvidia/tritonserver:25.05-trtllm-python-py3"
    spec = load_spec("llama3-8b", options={**FIXED, "container.image": image,
                                           "serving.optional_outputs": ["log_probs", "token_counts"]})
    with pytest.raises(TritongenError, match=r"token_counts \(num_input_tokens, num_output_tokens\) is not "
                       r"produced by the tensorrt_llm backend of TensorRT-LLM 0\.19\.0"):
        write_repo(spec, tmp_path / "r")
    assert not (tmp_path / "r").exists()
    newer = load_spec("llama3-8b", options={**FIXED, "serving.optional_outputs": ["log_probs", "token_counts"]})
    ens = parse_config(write_repo(newer, tmp_path / "n") / "ensemble" / "config.pbtxt")
    assert {"num_input_tokens", "num_output_tokens"} <= {o.name for o in ens.output}


def test_every_config_parses_with_tritons_model_config_proto(tmp_path):
    out = write_repo(load_spec("llama3-8b", options=FIXED, sets=["serving.bls=true"]), tmp_path / "r")
    configs = sorted(out.glob("*/config.pbtxt"))
    assert [c.parent.name for c in configs] == ["ensemble", "postprocessing", "preprocessing", "tensorrt_llm",
                                                "tensorrt_llm_bls"]
    for cfg_path in configs:
        cfg = parse_config(cfg_path)
        assert cfg.name == cfg_path.parent.name
        assert cfg.max_batch_size == 64
    llm = parse_config(out / "tensorrt_llm" / "config.pbtxt")
    assert llm.backend == "tensorrtllm"
    assert llm.model_transaction_policy.decoupled is True
    params = params_of(llm)
    assert params["gpt_model_type"] == "inflight_fused_batching"
    assert params["decoding_mode"] == "top_k_top_p"
    assert params["gpt_model_path"] == "/engines/llama3-8b"
    assert params["gpu_device_ids"] == "0"
    assert params["executor_worker_path"].endswith("trtllmExecutorWorker")
    ens = parse_config(out / "ensemble" / "config.pbtxt")
    assert {t.name for t in ens.input} >= {"text_input", "max_tokens", "stream", "stop_words", "bad_words", "end_id",
                                           "pad_id", "top_k", "top_p", "temperature", "seed", "beam_width",
                                           "return_log_probs", "exclude_input_in_output", "frequency_penalty"}
    assert {t.name for t in ens.output} >= {"text_output", "cum_log_probs", "output_log_probs", "batch_index"}


def test_settings_reach_the_tensorrt_llm_parameters(tmp_path):
    spec = load_spec("llama3-8b", options=FIXED, sets=[
        "kv_cache.enable_reuse=true", "kv_cache.max_tokens=100000", "kv_cache.free_gpu_mem_fraction=0.8",
        "scheduling.batch_scheduler_policy=max_utilization", "scheduling.enable_chunked_context=true",
        "serving.exclude_input_in_output=false", "serving.streaming=false", "serving.normalize_log_probs=false",
        "parallelism.tp=2", "parallelism.gpu_ids=[2, 3]", "decoding.speculative.method=lookahead",
    ])
    out = write_repo(spec, tmp_path / "r", validate=False)
    cfg = parse_config(out / "tensorrt_llm" / "config.pbtxt")
    p = params_of(cfg)
    assert cfg.model_transaction_policy.decoupled is False
    assert (p["enable_kv_cache_reuse"], p["max_tokens_in_paged_kv_cache"], p["kv_cache_free_gpu_mem_fraction"]) == \
        ("true", "100000", "0.8")
    assert (p["batch_scheduler_policy"], p["enable_chunked_context"]) == ("max_utilization", "true")
    assert (p["exclude_input_in_output"], p["normalize_log_probs"], p["gpu_device_ids"]) == ("false", "false", "2,3")
    assert p["decoding_mode"] == "lookahead"
    assert (p["lookahead_window_size"], p["lookahead_ngram_size"], p["lookahead_verification_set_size"]) == ("4", "3", "4")
    medusa = load_spec("llama3-8b", options=FIXED, sets=[
        "decoding.speculative.method=medusa", "decoding.speculative.medusa_choices=[[0], [0, 0], [1]]"])
    p = params_of(parse_config(write_repo(medusa, tmp_path / "m", validate=False) / "tensorrt_llm" / "config.pbtxt"))
    assert (p["decoding_mode"], p["medusa_choices"]) == ("medusa", "{0}, {0, 0}, {1}")


HOSTILE = [
    'dir with "quotes"',
    "back\\slash\\",
    "new\nline and\ttab",
    "\" } parameters: { key: \"injected\" value: { string_value: \"x\" } } #",
    "ünïcödé 日本語 🎉",
    "'single'",
    "\x01ctrl\x7f",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_pbtxt_escaping_round_trips_hostile_strings(tmp_path, hostile):
    tok_dir = f"/models/{hostile}"
    spec = load_spec("llama3-8b", options={**FIXED, "model.tokenizer_dir": tok_dir})
    out = write_repo(spec, tmp_path / "r")
    for model in ("preprocessing", "postprocessing", "tensorrt_llm"):
        cfg = parse_config(out / model / "config.pbtxt")
        params = params_of(cfg)
        assert params["tokenizer_dir"] == tok_dir  # exactly the string, nothing more
        assert "injected" not in params


def test_pbtxt_quote_is_a_valid_literal():
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    for s in HOSTILE:
        msg = model_config_pb2.ModelConfig()
        text_format.Parse(f"name: {pbtxt_quote(s)}", msg)
        assert msg.name == s


def test_rendering_is_idempotent(tmp_path):
    spec = load_spec("llama3-8b", options=FIXED)
    first = file_tree(write_repo(spec, tmp_path / "a"))
    second = file_tree(write_repo(spec, tmp_path / "a"))
    elsewhere = file_tree(write_repo(spec, tmp_path / "b"))
    assert first == second
    # Same spec, same bytes, apart from the repository's own name in the lock file's comment.
    assert {k: v for k, v in first.items() if k != LOCK_NAME} == {k: v for k, v in elsewhere.items() if k != LOCK_NAME}


def test_failed_render_leaves_the_old_repository_untouched(tmp_path, monkeypatch):
    out = tmp_path / "r"
    write_repo(load_spec("llama3-8b", options=FIXED), out)
    before = file_tree(out)

    import tritongen.render.writer as render

    def broken(*args, **kwargs):
        raise TritongenError("template exploded half way")

    monkeypatch.setattr(render, "write_lock", broken)
    with pytest.raises(TritongenError, match="exploded"):
        write_repo(load_spec("llama3-8b", options=FIXED, sets=["limits.max_batch_size=8"]), out)
    assert file_tree(out) == before
    # No temporary or backup directories are left beside it either.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_validation_failure_writes_nothing(tmp_path):
    bad = load_spec("llama3-8b", options={**FIXED, "engine.dir": str(REPO_ROOT / "tests/fixtures/engines/llama3-8b-fp16-tp1")},
                    sets=["limits.max_batch_size=128"])
    with pytest.raises(TritongenError, match="exceeds the engine's max_batch_size 64"):
        write_repo(bad, tmp_path / "r")
    assert not (tmp_path / "r").exists()
    assert list(tmp_path.iterdir()) == []


def test_never_overwrites_what_tritongen_did_not_create(tmp_path):
    foreign = tmp_path / "r"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    spec = load_spec("llama3-8b", options=FIXED)
    with pytest.raises(RepoExistsError, match="was not created by tritongen"):
        write_repo(spec, foreign)
    assert (foreign / "notes.txt").read_text() == "mine"
    write_repo(spec, foreign, force=True)
    assert not (foreign / "notes.txt").exists() and (foreign / LOCK_NAME).is_file()


def test_refuses_to_overwrite_hand_edits(tmp_path):
    out = write_repo(load_spec("llama3-8b", options=FIXED), tmp_path / "r")
    cfg = out / "tensorrt_llm" / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace("guaranteed_no_evict", "max_utilization"))
    with pytest.raises(RepoExistsError, match="tensorrt_llm/config.pbtxt changed"):
        write_repo(load_spec("llama3-8b", options=FIXED), out)
    # validate points at the edit too, as a warning
    warnings = [str(p) for p in validate_repo(out).warnings]
    assert any("edited after tritongen wrote it" in w for w in warnings)


def test_lock_file_explains_the_repository(tmp_path):
    import yaml

    out = write_repo(load_spec("llama3-8b", options=FIXED), tmp_path / "r")
    lock = yaml.safe_load((out / LOCK_NAME).read_text())
    assert lock["tritongen_version"]
    assert lock["container"] == {"image": "nvcr.io/nvidia/tritonserver:26.07-trtllm-python-py3", "trtllm_version": "1.2.1"}
    assert lock["engine"] == {"dir": "/engines/llama3-8b", "present": False}
    assert lock["spec"]["model"]["hf_id"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert "tensorrt_llm/config.pbtxt" in lock["files"]


@pytest.mark.parametrize("model", catalog.model_names())
def test_every_catalogue_model_renders_and_validates(tmp_path, model, tiny_dir):
    options = {"model.checkpoint_dir": f"/models/{model}", "engine.dir": f"/engines/{model}"}
    if model == "tiny":
        options = {"model.checkpoint_dir": str(tiny_dir)}
    out = write_repo(load_spec(model, options=options), tmp_path / model)
    report = validate_repo(out)
    assert report.errors == []
    assert set(report.models) >= {"ensemble", "preprocessing", "tensorrt_llm", "postprocessing"}


def test_repo_cli_end_to_end_with_an_engine(tmp_path):
    engine = REPO_ROOT / "tests/fixtures/engines/llama3-8b-fp16-tp1"
    out = tmp_path / "repo"
    result = CliRunner().invoke(cli, ["repo", "llama3-8b", "--engine-dir", str(engine), "--checkpoint",
                                      "/models/llama3-8b", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    check = CliRunner().invoke(cli, ["validate", str(out)])
    assert check.exit_code == 0, check.output
    assert "valid (4 models" in check.output and "engine" in check.output


def test_any_local_checkpoint_works_like_a_catalogue_model(tmp_path, tiny_dir):
    ckpt = tmp_path / "my-llama"
    shutil.copytree(tiny_dir, ckpt)
    result = CliRunner().invoke(cli, ["repo", "my-llama", "--checkpoint", str(ckpt), "--route", "cpu",
                                      "--set", "limits.max_seq_len=2048", "--set", "limits.max_input_len=1024",
                                      "--out", str(tmp_path / "repo")])
    assert result.exit_code == 0, result.output
    import yaml

    lock = yaml.safe_load((tmp_path / "repo" / LOCK_NAME).read_text())
    model = lock["spec"]["model"]
    assert (model["name"], model["architecture"], model["num_layers"], model["hidden_size"]) == \
        ("my-llama", "LlamaForCausalLM", 2, 64)
    assert validate_repo(tmp_path / "repo").errors == []


def test_draft_target_engine_repository_has_its_draft_model(tmp_path):
    spec = load_spec("llama3-8b", options={**FIXED}, sets=[
        "decoding.speculative.method=draft_target", "decoding.speculative.draft_model=llama3.2-1b",
        "serving.bls=true", "engine.draft_dir=/engines/llama3.2-1b"])
    out = write_repo(spec, tmp_path / "dt")
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "ensemble", "postprocessing", "preprocessing", "tensorrt_llm", "tensorrt_llm_bls", "tensorrt_llm_draft"]
    draft = params_of(parse_config(out / "tensorrt_llm_draft" / "config.pbtxt"))
    assert draft["gpt_model_path"] == "/engines/llama3.2-1b" and draft["gpu_device_ids"] == "0"
    assert draft["decoding_mode"] == "top_k_top_p"
    bls = params_of(parse_config(out / "tensorrt_llm_bls" / "config.pbtxt"))
    assert (bls["draft_model"], bls["num_draft_tokens"]) == ("tensorrt_llm_draft", "4")
    assert parse_config(out / "tensorrt_llm_draft" / "config.pbtxt").name == "tensorrt_llm_draft"


def test_model_prefix_names_every_model_and_its_wiring(tmp_path):
    spec = load_spec("llama3-8b", options={**FIXED, "serving.model_prefix": "llama-", "serving.bls": True})
    out = write_repo(spec, tmp_path / "p")
    dirs = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert dirs == ["llama-ensemble", "llama-postprocessing", "llama-preprocessing", "llama-tensorrt_llm",
                    "llama-tensorrt_llm_bls"]
    ens = parse_config(out / "llama-ensemble" / "config.pbtxt")
    assert ens.name == "llama-ensemble"
    assert [s.model_name for s in ens.ensemble_scheduling.step] == [
        "llama-preprocessing", "llama-tensorrt_llm", "llama-postprocessing"]
    bls = params_of(parse_config(out / "llama-tensorrt_llm_bls" / "config.pbtxt"))
    assert (bls["preprocessing_model"], bls["llm_model"]) == ("llama-preprocessing", "llama-tensorrt_llm")
    assert (out / "llama-ensemble" / "1").is_dir() and (out / "llama-tensorrt_llm" / "1").is_dir()
    assert validate_repo(out).errors == []


def test_model_prefix_must_be_a_plain_name():
    from tritongen.errors import SpecError

    with pytest.raises(SpecError, match="serving.model_prefix"):
        load_spec("llama3-8b", sets=["serving.model_prefix=a/b"])


def test_repo_applies_a_plan_from_tritongen_plan(tmp_path):
    plan_file = tmp_path / "plan.yaml"
    planned = CliRunner().invoke(cli, ["plan", "llama3-70b", "--gpu", "h100", "--precision", "fp8", "--concurrency",
                                       "32", "--write-spec", str(plan_file)])
    assert planned.exit_code == 0, planned.output
    result = CliRunner().invoke(cli, ["repo", "llama3-70b", "--plan", str(plan_file), "--no-build", "--checkpoint",
                                      "/models/llama3-70b", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    import yaml

    plan = yaml.safe_load(plan_file.read_text())
    lock = yaml.safe_load((tmp_path / "r" / LOCK_NAME).read_text())["spec"]
    assert lock["parallelism"]["tp"] == plan["parallelism"]["tp"]
    assert lock["limits"]["max_batch_size"] == plan["limits"]["max_batch_size"]
    assert lock["precision"]["format"] == "fp8"


@pytest.mark.parametrize("value, groups", [
    ("auto", ("log_probs", "indices", "token_counts")),
    ("all", ("log_probs", "logits", "indices", "perf_metrics", "speculative", "token_counts")),
    ("[token_counts]", ("token_counts",)),
])
def test_optional_outputs_shape_one_client_contract(tmp_path, value, groups):
    """Each output the ensemble carries costs CPU on every streamed token, so a repository carries the groups its
    spec asks for - and the ensemble, tensorrt_llm_bls and the tensorrt_llm step's output_map agree on them."""
    from tritongen import contract

    spec = load_spec("llama3-8b", options=FIXED, sets=["serving.bls=true", f"serving.optional_outputs={value}"])
    out = write_repo(spec, tmp_path / "r")
    want = {"text_output", *(name for g in groups for name in contract.OUTPUT_GROUPS[g])}
    ens = parse_config(out / "ensemble" / "config.pbtxt")
    assert [o.name for o in ens.output] == [t.name for t in contract.CLIENT_OUTPUTS if t.name in want]
    bls = parse_config(out / "tensorrt_llm_bls" / "config.pbtxt")
    assert [o.name for o in bls.output] == [o.name for o in ens.output]
    llm_step = next(s for s in ens.ensemble_scheduling.step if s.model_name == "tensorrt_llm")
    assert set(llm_step.output_map.values()) == (want - {"text_output"}) | {"_TOKENS_BATCH", "_SEQUENCE_LENGTH"}
    # The engine's own contract never shrinks: the TensorRT-LLM backend produces what it produces.
    llm = parse_config(out / "tensorrt_llm" / "config.pbtxt")
    assert [o.name for o in llm.output] == [t.name for t in contract.LLM_OUTPUTS]
    if value == "all":
        assert [o.name for o in ens.output] == [t.name for t in contract.CLIENT_OUTPUTS]


def test_only_the_cpu_engine_feeds_postprocessing_a_stream_key(tmp_path, tiny_dir):
    """Exact streamed text through the ensemble needs a per-request key and a final flag from the engine (the
    cpu route's engine sends them); the engine route's ensemble must not map outputs the C++ backend lacks."""
    from tritongen import contract

    cpu = write_repo(load_spec("tiny"), tmp_path / "cpu")
    engine = write_repo(load_spec("llama3-8b", options=FIXED), tmp_path / "engine")
    for repo, route_has_keys in ((cpu, True), (engine, False)):
        ens = parse_config(repo / "ensemble" / "config.pbtxt")
        llm_step, post_step = (next(s for s in ens.ensemble_scheduling.step if s.model_name == name)
                               for name in ("tensorrt_llm", "postprocessing"))
        keyed = {post: llm_step.output_map.get(llm) for llm, post in contract.STREAM_TO_POST.items()}
        if route_has_keys:
            assert all(post_step.input_map.get(post) == tensor for post, tensor in keyed.items()), keyed
        else:
            assert keyed == dict.fromkeys(contract.STREAM_TO_POST.values())
            assert not set(contract.STREAM_TO_POST.values()) & set(post_step.input_map)
        post_cfg = parse_config(repo / "postprocessing" / "config.pbtxt")
        assert all(i.optional for i in post_cfg.input if i.name in contract.STREAM_TO_POST.values())
        llm_outputs = {o.name for o in parse_config(repo / "tensorrt_llm" / "config.pbtxt").output}
        assert (set(contract.STREAM_TO_POST) <= llm_outputs) is route_has_keys
        assert validate_repo(repo).errors == []
