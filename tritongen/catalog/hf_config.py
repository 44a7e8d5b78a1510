"""Reading a Hugging Face ``config.json`` into the shape facts the spec and the planner need.

Checkpoints spell the same fact many ways (``num_key_value_heads`` in Llama, ``num_kv_heads`` in Falcon,
``n_head_kv`` in RefinedWeb, ``multi_query`` in GPT-BigCode, ``n_embd``/``n_head``/``n_layer`` in GPT-2 and
GPT-J, ``multi_query_group_num`` in ChatGLM...). Reading one spelling and silently defaulting the rest gave
wrong answers (Falcon-180B's 8 KV heads read as 232), so every variant is listed here, and where a key is
absent the value is the default of that family's Hugging Face config class (documented per entry), never a
guess. A fact that has neither is reported by name (:class:`MissingFacts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Key spellings of each fact, in the order they are tried.
KEYS: dict[str, tuple[str, ...]] = {
    "num_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "hidden_size": ("hidden_size", "n_embd", "d_model", "model_dim"),
    "num_heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "num_kv_heads": ("num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num", "n_kv_heads"),
    "head_dim": ("head_dim", "kv_channels", "attention_head_dim"),
    "intermediate_size": ("intermediate_size", "ffn_hidden_size", "n_inner", "ffn_dim", "inner_hidden_size"),
    "vocab_size": ("vocab_size", "padded_vocab_size", "n_vocab"),
    "context_length": ("max_position_embeddings", "n_positions", "seq_length", "max_sequence_length",
                       "model_max_length", "n_ctx", "max_seq_len"),
    "num_experts": ("num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts"),
    "experts_per_token": ("num_experts_per_tok", "moe_top_k", "num_selected_experts", "top_k_experts"),
}

#: model_type values whose MLP is two matrices (up, down) rather than a gated three (gate, up, down).
UNGATED_MLP = {"gpt2", "gptj", "gpt_neox", "gpt_bigcode", "falcon", "RefinedWeb", "RefinedWebModel", "bloom",
               "opt", "phi", "nemotron", "starcoder2", "mpt", "gpt_neo"}
#: model_type values whose HF config class ties the lm_head to the embedding unless told otherwise.
TIED_BY_DEFAULT = {"gpt2", "gpt_bigcode", "falcon", "RefinedWeb", "RefinedWebModel", "bloom", "opt", "gemma",
                   "gemma2", "gemma3_text", "mpt", "gpt_neo", "starcoder2"}
#: model_type values whose MLP width defaults to 4 x hidden when no key gives it (HF config class default).
FOUR_X_MLP = {"gpt2", "gptj", "gpt_bigcode", "falcon", "RefinedWeb", "RefinedWebModel", "bloom", "gpt_neo", "mpt"}
#: model_type values whose HF config class has a default context (FalconConfig.max_position_embeddings=2048);
#: ALiBi families without one (BLOOM, Baichuan-13B without model_max_length) are reported missing instead.
CONTEXT_DEFAULT = {"falcon": 2048, "RefinedWeb": 2048, "RefinedWebModel": 2048}
#: Architectures (and model types) by name prefix, for checkpoints without a model_type.
_TYPE_BY_ARCH = {"GPT2": "gpt2", "GPTJ": "gptj", "GPTNeoX": "gpt_neox", "GPTBigCode": "gpt_bigcode",
                 "Falcon": "falcon", "RW": "RefinedWeb", "Bloom": "bloom", "OPT": "opt", "Phi": "phi",
                 "Nemotron": "nemotron", "MPT": "mpt", "GPTNeo": "gpt_neo"}


class MissingFacts(ValueError):
    """Facts a config.json does not state, each with the keys that were looked for."""

    def __init__(self, missing: dict[str, tuple[str, ...]]):
        self.missing = missing
        super().__init__("; ".join(f"{k} (looked for {', '.join(v)})" for k, v in missing.items()))


@dataclass
class ConfigFacts:
    """What one config.json says: ``spec`` holds ``model`` spec fields, ``extra`` the planner-only facts
    (MLA latent sizes, shared experts, MLP form) the spec has no field for."""

    spec: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _first(cfg: dict, fact: str) -> Any:
    for key in KEYS[fact]:
        value = cfg.get(key)
        if value is not None and not isinstance(value, bool):
            return value
    return None


def _model_type(cfg: dict, archs: list[str]) -> str:
    if cfg.get("model_type"):
        return str(cfg["model_type"])
    for arch in archs:
        for prefix, mtype in sorted(_TYPE_BY_ARCH.items(), key=lambda kv: -len(kv[0])):
            if arch.startswith(prefix):
                return mtype
    return ""


def _kv_heads(text: dict, mtype: str, heads: int | None) -> int | None:
    """KV heads with each family's rules: multi-query (one KV head), Falcon's two decoder generations."""
    value = _first(text, "num_kv_heads")
    if mtype in ("falcon", "RefinedWeb", "RefinedWebModel"):
        # FalconConfig: new_decoder_architecture uses num_kv_heads (default: all heads); the old decoder has
        # one KV head when multi_query, else all heads.
        if text.get("new_decoder_architecture"):
            return value or heads
        return 1 if text.get("multi_query", True) else heads
    if text.get("multi_query") is True:  # GPT-BigCode (StarCoder)
        return 1
    if mtype == "chatglm" and not text.get("multi_query_attention", value is not None):
        return heads
    return value or heads  # every other HF config class defaults KV heads to the attention heads (MHA)


def read_config(cfg: dict) -> ConfigFacts:
    """The shape facts of one parsed config.json (the language model's, for multimodal configs)."""
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    if isinstance(cfg.get("llm_config"), dict):
        text = cfg["llm_config"]
    archs = list(cfg.get("architectures") or text.get("architectures") or [])
    mtype = _model_type(text, archs) or _model_type(cfg, archs)
    out = ConfigFacts()
    s = out.spec
    s["architecture"] = archs[0] if archs else None
    for fact in ("num_layers", "hidden_size", "num_heads", "vocab_size", "context_length"):
        s[fact] = _first(text, fact)
    if s["context_length"] is None and mtype in CONTEXT_DEFAULT:
        s["context_length"] = CONTEXT_DEFAULT[mtype]
    hidden, heads = s["hidden_size"], s["num_heads"]
    s["num_kv_heads"] = _kv_heads(text, mtype, heads)
    head_dim = _first(text, "head_dim")
    if text.get("kv_lora_rank"):  # MLA: heads of qk_nope + qk_rope width for Q/K, v_head_dim for V
        head_dim = (text.get("qk_nope_head_dim") or 0) + (text.get("qk_rope_head_dim") or 0) or head_dim
    s["head_dim"] = head_dim or (hidden // heads if hidden and heads else None)

    experts = _first(text, "num_experts") or 0
    s["num_experts"] = int(experts)
    s["experts_per_token"] = int(_first(text, "experts_per_token") or 0) if experts else 0
    inter = _first(text, "intermediate_size")
    if mtype == "qwen" and inter:  # Qwen (v1) states gate + up together
        inter //= 2
    if experts and text.get("moe_intermediate_size"):
        out.extra["dense_intermediate_size"] = inter
        inter = text["moe_intermediate_size"]  # the spec's intermediate_size is per expert for MoE
    if inter is None and text.get("expansion_ratio") and hidden:  # MPT
        inter = int(text["expansion_ratio"] * hidden)
    if inter is None and mtype in FOUR_X_MLP and hidden:
        inter = 4 * hidden
    s["intermediate_size"] = inter

    tied = text.get("tie_word_embeddings", cfg.get("tie_word_embeddings"))
    out.extra["tied_embeddings"] = bool(mtype in TIED_BY_DEFAULT if tied is None else tied)
    out.extra["gated_mlp"] = mtype not in UNGATED_MLP
    out.extra["model_type"] = mtype
    if text.get("kv_lora_rank"):
        out.extra["kv_lora_rank"] = int(text["kv_lora_rank"])
        out.extra["qk_rope_head_dim"] = int(text.get("qk_rope_head_dim") or 0)
        out.extra["v_head_dim"] = int(text.get("v_head_dim") or s["head_dim"])
        out.extra["q_lora_rank"] = int(text.get("q_lora_rank") or 0)
    shared = text.get("n_shared_experts") or (1 if text.get("shared_expert_intermediate_size") else 0)
    if experts:
        out.extra["shared_experts"] = int(shared or 0)
        out.extra["shared_expert_intermediate_size"] = int(
            text.get("shared_expert_intermediate_size") or (shared or 0) * (inter or 0))
        dense_layers = text.get("first_k_dense_replace") or len(text.get("mlp_only_layers") or [])
        out.extra["dense_layers"] = int(dense_layers or 0)

    for fact in ("num_layers", "hidden_size", "num_heads", "vocab_size", "context_length"):
        if s[fact] is None:
            out.missing[fact] = KEYS[fact]
    if s["intermediate_size"] is None:
        out.missing["intermediate_size"] = KEYS["intermediate_size"]
    if experts and not s["experts_per_token"]:
        out.missing["experts_per_token"] = KEYS["experts_per_token"]
    out.spec = {k: v for k, v in s.items() if v is not None}
    params = estimate_params_from(out)
    if params:
        out.spec["num_params"] = float(params)
    return out


def estimate_params_from(facts: ConfigFacts) -> int | None:
    """Parameter count from the config's shapes: attention (or MLA projections), the MLP of each layer (gated
    or not; dense layers and shared experts of MoE models counted as such), norms and embeddings."""
    s, x = facts.spec, facts.extra
    try:
        layers, hidden, heads = s["num_layers"], s["hidden_size"], s["num_heads"]
        kv, vocab, inter = s["num_kv_heads"], s["vocab_size"], s["intermediate_size"]
    except KeyError:
        return None
    head_dim = s.get("head_dim") or hidden // heads
    if x.get("kv_lora_rank"):
        rank, rope, v_dim, q_rank = x["kv_lora_rank"], x["qk_rope_head_dim"], x["v_head_dim"], x["q_lora_rank"]
        q = (hidden * q_rank + q_rank * heads * head_dim) if q_rank else hidden * heads * head_dim
        kv_proj = hidden * (rank + rope) + rank * heads * (head_dim - rope + v_dim)
        attn = q + kv_proj + heads * v_dim * hidden
    else:
        attn = hidden * head_dim * (heads + 2 * kv) + heads * head_dim * hidden
    per_mlp = (3 if x.get("gated_mlp", True) else 2) * hidden
    experts = s.get("num_experts") or 0
    if experts:
        dense_layers = x.get("dense_layers", 0)
        dense_inter = x.get("dense_intermediate_size") or inter
        moe_layer = per_mlp * inter * experts + hidden * experts + per_mlp * x.get("shared_expert_intermediate_size", 0)
        mlp_total = dense_layers * per_mlp * dense_inter + (layers - dense_layers) * moe_layer
    else:
        mlp_total = layers * per_mlp * inter
    embed = vocab * hidden * (1 if x.get("tied_embeddings") else 2)
    return layers * (attn + 2 * hidden) + mlp_total + embed + hidden
