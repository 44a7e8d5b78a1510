"""How many tritonserver processes a deployment needs, their command lines, and a launcher for this machine.

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
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import GatingError, MissingDependency, UsageError
from .command import ServeOptions, tritonserver_args

TRTLLM_BACKEND = "tensorrtllm"
LAUNCH_MODES = ("auto", "single", "leader", "orchestrator")
#: Upstream adds the orchestrator's memory-pool flags only for Triton newer than this container release.
_ORCHESTRATOR_POOL_FLAGS_AFTER = "24.06"


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


@dataclass
class LaunchPlan:
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


# -- reading repositories ------------------------------------------------------------------------------------


def _ids(text: str | None) -> list[int] | None:
    if not text or not text.strip():
        return None
    # gpu_device_ids may list one set per instance ("0,1;2,3"); all of them are used.
    out: list[int] = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if part.isdigit() and int(part) not in out:
            out.append(int(part))
    return out or None


def inspect_repo(path: Path) -> RepoInfo:
    """Read a repository's lock file and model configs (no GPU, no server needed)."""
    from .. import engine_config
    from ..repo.lock import read_lock
    from ..repo.validate import params_of, parse_config

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
            ids = _ids(params.get("gpu_device_ids")) or (spec_ids if len(spec_ids) == world else
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


def plan_launch(repos: list[RepoInfo], mode: str = "auto", *, image: str | None = None) -> LaunchPlan:
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
        return LaunchPlan("leader", worlds[0], True, gpu_ids, names, {}, reason)
    if mode == "orchestrator":
        if not trt:
            raise UsageError("orchestrator mode is for TensorRT-LLM engine models; these repositories have none")
        env = {"TRTLLM_ORCHESTRATOR": "1", "TRTLLM_ORCHESTRATOR_SPAWN_PROCESSES": "1"}
        return LaunchPlan("orchestrator", 1, True, gpu_ids, names, env, reason)
    # single
    big = [m for m in trt if m.world_size > 1]
    if big:
        raise GatingError(
            f"{big[0].name} needs {big[0].world_size} ranks (tp x pp) and a single tritonserver runs one",
            hint="use --launch-mode leader (one model) or orchestrator (several), or drop --launch-mode")
    return LaunchPlan("single", 1, bool(llmapi), gpu_ids, names, {}, reason)


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


def rank_argvs(repos: list[str], opts: ServeOptions, plan: LaunchPlan, *, binary: str,
               backend_dir: str | None, metrics_host: str = "127.0.0.1", image: str | None = None,
               visible_gpus: int | None = None) -> list[list[str]]:
    """One tritonserver argument list per rank (one element unless leader mode)."""
    if opts.model_control == "explicit":
        opts.ensure_admin_key()  # before copying, so that every copy carries the same key
    base = opts.shm_prefix or "prefix"
    out: list[list[str]] = []
    for rank in range(plan.ranks):
        shm = f"{base}{rank}_" if plan.mpirun else opts.shm_prefix
        if rank:
            out.append(worker_rank_args(repos, opts, plan.trtllm_models, rank=rank, binary=binary,
                                        backend_dir=backend_dir, shm_prefix=shm or f"prefix{rank}_"))
            continue
        extra = list(opts.extra_args)
        if plan.mode == "orchestrator" and _tag_after(image, _ORCHESTRATOR_POOL_FLAGS_AFTER):
            count = visible_gpus if visible_gpus is not None else len(plan.gpu_ids)
            extra = ["--pinned-memory-pool-byte-size=0", "--enable-peer-access=false",
                     *[f"--cuda-memory-pool-byte-size={g}:0" for g in range(count)], *extra]
        rank_opts = dataclasses.replace(opts, shm_prefix=shm, extra_args=extra)
        out.append(tritonserver_args(repos, rank_opts, binary=binary, backend_dir=backend_dir,
                                     metrics_host=metrics_host))
    return out


def launch_argv(plan: LaunchPlan, argvs: list[list[str]], *, mpirun: str = "mpirun") -> list[str]:
    """The whole launch: the one tritonserver, or mpirun with one ``-n 1 <argv>`` block per rank."""
    if not plan.mpirun:
        return list(argvs[0])
    argv = [mpirun, "--allow-run-as-root", "--tag-output"]
    for i, rank in enumerate(argvs):
        if i:
            argv.append(":")
        argv += ["-n", "1", *rank]
    return argv


# -- launching on this machine ---------------------------------------------------------------------------


def start_local(
    name: str,
    repos: list[Path],
    opts: ServeOptions,
    plan: LaunchPlan,
    *,
    timeout: float = 300.0,
    echo: Callable[[str], None] = lambda m: None,
    tty: bool = False,
    owners: list | None = None,
    mpirun: str | None = None,
):
    """Start the launch under mpirun on this machine (tritonserver on PATH, e.g. inside the NGC container).

    mpirun aborts the whole job when a rank exits abnormally, so a rank that dies ends the launch; the log
    (each line tagged with its rank) says which one and why.
    """
    from .. import proc
    from . import local
    from .state import ServerRecord, run_dir

    if not shutil.which(mpirun or "mpirun"):
        raise MissingDependency(f"{plan.mode} mode needs mpirun (Open MPI) on PATH",
                                hint="run inside the NGC container, install openmpi-bin, or use --docker")
    # By name, not by absolute path: Open MPI treats /usr/bin/mpirun like `--prefix /usr` and puts /usr/bin
    # and /usr/lib first on every rank's PATH / LD_LIBRARY_PATH, which swaps the python backend's interpreter.
    mpirun = mpirun or "mpirun"
    install = local.find_installation()
    local.check_ports(opts, owners=owners or [])
    log = run_dir() / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    opts.shm_prefix = opts.shm_prefix or f"tritongen_{name}_{os.getpid()}_"
    paths = [str(Path(r).resolve()) for r in repos]
    argv = launch_argv(plan, rank_argvs(paths, opts, plan, binary=install.binary,
                                        backend_dir=install.backend_dir), mpirun=mpirun)
    env = {**install.env, **plan.env}
    child = proc.start(argv, log_path=log, env=env)
    record = ServerRecord(
        name=name, repo=paths[0], runtime="local", host=opts.host, http_port=opts.http_port,
        grpc_port=opts.grpc_port, metrics_port=opts.metrics_port, log=str(log), pid=child.pid, command=argv,
        extra={"source": install.source, "repos": paths, "model_control": opts.model_control,
               "launch_mode": plan.mode, "ranks": plan.ranks},
    )
    record.save()
    try:
        local.wait_ready(record, alive=lambda: child.poll() is None, log_tail=lambda: proc.tail_file(log),
                         timeout=timeout, echo=echo, tty=tty)
        servers = [p for p in _session_members(child.pid) if _is_tritonserver(p)]
        check_ranks(name, plan, len(servers), detail=proc.tail_file(log))
    except BaseException:
        stop_local(record, timeout=10)
        raise
    return record


def _is_tritonserver(pid: int) -> bool:
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except OSError:
        return False
    return argv0.rsplit("/", 1)[-1] == "tritonserver"


def check_ranks(name: str, plan: LaunchPlan, running: int, *, detail: str = "") -> None:
    """Rank 0 answering ready is not enough: every rank mpirun started must still be there."""
    from ..errors import ServerError

    if running < plan.ranks:
        raise ServerError(f"{name}: only {running} of {plan.ranks} tritonserver ranks are running",
                          hint="a rank ended early; the log tail above says why", detail=detail)


def _session_members(sid: int) -> list[int]:
    """Live processes in session ``sid`` (mpirun's ranks get their own process groups, but stay in its
    session; exited ones waiting to be reaped are left out)."""
    from .. import proc

    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == sid:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3 and fields[3] == str(sid) and proc.pid_alive(int(entry.name)):  # state ppid pgrp sid
            out.append(int(entry.name))
    return out


def stop_local(record, *, timeout: float = 30.0) -> bool:
    """Stop an mpirun launch: mpirun forwards SIGTERM to every rank; any rank left after it is stopped too."""
    from .. import proc

    was = bool(record.pid) and proc.stop_pid(record.pid, timeout=timeout)
    if record.pid:
        for pid in _session_members(record.pid):
            proc.stop_pid(pid, timeout=5)
    record.remove()
    return was
