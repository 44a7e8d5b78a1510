"""Render a spec into a Triton model repository, atomically.

One Jinja environment (StrictUndefined, keep_trailing_newline). Only ``*.j2`` files are rendered; model.py and
its helper modules are copied byte for byte - they are real Python that runs in the stock NGC container. The
tree is rendered into a temporary sibling directory, validated, and only then swapped into place, so a failure
never leaves a half-written or mixed repository behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2
import yaml

from . import __version__, contract
from .errors import RepoExistsError, TritongenError, ValidationFailed
from .spec import Route, Spec, SpeculativeMethod, dump_spec

LOCK_NAME = "tritongen.lock.yaml"
_TMP_PREFIX = ".tritongen-tmp-"
_OLD_PREFIX = ".tritongen-old-"


def templates_root() -> Path:
    """The templates folder: packaged copy when installed as a wheel, else the source tree's ``templates/``."""
    packaged = Path(__file__).parent / "_templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"


# -- protobuf text-format helpers ------------------------------------------------------------------------

_ESCAPES = {"\\": "\\\\", '"': '\\"', "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def pbtxt_escape(value: object) -> str:
    """Escape a string for a double-quoted protobuf text-format literal (without the quotes).

    Control characters become octal escapes; other non-ASCII text stays UTF-8, which both the C++ and Python
    text-format parsers read back unchanged.
    """
    out = []
    for ch in str(value):
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return "".join(out)


def pbtxt_quote(value: object) -> str:
    return f'"{pbtxt_escape(value)}"'


def pbtxt_bool(value: object) -> str:
    return "true" if value else "false"


def _param_value(value: object) -> str:
    """Triton parameters are strings; booleans follow the backend's "true"/"false" convention."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _dtype_filter(tensor: contract.Tensor, logits_dtype: str) -> str:
    return contract.resolve_dtype(tensor, logits_dtype)


def environment() -> jinja2.Environment:
    """The one Jinja environment every template renders in."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_root())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=False,
        lstrip_blocks=False,
    )
    env.filters["q"] = pbtxt_quote
    env.filters["pbool"] = pbtxt_bool
    env.filters["dtype"] = _dtype_filter
    return env


# -- what goes where -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    src: str  #: path under templates/
    dst: str  #: path under the repository
    #: "draft": rendered with the draft model's spec (draft-target speculative decoding).
    role: str = "target"


_PY_MODEL_LIB = "common/lib/textcodec.py"


def plan(spec: Spec) -> list[Item]:
    """The files of the repository for this spec's route: (template, destination) pairs."""
    items: list[Item] = []
    if spec.route in (Route.engine, Route.cpu):
        items += [
            Item("common/ensemble/config.pbtxt.j2", "ensemble/config.pbtxt"),
            Item("common/preprocessing/config.pbtxt.j2", "preprocessing/config.pbtxt"),
            Item("common/preprocessing/1/model.py", "preprocessing/1/model.py"),
            Item(_PY_MODEL_LIB, "preprocessing/1/textcodec.py"),
            Item("common/postprocessing/config.pbtxt.j2", "postprocessing/config.pbtxt"),
            Item("common/postprocessing/1/model.py", "postprocessing/1/model.py"),
            Item(_PY_MODEL_LIB, "postprocessing/1/textcodec.py"),
        ]
        if spec.route is Route.engine:
            items.append(Item("engine/tensorrt_llm/config.pbtxt.j2", "tensorrt_llm/config.pbtxt"))
        else:
            items += [
                Item("cpu/tensorrt_llm/config.pbtxt.j2", "tensorrt_llm/config.pbtxt"),
                Item("cpu/tensorrt_llm/1/model.py", "tensorrt_llm/1/model.py"),
                Item(_PY_MODEL_LIB, "tensorrt_llm/1/textcodec.py"),  # the sampling ranges it checks
            ]
        if spec.decoding.speculative.method is SpeculativeMethod.draft_target:
            if spec.route is Route.engine:
                items.append(Item("engine/tensorrt_llm/config.pbtxt.j2", "tensorrt_llm_draft/config.pbtxt", "draft"))
            else:
                items += [
                    Item("cpu/tensorrt_llm/config.pbtxt.j2", "tensorrt_llm_draft/config.pbtxt", "draft"),
                    Item("cpu/tensorrt_llm/1/model.py", "tensorrt_llm_draft/1/model.py", "draft"),
                    Item(_PY_MODEL_LIB, "tensorrt_llm_draft/1/textcodec.py", "draft"),
                ]
        if spec.serving.bls:
            items += [
                Item("common/tensorrt_llm_bls/config.pbtxt.j2", "tensorrt_llm_bls/config.pbtxt"),
                Item("common/tensorrt_llm_bls/1/model.py", "tensorrt_llm_bls/1/model.py"),
                Item(_PY_MODEL_LIB, "tensorrt_llm_bls/1/textcodec.py"),
            ]
    elif spec.route is Route.llmapi:
        from . import llmapi

        items += llmapi.plan(spec)
    return items


