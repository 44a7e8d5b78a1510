"""``tritongen dynamo``: the same spec served by NVIDIA Dynamo (frontend + KV-aware router + TRT-LLM workers)."""

from __future__ import annotations

from pathlib import Path

import click

from ..cli import resolve, spec_options


def _graph_options(func):
    opts = [
        click.option("--workers", type=int, default=1, show_default=True,
                     help="Aggregated workers (each runs prefill and decode)."),
        click.option("--disagg", metavar="P:D", help="Disaggregated: P prefill workers and D decode workers, "
                     "e.g. 1:1 (replaces --workers)."),
        click.option("--router", type=click.Choice(["kv", "round-robin"]), default="kv", show_default=True,
                     help="kv: send a request to the worker that already holds most of its prefix (turns on "
                          "KV-block reuse unless the spec sets kv_cache.enable_reuse); round-robin: in turn."),
        click.option("--migration-limit", type=int, default=0, show_default=True,
                     help="Times the frontend re-sends a request whose worker died mid-stream (0: it fails)."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _prepare(model, kwargs, *, workers, disagg, router, migration_limit, **more):
    """(spec, DynamoOptions) from the command line; one-line errors for bad values."""
    from pydantic import ValidationError

    from ..deploy.dynamo.graph import DynamoOptions
    from ..errors import SpecError, UsageError

    prefill = decode = 0
    if disagg:
        try:
            prefill, decode = (int(x) for x in disagg.split(":"))
        except ValueError:
            raise UsageError(f"--disagg {disagg!r}: give P:D, e.g. 1:1") from None
    if kwargs.get("route") not in (None, "llmapi"):
        raise UsageError(f"--route {kwargs['route']}: Dynamo's TRT-LLM worker runs the LLM API (the llmapi route)")
    kwargs["route"] = "llmapi"
    sets = list(kwargs.get("sets") or ())
    if router == "kv":
        # The KV router only pays off when workers keep and reuse blocks; a --set given later still wins.
        sets.insert(0, "kv_cache.enable_reuse=true")
    kwargs["sets"] = sets
    try:
        opts = DynamoOptions(workers=workers, prefill=prefill, decode=decode, router=router,
                             migration_limit=migration_limit, **more)
    except ValidationError as exc:
        raise SpecError([f"--{'.'.join(map(str, e['loc'])).replace('_', '-') or 'disagg'}: "
                         f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]) from None
    return resolve(model, kwargs), opts


@click.group("dynamo")
def command() -> None:
    """Serve the spec with NVIDIA Dynamo (ai-dynamo 1.6.1): an OpenAI frontend, a KV-aware router and
    TensorRT-LLM workers, aggregated or disaggregated (prefill/decode), on one machine or in Kubernetes.

    The TRT-LLM engine arguments are the llmapi route's model.yaml mapping (one function for both).

    \b
    Examples:
      tritongen dynamo render llama3-8b --gpu h100 --workers 2
      tritongen dynamo render llama3-70b --gpu h100 --tp 4 --disagg 1:1 --dry-run
      tritongen dynamo up tiny --mocker --workers 2      # no GPU: Dynamo's simulated TRT-LLM worker
      tritongen status; tritongen logs tiny; tritongen stop tiny
    """


@command.command("render")
@click.argument("model", required=False)
@spec_options
@_graph_options
@click.option("--namespace", default="default", show_default=True, help="Kubernetes namespace of the graph.")
@click.option("--gpus-per-node", type=int, default=8, show_default=True,
              help="GPUs per node; a worker with more (tp x pp) spans several nodes (multinode).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: deploy/<name>/dynamo).")
@click.option("--force", is_flag=True, help="Replace the folder even if tritongen dynamo render did not write it.")
@click.option("--dry-run", is_flag=True, help="Print the files instead of writing them.")
def render_cmd(model, workers, disagg, router, migration_limit, namespace, gpus_per_node, out, force, dry_run,
               **kwargs) -> None:
    """Write the Dynamo deployment of MODEL: engine-<role>.yaml (TRT-LLM --extra-engine-args), run-local.sh
    (frontend and worker command lines for one GPU host, on loopback) and k8s/dynamo-graph.yaml (a ConfigMap and
    a DynamoGraphDeployment, validated against the pinned release's schema and Kubernetes 1.32 before writing).

    \b
    Then, on a cluster with the Dynamo operator:
      kubectl create secret generic hf-token-secret --from-literal=HF_TOKEN=<token>
      kubectl apply -f deploy/<name>/dynamo/k8s/dynamo-graph.yaml
    """
    from ..deploy.dynamo import render
    from ..names import inside

    spec, opts = _prepare(model, kwargs, workers=workers, disagg=disagg, router=router,
                          migration_limit=migration_limit, namespace=namespace, gpus_per_node=gpus_per_node)
    tree = render.files(spec, opts)
    if dry_run:
        click.echo(render.dry_run_text(tree), nl=False)
        return
    out_dir = out or inside(Path("deploy") / spec.repo_name / "dynamo", Path("deploy"), "--name")
    render.write(tree, out_dir, force=force)
    shape = f"{opts.prefill} prefill + {opts.decode} decode" if opts.disaggregated else f"{opts.workers} worker(s)"
    click.echo(f"wrote {out_dir} (Dynamo graph: frontend + {shape}, router {opts.router}; DynamoGraphDeployment "
               "validated)")
    click.echo(f"next: kubectl apply -f {out_dir}/k8s/dynamo-graph.yaml   (or on one GPU host: {out_dir}/run-local.sh)")


@command.command("up")
@click.argument("model", required=False)
@spec_options
@_graph_options
@click.option("--mocker", is_flag=True, help="Run Dynamo's mocker (--engine-type trtllm: simulated TensorRT-LLM "
              "timing, the model's tokenizer, no GPU, no weights) in place of dynamo.trtllm.")
@click.option("--mocker-speedup", type=float, default=1.0, show_default=True,
              help="--mocker: run the simulated engine this many times faster than the TRT-LLM timing it models.")
@click.option("--http-port", type=int, default=8000, show_default=True, help="Frontend HTTP port (OpenAI API).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address of every socket the graph opens (loopback by default).")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for readiness.")
def up_cmd(model, workers, disagg, router, migration_limit, mocker, mocker_speedup, http_port, host, timeout,
           **kwargs) -> None:
    """Start the Dynamo graph of MODEL on this machine: an event broker, the frontend and the workers, recorded
    as one server (tritongen status / logs / stop NAME take them as a whole; NAME is the spec's --name, by
    default the model). Then `tritongen infer --openai`, the openai client or `tritongen bench` against
    http://127.0.0.1:PORT/v1.

    Without --mocker the workers are `python -m dynamo.trtllm` (a GPU and TensorRT-LLM needed).
    """
    import importlib.util
    import sys

    from ..deploy.dynamo import graph
    from ..errors import MissingDependency, ServerError
    from ..runtime import dynamo as runtime
    from ..runtime import state
    from ..runtime.base import record_alive

    spec, opts = _prepare(model, kwargs, workers=workers, disagg=disagg, router=router,
                          migration_limit=migration_limit, mocker=mocker, mocker_speedup=mocker_speedup,
                          http_port=http_port, host=host)
    graph.check(spec)
    if not mocker and importlib.util.find_spec("tensorrt_llm") is None:
        raise MissingDependency("dynamo.trtllm needs TensorRT-LLM (and a GPU), which this Python lacks",
                                hint="--mocker runs Dynamo's simulated TRT-LLM worker instead")
    if spec.model.name == "tiny" and spec.model.checkpoint_dir is None:
        from ..tiny import build

        build(spec.checkpoint_dir)
    name = spec.repo_name
    for old in state.find(name):
        if old.name == name and record_alive(old):
            raise ServerError(f"a server named {name!r} is already running ({old.http_url})",
                              hint=f"tritongen stop {name}")
        old.remove()
    gdir = runtime.graph_dir(name)
    procs = graph.local_processes(spec, opts, engine_args_dir=gdir, python=sys.executable)
    if not mocker:
        from ..deploy.dynamo.render import _yaml

        gdir.mkdir(parents=True, exist_ok=True)
        for role, _ in opts.roles():
            (gdir / f"engine-{role}.yaml").write_text(_yaml(graph.engine_args(spec, role)))
    what = "mocker workers (Dynamo's simulated TRT-LLM engine, no GPU)" if mocker else "dynamo.trtllm workers"
    click.echo(f"starting Dynamo graph {name!r}: event broker, frontend on {host}:{http_port}, "
               f"{len(procs) - 1} {what}", err=True)
    record = runtime.start(name, [runtime.GraphProcess(p.name, p.role, p.argv, p.env) for p in procs],
                           model=graph.served_name(spec), host=host, http_port=http_port, timeout=timeout,
                           echo=lambda m: click.echo("  " + m, err=True),
                           extra={"mocker": mocker, "router": router,
                                  "tokenizer": str(spec.tokenizer_dir)})
    click.echo(f"ready: {name} (Dynamo {graph.release()['version']}{', MOCKER workers' if mocker else ''})")
    click.echo(f"  OpenAI  http://{record.client_host}:{http_port}/v1   model {graph.served_name(spec)!r}")
    click.echo(f"  metrics http://{record.client_host}:{http_port}/metrics")
    click.echo(f"  stop    tritongen stop {name}")
