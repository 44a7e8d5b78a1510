"""Check a model repository the way tritonserver and the TensorRT-LLM backend will at load time.

Every ``config.pbtxt`` is parsed with Triton's own ``ModelConfig`` protobuf; ensembles are wired tensor by
tensor (names, dtypes, dims, required inputs, unused tensors, decoupled origins); no unrendered placeholder may
remain; and when the engine's ``config.json`` is reachable the tensorrt_llm settings are cross-checked against
it as the backend would. Each problem is one line: ``file: field: what is wrong -> how to fix``.
"""

from __future__ import annotations

import re
from pathlib import Path

from .. import routes
from .ensemble import check_ensemble
from .lock import LOCK_NAME, file_hashes, read_lock
from .report import Problem, RepoCheck, Report, dtype_name, params_of, parse_config

__all__ = ["Problem", "Report", "dtype_name", "params_of", "parse_config", "validate_repo"]

_PLACEHOLDER = re.compile(r"\$\{[^}]*\}?|\{\{|\{%")


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
    if not repo.is_dir():
        ctx = RepoCheck(repo, display_root)
        ctx.add(repo, "repository", "not a directory", "give the path of a model repository (repos/<name>)")
        return ctx.report
    lock = read_lock(repo)
    ctx = RepoCheck(repo, display_root, lock=lock, engine_dir=engine_dir, container_trtllm=container_trtllm,
                    gpu_arch=gpu_arch)
    _check_placeholders(ctx)
    _load_models(ctx)
    if not ctx.report.models and not ctx.report.errors:
        ctx.add(repo, "repository", "contains no model (no */config.pbtxt)", "run `tritongen repo MODEL`")
    for name, cfg in ctx.report.models.items():
        _check_model(ctx, name, cfg)
    for name, cfg in ctx.report.models.items():
        if cfg.platform == "ensemble":
            check_ensemble(ctx, name, cfg)
    if lock is not None:
        _check_lock(ctx, lock)
    _check_routes(ctx)
    return ctx.report


# -- per-file checks -------------------------------------------------------------------------------------


def _check_placeholders(ctx: RepoCheck) -> None:
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


def _load_models(ctx: RepoCheck) -> None:
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


def _check_model(ctx: RepoCheck, name: str, cfg) -> None:
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


# -- lock file -------------------------------------------------------------------------------------------


def _check_lock(ctx: RepoCheck, lock: dict) -> None:
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


# -- the route's own rules -------------------------------------------------------------------------------


def _check_routes(ctx: RepoCheck) -> None:
    """Each route's own rules (engine: the tensorrtllm models and their engine; llmapi: model.yaml, upstream's
    tensor contract, the front's wiring); a route's rules decide themselves whether a model is one of theirs."""
    for name in routes.names():
        routes.get(name).check_repo(ctx)
