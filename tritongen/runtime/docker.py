"""Run tritonserver in the pinned NGC container: ``tritongen serve REPO --docker``.

Two pure steps make the launch testable without Docker or GPUs: :func:`container_plan` decides everything
(image, command, mounts, ports, GPUs, limits) from the repositories and options, and :func:`docker_run_args`
(or :func:`tritongen.deploy.compose.render_compose`) writes that plan as a ``docker run`` command line (or a
compose file). :func:`start`, :func:`stop`, :func:`running` and :func:`logs` then drive the docker CLI
(``DOCKER_HOST`` picks the daemon; the record remembers it).

Defaults, and why:

* every host path goes in **read-only**, at the same absolute path, so the repository's configs (engine,
  tokenizer and checkpoint paths) work unchanged; scratch space is a ``tmpfs`` on ``/tmp`` (never a host
  mount), and Hugging Face caches point there;
* ports are published on **127.0.0.1** (``--host 0.0.0.0`` opts out); metrics always stay on loopback;
* ``--shm-size 2g --ulimit memlock=-1`` as the TensorRT-LLM backend README runs the container, and
  ``--ulimit stack=67108864`` as Triton's examples do (NVIDIA DeepLearningExamples
  ``triton/scripts/launch_server.sh``); ``--init`` reaps the python-backend stubs and MPI ranks;
  ``--security-opt no-new-privileges``;
* ``--gpus`` only when a model needs GPUs (none for the cpu route), for the spec's GPU ids.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import proc
from ..errors import CommandFailed, GatingError, MissingDependency, ServerError, UsageError
from ..repo.inspect import RepoInfo, inspect_repo
from .command import ServeOptions
from .container import ULIMITS, ContainerRun, Mount, docker_run_args, visible_gpus
from .launch import LaunchLayout, check_ranks, choose_layout, launch_argv, rank_argvs
from .startup import check_ports, wait_ready
from .state import ServerRecord

TRITONSERVER = "/opt/tritonserver/bin/tritonserver"
BACKENDS = "/opt/tritonserver/backends"
DEFAULT_SHM = "2g"
NETWORKS = ("bridge", "host")
#: Paths that exist only inside the image (e.g. the orchestrator's executor_worker_path): never mounted.
IMAGE_PREFIXES = ("/opt/tritonserver/", "/opt/nvidia/", "/usr/local/lib/python")
#: Host locations that must never be bind-mounted into the container.
FORBIDDEN = ("/", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/root", "/home", "/var", "/tmp",
             "/opt")
FORBIDDEN_TREES = ("/proc", "/sys", "/dev", "/run", "/var/run")
TMPFS = "/tmp:rw,exec,nosuid,nodev,mode=1777"
LABEL = "tritongen.server"


@dataclass(kw_only=True)
class ContainerPlan(ContainerRun):
    """Everything about one serving container; rendered as ``docker run`` or as compose."""

    server: str
    launch: LaunchLayout
    network: str
    detach: bool = True
    init: bool = True
    no_new_privileges: bool = True
    tmpfs: list[str] = field(default_factory=lambda: [TMPFS])


def container_name(server: str) -> str:
    """Docker names allow [a-zA-Z0-9][a-zA-Z0-9_.-]*."""
    return "tritongen-" + (re.sub(r"[^a-zA-Z0-9_.-]+", "-", server).strip("-.") or "server")


def collect_mounts(repos: list[RepoInfo], *, missing_ok: bool = False) -> list[Mount]:
    """The repositories plus every host path their configs reference, deduplicated, read-only.

    A referenced path missing on this host is an error (the server would fail to load); with ``missing_ok``
    (printing a command or a compose file for another machine) it is mounted as written.
    """
    wanted: list[str] = []
    missing: list[str] = []
    for repo in repos:
        wanted.append(str(repo.path))
        for ref in repo.referenced_paths:
            if ref.startswith(IMAGE_PREFIXES):
                continue
            if not os.path.exists(ref):
                missing.append(ref)
                if not missing_ok:
                    continue
            wanted.append(os.path.normpath(ref))
    if missing and not missing_ok:
        raise ServerError(f"the repository references paths missing on this host: {', '.join(sorted(set(missing)))}",
                          hint="build or download them first (engine, tokenizer, checkpoint), or fix the spec")
    mounts: list[Mount] = []
    for target in sorted(set(wanted), key=lambda p: (p.count("/"), p)):
        if any(target == m.target or target.startswith(m.target.rstrip("/") + "/") for m in mounts):
            continue
        if target in FORBIDDEN or any(target == t or target.startswith(t + "/") for t in FORBIDDEN_TREES):
            raise GatingError(f"refusing to mount {target} into the container",
                              hint="point the spec at a dedicated directory (engine, tokenizer, checkpoint)")
        if any(c in target for c in ',"\n'):
            raise UsageError(f"cannot mount {target!r}: commas and quotes are not allowed in mounted paths")
        mounts.append(Mount(source=os.path.realpath(target), target=target))
    return mounts


def container_plan(
    server: str,
    repos: list[RepoInfo],
    opts: ServeOptions,
    *,
    image: str,
    launch_mode: str = "auto",
    network: str = "bridge",
    shm_size: str = DEFAULT_SHM,
    run_as: str | None = None,
    gpus: list[int] | None = None,
    read_only_root: bool = False,
    mounts: list[Mount] | None = None,
    memlock: str = "unlimited",
    missing_ok: bool = False,
) -> ContainerPlan:
    """Decide the container for ``repos`` (pure apart from checking that referenced paths exist)."""
    if network not in NETWORKS:
        raise UsageError(f"--network {network!r}: choose one of {', '.join(NETWORKS)}")
    layout = choose_layout(repos, launch_mode, image=image)
    if gpus is None:
        exposed = visible_gpus(layout.gpu_ids)
    else:
        # Host GPUs chosen by hand: the container numbers them 0..n-1 in this order.
        exposed = list(dict.fromkeys(gpus))
        need = max(layout.gpu_ids) + 1 if layout.gpu_ids else 0
        if len(exposed) < need:
            raise UsageError(
                f"--gpus {','.join(map(str, exposed))}: the models use GPU ids up to {need - 1}, which inside "
                f"the container are the first {need} GPUs given",
                hint="give at least that many GPUs; they are numbered 0..n-1 inside in the order given")
    if opts.model_control == "explicit":
        opts.ensure_admin_key()
    # Inside a bridge network the server must listen on all of the container's addresses for Docker to
    # forward to it; what the host exposes is decided by the published address (-p 127.0.0.1:...).
    inner = opts if network == "host" else _with_host(opts, "0.0.0.0")
    metrics_host = "127.0.0.1" if network == "host" else "0.0.0.0"
    argvs = rank_argvs([str(r.path) for r in repos], inner, layout, binary=TRITONSERVER, backend_dir=BACKENDS,
                       metrics_host=metrics_host, image=image, visible_gpus=len(exposed))
    command = launch_argv(layout, argvs)
    ports: list[tuple[str, int, int]] = []
    if network == "bridge":
        ports = [(opts.host, opts.http_port, opts.http_port), (opts.host, opts.grpc_port, opts.grpc_port),
                 ("127.0.0.1", opts.metrics_port, opts.metrics_port)]
    env = {"HF_HOME": "/tmp/huggingface", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **layout.env}
    if run_as:
        env["HOME"] = "/tmp"
    ulimits = dict(ULIMITS)
    if memlock == "inherit":
        del ulimits["memlock"]
    elif memlock != "unlimited":
        if not memlock.isdigit():
            raise UsageError(f"--memlock {memlock!r}: unlimited, inherit, or a number of bytes")
        ulimits["memlock"] = memlock
    return ContainerPlan(
        server=server, name=container_name(server), image=image, command=command,
        mounts=mounts if mounts is not None else collect_mounts(repos, missing_ok=missing_ok), network=network,
        ports=ports,
        gpus=exposed, shm_size=shm_size, env=env, user=run_as, launch=layout, read_only_root=read_only_root,
        labels={LABEL: server, "tritongen.launch-mode": layout.mode}, ulimits=ulimits,
    )


def _with_host(opts: ServeOptions, host: str) -> ServeOptions:
    import dataclasses

    return dataclasses.replace(opts, host=host)


# -- driving the docker CLI ------------------------------------------------------------------------------


def _docker_bin() -> str:
    found = shutil.which("docker")
    if not found:
        raise MissingDependency("the docker CLI is not on PATH",
                                hint="install Docker (apt-get install docker.io) or serve without --docker")
    return found


def _env(record: ServerRecord | None = None) -> dict[str, str] | None:
    host = (record.extra.get("docker_host") if record else None) or os.environ.get("DOCKER_HOST")
    return {"DOCKER_HOST": host} if host else None


def _docker(args: list[str], *, record: ServerRecord | None = None, check: bool = True,
            what: str | None = None, on_line=None, tail_lines: int = proc.TAIL_LINES) -> tuple[int, str]:
    return proc.run([_docker_bin(), *args], env=_env(record), check=check, what=what or f"docker {args[0]}",
                    on_line=on_line, tail_lines=tail_lines)


def check_daemon() -> str:
    """The daemon's version; a clear error when it cannot be reached."""
    rc, out = _docker(["version", "--format", "{{.Server.Version}}"], check=False)
    if rc != 0:
        where = os.environ.get("DOCKER_HOST") or "the default socket"
        raise ServerError(f"cannot reach the Docker daemon at {where}", detail=out,
                          hint="start dockerd, or set DOCKER_HOST; your user may need to be in the docker group")
    return out.strip().splitlines()[-1] if out.strip() else ""


