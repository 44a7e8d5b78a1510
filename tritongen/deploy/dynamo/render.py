"""``tritongen dynamo render``: the files of a Dynamo deployment, validated before anything is written.

The output folder holds the engine-arguments YAML of each worker role, ``run-local.sh`` (the frontend and worker
command lines for one GPU host, every address on loopback), ``k8s/dynamo-graph.yaml`` (the engine-arguments
ConfigMap and the DynamoGraphDeployment) and a ``.tritongen-dynamo`` marker: a folder without it is never
overwritten unless --force is given.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import yaml

from ...errors import RepoExistsError, ValidationFailed
from ...spec import Spec
from . import dgd, graph
from .graph import DynamoOptions

MARKER = ".tritongen-dynamo"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the engine arguments inside the ConfigMap) as literal blocks, readable in review."""


_Dumper.add_representer(str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v,
                                                             style="|" if "\n" in v else None))


def _yaml(data: dict) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


#: The loopback ZMQ broker of run-local.sh, inline so that the GPU host needs only Dynamo (pyzmq comes with it).
_BROKER = ("python3 -c 'import zmq; c = zmq.Context(); s = c.socket(zmq.XSUB); s.bind(\"tcp://127.0.0.1:5601\"); "
           "p = c.socket(zmq.XPUB); p.bind(\"tcp://127.0.0.1:5602\"); zmq.proxy(s, p)' &")


def _header(spec: Spec, opts: DynamoOptions, what: str) -> str:
    rel = graph.release()
    shape = f"disaggregated {opts.prefill} prefill : {opts.decode} decode" if opts.disaggregated else \
        f"aggregated, {opts.workers} worker(s)"
    return (f"# {what}\n# Written by tritongen dynamo render for {spec.repo_name} ({shape}, router {opts.router}); "
            f"Dynamo {rel['version']}.\n")


def run_script(spec: Spec, opts: DynamoOptions) -> str:
    """A shell script that starts the graph on one GPU host with the real TRT-LLM worker."""
    lines = ["#!/usr/bin/env bash", _header(spec, opts, "The graph on one host: frontend + TRT-LLM workers.").rstrip(),
             "# Needs ai-dynamo[trtllm]==" + graph.release()["version"] + " (or the runtime image) and the GPUs.",
             "# Every Dynamo address is on loopback; events go through a ZMQ broker on loopback because the event",
             "# publishers would otherwise bind 0.0.0.0.", "set -euo pipefail", 'cd "$(dirname "$0")"',
             "# Ctrl-C (or any exit) stops the whole graph, not just this script.", "trap 'kill 0' EXIT INT TERM",
             'export DYN_FILE_KV="${DYN_FILE_KV:-$PWD/.discovery}"',
             'export DYN_ZMQ_BROKER_URL="${DYN_ZMQ_BROKER_URL:-xsub=tcp://127.0.0.1:5601,xpub=tcp://127.0.0.1:5602}"']
    lines += [f"export {k}={shlex.quote(v)}" for k, v in graph.loopback_env(opts.host).items()]
    lines += [_BROKER]
    gpu = 0
    for p in graph.local_processes(spec, opts.model_copy(update={"mocker": False}), engine_args_dir=Path("."),
                                   python="python3"):
        prefix = ""
        if p.role != "frontend":
            n = graph.gpus_per_worker(spec, opts)
            prefix = f"CUDA_VISIBLE_DEVICES={','.join(str(gpu + i) for i in range(n))} " if n else ""
            gpu += n
        lines.append(prefix + " ".join(shlex.quote(a) for a in p.argv) + " &")
    lines += ["wait", ""]
    return "\n".join(lines)


def files(spec: Spec, opts: DynamoOptions, name: str | None = None) -> dict[str, str]:
    """relative path -> text of every file of the deployment; raises ValidationFailed if the graph object does
    not validate against the pinned schema."""
    graph.check(spec)
    obj = dgd.build(spec, opts, name)
    cm = dgd.config_map(spec, opts, obj["metadata"]["name"])
    problems = dgd.validate(obj) + [f"ConfigMap: {p}" for p in dgd.validate_builtin(cm)]
    if problems:
        raise ValidationFailed(problems, hint="this is a tritongen bug: the rendered graph should always validate")
    out = {}
    for role, _ in opts.roles():
        out[f"engine-{role}.yaml"] = (_header(spec, opts, f"TensorRT-LLM engine arguments (--extra-engine-args), "
                                               f"role {role}; the same mapping as the llmapi route's model.yaml.")
                                      + _yaml(graph.engine_args(spec, role)))
    out["run-local.sh"] = run_script(spec, opts)
    out["k8s/dynamo-graph.yaml"] = (_header(spec, opts, "ConfigMap (engine arguments) + DynamoGraphDeployment.")
                                    + "# kubectl create secret generic hf-token-secret --from-literal=HF_TOKEN=... "
                                    "first.\n" + _yaml(cm) + "---\n" + _yaml(obj))
    out[MARKER] = f"tritongen dynamo render {spec.repo_name}\n"
    return out


def write(tree: dict[str, str], out_dir: Path, *, force: bool = False) -> None:
    """Write the files into ``out_dir`` (replacing a folder this command wrote before)."""
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / MARKER).is_file() and not force:
            raise RepoExistsError(f"{out_dir} exists and was not written by tritongen dynamo render",
                                  hint="choose another --out, or --force to replace it")
        shutil.rmtree(out_dir)
    for rel, text in tree.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if rel.endswith(".sh"):
            path.chmod(0o755)


def dry_run_text(tree: dict[str, str]) -> str:
    return "".join(f"--- {rel}\n{text}" + ("" if text.endswith("\n") else "\n") for rel, text in tree.items()
                   if rel != MARKER)
