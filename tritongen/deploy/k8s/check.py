"""``tritongen k8s --check DIR``: what a cluster would reject or kill, one line each, before applying.

DIR is a tree ``tritongen k8s`` wrote (its top folder, ``base/`` or an overlay). With ``kubectl`` on PATH the
check reads what ``kubectl kustomize DIR`` builds (so edits in overlays count); without it, the YAML files of
the base. The spec comes from the repository's lock file in ``base/repository/``. Checked:

* every object against the Kubernetes / CRD schemas (:mod:`.schemas`);
* GPUs per node: a pod asking for more ``nvidia.com/gpu`` than ``--gpus-per-node`` can never be scheduled, and
  the pods of one replica together must hold tp x pp GPUs;
* /dev/shm: a memory-backed emptyDir at /dev/shm of at least what the model needs (:func:`.needs.shm_needed`);
* ConfigMaps over the API server's 1 MiB limit;
* the probe budget: the startup probe (or, without one, the liveness probe) must allow at least the load-time
  estimate (:func:`.needs.load_estimate`), or the kubelet restarts the server while it is still loading.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from ...errors import UsageError
from ...names import show_path
from . import needs, schemas
from .model import CONFIGMAP_LIMIT, GPU_RESOURCE, LOCK_NAME


@dataclass
class Report:
    objects: int
    problems: list[str]
    source: str  #: "kubectl kustomize" or "base files"


def _lock_path(root: Path) -> Path | None:
    for cand in (root / "base" / "repository", root / "repository", root.parent.parent / "base" / "repository"):
        if (cand / LOCK_NAME).is_file():
            return cand / LOCK_NAME
    return None


def _load_spec(root: Path):
    from ...spec import build_spec

    lock = _lock_path(root)
    if lock is None:
        raise UsageError(f"{show_path(root)}: no base/repository/{LOCK_NAME}; not a folder `tritongen k8s` wrote",
                         hint="give the folder of `tritongen k8s --out`, its base/ or one of its overlays/")
    data = yaml.safe_load(lock.read_text()) or {}
    return build_spec(data.get("spec") or {}, source=str(lock))


def _documents(root: Path) -> tuple[list[dict], str]:
    kubectl = shutil.which("kubectl")
    if kubectl and (root / "kustomization.yaml").is_file():
        done = subprocess.run([kubectl, "kustomize", str(root)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["failed"]
            return [], f"kubectl kustomize failed: {tail[0]}"
        return [d for d in yaml.safe_load_all(done.stdout) if d], "kubectl kustomize"
    base = root / "base" if (root / "base").is_dir() else root
    docs = []
    for path in sorted(base.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs, "base files"


def _templates(obj: dict) -> list[tuple[str, dict]]:
    """(label, pod spec) of every pod an object makes."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"):
        return [("", (spec.get("template") or {}).get("spec") or {})]
    if kind == "LeaderWorkerSet":
        lwt = spec.get("leaderWorkerTemplate") or {}
        out = [(" leader", (lwt.get("leaderTemplate") or {}).get("spec") or {})] if lwt.get("leaderTemplate") else []
        out.append((" worker", (lwt.get("workerTemplate") or {}).get("spec") or {}))
        return out
    return []


def _gpus(pod: dict) -> int:
    total = 0
    for c in pod.get("containers") or []:
        limits = (c.get("resources") or {}).get("limits") or {}
        total += int(str(limits.get(GPU_RESOURCE, 0)))
    return total


def _shm(pod: dict) -> int | None:
    """Bytes of the memory-backed emptyDir mounted at /dev/shm in the first container (None: none)."""
    containers = pod.get("containers") or []
    if not containers:
        return None
    names = [m.get("name") for m in containers[0].get("volumeMounts") or [] if m.get("mountPath") == "/dev/shm"]
    for vol in pod.get("volumes") or []:
        if vol.get("name") in names:
            ed = vol.get("emptyDir")
            if ed is None or ed.get("medium") != "Memory":
                return None
            return needs.quantity_bytes(ed["sizeLimit"]) if ed.get("sizeLimit") else 2**62
    return None


def _probe_budget(container: dict) -> tuple[str, int] | None:
    for which in ("startupProbe", "livenessProbe"):
        probe = container.get(which)
        if probe:
            return which, (int(probe.get("initialDelaySeconds", 0))
                           + int(probe.get("periodSeconds", 10)) * int(probe.get("failureThreshold", 3)))
    return None


def check(root: Path, *, gpus_per_node: int = 8) -> Report:
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"--check {show_path(root)}: not a folder")
    spec = _load_spec(root)
    docs, source = _documents(root)
    problems: list[str] = []
    if not docs:
        return Report(0, [f"{show_path(root)}: {source}" if source.startswith("kubectl") else
                          f"{show_path(root)}: no objects found"], source)
    n = needs.compute(spec, 10**6)  # the whole model's needs; how it is split is read from the manifests
    for obj in docs:
        name = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        problems += [f"{name}: {p}" for p in schemas.validate(obj)]
        if obj.get("kind") == "ConfigMap":
            size = sum(len(str(v).encode()) for v in (obj.get("data") or {}).values()) + sum(
                len(str(v)) * 3 // 4 for v in (obj.get("binaryData") or {}).values())
            if size > CONFIGMAP_LIMIT:
                problems.append(f"{name}: holds {size} bytes; the API server refuses a ConfigMap over 1 MiB")
        serving = obj.get("kind") in ("Deployment", "LeaderWorkerSet") and \
            (obj.get("metadata") or {}).get("labels", {}).get("app.kubernetes.io/component") == "server"
        pods = _templates(obj)
        group_gpus = 0
        for label, pod in pods:
            gpus = _gpus(pod)
            if obj.get("kind") == "LeaderWorkerSet":
                size = int(((obj.get("spec") or {}).get("leaderWorkerTemplate") or {}).get("size", 1))
                group_gpus += gpus * (1 if label == " leader" else max(size - 1, 0))
            else:
                group_gpus += gpus
            if gpus > gpus_per_node:
                problems.append(f"{name}{label}: asks for {gpus} GPUs in one pod but nodes have {gpus_per_node} "
                                f"(--gpus-per-node): no node can run it; render again with --gpus-per-node "
                                f"{gpus_per_node} for a LeaderWorkerSet across nodes")
            if not serving:
                continue
            shm = _shm(pod)
            need = needs.shm_needed(spec, gpus)
            if shm is None:
                problems.append(f"{name}{label}: no memory-backed emptyDir at /dev/shm; the container runtime's "
                                f"64 MiB default is too small (the model needs {needs.gi(need)})")
            elif shm < need:
                problems.append(f"{name}{label}: /dev/shm is {needs.gi(shm)} but the model needs {needs.gi(need)} "
                                "(python backend tensors, NCCL between the pod's GPUs)")
            containers = pod.get("containers") or []
            if label != " worker" and containers:
                budget = _probe_budget(containers[0])
                weights = n.weights_bytes / max(1, (n.world // gpus) if gpus and n.world else 1)
                estimate = needs.load_estimate(spec, weights)
                if budget is None:
                    pass
                elif budget[1] < estimate:
                    problems.append(f"{name}{label}: the {budget[0]} allows {budget[1]} s but loading is estimated "
                                    f"at {estimate} s: the kubelet would restart the server while it loads")
        if serving and n.world and group_gpus and group_gpus != n.world:
            problems.append(f"{name}: its pods hold {group_gpus} GPUs but tp x pp = {n.world} ranks need one each")
    return Report(len(docs), problems, source)