#: Version folders Triton needs even when empty (ensemble; the engine lives at gpt_model_path).
def _empty_dirs(spec: Spec) -> list[str]:
    dirs = []
    if spec.route in (Route.engine, Route.cpu):
        dirs.append("ensemble/1")
    if spec.route is Route.engine:
        dirs.append("tensorrt_llm/1")
        if spec.decoding.speculative.method is SpeculativeMethod.draft_target:
            dirs.append("tensorrt_llm_draft/1")
    if spec.route is Route.llmapi:
        from . import llmapi

        dirs += llmapi.empty_dirs(spec)
    return dirs


# -- template context ------------------------------------------------------------------------------------


def engine_dir_for(spec: Spec) -> Path:
    """Where the engine for this spec is: ``engine.dir`` if given, else its cache entry."""
    if spec.engine.dir is not None:
        return Path(spec.engine.dir)
    from .engine import cache

    return cache.entry_dir(spec)


def draft_spec(spec: Spec) -> Spec:
    """The draft model of a draft-target spec, as its ``tensorrt_llm_draft`` model is rendered: on the engine
    route the same spec the engine planner builds (tp=1 on the target's first GPU), pointing at its engine."""
    if spec.route is Route.engine:
        from .engine import workflow
        from .engine.plan import draft_spec as planned

        draft = planned(spec)
        engine = spec.engine.draft_dir or workflow.draft_engine_dir(spec)
        if engine is None:
            from .engine import cache

            engine = cache.entry_dir(draft, role="draft")
        return draft.model_copy(update={"engine": draft.engine.model_copy(update={"dir": Path(engine)})})
    from .spec import load_spec

    lim = spec.limits
    return load_spec(spec.decoding.speculative.draft_model, options={
        "route": "cpu", "cpu.engine": spec.cpu.engine.value, "cpu.device": spec.cpu.device.value,
        "cpu.dtype": spec.cpu.dtype.value, "serving.streaming": spec.serving.streaming,
        "limits.max_batch_size": lim.max_batch_size, "limits.max_input_len": lim.max_input_len,
        "limits.max_seq_len": lim.max_seq_len, "limits.max_num_tokens": lim.max_num_tokens,
    })


def _medusa_tree(choices: list[list[int]] | None) -> str | None:
    if not choices:
        return None
    return ", ".join("{" + ", ".join(str(c) for c in path) + "}" for path in choices)


def llm_parameters(spec: Spec) -> dict[str, str]:
    """The tensorrt_llm model's ``parameters`` for the engine route (only what the spec sets)."""
    kv, sched, sv = spec.kv_cache, spec.scheduling, spec.serving
    params: dict[str, object] = {
        "gpt_model_type": sched.batching_strategy.value,
        "gpt_model_path": str(engine_dir_for(spec)),
        "max_beam_width": spec.limits.max_beam_width,
        "FORCE_CPU_ONLY_INPUT_TENSORS": "no",
        "batch_scheduler_policy": sched.batch_scheduler_policy.value,
        "kv_cache_free_gpu_mem_fraction": kv.free_gpu_mem_fraction,
        "enable_kv_cache_reuse": kv.enable_reuse,
        "enable_chunked_context": sched.enable_chunked_context,
        "exclude_input_in_output": sv.exclude_input_in_output,
        "normalize_log_probs": sv.normalize_log_probs,
        "decoding_mode": spec.resolved_decoding_mode.value,
        "gpu_device_ids": ",".join(str(g) for g in spec.parallelism.resolved_gpu_ids),
        "executor_worker_path": "/opt/tritonserver/backends/tensorrtllm/trtllmExecutorWorker",
        "tokenizer_dir": str(spec.tokenizer_dir),
    }
    if kv.max_tokens is not None:
        params["max_tokens_in_paged_kv_cache"] = kv.max_tokens
    if kv.host_memory_bytes:
        params["kv_cache_host_memory_bytes"] = kv.host_memory_bytes
    spec_dec = spec.decoding.speculative
    if spec_dec.method.value == "medusa" and spec_dec.medusa_choices:
        params["medusa_choices"] = _medusa_tree(spec_dec.medusa_choices)
    if spec_dec.method.value == "eagle" and spec_dec.eagle_choices:
        params["eagle_choices"] = _medusa_tree(spec_dec.eagle_choices)
    if spec_dec.method.value == "lookahead":
        params["lookahead_window_size"] = spec_dec.lookahead.window_size
        params["lookahead_ngram_size"] = spec_dec.lookahead.ngram_size
        params["lookahead_verification_set_size"] = spec_dec.lookahead.verification_set_size
    return {k: _param_value(v) for k, v in params.items()}


