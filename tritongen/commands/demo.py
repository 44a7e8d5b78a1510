"""``tritongen demo``: the whole stack on this machine, start to finish, and nothing left running."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from ..errors import ServerError


def _step(n: int, total: int, text: str) -> None:
    click.echo(click.style(f"[{n}/{total}] {text}", fg="cyan", bold=True), err=True)


@click.command("demo")
@click.option("--model", default="tiny", show_default=True, help="Catalogue model for the cpu route.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Repository (default repos/<model>).")
@click.option("--http-port", type=int, default=8000, show_default=True)
@click.option("--grpc-port", type=int, default=8001, show_default=True)
@click.option("--metrics-port", type=int, default=8002, show_default=True)
@click.option("--openai-port", type=int, default=9000, show_default=True)
@click.option("--prompt", default="Tell me about the river and the old mill.", show_default=True)
@click.option("--keep-running", is_flag=True, help="Leave the server running at the end.")
def command(model, out, http_port, grpc_port, metrics_port, openai_port, prompt, keep_running) -> None:
    """Build tiny, render and validate its repository, start a real tritonserver, stream a completion over
    gRPC, call the HTTP generate endpoint and the OpenAI API, then stop the server (also when a step fails)."""
    from ..cli import default_repo_dir
    from ..clients.triton import GenerateParams, LLMClient
    from ..pipeline import build_repo
    from ..runtime import local, state
    from ..runtime.base import running_servers
    from ..runtime.command import ServeOptions
    from ..spec import load_spec

    steps = 7
    _step(1, steps, f"spec for {model!r} (cpu route)")
    spec = load_spec(model, options={"route": "cpu", "serving.http_port": http_port,
                                     "serving.grpc_port": grpc_port, "serving.metrics_port": metrics_port})
    _step(2, steps, "model files (tiny is built offline once, then cached)")
    repo = out or default_repo_dir(spec)
    report = build_repo(spec, repo, echo=lambda m: click.echo("      " + m, err=True),
                        on_render=lambda: _step(3, steps, f"render + validate {repo}")).report
    click.echo(f"      {len(report.models)} models, {len(report.errors)} errors, {len(report.warnings)} warnings",
               err=True)
    for stale in state.find(spec.repo_name):
        if not local.running(stale):
            stale.remove()
        elif stale.name == spec.repo_name:  # names are shared by every checkout (runtime/state.py)
            raise ServerError(f"a server named {stale.name!r} is already running ({stale.http_url}, started from "
                              f"{stale.owner})", hint=f"tritongen stop {stale.name}")
    _step(4, steps, f"start tritonserver on 127.0.0.1 (HTTP {http_port}, gRPC {grpc_port})")
    opts = ServeOptions(http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port)
    record = local.start(spec.repo_name, [repo], opts, echo=lambda m: click.echo(m, err=True, nl=False),
                         tty=sys.stderr.isatty(), owners=running_servers())
    companions = []
    try:
        params = GenerateParams(max_tokens=48)
        _step(5, steps, f"stream over gRPC ({record.grpc_url}):  {prompt!r}")
        grpc = LLMClient(record.grpc_url)
        start = time.perf_counter()
        first = None
        for chunk in grpc.stream(prompt, params):
            first = first or time.perf_counter() - start
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
        click.echo(f"\n      (first text after {first * 1000:.0f} ms)" if first else "", err=True)
        _step(6, steps, f"HTTP generate (POST http://{record.http_url}/v2/models/ensemble/generate)")
        http = LLMClient(record.http_url, protocol="http")
        click.echo(http.generate(prompt, params).text)
        _step(7, steps, f"OpenAI API (http://127.0.0.1:{openai_port}/v1, official openai client)")
        worked = ["repository", "server", "gRPC streaming", "HTTP generate"]
        try:
            from ..clients.openai.launch import demo_call
        except ImportError:
            click.echo("      skipped: the OpenAI server is not installed (pip install 'tritongen[openai]')", err=True)
        else:
            click.echo(demo_call(record, port=openai_port, prompt=prompt, companions=companions))
            worked.append("the OpenAI API")
        click.echo(click.style(f"demo finished: {', '.join(worked)} all worked", fg="green"), err=True)
    finally:
        if not keep_running:
            from .. import proc

            for pid in companions:
                proc.stop_pid(pid, timeout=10)
            local.stop(record)
            click.echo(f"stopped tritonserver {record.name!r}", err=True)
        else:
            record.extra["companions"] = companions
            record.save()
            click.echo(f"server left running: tritongen stop {record.name}", err=True)