def ensure_image(image: str, echo: Callable[[str], None]) -> None:
    """Pull the image when the daemon does not have it (NGC images are large: progress is shown)."""
    rc, _ = _docker(["image", "inspect", "--format", "{{.Id}}", image], check=False)
    if rc == 0:
        return
    echo(f"pulling {image} (first use; NGC images are tens of GB)\n")
    last = [0.0]

    def progress(line: str) -> None:
        now = time.monotonic()
        if now - last[0] > 5:
            echo(f"  {line.strip()[:100]}\n")
            last[0] = now

    try:
        _docker(["pull", image], what=f"docker pull {image}", on_line=progress)
    except CommandFailed as exc:
        raise CommandFailed(str(exc), returncode=exc.returncode, tail=exc.tail,
                            hint="for nvcr.io run `docker login nvcr.io` (user $oauthtoken, an NGC API key), "
                                 "or pass --image / TRITON_IMAGE") from None


def container_state(container: str, record: ServerRecord | None = None) -> dict | None:
    """``docker inspect``'s State for a container, or None when it does not exist."""
    rc, out = _docker(["inspect", "--type", "container", "--format", "{{json .State}}", container],
                      record=record, check=False)
    if rc != 0:
        return None
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return None


def _remove(container: str, record: ServerRecord | None = None) -> None:
    _docker(["rm", "--force", "--volumes", container], record=record, check=False)


