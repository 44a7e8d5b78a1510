"""The Dynamo graph a spec implies: its options, the TensorRT-LLM engine arguments of each worker role, and the
command line and environment of every process.

The engine arguments come from :func:`tritongen.routes.llmapi.model_yaml.llm_args`, the function that writes the
llmapi route's ``model.yaml``: Dynamo's TRT-LLM worker runs the same LLM API, so one spec gives one set of LLM()
arguments whichever server runs them. Only what a Dynamo role needs on top (the KV-cache transceiver of a
disaggregated worker) is added here, and the model itself moves to ``--model-path``.

Every socket a local graph opens is on loopback unless the user asks for another host: Dynamo 1.6.1's ZMQ event
publishers bind 0.0.0.0 even with ``DYN_EVENT_PLANE_HOST`` set (that variable only chooses the address they
advertise), so a local graph routes its events through a ZMQ broker that tritongen starts on 127.0.0.1 and the
publishers connect to it instead of binding (``DYN_ZMQ_BROKER_URL``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ... import catalog
from ...routes.llmapi.model_yaml import check_supported, llm_args, tokenizer_ref
from ...spec import Spec

Role = Literal["agg", "prefill", "decode"]
#: Environment variables naming the address a Dynamo process binds or advertises (TCP request plane, its
#: response stream, the event plane, the system/metrics server, the HTTP frontend and its RPC side).
HOST_VARS = ("DYN_TCP_RPC_HOST", "DYN_TCP_RESPONSE_STREAM_HOST", "DYN_EVENT_PLANE_HOST", "DYN_SYSTEM_HOST",
             "DYN_HTTP_HOST", "DYN_HTTP_RPC_HOST")
#: Discovery through files and the TCP request plane with ZMQ events: no etcd or NATS to run.
TRANSPORT_FLAGS = ["--discovery-backend", "file", "--request-plane", "tcp", "--event-plane", "zmq"]


def release() -> dict:
    """The pinned Dynamo release: version, images, component names (catalog/dynamo/dynamo.yaml)."""
    return catalog.load("dynamo/dynamo.yaml")


class DynamoOptions(BaseModel):
    """How the graph is laid out and reached (the command-line options of ``tritongen dynamo``)."""

    model_config = ConfigDict(extra="forbid")

    workers: int = Field(1, ge=1, le=64, description="Aggregated workers (ignored with disagg).")
    prefill: int = Field(0, ge=0, le=64, description="Prefill workers (disaggregated when > 0).")
    decode: int = Field(0, ge=0, le=64, description="Decode workers (disaggregated when > 0).")
    router: Literal["kv", "round-robin"] = "kv"
    host: str = "127.0.0.1"
    http_port: int = Field(8000, ge=1, le=65535)
    mocker: bool = False
    mocker_speedup: float = Field(1.0, gt=0, le=10000, description="The mocker's simulated time runs this many "
                                  "times faster than the TRT-LLM timing it models (benchmarks of the serving path).")
    migration_limit: int = Field(0, ge=0, le=100, description="Times the frontend re-sends a request whose "
                                 "worker died mid-stream (0: the request fails).")
    namespace: str = Field("default", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    gpus_per_worker: int | None = Field(None, ge=0, description="Override of tp x pp x cp.")
    gpus_per_node: int = Field(8, ge=1, le=64, description="GPUs per Kubernetes node: a worker needing more spans "
                               "several nodes (the DGD's multinode.nodeCount).")

    @model_validator(mode="after")
    def _disagg_pair(self) -> DynamoOptions:
        if (self.prefill > 0) != (self.decode > 0):
            raise ValueError("--disagg P:D needs at least one prefill and one decode worker")
        return self

    @property
    def disaggregated(self) -> bool:
        return self.prefill > 0

    def roles(self) -> list[tuple[Role, int]]:
        """(role, how many workers) of the graph."""
        return [("prefill", self.prefill), ("decode", self.decode)] if self.disaggregated else [("agg", self.workers)]


def served_name(spec: Spec) -> str:
    """The model name the frontend serves (what OpenAI clients send as ``model``)."""
    return spec.repo_name


def model_path(spec: Spec) -> str:
    """What the worker loads: the same reference model.yaml's ``model`` holds (checkpoint, HF id or cache)."""
    return llm_args(spec)["model"]


def check(spec: Spec) -> None:
    """Refuse what the TRT-LLM worker cannot run, with the llmapi route's own checks (one line per problem)."""
    from ... import versions

    check_supported(spec, versions.resolve_container(spec)[0])


