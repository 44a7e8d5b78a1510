"""The tritonserver command line, shared by the local and docker launchers.

Secure by default: every endpoint binds 127.0.0.1, and ``--model-control-mode=none`` (loading models at run
time with the python backend amounts to running arbitrary code). When explicit model control is asked for,
the model-repository, shared-memory and logging APIs require a key header on HTTP and gRPC.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

#: APIs that change what the server runs or exposes; locked behind the admin key when enabled.
ADMIN_APIS = "model-repository,shared-memory,logging,trace"
ADMIN_HEADER = "triton-admin-key"


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    #: "none" (default, no runtime loading) or "explicit" (needs admin_key).
    model_control: str = "none"
    admin_key: str | None = None
    load_models: list[str] = field(default_factory=list)
    shm_prefix: str | None = None
    log_verbose: int = 0
    exit_timeout_s: int = 15
    extra_args: list[str] = field(default_factory=list)

    def ensure_admin_key(self) -> str:
        if self.admin_key is None:
            self.admin_key = secrets.token_urlsafe(24)
        return self.admin_key


def tritonserver_args(
    repo: str | list[str],
    opts: ServeOptions,
    *,
    binary: str = "tritonserver",
    backend_dir: str | None = None,
    with_http: bool = True,
    with_grpc: bool = True,
    with_metrics: bool = True,
    metrics_host: str = "127.0.0.1",
) -> list[str]:
    """Argument list for one tritonserver process serving ``repo`` (one or more repository paths).

    ``metrics_host`` stays 127.0.0.1 except inside a container's own network namespace, where the server must
    listen on 0.0.0.0 for Docker to forward the port; the port is then published on the host's 127.0.0.1 only.
    """
    repos = [repo] if isinstance(repo, str) else list(repo)
    argv = [binary]
    argv += [f"--model-repository={r}" for r in repos]
    argv += [
        "--disable-auto-complete-config",
        "--strict-readiness=true",
        f"--exit-timeout-secs={opts.exit_timeout_s}",
        f"--log-verbose={opts.log_verbose}",
        f"--model-control-mode={opts.model_control}",
    ]
    if opts.model_control == "explicit":
        for name in opts.load_models or ["*"]:
            argv.append(f"--load-model={name}")
        key = opts.ensure_admin_key()
        argv.append(f"--http-restricted-api={ADMIN_APIS}:{ADMIN_HEADER}={key}")
        argv.append(f"--grpc-restricted-protocol={ADMIN_APIS}:{ADMIN_HEADER}={key}")
    if with_http:
        argv += [f"--http-address={opts.host}", f"--http-port={opts.http_port}"]
    else:
        argv.append("--allow-http=false")
    if with_grpc:
        argv += [f"--grpc-address={opts.host}", f"--grpc-port={opts.grpc_port}"]
    else:
        argv.append("--allow-grpc=false")
    if with_metrics:
        # Metrics stay on loopback even when the API is exposed: they describe the host.
        argv += [f"--metrics-address={metrics_host}", f"--metrics-port={opts.metrics_port}"]
    else:
        argv.append("--allow-metrics=false")
    if with_metrics:
        argv += metrics_config_args(repos)
    if backend_dir:
        argv.append(f"--backend-directory={backend_dir}")
    if opts.shm_prefix:
        argv.append(f"--backend-config=python,shm-region-prefix-name={opts.shm_prefix}")
    argv += opts.extra_args
    return argv


def metrics_config_args(repos: list[str]) -> list[str]:
    """``--metrics-config`` flags the repositories' specs ask for (serving.metrics.triton_latency_summaries);
    a repository whose lock file cannot be read here (a path inside a container) asks for none."""
    from pathlib import Path

    from ..repo.lock import read_lock

    for repo in repos:
        metrics = ((((read_lock(Path(repo)) or {}).get("spec") or {}).get("serving") or {}).get("metrics") or {})
        if metrics.get("triton_latency_summaries"):
            return ["--metrics-config=summary_latencies=true"]
    return []


def format_launch(argv: list[str]) -> str:
    """A launch command as copy-pasteable shell, one option (with its value) per line."""
    import shlex

    argv = [str(a) for a in argv]
    head = 1
    while head < len(argv) and not argv[head].startswith("-"):  # "docker run", "mpirun"
        head += 1
    lines = [shlex.join(argv[:head])]
    prev = ""
    for arg in argv[head:]:
        takes_value = prev.startswith("-") and "=" not in prev and not arg.startswith("-") and arg != ":"
        if takes_value:
            lines[-1] += " " + shlex.quote(arg)
        else:
            lines.append(shlex.quote(arg))
        prev = arg if not takes_value else ""
    return " \\\n    ".join(lines) + "\n"
