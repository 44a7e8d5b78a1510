"""Data that changes with upstream releases lives here as YAML, not in code.

- ``models/<name>.yaml``: partial specs for known models (shape facts, default precision and limits)
- ``containers.yaml``: NGC container tag <-> TensorRT-LLM version <-> supported routes
- ``gpus.yaml``: GPU facts for gating and sizing
- ``trtllm_flags.yaml`` / ``trtllm_tools.yaml`` / ``convert_scripts.yaml``: the build tools' interface
"""

from __future__ import annotations

import difflib
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import CatalogError

_ROOT = Path(str(resources.files(__package__)))


def data_path(name: str) -> Path:
    return _ROOT / name


@functools.cache
def load(name: str) -> Any:
    """Load ``<name>`` (a YAML file in this folder); cached for the life of the process."""
    path = _ROOT / name
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CatalogError(f"catalogue file missing: {path}") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(f"catalogue file {path} is not valid YAML: {exc}") from exc


@functools.cache
def model_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in (_ROOT / "models").glob("*.yaml")))


def model_entry(name: str) -> dict:
    """The catalogue entry for ``name`` (a partial spec dict); a one-line error with suggestions if unknown."""
    if name not in model_names():
        close = difflib.get_close_matches(name, model_names(), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see `tritongen models`"
        raise CatalogError(
            f"unknown model {name!r}; known: {', '.join(model_names())} (or give --checkpoint DIR)", hint=hint
        )
    entry = load(f"models/{name}.yaml")
    if not isinstance(entry, dict) or "model" not in entry:
        raise CatalogError(f"catalogue entry models/{name}.yaml has no 'model' section")
    return entry


def _read_checkpoint_config(checkpoint_dir: Path):
    from .hf_config import read_config

    cfg_path = Path(checkpoint_dir) / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text())
    except OSError as exc:
        raise CatalogError(f"{cfg_path}: cannot read the checkpoint's config.json ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{cfg_path}: not valid JSON ({exc})") from exc
    if not isinstance(cfg, dict):
        raise CatalogError(f"{cfg_path}: a config.json must be a JSON object")
    return cfg_path, read_config(cfg)


def model_info_from_checkpoint(checkpoint_dir: Path, *, given: set[str] | frozenset = frozenset()) -> dict:
    """Read a Hugging Face checkpoint's config.json into ``model`` spec fields (shape facts only).

    Every key spelling real checkpoints use is read (catalog/hf_config.py). A needed fact the config does not
    state, and that is not ``given`` by the spec or options, is a CatalogError naming it and the keys looked for.
    """
    cfg_path, facts = _read_checkpoint_config(checkpoint_dir)
    missing = {k: v for k, v in facts.missing.items() if k not in given}
    if missing:
        first = next(iter(missing))
        raise CatalogError(
            f"{cfg_path}: states no {', '.join(missing)} (looked for "
            f"{'; '.join(k + ': ' + ', '.join(v) for k, v in missing.items())})",
            hint=f"give it, e.g. --set model.{first}=N (from the model card), instead of a guess")
    return dict(facts.spec)


def checkpoint_extras(checkpoint_dir: Path) -> dict:
    """Planner-only facts of a checkpoint's config.json the spec has no field for (MLA latent sizes, shared
    experts, dense layers of a MoE model, MLP form); empty when there is no readable config.json."""
    if not (Path(checkpoint_dir) / "config.json").is_file():
        return {}
    try:
        return dict(_read_checkpoint_config(checkpoint_dir)[1].extra)
    except CatalogError:
        return {}


def estimate_params(info: dict, *, tied: bool = False) -> int | None:
    """Parameter count of a decoder from the spec's shape fields (attention + gated MLP + embeddings), by the one
    formula config.json reading uses (:func:`hf_config.estimate_params_from`)."""
    from .hf_config import ConfigFacts, estimate_params_from

    return estimate_params_from(ConfigFacts(spec=info, extra={"tied_embeddings": tied}))
