"""LoRA adapters (spec ``lora``) without a server: spec validation, the rendered repositories of the cpu and
engine routes (parsed with Triton's model_config_pb2), and the engine build plan (golden dry-run, every flag
against the recorded TensorRT-LLM 1.2.1 interface). The served behaviour is in test_lora_server.py."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from lora_adapters import standin_adapter
from test_engine_plan import _check_tool_flags, _split
from test_engine_support import GOLDEN_ENGINE, make_checkpoint, no_gpu_host, normalise, recorded_tools

from tritongen.cli import cli
from tritongen.errors import SpecError
from tritongen.render import write_repo
from tritongen.repo.report import params_of, parse_config
from tritongen.spec import load_spec


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A private cache and models dir (two STAND-IN adapters and a llama3-8b config), no docker/nvidia-smi."""
    models = no_gpu_host(tmp_path, monkeypatch) / "models"
    make_checkpoint(models / "llama3-8b", "llama3-8b")
    standin_adapter(models / "sql", 16, ("q_proj", "k_proj", "v_proj", "o_proj"))
    standin_adapter(models / "chat", 8, ("q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"))
    return tmp_path


def _adapters(root: Path) -> dict[str, str]:
    return {"sql": str(root / "models" / "sql"), "chat": str(root / "models" / "chat")}


# -- the spec ----------------------------------------------------------------------------------------------


def _spec_error(tmp_path, **options) -> str:
    with pytest.raises(SpecError) as info:
        load_spec("tiny", options=options)
    return str(info.value)


def test_task_ids_follow_the_spec_order_and_modules_default_to_the_adapters(env):
    spec = load_spec("llama3-8b", options={"lora.adapters": _adapters(env)})
    assert spec.lora.task_ids == {"sql": 1, "chat": 2}
    # TensorRT-LLM's order and names: gate_proj is mlp_h_to_4h, up_proj mlp_gate.
    assert spec.lora.resolved_target_modules == ["attn_q", "attn_k", "attn_v", "attn_dense", "mlp_h_to_4h",
                                                 "mlp_gate", "mlp_4h_to_h"]


def test_a_missing_adapter_folder_is_one_line(tmp_path):
    msg = _spec_error(tmp_path, **{"lora.adapters": {"a": str(tmp_path / "nowhere")}})
    assert msg == f"lora.adapters.a: {tmp_path / 'nowhere'} does not exist (a Hugging Face PEFT adapter folder is " \
                  "expected)"


def test_a_folder_that_is_not_a_peft_adapter_is_one_line(tmp_path):
    (tmp_path / "plain").mkdir()
    assert _spec_error(tmp_path, **{"lora.adapters": {"a": str(tmp_path / "plain")}}) == \
        f"lora.adapters.a: {tmp_path / 'plain'} has no adapter_config.json: not a PEFT adapter folder"
    standin_adapter(tmp_path / "ia3", peft_type="IA3")
    assert "is a 'IA3' adapter; only LORA adapters are served" in \
        _spec_error(tmp_path, **{"lora.adapters": {"a": str(tmp_path / "ia3")}})
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    assert "has no adapter_model.safetensors" in _spec_error(tmp_path, **{"lora.adapters": {"a": str(tmp_path / "noweights")}})


def test_a_rank_over_max_rank_is_one_line(tmp_path):
    standin_adapter(tmp_path / "big", rank=32)
    msg = _spec_error(tmp_path, **{"lora.adapters": {"big": str(tmp_path / "big")}, "lora.max_rank": 16})
    assert msg == "lora.adapters.big: rank 32 exceeds lora.max_rank=16; raise lora.max_rank to at least 32"


def test_target_modules_must_cover_the_adapters(tmp_path):
    standin_adapter(tmp_path / "a", modules=("q_proj", "down_proj"))
    msg = _spec_error(tmp_path, **{"lora.adapters": {"a": str(tmp_path / "a")}, "lora.target_modules": ["attn_q"]})
    assert msg == "lora.adapters.a: adapts down_proj but lora.target_modules lacks mlp_4h_to_h"
    assert "'attn_x' is not a TensorRT-LLM LoRA module" in _spec_error(tmp_path, **{"lora.target_modules": ["attn_x"]})


