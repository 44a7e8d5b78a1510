"""The tensorrt_llm models of a repository, checked as the TensorRT-LLM backend will: its parameters, its tensors
against the contract of the container's release, and - when the engine's config.json is reachable - the engine
itself (limits, features it was built with, world size, release, GPU)."""

from __future__ import annotations

from pathlib import Path

from .. import contract, engine_config, versions
from ..repo.lock import LOCK_NAME
from ..repo.report import RepoCheck, dtype_name, params_of
from . import lora
from .guided import check_engine_params as check_guided

_VALID_BATCHING = {"inflight_fused_batching", "inflight_batching", "V1"}
_VALID_DECODING = {"top_k", "top_p", "top_k_top_p", "beam_search", "medusa", "redrafter", "lookahead", "eagle",
                   "explicit_draft_tokens", "auto"}
_SPEC_MODE_TO_DECODING = {"medusa": "medusa", "eagle": "eagle", "lookahead": "lookahead",
                          "explicit_draft_tokens": "explicit_draft_tokens"}
_BOOL_TRUE = {"true", "1", "yes", "on"}


def check_tensorrt_llm(check: RepoCheck) -> None:
    """The engine route's rules, for every model of the tensorrtllm backend (a hand-made repository's too)."""
    lock = check.lock
    _check_llm_model(check, check.name("tensorrt_llm"), lock, check.engine_dir, check.container_trtllm, check.gpu_arch)
    # A draft-target repository's draft engine is checked the same way, but not against the target's spec
    # (it runs tp=1 with no speculative decoding of its own).
    draft_lock = {**lock, "spec": {}} if lock else None
    _check_llm_model(check, check.name("tensorrt_llm_draft"), draft_lock, None, check.container_trtllm, check.gpu_arch)


def _check_llm_model(ctx: RepoCheck, name: str, lock: dict | None, engine_dir: Path | None,
                     container_trtllm: str | None, gpu_arch: str | None) -> None:
    cfg = ctx.report.models.get(name)
    if cfg is None or cfg.backend != "tensorrtllm":
        return
    path = ctx.repo / name / "config.pbtxt"
    _check_llm_contract(ctx, path, cfg, lock, container_trtllm)
    params = params_of(cfg)
    spec = (lock or {}).get("spec") or {}

    strategy = params.get("gpt_model_type", "")
    if strategy not in _VALID_BATCHING:
        ctx.add(path, "parameters.gpt_model_type", f"{strategy!r} is not a batching strategy",
                "use inflight_fused_batching")
    mode = params.get("decoding_mode", "")
    if mode and mode not in _VALID_DECODING:
        ctx.add(path, "parameters.decoding_mode", f"{mode!r} is not a decoding mode",
                f"use one of {', '.join(sorted(_VALID_DECODING))}")
    frac = params.get("kv_cache_free_gpu_mem_fraction")
    if frac:
        try:
            if not 0 < float(frac) <= 1:
                raise ValueError
        except ValueError:
            ctx.add(path, "parameters.kv_cache_free_gpu_mem_fraction", f"{frac!r} is not in (0, 1]",
                    "use e.g. 0.9")
    gpu_ids = [g for g in params.get("gpu_device_ids", "").replace(";", ",").split(",") if g.strip()]
    par = spec.get("parallelism") or {}
    world = int(par.get("tp", 1)) * int(par.get("pp", 1)) if par else None
    if world is not None and gpu_ids and len(gpu_ids) != world:
        ctx.add(path, "parameters.gpu_device_ids", f"{len(gpu_ids)} GPU id(s) but tp x pp = {world}",
                "list exactly one GPU per rank")
    check_guided(ctx, path, params)

    engine_path = Path(engine_dir) if engine_dir else Path(params.get("gpt_model_path", ""))
    if not params.get("gpt_model_path") and engine_dir is None:
        ctx.add(path, "parameters.gpt_model_path", "not set", "point it at the engine directory")
        return
    if not (engine_path / "config.json").is_file():
        ctx.add(path, "parameters.gpt_model_path", f"no engine at {engine_path} (config.json missing); engine "
                "checks skipped", "build it with `tritongen engine` or pass --engine-dir", "warning")
        return
    try:
        eng = engine_config.load(engine_path)
    except engine_config.EngineConfigError as exc:
        ctx.add(engine_path / "config.json", "config.json", str(exc), "rebuild the engine with trtllm-build")
        return
    if name == ctx.name("tensorrt_llm"):
        ctx.report.engine = eng
    check_engine(ctx, path, cfg, params, eng, spec, lock, container_trtllm, gpu_arch)