def cpu_llm_parameters(spec: Spec) -> dict[str, str]:
    """The cpu route's tensorrt_llm parameters: what the reference engine needs to load and decode."""
    params: dict[str, object] = {
        "engine": spec.cpu.engine.value,
        "checkpoint_dir": str(spec.checkpoint_dir),
        "tokenizer_dir": str(spec.tokenizer_dir),
        "device": spec.cpu.device.value,
        "torch_dtype": spec.cpu.dtype.value,
        "mock_step_ms": spec.cpu.mock_step_ms,
        "mock_echo": spec.cpu.mock_echo,
        "torch_threads": spec.cpu.threads or 0,
        "max_batch_size": spec.limits.max_batch_size,
        "max_input_len": spec.limits.max_input_len,
        "max_seq_len": spec.limits.max_seq_len,
        "max_beam_width": spec.limits.max_beam_width,
        "exclude_input_in_output": spec.serving.exclude_input_in_output,
        "trust_remote_code": spec.model.trust_remote_code,
        "decoding_mode": spec.resolved_decoding_mode.value,
    }
    return {k: _param_value(v) for k, v in params.items()}


def _tokenizer_parameters(spec: Spec) -> dict[str, object]:
    return {
        "tokenizer_dir": str(spec.tokenizer_dir),
        "trust_remote_code": spec.model.trust_remote_code,
    }


def context(spec: Spec) -> dict:
    """Everything a template may use. StrictUndefined turns any other name into an error."""
    sv = spec.serving
    pre = {
        **_tokenizer_parameters(spec),
        "add_special_tokens": sv.add_special_tokens,
        "max_input_len": spec.limits.max_input_len,
        "max_seq_len": spec.limits.max_seq_len,
        "max_prompt_bytes": sv.max_prompt_bytes,
    }
    post = {
        **_tokenizer_parameters(spec),
        "skip_special_tokens": sv.skip_special_tokens,
        "streaming": sv.streaming,
    }
    bls = {
        **_tokenizer_parameters(spec),
        "add_special_tokens": sv.add_special_tokens,
        "skip_special_tokens": sv.skip_special_tokens,
        "max_input_len": spec.limits.max_input_len,
        "max_seq_len": spec.limits.max_seq_len,
        "max_prompt_bytes": sv.max_prompt_bytes,
        "preprocessing_model": spec.model_names["preprocessing"],
        "llm_model": spec.model_names["tensorrt_llm"],
        "draft_model": spec.model_names["tensorrt_llm_draft"]
        if spec.decoding.speculative.method.value == "draft_target" else "",
        "num_draft_tokens": spec.resolved_max_draft_len,
    }
    llm = cpu_llm_parameters(spec) if spec.route is Route.cpu else (
        llm_parameters(spec) if spec.route is Route.engine else {})
    return {
        "spec": spec,
        "names": spec.model_names,
        "llm_name": spec.model_names["tensorrt_llm"],
        "version": __version__,
        "contract": contract,
        # The client contract of this repository (ensemble, tensorrt_llm_bls, llmapi front): serving.optional_outputs.
        "client_outputs": contract.client_outputs(spec.resolved_output_groups),
        "passthrough_outputs": contract.passthrough_outputs(spec.resolved_output_groups),
        "logits_dtype": sv.logits_dtype.value,
        "pre_params": {k: _param_value(v) for k, v in pre.items()},
        "post_params": {k: _param_value(v) for k, v in post.items()},
        "bls_params": {k: _param_value(v) for k, v in bls.items()},
        "llm_params": llm,
    }


# -- rendering and writing -------------------------------------------------------------------------------


