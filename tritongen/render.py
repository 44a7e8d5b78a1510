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
import time
from dataclasses import dataclass
from pathlib import Path

import jinja2
import yaml

from . import __version__, contract
from .errors import GatingError, OutputError, RepoExistsError, TritongenError, UsageError, ValidationFailed
from .names import inside
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


def tensor_contract(spec: Spec) -> dict:
    """The tensors and mappings of this spec's repository, for the TensorRT-LLM release of its container.

    The engine route's tensorrt_llm model declares exactly what that release's backend reads and writes; the
    cpu engine declares the newest contract plus the old names (it is ours, and accepts both). The ensemble
    and tensorrt_llm_bls follow the release either way, so a cpu repository pinned to an old container wires
    its ensemble as the engine route would.
    """
    from . import versions

    image, trtllm = (None, None)
    if spec.route in (Route.engine, Route.cpu):
        image, trtllm = versions.resolve_container(spec)
    try:
        llm = contract.llm_contract(trtllm)
    except ValueError as exc:
        raise GatingError(f"container.image: {image}: {exc}") from None
    groups = spec.resolved_output_groups
    if spec.route is Route.llmapi:
        # The llmapi front has its own contract (tritongen.llmapi); it is not the engine backend's.
        return {"trtllm_version": None, "llm_contract": llm, "groups": groups,
                "client_outputs": contract.client_outputs(groups),
                "passthrough_outputs": contract.passthrough_outputs(groups), "dropped_outputs": {}}
    missing = contract.unavailable_outputs(groups, trtllm)
    explicit = isinstance(spec.serving.optional_outputs, list)
    for group, names in missing.items():
        if explicit and set(names) == set(contract.OUTPUT_GROUPS[group]):
            raise GatingError(
                f"serving.optional_outputs: {group} ({', '.join(names)}) is not produced by the tensorrt_llm "
                f"backend of TensorRT-LLM {trtllm} ({image}; contract row {llm.row})",
                hint=f"drop {group} from serving.optional_outputs, or use a newer container.image")
    renamed = {n: llm.name(n) for n in contract.PASSTHROUGH_OUTPUTS}
    return {
        "trtllm_version": trtllm,
        "llm_contract": llm,
        "groups": groups,
        "llm_inputs": contract.cpu_llm_inputs() if spec.route is Route.cpu else llm.inputs,
        "llm_outputs": contract.LLM_OUTPUTS if spec.route is Route.cpu else llm.outputs,
        "client_inputs": contract.client_inputs_for(trtllm),
        "client_outputs": contract.client_outputs(groups, trtllm),
        "passthrough_outputs": contract.passthrough_outputs(groups, trtllm),
        #: tensorrt_llm output -> client output, for the outputs passed through
        "passthrough_map": {renamed[n]: n for n in contract.passthrough_outputs(groups, trtllm)},
        "pre_to_llm": contract.pre_to_llm_for(trtllm),
        "client_to_llm": contract.client_to_llm_for(trtllm),
        "client_to_pre": {c: p for c, p in contract.CLIENT_TO_PRE.items()},
        "llm_output_ids": llm.name("output_ids"),
        "llm_sequence_length": llm.name("sequence_length"),
        #: group -> outputs this release never produces, left out of the client contract
        "dropped_outputs": missing,
    }


def _llm_names(llm: contract.LLMContract) -> str:
    """For tensorrt_llm_bls: "contract name=this release's name" for each input it names differently, with
    nothing after "=" for those the release lacks ("seed=random_seed,return_num_input_tokens=")."""
    fed = sorted(set(contract.PRE_TO_LLM.values()) | set(contract.CLIENT_TO_LLM.values()))
    return ",".join(f"{n}={llm.name(n) or ''}" for n in fed if llm.name(n) != n)


def context(spec: Spec) -> dict:
    """Everything a template may use. StrictUndefined turns any other name into an error."""
    sv = spec.serving
    tensors = tensor_contract(spec)
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
        "llm_names": _llm_names(tensors["llm_contract"]) if spec.route is not Route.llmapi else "",
    }
    llm = cpu_llm_parameters(spec) if spec.route is Route.cpu else (
        llm_parameters(spec) if spec.route is Route.engine else {})
    return {
        "spec": spec,
        "names": spec.model_names,
        "llm_name": spec.model_names["tensorrt_llm"],
        "version": __version__,
        "contract": contract,
        # The client contract of this repository (ensemble, tensorrt_llm_bls, llmapi front): serving.optional_outputs,
        # and the tensorrt_llm contract of the container's TensorRT-LLM release.
        **tensors,
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
        target = inside(dest / (prefix + item.dst), dest, "repository file")  # first component: the model
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
        inside(dest / (prefix + d), dest, "repository folder").mkdir(parents=True, exist_ok=True)
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


def write_lock(spec: Spec, repo: Path) -> Path:
    data = lock_data(spec, repo)
    # No path in the header: the folder may be moved, and a bare name (`tritongen validate tiny`) is not a path.
    header = (
        "# Written by tritongen; it records how this repository was made. Do not edit: change the spec and run\n"
        "# `tritongen repo` again. `tritongen validate` on this folder checks the tree against it.\n"
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
    if out_dir.parent == out_dir:
        raise UsageError(f"{out_dir}: a repository cannot be the file system root")
    if not force:
        check_overwritable(out_dir)
    tmp = None
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp(out_dir.parent)
        # The owner's pid is in the name, so that a later run can tell a dead run's leftovers from a live run's.
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-{out_dir.name}-", dir=out_dir.parent))
        render_into(spec, tmp)
        write_lock(spec, tmp)
        if validate:
            from .validate import validate_repo

            report = validate_repo(tmp, display_root=out_dir)
            if report.errors:
                raise ValidationFailed(report.errors, hint="the repository was not written; fix the spec")
        _swap_into_place(tmp, out_dir)
    except OSError as exc:
        # Disk full, read-only file system, permissions: the render went to a temporary sibling, so the
        # repository that was there (if any) is untouched.
        what = exc.strerror or str(exc)
        raise OutputError(f"cannot write {out_dir}: {what}" + (f" ({exc.filename})" if exc.filename else ""),
                          hint="nothing was changed; free space or pick another --out, then run again") from None
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def remove_stale_temp(parent: Path) -> list[Path]:
    """Remove the temporary folders a killed ``write_repo`` left in ``parent``: those whose owning process is gone.

    A folder of a live run (its pid is in the name) is never touched; one in the format of older releases (no pid)
    counts as stale once it is an hour old, so a run of such a release still going on is spared.
    """
    removed = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith((_TMP_PREFIX, _OLD_PREFIX)) or entry.is_symlink() or not entry.is_dir():
            continue
        rest = entry.name.removeprefix(_TMP_PREFIX).removeprefix(_OLD_PREFIX)
        pid_text = rest.split("-", 1)[0]
        if pid_text.isdigit():
            if _pid_alive(int(pid_text)):
                continue
        else:
            try:
                if time.time() - entry.stat().st_mtime < 3600:
                    continue
            except OSError:
                continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    old = None
    if out_dir.exists() or out_dir.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f"{_OLD_PREFIX}{os.getpid()}-{out_dir.name}-", dir=out_dir.parent))
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