def _check_llm_contract(ctx: RepoCheck, path: Path, cfg, lock: dict | None, container_trtllm: str | None) -> None:
    """The tensors against those the backend of the container's TensorRT-LLM release reads and writes
    (tritongen.contract, catalog/trtllm_contract.yaml). Names the contract does not know at all (multimodal,
    encoder-decoder tensors of a hand-made config) are not judged."""
    container = (lock or {}).get("container") or {}
    version = container_trtllm or container.get("trtllm_version")
    if not version:
        return
    where = f"TensorRT-LLM {version} ({container.get('image') or 'the container'})"
    try:
        c = contract.llm_contract(str(version))
    except ValueError as exc:
        ctx.add(ctx.repo / LOCK_NAME, "container", str(exc), "set container.image to a supported tag")
        return
    fix = "regenerate with `tritongen repo` for this container, or set container.image to one whose backend has it"
    newest_of = contract.newest_names()
    for kind, declared, have in (("input", cfg.input, c.inputs), ("output", cfg.output, c.outputs)):
        by_name = {t.name: t for t in have}
        verb = "read" if kind == "input" else "produce"
        for t in declared:
            want = by_name.get(t.name)
            if want is None:
                if t.name not in newest_of:
                    continue
                own = c.name(newest_of[t.name])
                instead = f" (it {verb}s {own!r} instead)" if own and own != t.name else ""
                lost = "; values sent to it are lost" if kind == "input" else ""
                ctx.add(path, f"{kind} {t.name}", f"the tensorrt_llm backend of {where} does not {verb} "
                        f"{t.name!r}{instead}{lost}", fix)
                continue
            dtype = dtype_name(t.data_type)
            expected = want.dtype if want.dtype != "logits" else dtype
            if dtype != expected:
                ctx.add(path, f"{kind} {t.name}", f"declared {dtype} but the backend of {where} {verb}s "
                        f"{expected}", f"declare it {expected}")
        names = {t.name for t in declared}
        for t in have:
            required = (kind == "input" and not t.optional) or t.name in (c.name("output_ids"),
                                                                           c.name("sequence_length"))
            if required and t.name not in names:
                ctx.add(path, kind, f"the backend of {where} needs {kind} {t.name!r}, which is not declared",
                        f"declare {t.name} ({t.dtype}, dims {list(t.dims)})")


def _truthy(value: str | None) -> bool:
    return str(value).strip().lower() in _BOOL_TRUE