def start(
    name: str,
    repos: list[Path],
    opts: ServeOptions,
    *,
    image: str | None = None,
    timeout: float = 300.0,
    echo: Callable[[str], None] = lambda m: None,
    tty: bool = False,
    run_as: str | None = None,
    owners: list[ServerRecord] | None = None,
    launch_mode: str = "auto",
    network: str = "bridge",
    shm_size: str = DEFAULT_SHM,
    gpus: list[int] | None = None,
    read_only_root: bool = False,
    memlock: str = "unlimited",
) -> ServerRecord:
    """``docker run`` the serving container, wait until every model is ready, record it for stop/status/logs.

    ``owners``: records of the servers that are running, to name the one holding a port that is taken.
    """
    infos = [inspect_repo(r) for r in repos]
    image = resolve_image(infos, image)
    plan = container_plan(name, infos, opts, image=image, launch_mode=launch_mode, network=network,
                          shm_size=shm_size, run_as=run_as, gpus=gpus, read_only_root=read_only_root,
                          memlock=memlock)
    check_daemon()
    check_ports(opts, owners=owners or [])
    state = container_state(plan.name)
    if state is not None:
        if state.get("Running"):
            raise ServerError(f"container {plan.name} is already running",
                              hint=f"tritongen stop {name}, or `docker rm -f {plan.name}`")
        _remove(plan.name)  # a stopped leftover of an earlier run of this server
    ensure_image(image, echo)
    argv = docker_run_args(plan, docker=_docker_bin())
    echo(f"launch: {plan.launch.mode} ({plan.launch.reason}); image {image}\n")
    rc, out = proc.run(argv, env=_env(), check=False, what="docker run")
    if rc != 0:
        _remove(plan.name)
        hint = "the output above says why; `tritongen serve --dry-run` prints the command"
        if "rlimit" in out and "operation not permitted" in out:
            hint = ("the daemon may not raise the locked-memory limit (no CAP_SYS_RESOURCE, e.g. dockerd inside "
                    "a container); pass --memlock inherit or a number of bytes")
        raise CommandFailed(f"docker run failed with exit code {rc}", returncode=rc, tail=out, hint=hint)
    record = ServerRecord(
        name=name, repo=str(infos[0].path), runtime="docker", launcher="docker", host=opts.host, http_port=opts.http_port,
        grpc_port=opts.grpc_port, metrics_port=opts.metrics_port, log=f"docker logs {plan.name}",
        container=plan.name, image=image, command=argv,
        extra={"repos": [str(i.path) for i in infos], "model_control": opts.model_control,
               "launch_mode": plan.launch.mode, "ranks": plan.launch.ranks, "network": network,
               "docker_host": os.environ.get("DOCKER_HOST"), "gpus": plan.gpus,
               "mounts": [m.target for m in plan.mounts]},
    )
    record.save()
    try:
        # The error raised here carries the container's log tail, read before the container is removed.
        wait_ready(record, alive=lambda: running(record), log_tail=lambda: _startup_tail(record),
                   timeout=timeout, echo=echo, tty=tty)
        check_ranks(name, plan.launch, _tritonservers_in(record), detail=logs(record, 40))
    except BaseException:
        _stop_container(record, timeout=10)
        record.remove()
        raise
    return record


