"""``tritongen serve | stop | status | logs``: run tritonserver on generated repositories and manage it."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import ServerError, UsageError

if TYPE_CHECKING:
    from ..runtime.base import ContainerOptions, LaunchRequest
    from ..runtime.command import ServeOptions


@dataclass
class Endpoints:
    """Where the server listens and who may change what it serves (what tritonserver itself is told)."""

    host: str | None
    http_port: int | None
    grpc_port: int | None
    metrics_port: int | None
    model_control: str
    admin_key: str | None
    log_verbose: int

    def options(self, serving: dict) -> ServeOptions:
        """The tritonserver options: what was given, else the repository's ``serving`` section, else defaults."""
        from ..runtime.command import ServeOptions

        opts = ServeOptions(
            host=self.host or serving.get("host", "127.0.0.1"),
            http_port=self.http_port or serving.get("http_port", 8000),
            grpc_port=self.grpc_port or serving.get("grpc_port", 8001),
            metrics_port=self.metrics_port or serving.get("metrics_port", 8002),
            model_control=self.model_control,
            admin_key=self.admin_key,
            log_verbose=self.log_verbose,
        )
        if opts.model_control == "explicit":
            opts.ensure_admin_key()
        return opts


@dataclass
class ServeArgs:
    """Everything `tritongen serve` was given, read once from click's keyword arguments, in groups."""

    repos: tuple[Path, ...]
    name: str | None
    endpoints: Endpoints
    docker: bool
    container: ContainerOptions
    #: --gpus as given; read into ``container.gpus`` only once the container is planned.
    gpus: str | None
    launch_mode: str
    gpu: str | None
    no_validate: bool
    timeout: float
    openai_port: int | None
    compose_out: Path | None
    dry_run: bool

    @classmethod
    def from_click(cls, kw: dict) -> ServeArgs:
        from ..runtime.base import ContainerOptions

        endpoints = Endpoints(**{k: kw.pop(k) for k in ("host", "http_port", "grpc_port", "metrics_port",
                                                        "model_control", "admin_key", "log_verbose")})
        container = ContainerOptions(**{k: kw.pop(k) for k in ("image", "run_as", "network", "shm_size",
                                                               "read_only_root", "memlock")})
        return cls(endpoints=endpoints, container=container, gpus=kw.pop("gpu_ids"), **kw)


def _lock_serving(repo: Path) -> dict:
    from ..repo.lock import read_lock

    lock = read_lock(repo) or {}
    return ((lock.get("spec") or {}).get("serving")) or {}


def _check_repo(repo: Path, gpu: str | None) -> None:
    """Refuse to start on a repository Triton would reject (or on an engine for another release/GPU)."""
    from ..errors import ValidationFailed
    from ..repo.validate import validate_repo

    report = validate_repo(repo, gpu_arch=gpu)
    for p in report.warnings:
        click.echo(click.style(str(p), fg="yellow"), err=True)
    if report.errors:
        raise ValidationFailed(report.errors, hint=f"fix the spec and regenerate; `tritongen validate {repo}`")