def check_engine(ctx: RepoCheck, path: Path, cfg, params: dict[str, str], eng, spec: dict, lock: dict | None,
                 container_trtllm: str | None, gpu_arch: str | None) -> None:
    """The checks the TensorRT-LLM backend makes (or fails on) when it loads the engine."""
    src = f"engine {eng.path}"
    if eng.max_batch_size is not None and cfg.max_batch_size > eng.max_batch_size:
        ctx.add(path, "max_batch_size", f"{cfg.max_batch_size} exceeds the engine's max_batch_size "
                f"{eng.max_batch_size} ({src})",
                f"set limits.max_batch_size<={eng.max_batch_size} or rebuild the engine")
    beam = int(params.get("max_beam_width") or 1)
    if eng.max_beam_width is not None and beam > eng.max_beam_width:
        ctx.add(path, "parameters.max_beam_width", f"{beam} exceeds the engine's max_beam_width "
                f"{eng.max_beam_width}", f"set limits.max_beam_width<={eng.max_beam_width} or rebuild")
    pre = ctx.report.models.get(ctx.name("preprocessing"))
    pre_params = params_of(pre) if pre is not None else {}
    pre_path = ctx.repo / ctx.name("preprocessing") / "config.pbtxt"
    for key, eng_value in (("max_input_len", eng.max_input_len), ("max_seq_len", eng.max_seq_len)):
        value = pre_params.get(key)
        if value and eng_value is not None and int(value) > eng_value:
            ctx.add(pre_path, f"parameters.{key}", f"{value} exceeds the engine's {key} {eng_value}; longer "
                    "requests would fail inside the engine", f"set limits.{key}<={eng_value} or rebuild")
    if eng.paged_kv_cache is False:
        ctx.add(path, "parameters.gpt_model_type", "in-flight batching needs a paged KV cache but the engine "
                "was built without it", "rebuild with --paged_kv_cache enable (kv_cache.paged=true)")
    if _truthy(params.get("enable_kv_cache_reuse")) and not eng.use_paged_context_fmha:
        ctx.add(path, "parameters.enable_kv_cache_reuse", "true, but the engine was built without paged context "
                "FMHA", "rebuild with --use_paged_context_fmha enable, or set kv_cache.enable_reuse=false")
    if _truthy(params.get("enable_chunked_context")) and not eng.use_paged_context_fmha:
        ctx.add(path, "parameters.enable_chunked_context", "true, but the engine was built without paged "
                "context FMHA", "rebuild with --use_paged_context_fmha enable, or disable chunked context")
    dec = spec.get("decoding") or {}
    if dec.get("gather_generation_logits") and not eng.gather_generation_logits:
        ctx.add(path, "output generation_logits", "the spec returns generation logits but the engine was built "
                "without gathering them", "rebuild with --gather_generation_logits")
    if dec.get("gather_context_logits") and not eng.gather_context_logits:
        ctx.add(path, "output context_logits", "the spec returns context logits but the engine was built "
                "without gathering them", "rebuild with --gather_context_logits")
    gpu_ids = [g for g in params.get("gpu_device_ids", "").replace(";", ",").split(",") if g.strip()]
    par = spec.get("parallelism") or {}
    if par:
        world = int(par.get("tp", 1)) * int(par.get("pp", 1))
        if world != eng.world_size:
            ctx.add(path, "parallelism", f"tp x pp = {par.get('tp', 1)} x {par.get('pp', 1)} = {world} but the "
                    f"engine was built for world size {eng.world_size} (tp={eng.tp_size}, pp={eng.pp_size})",
                    "use the engine's parallelism or rebuild")
    lora.check_engine(ctx, path, eng, spec)
    if gpu_ids and len(gpu_ids) != eng.world_size:
        ctx.add(path, "parameters.gpu_device_ids", f"{len(gpu_ids)} GPU(s) for an engine of world size "
                f"{eng.world_size}", f"give {eng.world_size} GPU id(s) (parallelism.gpu_ids)")
    engine_files = sorted(p.name for p in Path(eng.path).parent.glob("rank*.engine"))
    if engine_files and len(engine_files) != eng.world_size:
        ctx.add(eng.path.parent, "rank*.engine", f"{len(engine_files)} engine file(s) for world size "
                f"{eng.world_size}", "rebuild; one engine per rank is expected", "warning")
    mode = params.get("decoding_mode", "")
    expected = _SPEC_MODE_TO_DECODING.get(eng.speculative_decoding_mode or "")
    if expected and mode not in (expected, "auto"):
        ctx.add(path, "parameters.decoding_mode", f"{mode!r} but the engine was built for "
                f"{eng.speculative_decoding_mode} speculative decoding", f"set decoding_mode {expected}")
    if mode in _SPEC_MODE_TO_DECODING.values() and expected != mode:
        built = eng.speculative_decoding_mode or "no speculative decoding"
        ctx.add(path, "parameters.decoding_mode", f"{mode!r} needs an engine built for it, but the engine has "
                f"{built}", f"rebuild with --speculative_decoding_mode for {mode}, or use top_k_top_p")
    if mode == "beam_search" and (eng.max_beam_width or 1) < 2:
        ctx.add(path, "parameters.decoding_mode", "beam_search but the engine's max_beam_width is 1",
                "rebuild with --max_beam_width > 1")
    spec_dec = (dec.get("speculative") or {})
    if spec_dec.get("method") == "draft_target" and eng.speculative_decoding_mode != "draft_target":
        ctx.add(path, "decoding.speculative.method", "draft_target needs a target engine built with "
                "--speculative_decoding_mode draft_tokens_external", "rebuild the target engine")
    want_version = container_trtllm or ((lock or {}).get("container") or {}).get("trtllm_version")
    if eng.version and want_version and not versions.same_release(eng.version, want_version):
        image = ((lock or {}).get("container") or {}).get("image", "the container")
        ctx.add(path, "engine version", f"the engine was built by TensorRT-LLM {eng.version} but {image} runs "
                f"{want_version}; engines only load in the release that built them",
                "rebuild the engine for this container, or set container.image to a matching tag")
    mismatch = _engine_gpu_mismatch(eng, gpu_arch or (spec.get("engine") or {}).get("gpu"), gpu_ids)
    if mismatch:
        ctx.add(path, "engine GPU", mismatch, "rebuild the engine on (or for) the serving GPU")
    want_precision = (spec.get("precision") or {}).get("format")
    expected_algo = _QUANT_ALGO.get(want_precision or "")
    if expected_algo is not None and eng.quant_algo not in expected_algo:
        ctx.add(path, "precision.format", f"spec says {want_precision} but the engine's quant_algo is "
                    f"{eng.quant_algo}", "set precision.format to match the engine, or rebuild", "warning")


