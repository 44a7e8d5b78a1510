"""Check a model repository the way tritonserver and the TensorRT-LLM backend will at load time.

Every ``config.pbtxt`` is parsed with Triton's own ``ModelConfig`` protobuf; ensembles are wired tensor by
tensor (names, dtypes, dims, required inputs, unused tensors, decoupled origins); no unrendered placeholder may
remain; and when the engine's ``config.json`` is reachable the tensorrt_llm settings are cross-checked against
it as the backend would. Each problem is one line: ``file: field: what is wrong -> how to fix``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import engine_config, versions
from .render import LOCK_NAME, file_hashes, read_lock

_PLACEHOLDER = re.compile(r"\$\{[^}]*\}?|\{\{|\{%")
_VALID_BATCHING = {"inflight_fused_batching", "inflight_batching", "V1"}
_VALID_DECODING = {"top_k", "top_p", "top_k_top_p", "beam_search", "medusa", "redrafter", "lookahead", "eagle",
                   "explicit_draft_tokens", "auto"}
_SPEC_MODE_TO_DECODING = {"medusa": "medusa", "eagle": "eagle", "lookahead": "lookahead",
                          "explicit_draft_tokens": "explicit_draft_tokens"}
_BOOL_TRUE = {"true", "1", "yes", "on"}


@dataclass(frozen=True)
class Problem:
    file: str
    field: str
    message: str
    fix: str = ""
    severity: str = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        fix = f" -> {self.fix}" if self.fix else ""
        return f"{prefix}{self.file}: {self.field}: {self.message}{fix}"


@dataclass
class Report:
    repo: Path
    problems: list[Problem] = field(default_factory=list)
    models: dict[str, Any] = field(default_factory=dict)
    engine: engine_config.EngineConfig | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


class _Ctx:
    def __init__(self, repo: Path, display_root: Path | None):
        self.repo = repo
        self.display_root = display_root or repo
        self.report = Report(repo=self.display_root)
        #: serving.model_prefix of the repository (from its lock file): models are "<prefix><role>".
        self.prefix = ""
        #: Models whose config.pbtxt does not parse: reported once, not again by every ensemble step using them.
        self.unparsable: set[str] = set()

    def name(self, role: str) -> str:
        return self.prefix + role

    def rel(self, path: Path) -> str:
        try:
            return str(self.display_root / path.relative_to(self.repo))
        except ValueError:
            return str(path)

    def add(self, path: Path | str, fld: str, message: str, fix: str = "", severity: str = "error") -> None:
        where = self.rel(path) if isinstance(path, Path) else path
        self.report.problems.append(Problem(where, fld, message, fix, severity))


def _pb():
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2, text_format


def parse_config(path: Path):
    """Parse one config.pbtxt into a ``ModelConfig`` message; raises ValueError with line/column."""
    pb, text_format = _pb()
    msg = pb.ModelConfig()
    try:
        text_format.Parse(path.read_text(), msg)
    except text_format.ParseError as exc:
        raise ValueError(str(exc)) from None
    return msg


def dtype_name(value: int) -> str:
    pb, _ = _pb()
    return pb.DataType.Name(value)


def params_of(cfg) -> dict[str, str]:
    return {k: v.string_value for k, v in cfg.parameters.items()}


def validate_repo(
    repo: Path,
    *,
    engine_dir: Path | None = None,
    display_root: Path | None = None,
    container_trtllm: str | None = None,
    gpu_arch: str | None = None,
) -> Report:
    """Validate ``repo``. ``engine_dir`` overrides the tensorrt_llm ``gpt_model_path`` for the engine checks."""
    repo = Path(repo)
    ctx = _Ctx(repo, display_root)
    if not repo.is_dir():
        ctx.add(repo, "repository", "not a directory", "give the path of a model repository (repos/<name>)")
        return ctx.report
    lock = read_lock(repo)
    ctx.prefix = str((((lock or {}).get("spec") or {}).get("serving") or {}).get("model_prefix") or "")
    _check_placeholders(ctx)
    _load_models(ctx)
    if not ctx.report.models and not ctx.report.errors:
        ctx.add(repo, "repository", "contains no model (no */config.pbtxt)", "run `tritongen repo MODEL`")
    for name, cfg in ctx.report.models.items():
        _check_model(ctx, name, cfg)
    for name, cfg in ctx.report.models.items():
        if cfg.platform == "ensemble":
            _check_ensemble(ctx, name, cfg)
    if lock is not None:
        _check_lock(ctx, lock)
    _check_tensorrt_llm(ctx, lock, engine_dir, container_trtllm, gpu_arch)
    _check_llmapi(ctx, lock)
    return ctx.report


# -- per-file checks -------------------------------------------------------------------------------------


def _check_placeholders(ctx: _Ctx) -> None:
    for path in sorted(ctx.repo.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".engine", ".bin", ".safetensors"):
            continue
        if path.stat().st_size > 4 * 1024 * 1024:
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            m = _PLACEHOLDER.search(line)
            if m:
                ctx.add(path, f"line {lineno}", f"unrendered placeholder {m.group(0)!r}",
                        "every value must be filled; render the repository with `tritongen repo`")
                break


def _load_models(ctx: _Ctx) -> None:
    for sub in sorted(p for p in ctx.repo.iterdir() if p.is_dir() and not p.name.startswith(".")):
        cfg_path = sub / "config.pbtxt"
        if not cfg_path.is_file():
            ctx.add(sub, "config.pbtxt", "missing", "every model folder needs a config.pbtxt", "warning")
            continue
        try:
            cfg = parse_config(cfg_path)
        except ValueError as exc:
            ctx.add(cfg_path, "protobuf", f"Triton cannot parse it: {exc}",
                    "fix the syntax (or regenerate with `tritongen repo`)")
            ctx.unparsable.add(sub.name)
            continue
        ctx.report.models[sub.name] = cfg


def _check_model(ctx: _Ctx, name: str, cfg) -> None:
    folder = ctx.repo / name
    cfg_path = folder / "config.pbtxt"
    if cfg.name and cfg.name != name:
        ctx.add(cfg_path, "name", f"{cfg.name!r} differs from its folder {name!r}; Triton refuses to load it",
                f'set name: "{name}" or rename the folder')
    if not cfg.backend and not cfg.platform:
        ctx.add(cfg_path, "backend", "neither backend nor platform is set", 'set backend: "python" or similar')
    versions_found = [p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]
    if not versions_found:
        ctx.add(folder, "version folder", "no numeric version folder (e.g. 1/); Triton sees no version to load",
                f"create {name}/1/")
    if cfg.backend == "python":
        for v in versions_found:
            if not (v / "model.py").is_file():
                ctx.add(v, "model.py", "python backend model without model.py", "add model.py")
    for kind in ("input", "output"):
        seen: set[str] = set()
        for t in getattr(cfg, kind):
            if t.name in seen:
                ctx.add(cfg_path, f"{kind} {t.name}", "declared twice", "remove the duplicate", "warning")
            seen.add(t.name)
    if cfg.max_batch_size < 0:
        ctx.add(cfg_path, "max_batch_size", f"{cfg.max_batch_size} is negative", "use 0 (no batching) or more")
    for count in (g.count for g in cfg.instance_group):
        if count < 1:
            ctx.add(cfg_path, "instance_group.count", f"{count} must be at least 1", "set count: 1")


# -- ensembles -------------------------------------------------------------------------------------------


@dataclass
class _Tensor:
    dtype: int
    dims: tuple[int, ...]
    origin: str | None  # nearest decoupled model this tensor came from (None: none)
    where: str


def _dims_compatible(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    if len(a) != len(b):
        return False
    return all(x == y or x == -1 or y == -1 for x, y in zip(a, b))


def _check_ensemble(ctx: _Ctx, name: str, cfg) -> None:
    path = ctx.repo / name / "config.pbtxt"
    models = ctx.report.models
    tensors: dict[str, _Tensor] = {
        t.name: _Tensor(t.data_type, tuple(t.dims), None, "ensemble input") for t in cfg.input
    }
    consumed: set[str] = set()
    produced_by: dict[str, str] = {}
    steps = list(cfg.ensemble_scheduling.step)
    if not steps:
        ctx.add(path, "ensemble_scheduling", "has no steps", "add the steps")
        return
    pending = list(enumerate(steps))
    # Steps may be listed in any order; resolve them as their inputs become available.
    for _ in range(len(steps) + 1):
        progressed = False
        for idx, step in list(pending):
            if all(v in tensors for v in step.input_map.values()):
                _check_step(ctx, path, idx, step, models, tensors, consumed, produced_by)
                pending.remove((idx, step))
                progressed = True
        if not pending or not progressed:
            break
    for idx, step in pending:
        missing = sorted(v for v in step.input_map.values() if v not in tensors)
        ctx.add(path, f"step {idx} ({step.model_name}).input_map",
                f"tensor(s) {', '.join(missing)} are neither ensemble inputs nor produced by any step",
                "map them from an ensemble input or an earlier step's output_map")
    outputs = {t.name: t for t in cfg.output}
    for out_name, out in outputs.items():
        src = tensors.get(out_name)
        if out_name not in produced_by:
            ctx.add(path, f"output {out_name}", "no step produces it",
                    "add an output_map whose value is this name, or remove the output")
            continue
        if not src.dtype:  # produced by a model that is missing or does not parse: already reported
            continue
        if src.dtype != out.data_type:
            ctx.add(path, f"output {out_name}", f"declared {dtype_name(out.data_type)} but step "
                    f"{produced_by[out_name]} produces {dtype_name(src.dtype)}", "make the dtypes agree")
        if not _dims_compatible(tuple(out.dims), src.dims):
            ctx.add(path, f"output {out_name}", f"dims {list(out.dims)} incompatible with {list(src.dims)} from "
                    f"{produced_by[out_name]}", "make the dims agree")
    for t in cfg.input:
        if t.name not in consumed:
            ctx.add(path, f"input {t.name}", "is not used by any step; Triton refuses unused ensemble tensors",
                    "map it into a step or remove it")
    for tname, producer in produced_by.items():
        if tname not in consumed and tname not in outputs:
            ctx.add(path, f"output_map {tname}", f"produced by {producer} but never used; Triton refuses unused "
                    "ensemble tensors", "consume it in a later step, expose it as an output, or drop the mapping")


def _check_step(ctx, path, idx, step, models, tensors, consumed, produced_by) -> None:
    label = f"step {idx} ({step.model_name})"
    model = models.get(step.model_name)
    if model is None:
        if step.model_name not in ctx.unparsable:
            ctx.add(path, f"{label}.model_name", f"no model {step.model_name!r} in the repository",
                    "add the model or fix the name")
        # Its tensors' types are unknown (dtype 0): nothing downstream is checked against them.
        for value in step.input_map.values():
            consumed.add(value)
        for value in step.output_map.values():
            tensors[value] = _Tensor(0, (), None, label)
            produced_by[value] = step.model_name
        return
    if model.max_batch_size and ctx.report.models.get(path.parent.name) is not None:
        ens = ctx.report.models[path.parent.name]
        if ens.max_batch_size > model.max_batch_size:
            ctx.add(path, "max_batch_size", f"{ens.max_batch_size} exceeds {step.model_name}'s "
                    f"max_batch_size {model.max_batch_size}", "lower it to the smallest composing model's")
    inputs = {t.name: t for t in model.input}
    # Triton refuses a step fed from two streams, where "no decoupled model" (the request itself) counts as
    # one too: checked against tritonserver 2.51, which rejects mixing an ensemble input or a preprocessing
    # output with a decoupled step's output.
    origins: set[str | None] = set()
    for key, value in step.input_map.items():
        consumed.add(value)
        src = tensors[value]
        origins.add(src.origin)
        decl = inputs.get(key)
        if decl is None:
            ctx.add(path, f"{label}.input_map {key}", f"{step.model_name} has no input {key!r}",
                    f"inputs are: {', '.join(sorted(inputs)) or 'none'}")
            continue
        if src.dtype and src.dtype != decl.data_type:
            ctx.add(path, f"{label}.input_map {key}", f"{value} is {dtype_name(src.dtype)} ({src.where}) but "
                    f"{step.model_name}.{key} expects {dtype_name(decl.data_type)}", "make the dtypes agree")
        elif src.dims and not _dims_compatible(src.dims, tuple(decl.dims)):
            ctx.add(path, f"{label}.input_map {key}", f"{value} has dims {list(src.dims)} ({src.where}) but "
                    f"{step.model_name}.{key} expects {list(decl.dims)}", "make the dims agree")
    for in_name, decl in inputs.items():
        if not decl.optional and in_name not in step.input_map:
            ctx.add(path, f"{label}.input_map", f"required input {in_name!r} of {step.model_name} is not mapped",
                    "map it from an ensemble input or an earlier step")
    if len(origins) > 1:
        names = sorted(o or "the request" for o in origins)
        ctx.add(path, f"{label}.input_map", f"receives tensors from different decoupled models "
                f"({', '.join(names)}); Triton refuses this ensemble", "feed the step from one stream")
    # A decoupled step starts a new stream; any other step's outputs belong to the stream it was fed from.
    decoupled = model.model_transaction_policy.decoupled
    streams = sorted(o for o in origins if o)
    own_origin = step.model_name if decoupled else (streams[0] if streams else None)
    outputs = {t.name: t for t in model.output}
    for key, value in step.output_map.items():
        decl = outputs.get(key)
        if decl is None:
            ctx.add(path, f"{label}.output_map {key}", f"{step.model_name} has no output {key!r}",
                    f"outputs are: {', '.join(sorted(outputs)) or 'none'}")
            tensors[value] = _Tensor(0, (), own_origin, label)
        else:
            if value in produced_by:
                ctx.add(path, f"{label}.output_map {key}", f"{value} is already produced by {produced_by[value]}",
                        "give each ensemble tensor one producer")
            tensors[value] = _Tensor(decl.data_type, tuple(decl.dims), own_origin, f"{step.model_name}.{key}")
        produced_by[value] = step.model_name


# -- lock file -------------------------------------------------------------------------------------------


def _check_lock(ctx: _Ctx, lock: dict) -> None:
    lock_path = ctx.repo / LOCK_NAME
    recorded = lock.get("files") or {}
    current = file_hashes(ctx.repo)
    for rel, digest in recorded.items():
        if rel not in current:
            ctx.add(lock_path, "files", f"{rel} is recorded but missing", "regenerate with `tritongen repo`")
        elif current[rel] != digest:
            ctx.add(ctx.repo / rel, "contents", "edited after tritongen wrote it",
                    "move the change into the spec and regenerate", "warning")
    spec = lock.get("spec") or {}
    llm = ctx.report.models.get(ctx.name("tensorrt_llm"))
    streaming = (spec.get("serving") or {}).get("streaming")
    if llm is not None and streaming is not None and bool(streaming) != llm.model_transaction_policy.decoupled:
        ctx.add(ctx.repo / ctx.name("tensorrt_llm") / "config.pbtxt", "model_transaction_policy.decoupled",
                f"is {str(llm.model_transaction_policy.decoupled).lower()} but the spec asks "
                f"serving.streaming={str(bool(streaming)).lower()}; streaming needs decoupled mode",
                "set decoupled to match serving.streaming (regenerate)")


# -- tensorrt_llm / engine -------------------------------------------------------------------------------


def _check_tensorrt_llm(ctx: _Ctx, lock: dict | None, engine_dir: Path | None,
                        container_trtllm: str | None, gpu_arch: str | None) -> None:
    _check_llm_model(ctx, ctx.name("tensorrt_llm"), lock, engine_dir, container_trtllm, gpu_arch)
    # A draft-target repository's draft engine is checked the same way, but not against the target's spec
    # (it runs tp=1 with no speculative decoding of its own).
    draft_lock = {**lock, "spec": {}} if lock else None
    _check_llm_model(ctx, ctx.name("tensorrt_llm_draft"), draft_lock, None, container_trtllm, gpu_arch)


def _check_llm_model(ctx: _Ctx, name: str, lock: dict | None, engine_dir: Path | None,
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


def _check_llm_contract(ctx: _Ctx, path: Path, cfg, lock: dict | None, container_trtllm: str | None) -> None:
    """The tensors against those the backend of the container's TensorRT-LLM release reads and writes
    (tritongen.contract, catalog/trtllm_contract.yaml). Names the contract does not know at all (multimodal,
    encoder-decoder tensors of a hand-made config) are not judged."""
    from . import contract

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


def check_engine(ctx: _Ctx, path: Path, cfg, params: dict[str, str], eng, spec: dict, lock: dict | None,
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
    from .gpus import arch_of, lookup

    target_sm = None
    if want:
        found = lookup(want)
        target_arch = found[1]["arch"] if found else arch_of(want)
        target_sm = str(found[1]["sm"]) if found else None
        label = want
    else:
        from .engine import gating

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


# -- llmapi route ----------------------------------------------------------------------------------------


def _check_llmapi(ctx: _Ctx, lock: dict | None) -> None:
    """llmapi repositories: model.yaml (LLM() arguments of the pinned TensorRT-LLM, triton_config), the upstream
    tensor contract of tensorrt_llm and the front's wiring onto it. The rules live in tritongen.llmapi."""
    from . import llmapi

    if not llmapi.is_llmapi_repo(ctx.repo, ctx.report.models, lock, ctx.prefix):
        return
    for path, fld, message, fix, severity in llmapi.check_repo(ctx.repo, ctx.report.models, lock, ctx.prefix):
        ctx.add(path, fld, message, fix, severity)
