"""Lay the objects out as a kustomize tree, and write it (atomically, never outside the chosen folder).

```
<out>/                          default deploy/<name>/k8s
  kustomization.yaml            = overlays/prod (so `kubectl apply -k <out>` is the production setup)
  base/kustomization.yaml       every object + one generated ConfigMap per model folder
  base/*.yaml                   cache-pvc, engine-job | checkpoint-job, deployment | leaderworkerset, service,
                                pdb, networkpolicy, servicemonitor, [openai-*], [namespace]
  base/repository/              the rendered model repository (the ConfigMaps' content; its lock file records
                                the spec, for `tritongen k8s --check`, and is not mounted)
  overlays/dev/                 one replica, no HPA
  overlays/prod/                --replicas, the HPA (hpa.yaml), replicas spread over nodes
  monitoring/prometheus-adapter-rules.yaml   the custom-metrics rule the HPA needs
```

Kustomize features used: ``resources`` naming folders, ``configMapGenerator`` with ``generatorOptions``, and
``patches`` with ``path`` + ``target`` (kustomize 4 and newer: ``kubectl kustomize`` of kubectl 1.21 on, tested
with kubectl 1.32 / kustomize 5.5). Debian 12's ``kubernetes-client`` (kubectl 1.20, kustomize 2.0.3) predates
folders in ``resources`` and ``patches``; use a kubectl of 1.21 or newer.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ...render.writer import write_files
from . import around, lws, model, volume, yamlout
from .model import Plan

MARKER = ".tritongen-k8s.json"
HEADER = ("Written by `tritongen k8s`. `# spec: FIELD` names the spec field a value comes from; change the spec\n"
          "and run `tritongen k8s` again rather than editing (an edited tree is not overwritten without --force).")


def _doc(obj: dict, note: str = "") -> str:
    return yamlout.dump(obj, HEADER + (f"\n{note}" if note else ""))


def _kustomization(**fields) -> dict:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **fields}


def objects(plan: Plan) -> dict[str, dict]:
    """<file under the output folder> -> object (with ``From`` wrappers), in apply order. The HPA lives in the
    prod overlay (dev has none); everything else in the base."""
    out: dict[str, dict] = {}
    if plan.opts.namespace != "default":
        out["base/namespace.yaml"] = around.namespace(plan)
    out["base/cache-pvc.yaml"] = volume.pvc(plan)
    job = volume.job(plan)
    if job is not None:
        out[f"base/{'engine' if plan.build else 'checkpoint'}-job.yaml"] = job
    if plan.needs.multi_node:
        out["base/leaderworkerset.yaml"] = lws.leaderworkerset(plan)
    else:
        out["base/deployment.yaml"] = model.deployment(plan)
    out["base/service.yaml"] = around.service(plan)
    out["base/pdb.yaml"] = around.pdb(plan)
    out["base/networkpolicy.yaml"] = around.network_policy(plan)
    out["base/servicemonitor.yaml"] = around.service_monitor(plan)
    if plan.opts.openai:
        for obj in around.openai_objects(plan):
            out[f"base/openai-{obj['kind'].lower()}.yaml"] = obj
    out["overlays/prod/hpa.yaml"] = around.hpa(plan)
    return out


def files(plan: Plan) -> dict[str, bytes]:
    """Every file of the tree, path relative to the output folder -> content."""
    out: dict[str, bytes] = {}
    objs = objects(plan)
    for rel, obj in objs.items():
        out[rel] = _doc(obj).encode()
    generators = [{"name": cm, "files": [f"{key}=repository/{rel}" for key, rel in keys.items()]}
                  for cm, keys in plan.config_maps().items()]
    namespace = yamlout.From(plan.opts.namespace, "--namespace")
    base = _kustomization(
        namespace=namespace,
        resources=[rel.removeprefix("base/") for rel in objs if rel.startswith("base/")],
        configMapGenerator=generators,
        # Names stay fixed so that the pod templates (a LeaderWorkerSet's too) find them; a change of the
        # repository still rolls the pods, through the repository-sha256 annotation of their template.
        generatorOptions={"disableNameSuffixHash": True, "labels": plan.labels("repository")},
    )
    out["base/kustomization.yaml"] = _doc(base).encode()
    for rel, content in plan.repo_files.items():
        out[f"base/repository/{rel}"] = content
    out[f"base/repository/{model.LOCK_NAME}"] = plan.lock
    kind = plan.workload_kind
    api = "leaderworkerset.x-k8s.io" if plan.needs.multi_node else "apps"
    out["overlays/dev/replicas.yaml"] = _doc(
        {"apiVersion": f"{api}/v1", "kind": kind, "metadata": {"name": plan.name}, "spec": {"replicas": 1}},
        "dev: one replica").encode()
    dev_patches = [{"path": "replicas.yaml", "target": {"kind": kind, "name": plan.name}}]
    if not plan.needs.multi_node:
        # One pod on one node: any storage class will do (a laptop cluster has no ReadWriteMany).
        out["overlays/dev/cache-pvc.yaml"] = _doc(
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": f"{plan.name}-cache"},
             "spec": {"accessModes": ["ReadWriteOnce"]}}, "dev: one pod, so ReadWriteOnce is enough").encode()
        dev_patches.append({"path": "cache-pvc.yaml",
                            "target": {"kind": "PersistentVolumeClaim", "name": f"{plan.name}-cache"}})
    out["overlays/dev/kustomization.yaml"] = _doc(_kustomization(resources=["../../base"], patches=dev_patches),
                                                  "dev: one replica, no HPA").encode()
    prod = _kustomization(namespace=namespace, resources=["../../base", "hpa.yaml"])
    if not plan.needs.multi_node:
        out["overlays/prod/spread.yaml"] = _doc(
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": plan.name},
             "spec": {"template": {"spec": {"topologySpreadConstraints": [
                 {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                  "labelSelector": {"matchLabels": plan.selector("server")}}]}}}},
            "prod: replicas on different nodes where possible").encode()
        prod["patches"] = [{"path": "spread.yaml", "target": {"kind": "Deployment", "name": plan.name}}]
    out["overlays/prod/kustomization.yaml"] = _doc(prod, "prod: --replicas, the HPA on queue time").encode()
    out["kustomization.yaml"] = _doc(_kustomization(resources=["overlays/prod"]),
                                     "`kubectl apply -k` on this folder applies overlays/prod").encode()
    out["monitoring/prometheus-adapter-rules.yaml"] = _doc(
        around.adapter_rules(plan),
        "Helm values for prometheus-community/prometheus-adapter: serves the per-pod metric the HPA scales on\n"
        f"({around.QUEUE_METRIC}: microseconds a request waited in the queue, last minute). Apply with\n"
        "  helm upgrade --install prometheus-adapter prometheus-community/prometheus-adapter -n monitoring \\\n"
        "    -f monitoring/prometheus-adapter-rules.yaml").encode()
    return out


def dry_run_text(tree: dict[str, bytes]) -> str:
    """The tree as one printable text: YAML in full, the repository's copied files by name and size."""
    parts = []
    for rel in sorted(tree):
        content = tree[rel]
        if rel.startswith("base/repository/") and not rel.endswith((".pbtxt", ".yaml", ".yml")):
            parts.append(f"# --- {rel} ({len(content)} bytes, sha256 {hashlib.sha256(content).hexdigest()[:16]})\n")
            continue
        parts.append(f"# --- {rel}\n{content.decode()}")
    return "".join(parts)


def write(tree: dict[str, bytes], out_dir: Path, *, force: bool = False) -> Path:
    """Write ``tree`` to ``out_dir`` with the one artefact writer (atomic, its hashes in :data:`MARKER`)."""
    return write_files(out_dir, tree, tool="tritongen k8s", record=MARKER, force=force)