def _engine_gpu_mismatch(eng, want: str | None, gpu_ids: list[str]) -> str | None:
    """Why the engine cannot run on the target GPU (None when it can, or when either side is unknown).

    The target is ``want`` (--gpu / the spec's engine.gpu) or, when not given, the GPU nvidia-smi reports for the
    repository's first gpu_device_id. Engines are compiled for one compute capability: the architecture must
    match, and so must the SM when the build record has it (an SM 8.0 A100 engine does not load on an SM 8.6 A10G).
    """
    built_arch = eng.gpu_arch
    built_sm = eng.build_info.get("gpu_sm")
    if not built_arch and not built_sm:
        return None
    from ..gpus import arch_of, lookup

    target_sm = None
    if want:
        found = lookup(want)
        target_arch = found[1]["arch"] if found else arch_of(want)
        target_sm = str(found[1]["sm"]) if found else None
        label = want
    else:
        from ..engine import gating

        detected = gating.detect() or ()
        first = int(gpu_ids[0]) if gpu_ids and gpu_ids[0].strip().isdigit() else None
        here = next((g for g in detected if g.index == first), detected[0] if detected else None)
        if here is None:
            return None
        target_sm = here.sm
        target_arch = gating.arch_for_sm(here.sm) if here.sm else arch_of(here.name)
        label = f"{here.name} (GPU {here.index}, detected)"
    if not target_arch:
        return None
    if built_arch and target_arch != built_arch:
        return (f"the engine was built for {built_arch} but the target GPU is {label} ({target_arch}); TensorRT "
                "engines are specific to a GPU architecture")
    if built_sm and target_sm and str(built_sm) != str(target_sm):
        return (f"the engine was built for {built_arch or '?'} SM {built_sm} but the target GPU {label} is SM "
                f"{target_sm}; TensorRT engines are specific to a GPU's compute capability")
    return None


_QUANT_ALGO = engine_config.QUANT_ALGO_BY_PRECISION