def test_every_problem_is_its_own_line(tmp_path):
    msg = _spec_error(tmp_path, **{"lora.adapters": {"a": str(tmp_path / "x"), "b": str(tmp_path / "y")}})
    assert len(msg.splitlines()) == 2 and all(line.startswith("lora.adapters.") for line in msg.splitlines())


def test_set_takes_one_adapter_at_a_time(env):
    result = CliRunner().invoke(cli, ["spec", "llama3-8b", "--set", f"lora.adapters.sql={env}/models/sql"])
    assert result.exit_code == 0, result.output
    assert f"sql: {env}/models/sql" in result.output


# -- rendered repositories -----------------------------------------------------------------------------------


def _configs(repo: Path) -> dict:
    return {p.parent.name: parse_config(p) for p in repo.glob("*/config.pbtxt")}


def test_without_adapters_the_ensemble_passes_lora_task_id_straight_through(tmp_path):
    cfgs = _configs(write_repo(load_spec("tiny"), tmp_path / "r"))
    llm_step = cfgs["ensemble"].ensemble_scheduling.step[1]
    assert llm_step.input_map["lora_task_id"] == "lora_task_id"
    assert "lora_name" not in {i.name for i in cfgs["ensemble"].input}
    assert "LORA_NAME" not in {i.name for i in cfgs["preprocessing"].input}
    assert "lora_adapters" not in params_of(cfgs["tensorrt_llm"])


def test_cpu_repository_maps_the_adapter_name_through_preprocessing(env, tmp_path):
    spec = load_spec("tiny", options={"lora.adapters": _adapters(env), "serving.bls": True})
    cfgs = _configs(write_repo(spec, tmp_path / "r"))
    ens = cfgs["ensemble"]
    assert "lora_name" in {i.name for i in ens.input}
    pre_step, llm_step = ens.ensemble_scheduling.step[0], ens.ensemble_scheduling.step[1]
    assert pre_step.input_map["LORA_NAME"] == "lora_name"
    assert pre_step.input_map["LORA_TASK_ID"] == "lora_task_id"
    assert pre_step.output_map["OUT_LORA_TASK_ID"] == llm_step.input_map["lora_task_id"]
    assert {"LORA_NAME", "LORA_TASK_ID"} <= {i.name for i in cfgs["preprocessing"].input}
    assert "OUT_LORA_TASK_ID" in {o.name for o in cfgs["preprocessing"].output}
    assert json.loads(params_of(cfgs["preprocessing"])["lora_adapters"]) == {"chat": 2, "sql": 1}
    assert json.loads(params_of(cfgs["tensorrt_llm"])["lora_adapters"]) == {
        "1": ["sql", _adapters(env)["sql"]], "2": ["chat", _adapters(env)["chat"]]}
    assert "lora_name" in {i.name for i in cfgs["tensorrt_llm_bls"].input}
    tables: dict = {}
    exec((tmp_path / "r" / "tensorrt_llm_bls" / "1" / "contract_tables.py").read_text(), tables)
    assert tables["CLIENT_TO_PRE"]["lora_name"] == "LORA_NAME"
    assert tables["PRE_TO_LLM"]["OUT_LORA_TASK_ID"] == "lora_task_id"
    assert "lora_task_id" not in tables["CLIENT_TO_LLM"]  # one source per tensorrt_llm input
    assert (tmp_path / "r" / "tensorrt_llm" / "1" / "lora.py").is_file()
    assert (tmp_path / "r" / "preprocessing" / "1" / "lora_names.py").is_file()


def test_engine_repository_gets_the_lora_cache_parameters(env, tmp_path):
    engine = "/engines/llama3-8b"
    spec = load_spec("llama3-8b", options={
        "lora.adapters": _adapters(env), "lora.cache.optimal_adapter_size": 16, "lora.cache.max_adapter_size": 128,
        "lora.cache.gpu_memory_fraction": 0.1, "lora.cache.host_memory_bytes": 1 << 30, "engine.dir": engine,
        "model.checkpoint_dir": "/models/llama3-8b"})
    cfgs = _configs(write_repo(spec, tmp_path / "r"))
    params = params_of(cfgs["tensorrt_llm"])
    assert {k: v for k, v in params.items() if k.startswith("lora_")} == {
        "lora_cache_optimal_adapter_size": "16", "lora_cache_max_adapter_size": "128",
        "lora_cache_gpu_memory_fraction": "0.1", "lora_cache_host_memory_bytes": str(1 << 30),
        "lora_prefetch_dir": f"{engine}/lora_tasks"}
    # The engine backend's lora_task_id comes from preprocessing, as on the cpu route.
    llm_step = cfgs["ensemble"].ensemble_scheduling.step[1]
    assert llm_step.input_map["lora_task_id"] == "_OUT_LORA_TASK_ID"