def engine_args(spec: Spec, role: Role) -> dict:
    """The ``--extra-engine-args`` YAML of one worker role: the llmapi route's LLM() arguments, less the model
    (given as ``--model-path``), plus what a disaggregated role needs."""
    args = {k: v for k, v in llm_args(spec).items() if k != "model"}
    if role != "agg":
        # Prefill and decode workers hand the KV cache over; DEFAULT lets TensorRT-LLM pick NIXL/UCX/MPI.
        args["cache_transceiver_config"] = {"backend": "DEFAULT"}
    if role == "prefill":
        # A prefill worker runs one forward pass per request; overlapping it with the next batch gains nothing.
        args["disable_overlap_scheduler"] = True
    return args


def gpus_per_worker(spec: Spec, opts: DynamoOptions) -> int:
    return opts.gpus_per_worker if opts.gpus_per_worker is not None else spec.parallelism.world_size


@dataclass
class Process:
    """One process of a graph: its role, how many of it, its command line and environment."""

    name: str
    role: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def loopback_env(host: str) -> dict[str, str]:
    """Every Dynamo bind/advertise address set to ``host`` (127.0.0.1 by default)."""
    return {var: host for var in HOST_VARS}


def frontend_argv(opts: DynamoOptions, *, python: str = "python3", local: bool = True) -> list[str]:
    """``python -m dynamo.frontend``; ``local``: with this machine's address, port and transports (in a cluster
    the operator sets those)."""
    argv = [python, "-m", "dynamo.frontend", "--router-mode", opts.router]
    if local:
        argv += ["--http-host", opts.host, "--http-port", str(opts.http_port), *TRANSPORT_FLAGS]
    if opts.migration_limit:
        argv += ["--migration-limit", str(opts.migration_limit)]
    if opts.disaggregated:
        # Without it the frontend falls back to aggregated serving on a decode worker when no prefill worker
        # is up; a disaggregated graph should fail visibly instead.
        argv += ["--enforce-disagg"]
    return argv


def trtllm_worker_argv(spec: Spec, opts: DynamoOptions, role: Role, engine_args_path: str, *,
                       python: str = "python3", local: bool = True) -> list[str]:
    """``python -m dynamo.trtllm`` for one role (the real worker: needs a GPU and TensorRT-LLM)."""
    argv = [python, "-m", "dynamo.trtllm", "--model-path", model_path(spec), "--served-model-name",
            served_name(spec), "--extra-engine-args", engine_args_path]
    if role != "agg":
        argv += ["--disaggregation-mode", role]
    if opts.router == "kv" and role != "decode":
        argv += ["--publish-kv-events"]
    return argv + (TRANSPORT_FLAGS if local else [])


def mocker_argv(spec: Spec, opts: DynamoOptions, role: Role, *, python: str = sys.executable) -> list[str]:
    """``python -m dynamo.mocker --engine-type trtllm`` for one role: Dynamo's simulated TensorRT-LLM worker,
    with the model's tokenizer and the spec's batch/token limits (no GPU, no weights)."""
    lim, kv = spec.limits, spec.kv_cache
    argv = [python, "-m", "dynamo.mocker", "--engine-type", "trtllm", "--model-path", tokenizer_ref(spec),
            "--model-name", served_name(spec), "--block-size", str(kv.tokens_per_block),
            "--max-num-seqs", str(lim.max_batch_size), "--max-num-batched-tokens", str(lim.max_num_tokens),
            "--max-model-len", str(lim.max_seq_len),
            "--enable-prefix-caching" if kv.enable_reuse else "--no-enable-prefix-caching",
            "--enable-chunked-prefill" if spec.scheduling.enable_chunked_context else "--no-enable-chunked-prefill"]
    if opts.mocker_speedup != 1.0:
        argv += ["--speedup-ratio", f"{opts.mocker_speedup:g}"]
    if role != "agg":
        argv += ["--disaggregation-mode", role]
    return argv + TRANSPORT_FLAGS


def local_processes(spec: Spec, opts: DynamoOptions, *, engine_args_dir: Path | None = None,
                    python: str = sys.executable) -> list[Process]:
    """The processes of a local graph in start order: frontend, then the workers (mocker or real)."""
    env = loopback_env(opts.host)
    procs = [Process("frontend", "frontend", frontend_argv(opts, python=python), dict(env))]
    for role, count in opts.roles():
        for i in range(count):
            if opts.mocker:
                argv = mocker_argv(spec, opts, role, python=python)
            else:
                path = str((engine_args_dir or Path(".")) / f"engine-{role}.yaml")
                argv = trtllm_worker_argv(spec, opts, role, path, python=python)
            label = "worker" if role == "agg" else role
            procs.append(Process(f"{label}-{i}", label, argv, dict(env)))
    return procs