def render_into(spec: Spec, dest: Path) -> list[Path]:
    """Render every file of the spec's repository into ``dest`` (which must exist). Returns written paths."""
    env = environment()
    root = templates_root()
    ctx = context(spec)
    if spec.route is Route.llmapi:
        from . import llmapi

        ctx.update(llmapi.context(spec))
    written = []
    draft_ctx = None
    prefix = spec.serving.model_prefix
    for item in plan(spec):
        target = dest / (prefix + item.dst)  # the first component is the model's folder
        target.parent.mkdir(parents=True, exist_ok=True)
        item_ctx = ctx
        if item.role == "draft":
            if draft_ctx is None:
                draft_ctx = {**context(draft_spec(spec)), "names": spec.model_names,
                             "llm_name": spec.model_names["tensorrt_llm_draft"]}
            item_ctx = draft_ctx
        if item.src.endswith(".j2"):
            try:
                text = env.get_template(item.src).render(**item_ctx)
            except jinja2.TemplateError as exc:
                raise TritongenError(f"template {item.src}: {exc}") from exc
            target.write_text(text)
        else:
            shutil.copyfile(root / item.src, target)
        written.append(target)
    for d in _empty_dirs(spec):
        (dest / (prefix + d)).mkdir(parents=True, exist_ok=True)
    return written


def file_hashes(repo: Path) -> dict[str, str]:
    """sha256 of every file in the repository except the lock file, keyed by relative path."""
    out = {}
    for path in sorted(repo.rglob("*")):
        if path.is_file() and path.name != LOCK_NAME and "__pycache__" not in path.parts:
            out[path.relative_to(repo).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def lock_data(spec: Spec, repo: Path) -> dict:
    """What ``tritongen.lock.yaml`` records: enough for the repository to explain itself."""
    from . import versions

    image, trtllm_version = versions.resolve_container(spec)
    engine: dict | None = None
    if spec.route is Route.engine:
        from .engine_config import engine_identity

        engine = engine_identity(engine_dir_for(spec))
    return {
        "generated_by": f"tritongen {__version__}",
        "tritongen_version": __version__,
        "route": spec.route.value,
        "container": {"image": image, "trtllm_version": trtllm_version},
        "engine": engine,
        "spec": dump_spec(spec),
        "files": file_hashes(repo),
    }


def write_lock(spec: Spec, repo: Path, *, name: str | None = None) -> Path:
    data = lock_data(spec, repo)
    header = (
        "# Written by tritongen; it records how this repository was made. Do not edit: change the spec and run\n"
        f"# `tritongen repo` again. `tritongen validate {name or repo.name}` checks the tree against it.\n"
    )
    path = repo / LOCK_NAME
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))
    return path


def read_lock(repo: Path) -> dict | None:
    path = Path(repo) / LOCK_NAME
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def check_overwritable(out_dir: Path) -> None:
    """Refuse to replace a directory tritongen did not create, or one edited since it was written."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise RepoExistsError(f"{out_dir} exists and is not a directory", hint="pass --force to replace it")
    if not any(out_dir.iterdir()):
        return
    lock = read_lock(out_dir)
    if lock is None:
        raise RepoExistsError(
            f"{out_dir} exists and was not created by tritongen (no {LOCK_NAME})",
            hint="choose another --name/--out, or pass --force to replace it",
        )
    recorded = lock.get("files") or {}
    current = file_hashes(out_dir)
    changed = sorted(p for p in recorded if current.get(p) != recorded[p])
    added = sorted(p for p in current if p not in recorded)
    if changed or added:
        what = ", ".join([*(f"{p} changed" for p in changed), *(f"{p} added" for p in added)][:5])
        raise RepoExistsError(
            f"{out_dir} was edited after tritongen wrote it ({what})",
            hint="move your edits into the spec, or pass --force to overwrite them",
        )


def write_repo(spec: Spec, out_dir: Path, *, force: bool = False, validate: bool = True) -> Path:
    """Render, validate, then atomically put the repository at ``out_dir``. Returns ``out_dir``."""
    out_dir = Path(out_dir).absolute()
    if not force:
        check_overwritable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{out_dir.name}-", dir=out_dir.parent))
    try:
        render_into(spec, tmp)
        write_lock(spec, tmp, name=out_dir.name)
        if validate:
            from .validate import validate_repo

            report = validate_repo(tmp, display_root=out_dir)
            if report.errors:
                raise ValidationFailed(report.errors, hint="the repository was not written; fix the spec")
        _swap_into_place(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    old = None
    if out_dir.exists() or out_dir.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f"{_OLD_PREFIX}{out_dir.name}-", dir=out_dir.parent))
        os.rmdir(old)
        os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except OSError:
        if old is not None:
            os.rename(old, out_dir)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
    # mkdtemp made the folder 0700; a repository is mounted into containers, so make it world-readable.
    for path in [out_dir, *out_dir.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
        elif path.is_file():
            path.chmod(0o644)