def test_the_backend_reads_every_lora_parameter_tritongen_renders():
    """The five parameter names as the TensorRT-LLM backend reads them (tensorrtllm_backend
    inflight_batcher_llm/src/model_instance_state.cc, getPeftCacheConfigFromParams), recorded here once."""
    from tritongen.routes import lora
    from tritongen.spec.lora import LoraCache

    spec = load_spec("llama3-8b")
    cache = {f: 1 for f in LoraCache.model_fields if f not in ("prefetch", "gpu_memory_fraction")}
    spec.lora.cache = LoraCache(**cache, gpu_memory_fraction=0.5)
    assert set(lora.engine_parameters(spec, "/e")) == {
        "lora_cache_optimal_adapter_size", "lora_cache_max_adapter_size", "lora_cache_gpu_memory_fraction",
        "lora_cache_host_memory_bytes", "lora_prefetch_dir"}


# -- the engine build ------------------------------------------------------------------------------------------


def _dry_run(env) -> str:
    sets = [a for name, path in _adapters(env).items() for a in ("--set", f"lora.adapters.{name}={path}")]
    result = CliRunner().invoke(cli, ["engine", "llama3-8b", "--precision", "fp16", "--gpu", "h100",
                                      "--checkpoint", str(env / "models" / "llama3-8b"), *sets, "--dry-run"])
    assert result.exit_code == 0, result.output
    return result.output