@click.command("serve")
@click.argument("repos", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", help="Server name for stop/status/logs (default: the first repository's folder name).")
@click.option("--host", help="Address to bind (default 127.0.0.1; 0.0.0.0 exposes the server to the network).")
@click.option("--http-port", type=int, help="HTTP port (default: the spec's serving.http_port, 8000).")
@click.option("--grpc-port", type=int, help="gRPC port (default 8001).")
@click.option("--metrics-port", type=int, help="Metrics port (default 8002, always on 127.0.0.1).")
@click.option("--docker", is_flag=True, help="Run in the pinned NGC container instead of a local tritonserver.")
@click.option("--image", envvar="TRITON_IMAGE", help="Container image for --docker (env TRITON_IMAGE).")
@click.option("--gpu", help="Serving GPU (e.g. h100): refuse an engine built for another architecture.")
@click.option("--model-control", type=click.Choice(["none", "explicit"]), default="none", show_default=True,
              help="explicit allows loading models at run time; the admin APIs then require a key.")
@click.option("--admin-key", envvar="TRITONGEN_ADMIN_KEY", help="Key for the admin APIs with explicit model "
              "control (default: generated and printed).")
@click.option("--user", "run_as", help="--docker: run the container as this uid[:gid] instead of root.")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait for readiness.")
@click.option("--no-validate", is_flag=True, help="Skip validating the repository first.")
@click.option("--log-verbose", type=int, default=0, help="tritonserver --log-verbose level.")
@click.option("--openai", "openai_port", type=int, default=None, is_flag=False, flag_value=9000,
              help="Also start the OpenAI-compatible API on this port (default 9000 when given bare).")
@click.option("--launch-mode", type=click.Choice(["auto", "single", "leader", "orchestrator"]), default="auto",
              show_default=True, help="Multi-GPU launch: leader (mpirun, one tritonserver per rank) or "
              "orchestrator (TRTLLM_ORCHESTRATOR=1; several TensorRT-LLM models); auto picks from the repositories.")
@click.option("--network", type=click.Choice(["bridge", "host"]), default="bridge", show_default=True,
              envvar="TRITONGEN_DOCKER_NETWORK", help="--docker: bridge publishes the ports on --host (127.0.0.1); host shares the host's network "
              "and tritonserver binds --host itself.")
@click.option("--shm-size", default="2g", show_default=True, help="--docker: /dev/shm size of the container.")
@click.option("--memlock", default="unlimited", show_default=True, envvar="TRITONGEN_MEMLOCK",
              help="--docker: locked-memory limit: unlimited (--ulimit memlock=-1, as NVIDIA runs the container), "
              "bytes, or inherit (the daemon's; env TRITONGEN_MEMLOCK).")
@click.option("--gpus", "gpu_ids", help="--docker: host GPU ids to expose, e.g. 0,1 (default: the spec's).")
@click.option("--read-only-root", is_flag=True, help="--docker: also make the container's own filesystem "
              "read-only (scratch stays on the /tmp tmpfs).")
@click.option("--compose-out", type=click.Path(dir_okay=False, path_type=Path),
              help="--docker: write the container as a compose file here instead of starting it.")
@click.option("--dry-run", is_flag=True, help="Print the launch command (docker run / mpirun / tritonserver) "
              "and exit.")
def serve(**kwargs) -> None:
    """Start tritonserver on REPOS (one or more model repositories), bound to 127.0.0.1.

    Waits until every model is ready, showing progress; on failure prints the cause and the server's log
    tail. The server keeps running in the background: `tritongen infer`, `tritongen status`, `tritongen logs`,
    `tritongen stop`. With --docker it runs in the pinned NGC container (repositories mounted read-only);
    a tp x pp > 1 engine starts one tritonserver per rank under mpirun (leader mode).
    """
    from ..names import check_name, safe_name_from
    from ..runtime import state
    from ..runtime.base import RUNTIMES, LaunchRequest, running_servers

    args = ServeArgs.from_click(kwargs)
    repos = [Path(r).resolve() for r in args.repos]
    # The name becomes the state file's and the container's name.
    name = check_name(args.name, "--name") if args.name is not None else safe_name_from(repos[0].name, "server")
    ctx = click.get_current_context()
    given = {name for name in ("memlock", "shm_size", "network")
             if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE}
    docker_only = {"--gpus": args.gpus, "--read-only-root": args.container.read_only_root,
                   "--compose-out": args.compose_out, "--memlock": "memlock" in given,
                   "--shm-size": "shm_size" in given, "--network": "network" in given}
    for flag, value in docker_only.items():
        if value and not args.docker:
            raise UsageError(f"{flag} applies to --docker")
    if not args.no_validate:
        for repo in repos:
            _check_repo(repo, args.gpu)
    existing = [] if (args.dry_run or args.compose_out) else [r for r in state.load_all() if r.name == name]
    for record in existing:
        if _alive(record):
            raise ServerError(f"a server named {name!r} is already running ({record.runtime}, {record.http_url})",
                              hint=f"tritongen stop {name}, or pick another --name")
        record.remove()
    opts = args.endpoints.options(_lock_serving(repos[0]))
    request = LaunchRequest(name=name, repos=repos, options=opts, launch_mode=args.launch_mode,
                            container=args.container, timeout=args.timeout,
                            echo=lambda m: click.echo(m, err=True, nl=False), tty=sys.stderr.isatty())
    start = time.monotonic()
    if args.docker:
        from ..repo.inspect import parse_gpu_ids

        args.container.gpus = parse_gpu_ids(args.gpus, flag="--gpus") if args.gpus else None
        if args.dry_run or args.compose_out:
            _print_docker_plan(request, compose_out=args.compose_out, dry_run=args.dry_run)
            return
        launcher = "docker"
    else:
        if args.container.run_as:
            raise UsageError("--user applies to --docker")
        from ..repo.inspect import inspect_repo
        from ..runtime.launch import choose_layout

        request.layout = choose_layout([inspect_repo(r) for r in repos], args.launch_mode)
        if args.dry_run:
            _print_local_plan(repos, opts, request.layout)
            return
        launcher = "mpi" if request.layout.mpirun else "local"
    request.owners = running_servers()
    record = RUNTIMES[launcher].start(request)
    where = f"container {record.container}" if record.container else f"pid {record.pid}"
    click.echo(f"tritonserver {name!r} ready in {time.monotonic() - start:.1f} s ({record.runtime}, {where})")
    click.echo(f"  gRPC    {record.grpc_url}\n  HTTP    http://{record.http_url}\n"
               f"  metrics http://127.0.0.1:{record.metrics_port}/metrics\n  log     {record.log}")
    if opts.model_control == "explicit":
        click.echo(f"  admin APIs need header triton-admin-key: {opts.admin_key}")
    if opts.host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(click.style(f"  warning: listening on {opts.host}: reachable from the network", fg="yellow"),
                   err=True)
    if args.openai_port:
        from ..clients.openai.launch import start_background

        url = start_background(record, port=args.openai_port)
        click.echo(f"  OpenAI  {url}/v1")
    click.echo(f'next: tritongen infer "Hello" --server {name}   |   tritongen stop {name}')


def _print_docker_plan(request: LaunchRequest, *, compose_out: Path | None, dry_run: bool) -> None:
    from ..deploy.compose import render_compose
    from ..repo.inspect import inspect_repo
    from ..runtime import docker as docker_runtime
    from ..runtime.command import format_launch

    c = request.container
    infos = [inspect_repo(r) for r in request.repos]
    image = docker_runtime.resolve_image(infos, c.image)
    plan = docker_runtime.container_plan(request.name, infos, request.options, image=image,
                                         launch_mode=request.launch_mode, network=c.network, shm_size=c.shm_size,
                                         run_as=c.run_as, gpus=c.gpus, read_only_root=c.read_only_root,
                                         memlock=c.memlock, missing_ok=True)
    click.echo(f"# launch mode: {plan.launch.mode} ({plan.launch.reason})", err=True)
    for mount in plan.mounts:
        if not Path(mount.source).exists():
            click.echo(click.style(f"# warning: {mount.target} does not exist on this host", fg="yellow"), err=True)
    if compose_out:
        compose_out.parent.mkdir(parents=True, exist_ok=True)
        compose_out.write_text(render_compose(plan))
        click.echo(f"wrote {compose_out} (start: docker compose -f {compose_out} up -d)")
    if dry_run:
        click.echo(format_launch(docker_runtime.docker_run_args(plan)), nl=False)


def _print_local_plan(repos, opts, layout) -> None:
    import shlex

    from ..runtime import local
    from ..runtime.command import format_launch
    from ..runtime.launch import launch_argv, rank_argvs

    install = local.find_installation()
    argvs = rank_argvs([str(r) for r in repos], opts, layout, binary=install.binary,
                       backend_dir=install.backend_dir)
    argv = launch_argv(layout, argvs)
    click.echo(f"# launch mode: {layout.mode} ({layout.reason})", err=True)
    for key, value in {**install.env, **layout.env}.items():
        click.echo(f"export {key}={shlex.quote(value)}")
    click.echo(format_launch(argv), nl=False)


def _alive(record) -> bool:
    from ..runtime.base import record_alive

    return record_alive(record)


def _stop_one(record) -> str:
    from ..runtime.base import runtime_of

    was = runtime_of(record).stop(record)
    for pid in record.extra.get("companions", []):  # e.g. the OpenAI front started with --openai
        from .. import proc

        proc.stop_pid(int(pid), timeout=10)
    return "stopped" if was else "removed stale record of"


def _others_note(records) -> str:
    """Which servers of other checkouts/caches exist, for a message ('' when none)."""
    from ..runtime import state

    others = [r for r in state.find(None, everyone=True) if not r.mine and r not in records]
    if not others:
        return ""
    names = ", ".join(f"{r.name!r} (from {r.owner})" for r in others)
    return f"; servers of other checkouts, stopped only when named: {names}"


@click.command("stop")
@click.argument("target", required=False)
@click.option("--all", "stop_all", is_flag=True, help="Stop every server this checkout (its cache) started.")
def stop(target, stop_all) -> None:
    """Stop the server named TARGET (or serving the repository TARGET); with no TARGET, the only one this
    checkout started. A server another checkout (another cache) started is only stopped when named."""
    from ..runtime import state

    records = state.find(None if stop_all else target)
    if target and not records and not stop_all:
        raise ServerError(f"no tritongen server named or serving {target!r}", hint="see `tritongen status`")
    if not target and not stop_all and len(records) > 1:
        names = ", ".join(r.name for r in records)
        raise UsageError(f"several servers are running ({names}); name one or pass --all")
    if not records:
        click.echo(f"no tritongen server of this checkout is running{_others_note(records)}")
        return
    for record in records:
        what = _stop_one(record)
        where = f"container {record.container}" if record.container else f"pid {record.pid}"
        click.echo(f"{what} {record.name!r} ({record.runtime}, {where})")
    note = _others_note(records) if not target else ""
    if note:
        click.echo(note.lstrip("; "))


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json) -> None:
    """List the servers tritongen started, whether they are alive and ready, and their addresses."""
    import json
    from dataclasses import asdict

    from ..runtime import state
    from ..runtime.base import runtime_of
    from ..runtime.startup import ready

    rows = []
    gone: dict[str, list[str]] = {}
    for record in state.find(None, everyone=True):
        alive = _alive(record)
        runtime = runtime_of(record)
        # A runtime that is not tritonserver (a Dynamo graph) says itself when it is ready.
        is_ready = alive and (runtime.ready(record) if hasattr(runtime, "ready")
                              else ready(record.client_host, record.http_port))
        gone[record.name] = runtime_of(record).missing_stubs(record) if is_ready else []
        if gone[record.name]:
            label = "degraded"  # Triton still answers ready, but these models fail every request
        else:
            label = "ready" if is_ready else ("starting/unhealthy" if alive else "dead")
        rows.append((record, label))
    if as_json:
        click.echo(json.dumps([{**asdict(r), "state": s, "dead_models": gone[r.name]} for r, s in rows], indent=2))
        return
    if not rows:
        click.echo("no tritongen server is running")
        return
    click.echo(f"{'NAME':<16}{'STATE':<20}{'RUNTIME':<8}{'GRPC':<22}{'HTTP':<22}REPOSITORY")
    for r, s in rows:
        other = "" if r.mine else f"  (started from {r.owner}; stop it by name)"
        click.echo(f"{r.name:<16}{s:<20}{r.runtime:<8}{r.grpc_url:<22}{r.http_url:<22}{r.repo}{other}")
    for r, _ in rows:
        if gone[r.name]:
            click.echo(f"{r.name}: the python-backend process of {', '.join(gone[r.name])} has died; Triton does "
                       f"not restart it and fails every request to it. Restart the server: tritongen stop "
                       f"{r.name}, then tritongen serve again")


@click.command("logs")
@click.argument("target", required=False)
@click.option("-n", "--lines", type=int, default=50, show_default=True, help="Lines from the end.")
def logs(target, lines) -> None:
    """Print the end of a server's log (the only server when TARGET is omitted)."""
    from ..runtime import state
    from ..runtime.base import runtime_of

    records = state.find(target)
    if not records:
        raise ServerError(f"no tritongen server {'named ' + repr(target) if target else 'of this checkout is running'}"
                          f"{_others_note(records) if not target else ''}")
    if len(records) > 1:
        raise UsageError(f"several servers match; name one of: {', '.join(r.name for r in records)}")
    click.echo(runtime_of(records[0]).logs(records[0], lines))
