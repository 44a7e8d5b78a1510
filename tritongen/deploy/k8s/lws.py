"""Many nodes: the LeaderWorkerSet whose leader runs the leader-mode mpirun over its group's pods.

Follows the LeaderWorkerSet project's TensorRT-LLM example (kubernetes-sigs/lws docs/examples/tensorrt-llm,
v0.10.0: the leader waits for its workers, then one mpirun over the group; rank 0 serves, the other ranks load
only the TensorRT-LLM model), with ssh and a user-made key Secret instead of ``kubectl exec`` (README).
"""

from __future__ import annotations

from .model import (
    LABEL_PREFIX,
    SSH_PORT,
    Plan,
    _container_security,
    _env,
    _gpu_resources,
    _launch_args,
    _mounts,
    _pod_common,
    _server_container,
    _template_meta,
    _volumes,
    _wait_for,
)
from .yamlout import From

_LEADER_SCRIPT = """\
# Multi-node leader: ranks 0..{last} over {nodes} pods of {per} GPUs (parallelism.tp x parallelism.pp = {world}).
# LeaderWorkerSet names the pods <set>-<group> (leader) and <set>-<group>-<i> (workers) under the headless
# service <set>; LWS_LEADER_ADDRESS and LWS_GROUP_SIZE come from the LeaderWorkerSet controller.
set -eu
ulimit -S -s 65536 2>/dev/null || true
keys="${{TRITONGEN_MPI_KEYS:-/etc/tritongen-mpi}}"; ssh_dir="${{TMPDIR:-/tmp}}/ssh"
mkdir -p "$ssh_dir" && cp "$keys/id_ed25519" "$ssh_dir/id" && chmod 600 "$ssh_dir/id"
leader="${{LWS_LEADER_ADDRESS}}"
pod="${{leader%%.*}}"
domain="${{leader#*.}}"
hosts="${{leader}}:{per}"
i=1
while [ "$i" -lt "${{LWS_GROUP_SIZE}}" ]; do
  worker="${{pod}}-${{i}}.${{domain}}"
  until (exec 3<>"/dev/tcp/${{worker}}/{ssh}") 2>/dev/null; do
    echo "waiting for worker ${{worker}} (sshd on port {ssh})"; sleep 5
  done
  hosts="${{hosts}},${{worker}}:{per}"
  i=$((i + 1))
done
echo "launching {world} ranks on ${{hosts}}"
first="$1"; shift
exec "$first" --host "${{hosts}}" \\
  --mca plm_rsh_agent ssh \\
  --mca plm_rsh_args "-p {ssh} -i $ssh_dir/id -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null" \\
  {exports} \\
  "$@"
"""

_WORKER_SCRIPT = """\
# Multi-node worker: runs only sshd (non-root, port {ssh}); the leader's mpirun starts this node's ranks
# through it. Keys come from the Secret {secret} that you create (README, "Kubernetes").
set -eu
sshd=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$sshd" ] || {{ echo "this image has no sshd; multi-node needs openssh-server in it (docker/Dockerfile)" >&2; exit 1; }}
mkdir -p /tmp/ssh
cp /etc/tritongen-mpi/host_key /tmp/ssh/host_key
cp /etc/tritongen-mpi/authorized_keys /tmp/ssh/authorized_keys
chmod 600 /tmp/ssh/host_key /tmp/ssh/authorized_keys
exec "$sshd" -D -e -f /dev/null -p {ssh} -h /tmp/ssh/host_key \\
  -o AuthorizedKeysFile=/tmp/ssh/authorized_keys -o PidFile=/tmp/ssh/sshd.pid -o StrictModes=no \\
  -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no -o PermitUserEnvironment=no \\
  -o "SetEnv=PATH=$PATH LD_LIBRARY_PATH=${{LD_LIBRARY_PATH:-}}"
"""


def _mpi_secret(plan: Plan) -> str:
    return f"{plan.name}-mpi-ssh"


def leaderworkerset(plan: Plan) -> dict:
    n = plan.needs
    exports = " ".join(f"-x {k}" for k in [*plan.launch.env, "HOME", "PATH", "LD_LIBRARY_PATH"])
    leader_script = _LEADER_SCRIPT.format(last=n.world - 1, nodes=n.nodes, per=n.gpus_per_pod, world=n.world,
                                          ssh=SSH_PORT, exports=exports)
    worker_script = _WORKER_SCRIPT.format(ssh=SSH_PORT, secret=_mpi_secret(plan))
    ssh_volume = {"name": "mpi-ssh", "secret": {"secretName": _mpi_secret(plan), "defaultMode": 0o440}}
    ssh_mount = {"name": "mpi-ssh", "mountPath": "/etc/tritongen-mpi", "readOnly": True}
    leader = _server_container(plan, command=["/bin/bash", "-c", leader_script, "--"], args=_launch_args(plan))
    leader["volumeMounts"] = [*leader["volumeMounts"], ssh_mount]
    worker = {
        "name": "worker", "image": From(plan.image, plan.image_field), "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", worker_script], "env": _env(plan),
        "ports": [{"name": "ssh", "containerPort": SSH_PORT, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": "ssh"}, "periodSeconds": 10},
        "resources": _gpu_resources(plan, n.gpus_per_pod, n.cpu, n.memory_bytes),
        "securityContext": _container_security(),
        "volumeMounts": [*_mounts(plan), ssh_mount],
    }
    common = _pod_common(plan)
    volumes = [*_volumes(plan), ssh_volume]
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
        "metadata": {"name": plan.name, "labels": plan.labels("server")},
        "spec": {
            "replicas": From(plan.opts.replicas, "--replicas"),
            "startupPolicy": "LeaderCreated",
            "leaderWorkerTemplate": {
                "size": From(n.nodes, f"parallelism.tp x parallelism.pp / --gpus-per-node {plan.opts.gpus_per_node}"),
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": {
                    "metadata": _template_meta(plan, {f"{LABEL_PREFIX}/role": "leader"}),
                    "spec": {**common, "terminationGracePeriodSeconds": 30, "initContainers": [_wait_for(plan)],
                             "containers": [leader], "volumes": volumes}},
                "workerTemplate": {
                    "metadata": _template_meta(plan, {f"{LABEL_PREFIX}/role": "worker"}),
                    "spec": {**common, "terminationGracePeriodSeconds": 30, "initContainers": [_wait_for(plan)],
                             "containers": [worker], "volumes": volumes}},
            },
        },
    }