def test_dry_run_matches_golden_plan(env):
    text = normalise(_dry_run(env), env)
    golden = GOLDEN_ENGINE / "lora.txt"
    if os.environ.get("TRITONGEN_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_build_flags_and_conversion_steps_are_recorded_for_the_pinned_version(env):
    flags_yaml, tools_yaml = recorded_tools()
    commands = [shlex.split(line.strip()[2:]) for line in _dry_run(env).splitlines() if line.startswith("  $ ")]
    tools = [_split(argv)[1] for argv in commands]
    build = next(t for t in tools if t[0] == "trtllm-build")
    seen = _check_tool_flags(build, flags_yaml, tools_yaml)
    assert {"--lora_plugin", "--lora_dir", "--max_lora_rank", "--lora_target_modules"} <= set(seen)
    assert build[build.index("--lora_dir") + 1: build.index("--lora_dir") + 3] == ["/lora/sql", "/lora/chat"]
    converts = [t for t in tools if t[:2] == ["python3", "/app/examples/hf_lora_convert.py"]]
    assert len(converts) == 2
    for tool in converts:
        assert set(_check_tool_flags(tool, flags_yaml, tools_yaml)) == {"--in-file", "--out-dir", "--storage-type"}
    # Into the folder the rendered lora_prefetch_dir names, one per task id.
    assert [t[t.index("--out-dir") + 1] for t in converts] == ["/work/engine/lora_tasks/1",
                                                                "/work/engine/lora_tasks/2"]


def test_adapters_change_the_engine_cache_key_and_no_adapters_keep_it(env):
    from tritongen.engine import cache

    plain = load_spec("llama3-8b")
    with_lora = load_spec("llama3-8b", options={"lora.adapters": _adapters(env)})
    assert "lora" not in cache.key_material(plain, gpu="h100")
    assert cache.key_material(with_lora, gpu="h100")["lora"]["adapters"].keys() == {"sql", "chat"}
    assert cache.entry_name(plain, cache.key_material(plain, gpu="h100")) != \
        cache.entry_name(with_lora, cache.key_material(with_lora, gpu="h100"))


# -- the llmapi route (rendered only: no TensorRT-LLM here) -----------------------------------------------------


def test_llmapi_model_yaml_loads_the_adapters_and_the_name_reaches_the_wrapper(env, tmp_path):
    import yaml

    spec = load_spec("llama3-8b", options={"route": "llmapi", "lora.adapters": _adapters(env),
                                           "model.checkpoint_dir": str(env / "models" / "llama3-8b"),
                                           "lora.cache.host_memory_bytes": 1 << 30,
                                           "lora.cache.gpu_memory_fraction": 0.2})
    repo = write_repo(spec, tmp_path / "r")  # validates, as `tritongen repo` does
    model_yaml = yaml.safe_load((repo / "tensorrt_llm" / "1" / "model.yaml").read_text())
    assert model_yaml["lora_config"] == {
        "lora_dir": [_adapters(env)["sql"], _adapters(env)["chat"]], "max_lora_rank": 64, "max_loras": 2,
        "max_cpu_loras": 2, "lora_target_modules": ["attn_q", "attn_k", "attn_v", "attn_dense", "mlp_h_to_4h",
                                                    "mlp_gate", "mlp_4h_to_h"]}
    assert model_yaml["peft_cache_config"] == {"host_cache_size": 1 << 30, "device_cache_percent": 0.2}
    cfgs = _configs(repo)
    assert "lora_name" in {i.name for i in cfgs["ensemble"].input}
    assert "lora_name" in {i.name for i in cfgs["tensorrt_llm"].input}
    assert json.loads(params_of(cfgs["tensorrt_llm"])["tritongen_lora_adapters"]) == {
        "sql": [1, _adapters(env)["sql"]], "chat": [2, _adapters(env)["chat"]]}
    tables: dict = {}
    exec((repo / "ensemble" / "1" / "contract_tables.py").read_text(), tables)
    assert tables["CLIENT_TO_LLMAPI"]["lora_name"] == "lora_name"
    assert (repo / "tensorrt_llm" / "1" / "lora_request.py").is_file()


def test_llmapi_without_adapters_has_no_lora_keys(tmp_path):
    import yaml

    repo = write_repo(load_spec("llama3-8b", options={"route": "llmapi", "model.checkpoint_dir": "/m"}), tmp_path / "r")
    model_yaml = yaml.safe_load((repo / "tensorrt_llm" / "1" / "model.yaml").read_text())
    assert "lora_config" not in model_yaml and "peft_cache_config" not in model_yaml
    assert "lora_name" not in {i.name for i in _configs(repo)["tensorrt_llm"].input}


def test_llmapi_wrapper_turns_the_name_into_a_lora_request(monkeypatch):
    """lora_request.py with STAND-INs for pb_utils, the LLM and TensorRT-LLM's LoRARequest."""
    import asyncio
    import importlib.util
    import sys
    import types

    import numpy as np

    from conftest import REPO_ROOT

    made = []
    request_mod = types.ModuleType("tensorrt_llm.executor.request")
    request_mod.LoRARequest = lambda name, task_id, path: made.append((name, task_id, path)) or (name, task_id, path)
    for name in ("tensorrt_llm", "tensorrt_llm.executor"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "tensorrt_llm.executor.request", request_mod)
    path = REPO_ROOT / "templates/llmapi/tensorrt_llm/1/lora_request.py"
    spec = importlib.util.spec_from_file_location("lora_request_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    class Tensor:
        def __init__(self, value):
            self.value = value

        def as_numpy(self):
            return np.array([self.value], dtype=object)

    class PbUtils:  # STAND-IN for triton_python_backend_utils
        TritonModelException = RuntimeError

        @staticmethod
        def get_input_tensor_by_name(request, name):
            return Tensor(request[name]) if name in request else None

    class LLM:  # STAND-IN: records what generate_async was given
        def generate_async(self, prompt, params, streaming, lora_request=None):
            return (prompt, lora_request)

    lora = mod.LoraRequests(json.dumps({"sql": [1, "/a/sql"], "chat": [2, "/a/chat"]}))
    llm = LLM()
    lora.wrap(llm)

    async def one(request):  # one asyncio task per request, as upstream's model runs them
        lora.select(request, PbUtils)
        await asyncio.sleep(0)
        return llm.generate_async("p", None, True)

    async def main():
        return await asyncio.gather(one({"lora_name": b"sql"}), one({}), one({"lora_name": b"chat"}),
                                    one({"lora_name": b""}))

    assert asyncio.run(main()) == [("p", ("sql", 1, "/a/sql")), ("p", None), ("p", ("chat", 2, "/a/chat")),
                                   ("p", None)]
    with pytest.raises(RuntimeError, match="lora_name 'nope' is not a LoRA adapter of this model; known "
                                           "adapters: chat, sql"):
        lora.select({"lora_name": b"nope"}, PbUtils)


# -- the python models' LoRA helpers, without a server ------------------------------------------------------------


def _template_module(relpath: str, name: str):
    import importlib.util

    from conftest import REPO_ROOT

    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "templates" / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_preprocessing_maps_names_to_task_ids_and_refuses_what_it_cannot():
    import numpy as np

    mod = _template_module("common/lib/lora_names.py", "lora_names_under_test")
    config = {"parameters": {"lora_adapters": {"string_value": json.dumps({"sql": 1, "chat": 2})},
                             "model_name": {"string_value": "llama3-8b"}},
              "output": [{"name": "OUT_LORA_TASK_ID"}]}
    names = mod.LoraNames(config)

    def ids(batch, name=None, task=None):
        arr = None if name is None else np.array([[n.encode()] for n in name], dtype=object)
        tids = None if task is None else np.array([[t] for t in task], dtype=np.uint64)
        out = names.task_ids(arr, tids, batch)
        return None if out is None else out[:, 0].tolist()

    assert ids(1, ["chat"]) == [2]
    assert ids(1, None, [7]) == [7]  # a task id the client sends itself passes (the engine knows its adapters)
    assert ids(1, ["llama3-8b"]) is None and ids(1, [""]) is None and ids(1) is None  # the base model
    assert ids(2, ["sql", "chat"]) == [1, 2]
    with pytest.raises(ValueError, match="lora_name 'x' is not a LoRA adapter of this model; known adapters: chat, sql"):
        ids(1, ["x"])
    with pytest.raises(ValueError, match="is task id 1, but lora_task_id=2 was sent too"):
        ids(1, ["sql"], [2])
    with pytest.raises(ValueError, match="some rows of this request name a LoRA adapter and some do not"):
        ids(2, ["sql", ""])
    # Without adapters (or without the output in its config) preprocessing leaves the task id alone.
    assert mod.LoraNames({"parameters": {}, "output": []}).task_ids(np.array([[b"sql"]], dtype=object), None, 1) is None


def test_cpu_engine_refuses_unknown_task_ids_and_trtllm_weights():
    import numpy as np

    mod = _template_module("cpu/tensorrt_llm/1/lora.py", "cpu_lora_under_test")
    adapters = mod.Adapters.from_param(json.dumps({"1": ["sql", "/a/sql"], "2": ["chat", "/a/chat"]}))
    assert adapters.adapter_of(None, None, None) is None
    assert adapters.adapter_of(2, None, None) == "chat"
    with pytest.raises(ValueError, match=r"lora_task_id 9 is not a LoRA adapter of this model; known task ids: "
                                         r"1 \(sql\), 2 \(chat\)"):
        adapters.adapter_of(9, None, None)
    with pytest.raises(ValueError, match="does not take LoRA weights in TensorRT-LLM's format"):
        adapters.adapter_of(1, np.zeros((1, 4), dtype=np.float16), np.zeros((1, 3), dtype=np.int32))
    # Not attached (no adapters, or the MOCK engine): no forward arguments, so base forwards are untouched.
    assert adapters.forward_kwargs("sql") == {} and not mod.Adapters.from_param("")


def test_adapters_with_draft_target_decoding_are_refused(env, tmp_path):
    from tritongen.errors import GatingError

    spec = load_spec("tiny", options={"lora.adapters": _adapters(env), "serving.bls": True,
                                      "decoding.speculative.method": "draft_target",
                                      "decoding.speculative.draft_model": "tiny"})
    with pytest.raises(GatingError, match="draft-target speculative decoding runs the draft model on every request"):
        write_repo(spec, tmp_path / "r")


def test_validate_refuses_adapters_on_an_engine_built_without_the_lora_plugin(env, tmp_path):
    from conftest import FIXTURES
    from tritongen.errors import TritongenError

    engine = FIXTURES / "engines" / "llama3-8b-fp16-tp1"  # built without --lora_plugin (lora_plugin: null)
    spec = load_spec("llama3-8b", options={"engine.dir": str(engine), "model.checkpoint_dir": "/models/llama3-8b",
                                           "lora.adapters": _adapters(env)})
    with pytest.raises(TritongenError, match="serves LoRA adapters but engine .* was built without the LoRA plugin"):
        write_repo(spec, tmp_path / "r")
    # The same engine with a LoRA plugin and a smaller max_lora_rank than lora.max_rank.
    copy = tmp_path / "engine"
    import shutil

    shutil.copytree(engine, copy)
    cfg = json.loads((copy / "config.json").read_text())
    cfg["build_config"]["plugin_config"]["lora_plugin"] = "auto"
    cfg["build_config"]["lora_config"]["max_lora_rank"] = 16
    (copy / "config.json").write_text(json.dumps(cfg))
    spec = load_spec("llama3-8b", options={"engine.dir": str(copy), "model.checkpoint_dir": "/models/llama3-8b",
                                           "lora.adapters": _adapters(env)})
    with pytest.raises(TritongenError, match="64 exceeds the engine's max_lora_rank 16"):
        write_repo(spec, tmp_path / "r")
    spec = load_spec("llama3-8b", options={"engine.dir": str(copy), "model.checkpoint_dir": "/models/llama3-8b",
                                           "lora.adapters": _adapters(env), "lora.max_rank": 16})
    write_repo(spec, tmp_path / "r")


def test_without_prefetch_preprocessing_sends_the_weights_on_first_use(env, tmp_path):
    import numpy as np

    spec = load_spec("llama3-8b", options={"lora.adapters": _adapters(env), "lora.cache.prefetch": False,
                                           "precision.format": "fp16", "engine.dir": "/engines/llama3-8b",
                                           "model.checkpoint_dir": "/models/llama3-8b", "serving.bls": True})
    repo = write_repo(spec, tmp_path / "r")  # validates the new mappings
    cfgs = _configs(repo)
    assert "lora_prefetch_dir" not in params_of(cfgs["tensorrt_llm"])
    pre_step, llm_step = cfgs["ensemble"].ensemble_scheduling.step[0], cfgs["ensemble"].ensemble_scheduling.step[1]
    assert pre_step.input_map["LORA_WEIGHTS"] == "lora_weights"
    assert llm_step.input_map["lora_weights"] == pre_step.output_map["OUT_LORA_WEIGHTS"]
    assert llm_step.input_map["lora_config"] == pre_step.output_map["OUT_LORA_CONFIG"]
    assert params_of(cfgs["preprocessing"])["lora_weights_dir"] == "/engines/llama3-8b/lora_tasks"

    # The preprocessing side, on files laid out as the build's conversion step writes them (STAND-IN values).
    mod = _template_module("common/lib/lora_names.py", "lora_names_weights")
    tasks = tmp_path / "lora_tasks"
    (tasks / "2").mkdir(parents=True)
    np.save(tasks / "2" / "model.lora_weights.npy", np.ones((1, 3, 8), dtype=np.float16))
    np.save(tasks / "2" / "model.lora_config.npy", np.array([[[0, 0, 4], [1, 0, 4], [2, 1, 4]]], dtype=np.int32))
    names = mod.LoraNames({"parameters": {"lora_adapters": {"string_value": json.dumps({"sql": 1, "chat": 2})},
                                          "lora_weights_dir": {"string_value": str(tasks)}},
                           "output": [{"name": "OUT_LORA_TASK_ID"}]})
    ids = np.array([[2]], dtype=np.uint64)
    first = dict(names.weights(ids, None, None))
    assert first["OUT_LORA_WEIGHTS"].shape == (1, 3, 8) and first["OUT_LORA_CONFIG"].shape == (1, 3, 3)
    assert names.weights(ids, None, None) == []  # cached in the backend since the first request
    mine = np.zeros((1, 1, 8), dtype=np.float16)
    assert dict(names.weights(ids, mine, np.zeros((1, 1, 3), dtype=np.int32)))["OUT_LORA_WEIGHTS"] is not None
    with pytest.raises(ValueError, match="converted weights are not in"):
        names.weights(np.array([[1]], dtype=np.uint64), None, None)


def test_without_prefetch_a_bf16_engine_is_refused(env, tmp_path):
    from tritongen.errors import GatingError

    spec = load_spec("llama3-8b", options={"lora.adapters": _adapters(env), "lora.cache.prefetch": False,
                                           "engine.dir": "/engines/llama3-8b", "model.checkpoint_dir": "/m"})
    with pytest.raises(GatingError, match="the backend's lora_weights input is FP16, but this engine is bf16"):
        write_repo(spec, tmp_path / "r")
