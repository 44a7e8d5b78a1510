"""The DynamoGraphDeployment (Dynamo's Kubernetes operator resource) for a spec, and its validation.

The object follows the pinned release's v1beta1 layout: a list of components (frontend, then one worker, or a
prefill and a decode worker), each a pod template running the release's TensorRT-LLM runtime image. The engine
arguments travel in a ConfigMap mounted at /config, so the same YAML that ``tritongen dynamo render`` writes next
to it is what the worker reads. The Hugging Face token is read from a Secret the user creates (never inline).
"""

from __future__ import annotations

from typing import Any

import yaml

from ... import catalog
from ...spec import Spec
from . import graph
from .graph import DynamoOptions, Role

SCHEMA_FILE = "dynamo/dynamographdeployment-v1beta1.yaml"
#: The Secret holding HF_TOKEN (created by the user: kubectl create secret generic hf-token-secret ...).
HF_SECRET = "hf-token-secret"
CONFIG_MOUNT = "/config"


def config_map_name(name: str) -> str:
    return f"{name}-engine-args"


def _dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)


def config_map(spec: Spec, opts: DynamoOptions, name: str) -> dict:
    """The ConfigMap with each worker role's engine-arguments YAML."""
    data = {f"engine-{role}.yaml": _dump(graph.engine_args(spec, role)) for role, _ in opts.roles()}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": config_map_name(name), "namespace": opts.namespace,
                         "labels": {"app.kubernetes.io/managed-by": "tritongen"}},
            "data": data}


def _container(image: str, command: list[str], args: list[str], *, gpus: int = 0, config: bool = False) -> dict:
    c: dict[str, Any] = {"name": "main", "image": image, "command": command, "args": args,
                         "envFrom": [{"secretRef": {"name": HF_SECRET}}]}
    if gpus:
        c["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
        c["workingDir"] = graph.release()["working_dir"]
    if config:
        c["volumeMounts"] = [{"name": "engine-args", "mountPath": CONFIG_MOUNT, "readOnly": True}]
    return c


def _worker(spec: Spec, opts: DynamoOptions, role: Role, count: int, name: str) -> dict:
    rel = graph.release()
    comp = rel["components"]["worker" if role == "agg" else role]
    argv = graph.trtllm_worker_argv(spec, opts, role, f"{CONFIG_MOUNT}/engine-{role}.yaml", local=False)
    gpus = graph.gpus_per_worker(spec, opts)
    # A worker larger than one node spans ceil(gpus / per-node) pods, each with a node's share of the GPUs.
    nodes = -(-gpus // opts.gpus_per_node) if gpus else 1
    container = _container(rel["images"]["trtllm"], argv[:3], argv[3:], gpus=-(-gpus // nodes) if gpus else 0,
                           config=True)
    pod = {"spec": {"containers": [container],
                    "volumes": [{"name": "engine-args", "configMap": {"name": config_map_name(name)}}]}}
    out = {"name": comp["name"], "type": comp["type"], "replicas": count, "podTemplate": pod}
    if nodes > 1:
        out["multinode"] = {"nodeCount": nodes}
    return out


def build(spec: Spec, opts: DynamoOptions, name: str | None = None) -> dict:
    """The DynamoGraphDeployment object for the spec (plain dicts, deterministic order)."""
    name = name or spec.repo_name
    rel = graph.release()
    fe = rel["components"]["frontend"]
    # In a cluster the operator chooses the frontend's address, port, discovery and transports.
    fe_argv = graph.frontend_argv(opts, local=False)
    frontend = {"name": fe["name"], "type": fe["type"], "replicas": 1,
                "podTemplate": {"spec": {"containers": [_container(rel["images"]["frontend"], fe_argv[:1],
                                                                   fe_argv[1:])]}}}
    components = [frontend] + [_worker(spec, opts, role, count, name) for role, count in opts.roles()]
    return {"apiVersion": rel["dgd_api_version"], "kind": "DynamoGraphDeployment",
            "metadata": {"name": name, "namespace": opts.namespace,
                         "labels": {"app.kubernetes.io/managed-by": "tritongen"}},
            "spec": {"components": components}}


def _jsonschema() -> dict:
    from ..k8s.schemas import _openapi_to_jsonschema

    return _openapi_to_jsonschema(catalog.load(SCHEMA_FILE)["openAPIV3Schema"])


def validate_builtin(obj: dict) -> list[str]:
    """Problems of a built-in Kubernetes object (the ConfigMap), Kubernetes 1.32 schemas, strict."""
    from ..k8s.schemas import validate as k8s_validate

    return k8s_validate(obj)


def validate(obj: dict) -> list[str]:
    """Problems of a DynamoGraphDeployment (empty when valid): the stored v1beta1 schema of the pinned release,
    and each component's pod template against the Kubernetes 1.32 PodTemplateSpec (strict)."""
    import jsonschema

    from ..k8s.schemas import validate as k8s_validate

    validator = jsonschema.Draft202012Validator(_jsonschema())
    problems = [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
                for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))]
    if not (obj.get("metadata") or {}).get("name"):
        problems.append("metadata.name is missing")
    components = (obj.get("spec") or {}).get("components") or []
    names = [c.get("name") for c in components if isinstance(c, dict)]
    problems += [f"spec.components: name {n!r} appears more than once" for n in sorted(set(names), key=str)
                 if names.count(n) > 1]
    for i, comp in enumerate(components):
        template = comp.get("podTemplate") if isinstance(comp, dict) else None
        if template is None:
            continue
        pod = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template}
        problems += [f"spec.components.{i}.podTemplate: {p.removeprefix('template.')}" for p in k8s_validate(pod)]
    return problems
