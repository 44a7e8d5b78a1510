"""The engine/checkpoint volume and the Job that fills it (the same steps as ``tritongen engine``)."""

from __future__ import annotations

import json
import shlex

from . import needs
from .model import LABEL_PREFIX, Plan, _cache_volume, _container_security, _gpu_resources, _pod_common
from .yamlout import From


def pvc(plan: Plan) -> dict:
    shared = plan.needs.multi_node or plan.opts.replicas > 1 or plan.opts.hpa_max > 1
    size = plan.opts.storage_size_gi or plan.needs.volume_gi
    spec = {"accessModes": ["ReadWriteMany" if shared else "ReadWriteOnce"],
            "resources": {"requests": {"storage": From(f"{size}Gi", "model.num_params, precision.format" if not
                                                       plan.opts.storage_size_gi else "--storage-size")}}}
    if plan.opts.storage_class:
        spec["storageClassName"] = plan.opts.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": f"{plan.name}-cache", "labels": plan.labels("cache"),
                         "annotations": {f"{LABEL_PREFIX}/note": "engines/ and checkpoints/ of tritongen k8s; "
                                         "ReadWriteMany when pods on several nodes read it"}},
            "spec": spec}


def _download_lines(plan: Plan) -> list[str]:
    hf_id = plan.spec.model.hf_id
    if not hf_id:
        return []
    ckpt = "/checkpoint"
    return [f"# download: model.hf_id ({hf_id}); HF_TOKEN from the Secret {plan.name}-hf-token when it exists",
            f"if [ ! -f {ckpt}/config.json ]; then",
            f"  {shlex.join(['hf', 'download', hf_id, '--local-dir', ckpt])}",
            "fi"]


def _wrap(comment: str, width: int = 110) -> list[str]:
    import textwrap

    return textwrap.wrap(comment, width=width, subsequent_indent="#   ", break_on_hyphens=False,
                         break_long_words=False)


def _job_script(plan: Plan) -> str:
    b = plan.build
    lines = ["set -eu"]
    if b is not None:
        entry = f"/engines/{b.entry}"
        lines += [f"# engine cache entry: {b.entry} (key of the spec's engine inputs, as `tritongen engine` "
                  "computes it)",
                  f"if [ -f {entry}/config.json ]; then",
                  f"  echo \"engine {b.entry} is already on the volume: nothing to do\"",
                  "  exit 0",
                  "fi"]
    lines += _download_lines(plan)
    if b is not None:
        lines += [f"rm -rf {b.work_mount}/{b.engine_subdir} {b.work_mount}/tllm_checkpoint"]
        for step in b.steps:
            if step.name == "download":
                continue
            lines.append(f"# {step.name}: {step.title}")
            lines += _wrap("# spec: " + ", ".join(f"{flag} {src}" for flag, src in step.sources if src))
            lines.append(shlex.join(step.argv))
        record = json.dumps({"key_material": b.material, "image": b.image, "trtllm_version": b.trtllm_version,
                             "spec_name": plan.spec.repo_name, "built_by": "tritongen k8s engine Job"},
                            sort_keys=True)
        entry = f"/engines/{b.entry}"
        lines += [f"printf '%s\\n' {shlex.quote(record)} > {b.work_mount}/{b.engine_subdir}/tritongen.json",
                  f"rm -rf {entry}.partial",
                  f"mv {b.work_mount}/{b.engine_subdir} {entry}.partial",
                  f"mv {entry}.partial {entry}",
                  f"rm -rf {b.work_mount}/tllm_checkpoint",
                  f"echo \"built {b.entry}\""]
    return "\n".join(lines) + "\n"


def job(plan: Plan) -> dict | None:
    """The engine build (engine route) or the checkpoint download (llmapi/cpu with model.hf_id)."""
    if plan.build is None and not plan.spec.model.hf_id:
        return None
    b = plan.build
    kind = "engine" if b else "checkpoint"
    mounts = [{"name": "cache", "mountPath": "/checkpoint", "subPath": f"checkpoints/{plan.spec.model.name}"},
              {"name": "tmp", "mountPath": "/tmp"}]
    if b is not None:
        mounts += [{"name": "cache", "mountPath": b.work_mount, "subPath": f"work/{b.entry}"},
                   {"name": "cache", "mountPath": "/engines", "subPath": "engines"}]
    gpus_needed = min(plan.needs.world, plan.opts.gpus_per_node) if b is not None else 0
    home = b.work_mount if b else "/tmp"
    env = [{"name": "HOME", "value": home}, {"name": "HF_HOME", "value": f"{home}/.hf"},
           {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": f"{plan.name}-hf-token", "key": "HF_TOKEN",
                                                                "optional": True}}}]
    container = {
        "name": kind, "image": From(b.image if b else plan.image, plan.image_field), "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/bash", "-c", _job_script(plan)], "env": env,
        "resources": _gpu_resources(plan, gpus_needed, 4 if not gpus_needed else 2 + 2 * gpus_needed,
                                    (16 if not gpus_needed else 32 + 8 * gpus_needed) * needs.GiB),
        "securityContext": _container_security(),
        "volumeMounts": mounts + ([{"name": "dshm", "mountPath": "/dev/shm"}] if b else []),
    }
    volumes = [_cache_volume(plan, read_only=False), {"name": "tmp", "emptyDir": {"sizeLimit": "16Gi"}}]
    if b is not None:
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}})
    pod = {**_pod_common(plan), "restartPolicy": "OnFailure", "containers": [container], "volumes": volumes}
    if not gpus_needed:
        pod.pop("affinity", None)
        pod.pop("tolerations", None)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": f"{plan.name}-{kind}", "labels": plan.labels(f"{kind}-job")},
            "spec": {"backoffLimit": 2,
                     "template": {"metadata": {"labels": plan.labels(f"{kind}-job")}, "spec": pod}}}
