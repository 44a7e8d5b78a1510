"""The deployment spec: merge order, strictness, one line per problem, cross-field rules."""

from __future__ import annotations

import json

import pytest

from tritongen.errors import CatalogError, SpecError
from tritongen.spec import DecodingMode, Precision, Route, load_spec


def test_merge_order_catalogue_then_file_then_options_then_set(tmp_path):
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text("limits:\n  max_batch_size: 16\n  max_input_len: 1024\nprecision:\n  format: fp8\n")
    spec = load_spec("llama3-8b", spec_file=spec_file, options={"limits.max_batch_size": 32},
                     sets=["limits.max_batch_size=8"])
    assert spec.model.num_layers == 32  # catalogue
    assert spec.limits.max_input_len == 1024  # file over catalogue (4096)
    assert spec.precision.format is Precision.fp8  # file
    assert spec.limits.max_batch_size == 8  # --set over option over file
    assert spec.limits.max_seq_len == 8192  # untouched catalogue value


def test_defaults_and_derived_values():
    spec = load_spec("llama3-8b")
    assert spec.route is Route.engine
    assert spec.repo_name == "llama3-8b"
    assert spec.resolved_decoding_mode is DecodingMode.top_k_top_p
    assert spec.parallelism.resolved_gpu_ids == [0]
    assert spec.precision.resolved_kv_dtype.value == "bf16"
    beam = load_spec("llama3-8b", sets=["limits.max_beam_width=4"])
    assert beam.resolved_decoding_mode is DecodingMode.beam_search
    lookahead = load_spec("llama3-8b", sets=["decoding.speculative.method=lookahead"])
    assert lookahead.resolved_decoding_mode is DecodingMode.lookahead
    # TensorRT-LLM's draft length for (W, N, G) = (4, 3, 4): (W + G) * (N - 1) - 1
    assert lookahead.resolved_max_draft_len == 15


def test_invalid_values_one_line_per_field_naming_allowed_values():
    with pytest.raises(SpecError) as exc:
        load_spec("llama3-8b", sets=["precision.format=fp9", "limits.max_batch_size=0", "route=gpu",
                                     "kv_cache.free_gpu_mem_fraction=1.5"])
    lines = exc.value.problems
    assert len(lines) == 4
    by_field = {line.split(":")[0]: line for line in lines}
    assert "fp16" in by_field["precision.format"] and "nvfp4" in by_field["precision.format"]
    assert "'fp9'" in by_field["precision.format"]
    assert "must be > 0" in by_field["limits.max_batch_size"]
    assert "engine" in by_field["route"] and "llmapi" in by_field["route"] and "cpu" in by_field["route"]
    assert "<= 1" in by_field["kv_cache.free_gpu_mem_fraction"]


