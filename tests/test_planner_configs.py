"""`tritongen plan` never silently wrong: exact GPU names, every config.json key variant, defaults within context.

The config.json fixtures (tests/fixtures/configs/<model>/config.json) are written from each model's public
model card on Hugging Face (the shape keys as the card's config.json spells them; unrelated keys left out).
Parameter counts are the model cards' figures.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tritongen import gpus
from tritongen import planner as sizing
from tritongen.catalog import model_info_from_checkpoint
from tritongen.cli import cli
from tritongen.errors import CatalogError
from tritongen.spec import load_spec

CONFIGS = Path(__file__).parent / "fixtures" / "configs"

# model: (params from the model card, layers, KV heads, head_dim, context); KV bytes/token follow from these.
FAMILIES = {
    "llama-3.1-8b": (8.03e9, 32, 8, 128, 131072),
    "mistral-7b-v0.3": (7.25e9, 32, 8, 128, 32768),
    "mistral-nemo-12b": (12.2e9, 40, 8, 128, 1024000),
    "mixtral-8x7b": (46.7e9, 32, 8, 128, 32768),
    "qwen2.5-7b": (7.61e9, 28, 4, 128, 32768),
    "qwen1.5-moe-a2.7b": (14.3e9, 24, 16, 128, 8192),
    "qwen3-30b-a3b": (30.5e9, 48, 4, 128, 40960),
    "qwen-7b": (7.72e9, 32, 32, 128, 8192),
    "gemma-7b": (8.54e9, 28, 16, 256, 8192),
    "gemma-2-9b": (9.24e9, 42, 8, 256, 8192),
    "gemma-3-12b": (12.2e9, 48, 8, 256, 131072),  # card's 12B includes the 0.4B SigLIP vision tower
    "phi-2": (2.78e9, 32, 32, 80, 2048),
    "phi-3-mini-4k": (3.82e9, 32, 32, 96, 4096),
    "falcon-7b": (7.0e9, 32, 1, 64, 2048),
    "falcon-180b": (180e9, 80, 8, 64, 2048),
    "gpt-j-6b": (6.05e9, 28, 16, 256, 2048),
    "gpt2-xl": (1.56e9, 48, 25, 64, 1024),
    "gpt-neox-20b": (20.6e9, 44, 64, 96, 2048),
    "starcoder": (15.5e9, 40, 1, 128, 8192),
    "opt-66b": (66e9, 64, 72, 128, 2048),
    "chatglm3-6b": (6.24e9, 28, 2, 128, 8192),
    "baichuan2-13b": (13.9e9, 40, 40, 128, 4096),
    "internlm2-7b": (7.74e9, 32, 8, 128, 32768),
    "mpt-30b": (30e9, 48, 64, 112, 8192),
    "deepseek-v3": (671e9, 61, 128, 192, 163840),
    "gpt-oss-20b": (20.9e9, 24, 8, 64, 131072),
}


def _checkpoint(tmp_path, name) -> Path:
    d = tmp_path / name
    d.mkdir()
    shutil.copy(CONFIGS / name / "config.json", d / "config.json")
    return d


def test_every_fixture_family_is_tabled():
    assert sorted(p.name for p in CONFIGS.iterdir() if (p / "config.json").is_file()) == sorted(
        [*FAMILIES, "bloom-176b"])


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_config_json_key_variants_give_the_model_cards_shape(tmp_path, name):
    params, layers, kv_heads, head_dim, context = FAMILIES[name]
    info = model_info_from_checkpoint(_checkpoint(tmp_path, name))
    assert (info["num_layers"], info["num_kv_heads"], info["head_dim"], info["context_length"]) == (
        layers, kv_heads, head_dim, context)
    assert info["num_params"] == pytest.approx(params, rel=0.04)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_plans_from_its_checkpoint(tmp_path, name):
    ckpt = _checkpoint(tmp_path, name)
    spec = load_spec(name, options={"model.checkpoint_dir": ckpt})
    plan = sizing.make_plan(spec, "h200", sizing.Workload(512, 128, 4))
    assert plan.memory.fits and plan.num_gpus >= 1
    assert spec.limits.max_seq_len <= spec.model.context_length


def test_falcon_180b_reads_num_kv_heads():
    """The failure the issue reports: num_kv_heads ignored made KV per token 29x too large."""
    info = model_info_from_checkpoint(CONFIGS / "falcon-180b")
    shape = sizing.Shape.from_model(load_spec("falcon-180b", options={
        "model.checkpoint_dir": CONFIGS / "falcon-180b"}).model)
    assert info["num_kv_heads"] == 8
    assert shape.kv_bytes_per_token("bf16") == 2 * 80 * 8 * 64 * 2 == 163840
    assert round(232 / 8) == 29  # what reading the attention heads instead cost


def test_multi_query_families_have_one_kv_head():
    assert model_info_from_checkpoint(CONFIGS / "starcoder")["num_kv_heads"] == 1  # multi_query: true
    assert model_info_from_checkpoint(CONFIGS / "falcon-7b")["num_kv_heads"] == 1  # old Falcon decoder
    assert model_info_from_checkpoint(CONFIGS / "chatglm3-6b")["num_kv_heads"] == 2  # multi_query_group_num


def test_mla_kv_cache_is_the_latent_not_the_heads():
    spec = load_spec("deepseek-v3", options={"model.checkpoint_dir": CONFIGS / "deepseek-v3"})
    shape = sizing.Shape.from_model(spec.model)
    # 61 layers x (kv_lora_rank 512 + qk_rope_head_dim 64) x 2 bytes, the same on every tp rank.
    assert shape.kv_bytes_per_token("bf16") == 61 * 576 * 2 == shape.kv_bytes_per_token("bf16", tp=8)
    assert shape.dense_layers == 3 and shape.experts == 256 and shape.experts_per_token == 8
    assert shape.active_params == pytest.approx(37e9, rel=0.08)  # the card's 37B activated


def test_moe_expert_sizes_and_tied_embeddings_from_config():
    qwen3 = sizing.Shape.from_model(load_spec("q3", options={"model.checkpoint_dir": CONFIGS / "qwen3-30b-a3b"}).model)
    assert qwen3.intermediate == 768 and qwen3.active_params == pytest.approx(3.3e9, rel=0.08)  # "A3B"
    gemma = sizing.Shape.from_model(load_spec("g", options={"model.checkpoint_dir": CONFIGS / "gemma-7b"}).model)
    assert gemma.tied_embeddings  # GemmaConfig ties them by default; the config does not say


def test_a_missing_fact_is_named_not_guessed(tmp_path):
    ckpt = _checkpoint(tmp_path, "bloom-176b")  # ALiBi: its config.json states no context length
    with pytest.raises(CatalogError) as err:
        model_info_from_checkpoint(ckpt)
    assert "context_length" in str(err.value) and "max_position_embeddings" in str(err.value)
    assert "--set model.context_length=" in err.value.hint
    result = CliRunner().invoke(cli, ["plan", "bloom", "--checkpoint", str(ckpt), "--gpu", "h200"])
    assert result.exit_code == CatalogError.exit_code and "context_length" in result.output
    ok = CliRunner().invoke(cli, ["plan", "bloom", "--checkpoint", str(ckpt), "--gpu", "h200",
                                  "--set", "model.context_length=2048", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["parallelism"]["num_gpus"] >= 4  # 176B in bf16: 352 GB of weights


def test_gpt_j_config_is_accepted_and_short_context_defaults_fit(tmp_path):
    ckpt = _checkpoint(tmp_path, "gpt-j-6b")
    spec = load_spec("gpt-j", options={"model.checkpoint_dir": ckpt})
    assert spec.limits.max_seq_len == 2048 and spec.limits.max_input_len == 1024  # not 4096 / 2048
    result = CliRunner().invoke(cli, ["plan", "gpt-j", "--checkpoint", str(ckpt), "--gpu", "a100", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["workload"]["input_len"] == 1024
    gpt2 = CliRunner().invoke(cli, ["plan", "gpt2", "--checkpoint", str(_checkpoint(tmp_path, "gpt2-xl")),
                                    "--gpu", "l4", "--json"])
    assert gpt2.exit_code == 0, gpt2.output
    w = json.loads(gpt2.output)["workload"]
    assert w["input_len"] + w["output_len"] <= 1024


def test_an_explicit_limit_above_the_context_is_still_an_error(tmp_path):
    from tritongen.errors import SpecError

    with pytest.raises(SpecError, match="exceeds the model's context length 2048"):
        load_spec("gpt-j", options={"model.checkpoint_dir": _checkpoint(tmp_path, "gpt-j-6b"),
                                    "limits.max_seq_len": 4096})


# -- GPU names ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, key", [
    ("h100-nvl", "h100-nvl"), ("NVIDIA H100 NVL", "h100-nvl"), ("NVIDIA H100 80GB HBM3", "h100-sxm"),
    ("h100", "h100-sxm"), ("NVIDIA H100 PCIe", "h100-pcie"), ("NVIDIA H200", "h200"),
    ("NVIDIA H200 NVL", "h200-nvl"), ("NVIDIA A100-SXM4-80GB", "a100-80gb"), ("NVIDIA A10", "a10"),
    ("NVIDIA A10G", "a10g"), ("NVIDIA L40", "l40"), ("NVIDIA L40S", "l40s"), ("NVIDIA L20", "l20"),
    ("NVIDIA H20", "h20"), ("NVIDIA GH200 480GB", "gh200"), ("NVIDIA B200", "b200"), ("NVIDIA B300 SXM6 AC", "b300"),
    ("NVIDIA GB200", "gb200"), ("NVIDIA RTX 6000 Ada Generation", "rtx6000-ada"),
    ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "rtx-pro-6000"), ("NVIDIA GeForce RTX 4090", "rtx4090"),
    ("NVIDIA-H100-80GB-HBM3", "h100-sxm"),  # the GPU-feature-discovery node label
])
def test_gpu_names_resolve_exactly(name, key):
    assert gpus.get(name)[0] == key


@pytest.mark.parametrize("name, meant", [("h100-nvl-96gb", "h100-nvl"), ("h100-sxm6", "h100-sxm"),
                                         ("NVIDIA H100 80GB HBM3e", "h100-sxm"), ("l40x", "l40")])
def test_near_names_are_errors_with_a_did_you_mean(name, meant):
    assert gpus.lookup(name) is None
    with pytest.raises(CatalogError) as err:
        gpus.get(name)
    assert "unknown GPU" in str(err.value) and meant in err.value.hint


def test_plan_with_a_near_gpu_name_fails_instead_of_planning_another_gpu():
    result = CliRunner().invoke(cli, ["plan", "llama3-8b", "--gpu", "H100 NVL 96GB"])
    assert result.exit_code == CatalogError.exit_code and "did you mean" in result.output
    nvl = CliRunner().invoke(cli, ["plan", "llama3-70b", "--gpu", "NVIDIA H100 NVL", "--precision", "fp8", "--json"])
    gpu = json.loads(nvl.output)["gpu"]
    assert (gpu["key"], gpu["memory_gb"], gpu["memory_bandwidth_gbps"]) == ("h100-nvl", 94, 3900)


def test_every_gpu_has_sourced_sizing_figures():
    for key, facts in gpus.table().items():
        g = sizing.Gpu.get(key)
        assert g.memory_gb > 0 and g.bandwidth_gbps > 0 and g.peak_flops("bf16"), key
        assert any(w in facts["source"] for w in ("http", "whitepaper", "datasheet", "product brief")), key
        assert facts.get("k8s_product_labels"), key
    # every name answers to one GPU only
    seen: dict[str, str] = {}
    for key, facts in gpus.table().items():
        for n in gpus._names(key, facts):
            if n in seen and n not in gpus.table():
                raise AssertionError(f"{n} names both {seen[n]} and {key}")
            seen.setdefault(n, key)
