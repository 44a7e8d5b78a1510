"""The launch layout: how many tritonserver processes a deployment needs, and their command lines.

TensorRT-LLM's Triton backend runs a model over several GPUs in one of two modes (TensorRT-LLM backend README,
"TRT-LLM Multi-instance Support"; triton_backend/docs/llama_multi_instance.md):

* **leader**: ``mpirun`` starts one tritonserver per rank (world size = tp x pp). Rank 0 loads every model and
  serves; the other ranks load only the TensorRT-LLM model(s), whose initialisation never returns there (the
  backend keeps those processes as workers "to avoid port collision").
* **orchestrator** (``TRTLLM_ORCHESTRATOR=1``): one tritonserver spawns a worker per GPU of each model through
  ``MPI_Comm_spawn`` (the model's ``executor_worker_path``). Upstream requires it when several TensorRT-LLM
  models share one server, with an MPI world of one.

The command lines follow NVIDIA/TensorRT-LLM ``triton_backend/scripts/launch_triton_server.py`` (read at commit
0b06796b2c7895930fecff48a1e205ab14a19c51): ``mpirun --allow-run-as-root``, then per rank ``-n 1 tritonserver
--model-repository=...``; ranks other than 0 get ``--model-control-mode=explicit --load-model=<trtllm model>``;
every rank gets ``--disable-auto-complete-config --backend-config=python,shm-region-prefix-name=prefix<rank>_``;
``--multi-model`` sets ``TRTLLM_ORCHESTRATOR=1`` / ``TRTLLM_ORCHESTRATOR_SPAWN_PROCESSES=1`` and, for Triton
newer than 24.06, ``--pinned-memory-pool-byte-size=0 --enable-peer-access=false`` and
``--cuda-memory-pool-byte-size=<gpu>:0`` per GPU. That script passes no ``--backend-config=tensorrtllm,...``
option, so neither does tritongen. Differences, on purpose: the worker ranks also get ``--allow-http=false
--allow-grpc=false --allow-metrics=false`` (they must never serve; upstream relies on the backend blocking
before the endpoints start), rank 0 keeps tritongen's secure defaults (loopback, ``--model-control-mode=none``),
and ``--tag-output`` prefixes each output line with its rank so a failing rank is named in the log.

The LLM-API route (``all_models/llmapi``) is launched like upstream's docs/llmapi.md does: the same script with
its default world size of one, i.e. ``mpirun -n 1 tritonserver``; the LLM API starts its own tp x pp workers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..errors import GatingError, ServerError, UsageError
from ..repo.inspect import RepoInfo
from .command import ServeOptions, tritonserver_args

LAUNCH_MODES = ("auto", "single", "leader", "orchestrator")
#: Upstream adds the orchestrator's memory-pool flags only for Triton newer than this container release.
_ORCHESTRATOR_POOL_FLAGS_AFTER = "24.06"


@dataclass
class LaunchLayout:
    """How one server is launched: the mode, its ranks, and the GPUs it uses."""

    mode: str  #: single | leader | orchestrator
    ranks: int  #: tritonserver processes mpirun starts (1 unless leader mode)
    mpirun: bool  #: whether the server runs under mpirun
    gpu_ids: list[int]  #: host GPU ids the deployment uses (empty: none)
    trtllm_models: list[str]  #: what leader-mode worker ranks load
    env: dict[str, str]
    reason: str  #: one line: why this mode

    @property
    def world_size(self) -> int:
        return self.ranks


# -- choosing the launch mode ----------------------------------------------------------------------------


def check_unique_models(repos: list[RepoInfo]) -> None:
    """Triton refuses two models of the same name across its repositories; say so before it does."""
    seen: dict[str, Path] = {}
    for repo in repos:
        for name in repo.models:
            if name in seen and seen[name] != repo.path:
                raise UsageError(
                    f"model {name!r} is in both {seen[name]} and {repo.path}; one server needs unique model names",
                    hint="serve them as separate servers (--name, other ports), or give the models distinct names",
                )
            seen[name] = repo.path


def choose_layout(repos: list[RepoInfo], mode: str = "auto", *, image: str | None = None) -> LaunchLayout:
    """Pick single / leader / orchestrator for these repositories (``mode`` forces one) and say why."""
    if mode not in LAUNCH_MODES:
        raise UsageError(f"launch mode {mode!r}: choose one of {', '.join(LAUNCH_MODES)}")
    check_unique_models(repos)
    trt = [m for r in repos for m in r.trtllm]
    llmapi = [r for r in repos if r.route == "llmapi"]
    gpu_ids: list[int] = []
    for ids in [m.gpu_ids for m in trt] + [r.other_gpu_ids for r in repos]:
        gpu_ids += [g for g in ids if g not in gpu_ids]
    gpu_ids.sort()
    names = [m.name for m in trt]
    worlds = sorted({m.world_size for m in trt})

    if mode == "auto":
        if len(trt) > 1:
            mode, reason = "orchestrator", f"{len(trt)} TensorRT-LLM models share the server ({', '.join(names)})"
        elif trt and trt[0].world_size > 1:
            mode, reason = "leader", f"one TensorRT-LLM model over tp x pp = {trt[0].world_size} GPUs"
        elif llmapi:
            mode, reason = "single", "LLM-API model: mpirun -n 1, the LLM API starts its own workers"
        elif trt:
            mode, reason = "single", "one TensorRT-LLM model on one GPU"
        else:
            mode, reason = "single", "python-backend models only"
    else:
        reason = "asked for"

    if mode == "leader":
        if not trt:
            raise UsageError("leader mode runs TensorRT-LLM engine models; these repositories have none",
                             hint="drop --launch-mode (single is right for python-backend models)")
        if len(worlds) > 1:
            raise GatingError(
                f"leader mode runs every TensorRT-LLM model over one MPI world, but their world sizes differ "
                f"({', '.join(f'{m.name}={m.world_size}' for m in trt)})",
                hint="use --launch-mode orchestrator, or serve the models separately")
        return LaunchLayout("leader", worlds[0], True, gpu_ids, names, {}, reason)
    if mode == "orchestrator":
        if not trt:
            raise UsageError("orchestrator mode is for TensorRT-LLM engine models; these repositories have none")
        env = {"TRTLLM_ORCHESTRATOR": "1", "TRTLLM_ORCHESTRATOR_SPAWN_PROCESSES": "1"}
        return LaunchLayout("orchestrator", 1, True, gpu_ids, names, env, reason)
    # single
    big = [m for m in trt if m.world_size > 1]
    if big:
        raise GatingError(
            f"{big[0].name} needs {big[0].world_size} ranks (tp x pp) and a single tritonserver runs one",
            hint="use --launch-mode leader (one model) or orchestrator (several), or drop --launch-mode")
    return LaunchLayout("single", 1, bool(llmapi), gpu_ids, names, {}, reason)


# -- command lines ---------------------------------------------------------------------------------------


def _tag_after(image: str | None, tag: str) -> bool:
    from ..versions import tag_of

    found = tag_of(image) if image else None
    return found is None or found > tag


def worker_rank_args(repos: list[str], opts: ServeOptions, models: list[str], *, rank: int, binary: str,
                     backend_dir: str | None, shm_prefix: str) -> list[str]:
    """A leader-mode rank other than 0: loads only the TensorRT-LLM model(s) and serves nothing.

    ``--model-control-mode=explicit`` is what makes it load only those models (upstream does the same). It adds
    no exposure here: with HTTP, gRPC and metrics all disabled the process has no API through which anything
    could ask it to load a model, so the admin-key restriction of rank 0 has nothing to protect.
    """
    argv = [binary, *[f"--model-repository={r}" for r in repos],
            "--disable-auto-complete-config",
            f"--exit-timeout-secs={opts.exit_timeout_s}",
            f"--log-verbose={opts.log_verbose}",
            "--model-control-mode=explicit",
            *[f"--load-model={m}" for m in models],
            "--allow-http=false", "--allow-grpc=false", "--allow-metrics=false"]
    if backend_dir:
        argv.append(f"--backend-directory={backend_dir}")
    argv.append(f"--backend-config=python,shm-region-prefix-name={shm_prefix}")
    return argv


def rank_argvs(repos: list[str], opts: ServeOptions, layout: LaunchLayout, *, binary: str,
               backend_dir: str | None, metrics_host: str = "127.0.0.1", image: str | None = None,
               visible_gpus: int | None = None) -> list[list[str]]:
    """One tritonserver argument list per rank (one element unless leader mode)."""
    if opts.model_control == "explicit":
        opts.ensure_admin_key()  # before copying, so that every copy carries the same key
    base = opts.shm_prefix or "prefix"
    out: list[list[str]] = []
    for rank in range(layout.ranks):
        shm = f"{base}{rank}_" if layout.mpirun else opts.shm_prefix
        if rank:
            out.append(worker_rank_args(repos, opts, layout.trtllm_models, rank=rank, binary=binary,
                                        backend_dir=backend_dir, shm_prefix=shm or f"prefix{rank}_"))
            continue
        extra = list(opts.extra_args)
        if layout.mode == "orchestrator" and _tag_after(image, _ORCHESTRATOR_POOL_FLAGS_AFTER):
            count = visible_gpus if visible_gpus is not None else len(layout.gpu_ids)
            extra = ["--pinned-memory-pool-byte-size=0", "--enable-peer-access=false",
                     *[f"--cuda-memory-pool-byte-size={g}:0" for g in range(count)], *extra]
        rank_opts = dataclasses.replace(opts, shm_prefix=shm, extra_args=extra)
        out.append(tritonserver_args(repos, rank_opts, binary=binary, backend_dir=backend_dir,
                                     metrics_host=metrics_host))
    return out


def launch_argv(layout: LaunchLayout, argvs: list[list[str]], *, mpirun: str = "mpirun") -> list[str]:
    """The whole launch: the one tritonserver, or mpirun with one ``-n 1 <argv>`` block per rank."""
    if not layout.mpirun:
        return list(argvs[0])
    argv = [mpirun, "--allow-run-as-root", "--tag-output"]
    for i, rank in enumerate(argvs):
        if i:
            argv.append(":")
        argv += ["-n", "1", *rank]
    return argv


def check_ranks(name: str, layout: LaunchLayout, running: int, *, detail: str = "") -> None:
    """Rank 0 answering ready is not enough: every rank mpirun started must still be there."""
    if running < layout.ranks:
        raise ServerError(f"{name}: only {running} of {layout.ranks} tritonserver ranks are running",
                          hint="a rank ended early; the log tail above says why", detail=detail)