def test_unknown_fields_are_errors(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("limits:\n  max_batch: 8\nsurprise: 1\n")
    with pytest.raises(SpecError) as exc:
        load_spec("llama3-8b", spec_file=f)
    text = str(exc.value)
    assert "limits.max_batch: unknown field; did you mean max_batch_size?" in text
    assert "surprise: unknown field;" in text and "surprise: unknown field; did you mean" not in text


def test_precision_shorthand_in_yaml_and_set(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("precision: fp8\n")
    assert load_spec("llama3-8b", spec_file=f).precision.format.value == "fp8"
    assert load_spec("llama3-8b", sets=["precision=int4_awq"]).precision.format.value == "int4_awq"
    with pytest.raises(SpecError, match="precision.format"):
        load_spec("llama3-8b", sets=["precision=fp9"])


def test_set_rejects_unknown_keys_and_bad_syntax():
    with pytest.raises(SpecError, match="unknown field 'limits.max_batch'; did you mean max_batch_size\\? fields of limits: max_batch_size"):
        load_spec("llama3-8b", sets=["limits.max_batch=8"])
    with pytest.raises(SpecError, match="expected key=value"):
        load_spec("llama3-8b", sets=["limits.max_batch_size"])
    with pytest.raises(SpecError, match="is a value, not a section"):
        load_spec("llama3-8b", sets=["route.engine=1"])


def test_set_parses_yaml_values():
    spec = load_spec("llama3-8b", sets=["parallelism.tp=2", "parallelism.gpu_ids=[2, 3]", "serving.streaming=false",
                                        "kv_cache.free_gpu_mem_fraction=0.85"])
    assert spec.parallelism.gpu_ids == [2, 3]
    assert spec.serving.streaming is False
    assert spec.kv_cache.free_gpu_mem_fraction == 0.85


@pytest.mark.parametrize(
    "sets, message",
    [
        (["parallelism.tp=2", "parallelism.gpu_ids=[0]"], "parallelism.gpu_ids: 1 GPU id(s) [0] but tp x pp = 2 x 1 = 2"),
        (["parallelism.gpu_ids=[0, 0]", "parallelism.tp=2"], "repeats a GPU"),
        (["parallelism.ep=2", "parallelism.tp=2"], "is a dense model"),
        (["parallelism.tp=3"], "does not divide model.num_heads=32"),
        (["limits.max_input_len=8192"], "must be below limits.max_seq_len=8192"),
        (["limits.max_seq_len=200000", "limits.max_input_len=4096"], "exceeds the model's context length 131072"),
        (["limits.max_num_tokens=1024"], "a full prompt must fit one step"),
        (["kv_cache.tokens_per_block=48"], "must be a power of two"),
        (["kv_cache.enable_reuse=true", "kv_cache.paged=false"], "kv_cache.enable_reuse: needs kv_cache.paged=true"),
        (["decoding.mode=beam_search"], "beam_search needs limits.max_beam_width > 1"),
        (["limits.max_beam_width=2", "decoding.mode=top_k_top_p"], "cannot run with limits.max_beam_width=2"),
        (["decoding.speculative.method=medusa", "limits.max_beam_width=2"], "does not support beam search"),
        (["decoding.speculative.method=medusa", "decoding.mode=eagle"], "does not match"),
        (["decoding.speculative.method=draft_target", "serving.bls=true"], "needs the draft model's catalogue name"),
        (["decoding.speculative.method=draft_target", "decoding.speculative.draft_model=llama3.2-1b"],
         "driven by tensorrt_llm_bls"),
        (["decoding.speculative.method=medusa"], "needs the checkpoint with its extra heads"),
        (["decoding.mode=medusa"], "needs an engine built for it"),
        (["serving.postprocessing_instances=2"], "must be 1"),
        (["serving.grpc_port=8000"], "the three ports must differ"),
        (["route=cpu", "precision.format=fp8"], "applies to the engine/llmapi routes"),
        (["route=cpu", "parallelism.tp=2"], "the cpu route runs on one device"),
        (["route=cpu", "decoding.speculative.method=lookahead"], "the cpu route does draft_target only"),
    ],
)
def test_cross_field_rules(sets, message):
    with pytest.raises(SpecError) as exc:
        load_spec("llama3-8b", sets=sets)
    assert any(message in line for line in exc.value.problems), exc.value.problems


def test_all_cross_field_problems_reported_at_once():
    with pytest.raises(SpecError) as exc:
        load_spec("llama3-8b", sets=["parallelism.tp=3", "kv_cache.tokens_per_block=48"])
    assert len(exc.value.problems) == 2


def test_unknown_model_suggests_close_names():
    with pytest.raises(CatalogError) as exc:
        load_spec("llama3-8")
    assert "unknown model 'llama3-8'" in str(exc.value)
    assert "llama3-8b" in exc.value.hint


def test_checkpoint_supplies_shape_facts(tmp_path):
    ckpt = tmp_path / "my-model"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({
        "architectures": ["Qwen2ForCausalLM"], "num_hidden_layers": 4, "hidden_size": 256,
        "num_attention_heads": 8, "num_key_value_heads": 2, "intermediate_size": 512, "vocab_size": 1000,
        "max_position_embeddings": 4096, "tie_word_embeddings": True,
    }))
    spec = load_spec("mymodel", options={"model.checkpoint_dir": ckpt, "route": "cpu"},
                     sets=["limits.max_seq_len=4096", "limits.max_input_len=1024"])
    m = spec.model
    assert (m.name, m.architecture, m.num_layers, m.num_kv_heads, m.head_dim) == ("mymodel", "Qwen2ForCausalLM", 4, 2, 32)
    assert m.family == "qwen2"
    # attention 256*32*(8+4) + 8*32*256, gated MLP 3*256*512, norms 2*256, per layer; tied embeddings once
    per_layer = 256 * 32 * 12 + 8 * 32 * 256 + 3 * 256 * 512 + 2 * 256
    assert m.num_params == 4 * per_layer + 1000 * 256 + 256


def test_bad_yaml_file_is_one_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("limits: [unclosed\n")
    with pytest.raises(SpecError, match=r"bad.yaml:\d+: not valid YAML"):
        load_spec("llama3-8b", spec_file=f)
    g = tmp_path / "list.yaml"
    g.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec("llama3-8b", spec_file=g)


def test_optional_outputs_resolve_per_route_and_deployment():
    from tritongen.spec import OutputGroup as G

    base = (G.log_probs, G.indices, G.token_counts)
    assert load_spec("tiny", options={"route": "cpu"}).resolved_output_groups == base
    assert load_spec("llama3-8b").resolved_output_groups == base
    gather = load_spec("llama3-8b", sets=["decoding.gather_generation_logits=true"])
    assert gather.resolved_output_groups == (G.log_probs, G.logits, G.indices, G.token_counts)
    spec_dec = load_spec("llama3-8b", sets=["decoding.speculative.method=lookahead"])
    assert G.speculative in spec_dec.resolved_output_groups and G.perf_metrics not in spec_dec.resolved_output_groups
    assert load_spec("llama3-8b", options={"route": "llmapi"}).resolved_output_groups == tuple(G)
    assert load_spec("llama3-8b", sets=["serving.optional_outputs=all"]).resolved_output_groups == tuple(G)
    # A list is taken as given, in contract order, once each.
    chosen = load_spec("llama3-8b", sets=["serving.optional_outputs=[perf_metrics, token_counts, perf_metrics]"])
    assert chosen.resolved_output_groups == (G.perf_metrics, G.token_counts)
    assert load_spec("llama3-8b", sets=["serving.optional_outputs=[]"]).resolved_output_groups == ()


def test_optional_outputs_reject_unknown_groups_in_one_line():
    with pytest.raises(SpecError) as err:
        load_spec("llama3-8b", sets=["serving.optional_outputs=[log_probs, timings]"])
    text = str(err.value)
    assert text.count("serving.optional_outputs") == 1  # one line, not one per arm of the union
    assert "'timings' is not a group" in text and "perf_metrics" in text
