"""What a generated model repository on disk says about itself: its models, GPUs, image and referenced paths.

Read from the lock file and the model configs only (no GPU, no server), so that launching, mounting and
checking a repository all start from the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

TRTLLM_BACKEND = "tensorrtllm"


@dataclass
class TrtllmModel:
    """One model served by the TensorRT-LLM C++ backend."""

    name: str
    world_size: int
    gpu_ids: list[int]
    engine_dir: str | None = None


@dataclass
class RepoInfo:
    """What launching needs to know about one model repository."""

    path: Path
    route: str | None
    models: list[str]
    trtllm: list[TrtllmModel] = field(default_factory=list)
    #: GPUs used by models that are not TensorRT-LLM engines (llmapi route, cpu route on CUDA).
    other_gpu_ids: list[int] = field(default_factory=list)
    #: tp x pp of an llmapi repository (its LLM API starts the workers itself).
    llmapi_world_size: int = 0
    image: str | None = None
    trtllm_version: str | None = None
    #: Every host path the repository's configs reference (engine, tokenizer, checkpoint dirs).
    referenced_paths: list[str] = field(default_factory=list)


def parse_gpu_ids(text: str | None, *, flag: str | None = None) -> list[int]:
    """GPU ids from a list such as ``0,1``, each once and in order.

    A config's ``gpu_device_ids`` may list one set per instance (``0,1;2,3``): all of them count. Without
    ``flag`` (text read from a config) anything that is not an id is skipped; with it (text a user typed) it is
    a usage error naming that flag.
    """
    out: list[int] = []
    for part in (text or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if flag is None:
            if not part.isdigit():
                continue
            value = int(part)
        else:
            try:
                value = int(part)
            except ValueError:
                raise UsageError(f"{flag} {text!r}: give GPU ids separated by commas, e.g. 0,1") from None
        if value not in out:
            out.append(value)
    return out


def inspect_repo(path: Path) -> RepoInfo:
    """Read a repository's lock file and model configs (no GPU, no server needed)."""
    from .. import engine_config
    from .lock import read_lock
    from .report import params_of, parse_config

    path = Path(path).absolute()
    lock = read_lock(path) or {}
    spec = lock.get("spec") or {}
    par = spec.get("parallelism") or {}
    tp, pp = int(par.get("tp") or 1), int(par.get("pp") or 1)
    spec_ids = [int(g) for g in par["gpu_ids"]] if par.get("gpu_ids") else list(range(tp * pp))
    route = lock.get("route") or spec.get("route")
    container = lock.get("container") or {}
    info = RepoInfo(path=path, route=route, models=[], image=container.get("image"),
                    trtllm_version=((lock.get("engine") or {}).get("trtllm_version")
                                    or container.get("trtllm_version")))
    refs: list[str] = []
    for cfg_path in sorted(path.glob("*/config.pbtxt")):
        try:
            cfg = parse_config(cfg_path)
        except ValueError as exc:
            raise UsageError(f"{cfg_path}: not a valid model config ({exc})",
                             hint=f"tritongen validate {path}") from None
        name = cfg.name or cfg_path.parent.name
        info.models.append(name)
        params = params_of(cfg)
        refs += [v for v in params.values() if _looks_like_path(v)]
        if cfg.backend == TRTLLM_BACKEND:
            engine_dir = params.get("gpt_model_path") or None
            world = tp * pp if route == "engine" else 1
            if engine_dir and Path(engine_dir, "config.json").is_file():
                try:
                    world = engine_config.load(Path(engine_dir)).world_size
                except engine_config.EngineConfigError:
                    pass
            ids = parse_gpu_ids(params.get("gpu_device_ids")) or (spec_ids if len(spec_ids) == world else
                                                                  list(range(world)))
            info.trtllm.append(TrtllmModel(name, world, ids, engine_dir))
    for yaml_path in sorted(path.glob("*/1/model.yaml")):
        refs += _yaml_paths(yaml_path)
    if route == "llmapi":
        info.llmapi_world_size = tp * pp
        info.other_gpu_ids = spec_ids
    elif route == "cpu" and (spec.get("cpu") or {}).get("device") == "cuda":
        info.other_gpu_ids = spec_ids[:1] or [0]
    info.referenced_paths = list(dict.fromkeys(refs))
    return info


def _looks_like_path(value: str) -> bool:
    return isinstance(value, str) and value.startswith("/") and "\n" not in value and len(value) > 1


def _yaml_paths(path: Path) -> list[str]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return []
    out: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str) and _looks_like_path(node):
            out.append(node)

    walk(data)
    return out