def _tritonservers_in(record: ServerRecord) -> int:
    """tritonserver processes in the container (``docker top``: one per rank)."""
    rc, out = _docker(["top", record.container or "", "-eo", "pid,args"], record=record, check=False,
                      tail_lines=2000)
    if rc != 0:
        return 0
    return sum(1 for line in out.splitlines()[1:] if len(line.split()) > 1
               and line.split()[1].rsplit("/", 1)[-1] == "tritonserver")


def resolve_image(infos: list[RepoInfo], image: str | None) -> str:
    """--image / TRITON_IMAGE, else the image pinned in the repositories' lock files (which must agree)."""
    from .. import versions

    pinned = sorted({i.image for i in infos if i.image})
    if image:
        tag = versions.tag_of(image)
        known = versions.by_tag(tag) if tag else None
        for info in infos:
            if info.route == "engine" and known and not versions.same_release(info.trtllm_version, known.trtllm):
                raise GatingError(
                    f"{info.path.name}: engine built by TensorRT-LLM {info.trtllm_version} but {image} carries "
                    f"{known.trtllm}; engines load only in the release that built them",
                    hint=f"serve with the pinned image ({info.image}) or rebuild the engine")
        return image
    if len(pinned) > 1:
        raise GatingError(f"the repositories pin different images: {', '.join(pinned)}",
                          hint="regenerate them for one container, or pass --image")
    if not pinned:
        raise UsageError("no container image: the repository has no tritongen.lock.yaml",
                         hint="pass --image (or TRITON_IMAGE)")
    return pinned[0]


def _stop_container(record: ServerRecord, *, timeout: float) -> bool:
    container = record.container or ""
    state = container_state(container, record)
    if state is None:
        return False
    was = bool(state.get("Running"))
    if was:
        # docker stop: SIGTERM (forwarded by --init to tritonserver/mpirun), wait, then SIGKILL.
        _docker(["stop", "--time", str(int(timeout)), container], record=record, check=False)
    _remove(container, record)
    return was


def stop(record: ServerRecord, *, timeout: float = 30.0) -> bool:
    """Stop and remove the container; True when it was running."""
    try:
        return _stop_container(record, timeout=timeout)
    finally:
        record.remove()


def running(record: ServerRecord) -> bool:
    try:
        state = container_state(record.container or "", record)
    except MissingDependency:
        return False
    return bool(state and state.get("Running"))


#: Lines that say why a start failed: glog errors (E1122 ...), model states, Python tracebacks.
_FAILURE_LINE = re.compile(r"^(E\d{4} |.*UNAVAILABLE|.*Traceback|.*Error: |error: )")


def _startup_tail(record: ServerRecord) -> str:
    """While starting: the last lines. Once the container has exited: the lines that say why (model load
    errors scroll far up while tritonserver prints its tables and unloads), then the last lines."""
    if running(record):
        return logs(record, 40)
    text = logs(record, 2000)
    lines = text.splitlines()
    why = list(dict.fromkeys(line for line in lines[:-25] if _FAILURE_LINE.match(line)))[-20:]
    return "\n".join([*why, "...", *lines[-25:]]) if why else "\n".join(lines[-40:])


def logs(record: ServerRecord, lines: int = 50) -> str:
    rc, out = _docker(["logs", "--tail", str(lines), record.container or ""], record=record, check=False,
                      tail_lines=lines + 1)
    if rc != 0:
        return f"(no logs: container {record.container} is gone)\n{out}".rstrip()
    return out
