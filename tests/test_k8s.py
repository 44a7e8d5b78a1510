"""`tritongen k8s`: Kubernetes manifests from the spec, validated offline with real tools.

* goldens of the five cases of issue 13 (tests/golden/k8s/<case>/, rendered files only; the repository's
  copied python files are checked against a fresh render instead);
* every object validated with kubernetes-validate (Kubernetes 1.32, strict) and the CRDs' stored schemas, both
  as tritongen writes them and as `kubectl kustomize` builds base and overlays;
* the `--check` problems, the secure defaults, the CLI's errors and its writer;
* the rendered pod's main container run for real in the stand-in image (docker-marked).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import GOLDEN, check_golden_tree, free_ports
from tritongen.cli import cli

CASES = {
    "llama3-8b-1gpu": ["llama3-8b", "--gpu", "h100"],
    "llama3-70b-tp4": ["llama3-70b", "--gpu", "h100", "--tp", "4", "--replicas", "2", "--namespace", "llm"],
    "llama3-70b-tp8pp2-lws": ["llama3-70b", "--gpu", "h100", "--tp", "8", "--pp", "2", "--gpus-per-node", "8"],
    "llama3-8b-llmapi": ["llama3-8b", "--route", "llmapi", "--gpu", "h100", "--openai", "--openai-image",
                         "registry.example.com/tritongen:0.1.0"],
    "tiny-cpu": ["tiny"],
}
KUBECTL = shutil.which("kubectl")


def _run(*args: str, cwd: Path | None = None):
    runner = CliRunner()
    if cwd is None:
        return runner.invoke(cli, list(args), catch_exceptions=False)
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(cli, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("k8s")
    out = {}
    for case, args in CASES.items():
        result = _run("k8s", *args, "--out", str(root / case))
        assert result.exit_code == 0, result.output
        out[case] = root / case
    return out


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _objects(tree: Path) -> list[dict]:
    found = []
    for path in sorted(tree.rglob("*.yaml")):
        rel = path.relative_to(tree).as_posix()
        if path.name == "kustomization.yaml" or rel.startswith(("base/repository/", "monitoring/")) or \
                rel in ("overlays/dev/replicas.yaml", "overlays/dev/cache-pvc.yaml", "overlays/prod/spread.yaml"):
            continue
        found += _docs(path)
    return found


def _kustomize(path: Path) -> list[dict]:
    done = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _needs_kubectl():
    if KUBECTL is None:
        pytest.skip("kubectl is not installed (kubectl >= 1.21 builds these trees; see README, Kubernetes)")
    out = subprocess.run([KUBECTL, "version", "--client"], capture_output=True, text=True).stdout
    m = re.search(r"Kustomize Version: v(\d+)", out)
    if m is None or int(m.group(1)) < 4:
        pytest.skip(f"kubectl's kustomize is older than 4 ({out.strip()!r}); these trees need kubectl >= 1.21")


# -- goldens ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_golden(rendered, case, tmp_path):
    tree = rendered[case]
    shown = tmp_path / case
    copied = {}
    for path in sorted(tree.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(tree).as_posix()
        if rel.endswith(".py") or rel.endswith("tritongen.lock.yaml") or path.name == ".tritongen-k8s.json":
            copied[rel] = path.read_bytes()
            continue
        target = shown / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    check_golden_tree(shown, GOLDEN / "k8s" / case)
    # The copied python files are the repository's own, as `tritongen repo` renders them.
    from tritongen.deploy.k8s import adapters
    from tritongen.spec import build_spec

    lock = yaml.safe_load(copied.pop("base/repository/tritongen.lock.yaml"))  # it holds the resolved spec

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    adapters.render_repository(build_spec(lock["spec"]), fresh)
    py = {rel: data for rel, data in copied.items() if rel.endswith(".py")}
    assert py, "the repository has python models"
    for rel, data in py.items():
        assert (fresh / rel.removeprefix("base/repository/")).read_bytes() == data, rel
    marker = json.loads(copied[".tritongen-k8s.json"])
    assert marker["files"]["base/kustomization.yaml"] == hashlib.sha256(
        (tree / "base/kustomization.yaml").read_bytes()).hexdigest()


# -- schemas ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_every_object_validates(rendered, case):
    from tritongen.deploy.k8s import schemas

    objs = _objects(rendered[case])
    kinds = {o["kind"] for o in objs}
    assert {"PersistentVolumeClaim", "Service", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor",
            "HorizontalPodAutoscaler"} <= kinds
    for obj in objs:
        assert schemas.validate(obj) == [], (obj["kind"], schemas.validate(obj))


def test_validators_reject_what_a_cluster_rejects():
    from tritongen.deploy.k8s import schemas

    bad_deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                  "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "a", "imag": "b"}]}}}}
    assert any("imag" in p for p in schemas.validate(bad_deploy))
    assert schemas.validate({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                             "spec": {"ports": [{"port": "http"}]}})
    lws = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": {"name": "x"},
           "spec": {"leaderWorkerTemplate": {"size": "2", "workerTemplate": {
               "spec": {"containers": [{"name": "w", "image": "i", "resources": {"limit": {}}}]}}}}}
    problems = schemas.validate(lws)
    assert any("size" in p and "integer" in p for p in problems), problems
    assert any(p.startswith("spec.leaderWorkerTemplate.workerTemplate.spec.containers.0") and "limit" in p
               for p in problems), problems
    sm = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "x"},
          "spec": {"selector": {}, "endpoints": [{"port": "metrics", "intervall": "15s"}]}}
    assert any("intervall" in p for p in schemas.validate(sm))


@pytest.mark.parametrize("case", ["llama3-70b-tp8pp2-lws", "llama3-8b-llmapi"])
def test_commented_yaml_reads_back_as_the_objects(case):
    """The comment-writing emitter loses nothing: every file parses back to the object it was made from."""
    from tritongen.deploy.k8s import model, render, yamlout
    from tritongen.deploy.k8s.options import K8sOptions
    from tritongen.spec import load_spec

    args = CASES[case]
    opts = {"engine.gpu": "h100"} | ({"route": "llmapi"} if "llmapi" in case else
                                     {"parallelism.tp": 8, "parallelism.pp": 2})
    plan = model.build(load_spec(args[0], options=opts), K8sOptions(openai="llmapi" in case,
                                                                     openai_image="registry.example.com/t:1"))
    for rel, obj in render.objects(plan).items():
        assert yaml.safe_load(yamlout.dump(obj, "header")) == yamlout.plain(obj), rel
    tricky = {"s": "on", "n": "8000", "e": "", "m": "a: b\n  c\n", "l": [[1, {"k": None}], {}], "t": True}
    assert yaml.safe_load(yamlout.dump(tricky)) == tricky


def test_crd_schemas_are_data_with_their_source():
    from tritongen.deploy.k8s.schemas import CRD_DIR, CRDS

    for filename in CRDS.values():
        text = (CRD_DIR / filename).read_text()
        assert re.search(r"^# Source: +https://github\.com/\S+/blob/v[\d.]+/", text, re.M), filename
        assert re.search(r"^# Tag: +v[\d.]+ \(commit [0-9a-f]{40}, \d{4}-\d\d-\d\d\)", text, re.M), filename


@pytest.mark.parametrize("case", list(CASES))
def test_kustomize_builds_base_and_overlays(rendered, case):
    _needs_kubectl()
    from tritongen.deploy.k8s import schemas

    tree = rendered[case]
    built = {}
    for sub in ("", "base", "overlays/dev", "overlays/prod"):
        objs = _kustomize(tree / sub if sub else tree)
        for obj in objs:
            assert schemas.validate(obj) == [], (sub, obj["kind"], schemas.validate(obj))
        built[sub] = objs
    ns = "llm" if case == "llama3-70b-tp4" else "default"
    for objs in built.values():
        assert all(o["metadata"].get("namespace", ns) == ns for o in objs if o["kind"] != "Namespace")
    dev, prod = built["overlays/dev"], built["overlays/prod"]
    assert not [o for o in dev if o["kind"] == "HorizontalPodAutoscaler"]
    hpa = [o for o in prod if o["kind"] == "HorizontalPodAutoscaler"]
    assert len(hpa) == 1
    metric = hpa[0]["spec"]["metrics"][0]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "triton_queue_time_per_request_us"
    workload = lambda objs: next(o for o in objs if o["kind"] in ("Deployment", "LeaderWorkerSet")  # noqa: E731
                                 and o["metadata"]["labels"]["app.kubernetes.io/component"] == "server")
    assert workload(dev)["spec"]["replicas"] == 1
    assert workload(prod)["spec"]["replicas"] == (2 if case == "llama3-70b-tp4" else 1)
    # Every ConfigMap the pods project is generated by the base, under the name the pod asks for.
    cms = {o["metadata"]["name"]: o for o in prod if o["kind"] == "ConfigMap"}
    w = workload(prod)
    templates = ([w["spec"]["template"]] if w["kind"] == "Deployment" else
                 [w["spec"]["leaderWorkerTemplate"]["leaderTemplate"], w["spec"]["leaderWorkerTemplate"]["workerTemplate"]])
    for t in templates:
        mounted = {m["name"]: m["mountPath"] for m in t["spec"]["containers"][0]["volumeMounts"]}
        repo = [v for v in t["spec"]["volumes"] if "configMap" in v]
        assert {v["configMap"]["name"] for v in repo} == set(cms)
        for vol in repo:
            cm = cms[vol["configMap"]["name"]]
            assert {i["key"] for i in vol["configMap"]["items"]} == set(cm["data"])
            # One model folder per mount, below /models (never /models itself: see model._repo_parts).
            assert re.fullmatch(r"/models/[A-Za-z0-9._-]+", mounted[vol["name"]])


# -- what each case renders ------------------------------------------------------------------------------------


def _workload(tree: Path) -> dict:
    for name in ("deployment.yaml", "leaderworkerset.yaml"):
        if (tree / "base" / name).is_file():
            return _docs(tree / "base" / name)[0]
    raise AssertionError("no workload")


def _pods(obj: dict) -> list[dict]:
    if obj["kind"] == "LeaderWorkerSet":
        lwt = obj["spec"]["leaderWorkerTemplate"]
        return [lwt["leaderTemplate"]["spec"], lwt["workerTemplate"]["spec"]]
    return [obj["spec"]["template"]["spec"]]


def test_one_node_deployment(rendered):
    w = _workload(rendered["llama3-70b-tp4"])
    assert w["kind"] == "Deployment"
    pod = _pods(w)[0]
    main = pod["containers"][0]
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "4"
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0] == {"key": "nvidia.com/gpu.product", "operator": "In",
                                               "values": ["NVIDIA-H100-80GB-HBM3"]}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert [p["containerPort"] for p in main["ports"]] == [8000, 8001, 8002]
    assert main["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert main["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    startup = main["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # 140 GB of weights from a volume
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")["emptyDir"]
    assert shm == {"medium": "Memory", "sizeLimit": "5Gi"}  # 2 GiB + 1 GiB per extra GPU
    # The leader-mode launch, exactly as `tritongen serve --docker` runs it: 4 ranks under mpirun.
    args = main["args"]
    assert args[:3] == ["mpirun", "--allow-run-as-root", "--tag-output"]
    assert args.count("/opt/tritonserver/bin/tritonserver") == 4
    assert "--model-repository=/models" in args and "--model-control-mode=none" in args
    assert pod["initContainers"][0]["name"] == "wait-for-engine"


def test_launch_is_the_docker_launch(rendered, tmp_path):
    """The Deployment's args are what `tritongen serve --docker --dry-run` prints for the same repository."""
    from tritongen.deploy.k8s.model import CACHE_PATH
    from tritongen.repo.inspect import inspect_repo
    from tritongen.runtime import docker
    from tritongen.runtime.command import ServeOptions

    tree = rendered["llama3-70b-tp4"]
    repo = tmp_path / "models"
    for path in (tree / "base/repository").rglob("*"):
        if path.is_file():
            target = repo / path.relative_to(tree / "base/repository")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    info = inspect_repo(repo)
    assert info.trtllm[0].engine_dir.startswith(f"{CACHE_PATH}/engines/llama3-70b-bf16-tp4pp1-")
    info.path = Path("/models")
    info.referenced_paths = []
    plan = docker.container_plan("x", [info], ServeOptions(), image="nvcr.io/nvidia/tritonserver:26.07-trtllm-python-py3",
                                 mounts=[])
    assert _workload(tree)["spec"]["template"]["spec"]["containers"][0]["args"] == plan.command


def test_many_nodes_leaderworkerset(rendered):
    tree = rendered["llama3-70b-tp8pp2-lws"]
    w = _workload(tree)
    assert w["apiVersion"] == "leaderworkerset.x-k8s.io/v1" and w["kind"] == "LeaderWorkerSet"
    lwt = w["spec"]["leaderWorkerTemplate"]
    assert lwt["size"] == 2
    leader, worker = _pods(w)
    assert leader["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    args = leader["containers"][0]["args"]
    assert args[0] == "mpirun" and args.count("/opt/tritonserver/bin/tritonserver") == 16
    script = leader["containers"][0]["command"][2]
    assert "LWS_LEADER_ADDRESS" in script and "--host" in script and "plm_rsh_agent ssh" in script
    assert "sshd" in worker["containers"][0]["command"][2]
    svc = _docs(tree / "base/service.yaml")[0]
    assert svc["spec"]["selector"]["tritongen.dev/role"] == "leader"
    assert leader is not worker and w["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["metadata"]["labels"][
        "tritongen.dev/role"] == "leader"
    hpa = _docs(tree / "overlays/prod/hpa.yaml")[0]
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "LeaderWorkerSet"
    # Each node numbers its GPUs from 0: the multi-node repository has no gpu_device_ids.
    cfg = (tree / "base/repository/tensorrt_llm/config.pbtxt").read_text()
    assert "gpu_device_ids" not in cfg and "gpt_model_path" in cfg
    single = (tree.parent / "llama3-70b-tp4" / "base/repository/tensorrt_llm/config.pbtxt").read_text()
    assert "gpu_device_ids" in single
    pvc = _docs(tree / "base/cache-pvc.yaml")[0]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_leader_script_execs_mpirun_with_the_group_hosts(rendered, tmp_path):
    """The leader's script, run for a group of one (no worker to wait for): it hands the launch to mpirun
    unchanged, adding the hosts, the ssh agent and the environment the remote ranks need."""
    leader = _pods(_workload(rendered["llama3-70b-tp8pp2-lws"]))[0]["containers"][0]
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "id_ed25519").write_text("key\n")
    env = {"PATH": os.environ["PATH"], "TMPDIR": str(tmp_path), "TRITONGEN_MPI_KEYS": str(keys),
           "LWS_LEADER_ADDRESS": "llama3-70b-0.llama3-70b.default", "LWS_GROUP_SIZE": "1"}
    fake = tmp_path / "mpirun"  # stands in for mpirun: prints the arguments it was given
    fake.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    fake.chmod(0o755)
    done = subprocess.run([*leader["command"], str(fake), *leader["args"][1:]], env=env, capture_output=True,
                          text=True, check=True)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got[:2] == ["--host", "llama3-70b-0.llama3-70b.default:8"]
    assert got[2:6] == ["--mca", "plm_rsh_agent", "ssh", "--mca"]
    assert f"-i {tmp_path}/ssh/id" in got[7]
    exports = got[8:got.index("--allow-run-as-root")]
    assert exports == ["-x", "HF_HOME", "-x", "HF_HUB_OFFLINE", "-x", "TRANSFORMERS_OFFLINE", "-x", "HOME",
                       "-x", "PATH", "-x", "LD_LIBRARY_PATH"]
    assert got[got.index("--allow-run-as-root"):] == leader["args"][1:]
    assert oct((tmp_path / "ssh/id").stat().st_mode & 0o777) == "0o600"


def test_engine_job_runs_the_engine_steps(rendered):
    job = _docs(rendered["llama3-8b-1gpu"] / "base/engine-job.yaml")[0]
    c = job["spec"]["template"]["spec"]["containers"][0]
    script = c["command"][2]
    assert c["image"] == "nvcr.io/nvidia/tritonserver:26.07-trtllm-python-py3"
    lines = script.splitlines()
    skip = next(i for i, line in enumerate(lines) if "/config.json ]; then" in line)
    assert "exit 0" in lines[skip + 2]  # an engine already on the volume: nothing to do
    assert "hf download meta-llama/Llama-3.1-8B-Instruct --local-dir /checkpoint" in script
    assert "convert_checkpoint.py --model_dir /checkpoint --output_dir /work/tllm_checkpoint" in script
    assert "trtllm-build --checkpoint_dir /work/tllm_checkpoint --output_dir /work/engine" in script
    assert script.index("convert_checkpoint") < script.index("trtllm-build") < script.index("mv /work/engine")
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    hf = next(e for e in c["env"] if e["name"] == "HF_TOKEN")
    assert hf == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "llama3-8b-hf-token", "key": "HF_TOKEN",
                                                                      "optional": True}}}
    entry = re.search(r"/engines/(llama3-8b-bf16-tp1pp1-[0-9a-f]{12})/config.json", script).group(1)
    wait = _pods(_workload(rendered["llama3-8b-1gpu"]))[0]["initContainers"][0]["command"][2]
    assert f"/cache/engines/{entry}/config.json" in wait


def test_llmapi_has_no_build_job(rendered):
    tree = rendered["llama3-8b-llmapi"]
    assert not (tree / "base/engine-job.yaml").exists()
    job = _docs(tree / "base/checkpoint-job.yaml")[0]
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert "hf download" in script and "trtllm-build" not in script
    assert "nvidia.com/gpu" not in json.dumps(job)
    assert (tree / "base/openai-deployment.yaml").is_file() and (tree / "base/openai-service.yaml").is_file()
    front = _docs(tree / "base/openai-deployment.yaml")[0]["spec"]["template"]["spec"]["containers"][0]
    key = next(e for e in front["env"] if e["name"] == "TRITONGEN_OPENAI_API_KEY")
    assert "secretKeyRef" in key["valueFrom"]
    assert "grpc://llama3-8b:8001" in front["args"]


def test_cpu_route_requests_no_gpu(rendered):
    tree = rendered["tiny-cpu"]
    text = "".join(p.read_text() for p in (tree / "base").glob("*.yaml"))
    assert "nvidia.com/gpu" not in text
    pod = _pods(_workload(tree))[0]
    assert "affinity" not in pod and "tolerations" not in pod
    assert not list((tree / "base").glob("*-job.yaml"))  # tiny has no hf_id: nothing to download
    # The HPA may put replicas on several nodes: ReadWriteMany; dev (one pod) asks for ReadWriteOnce only.
    assert _docs(tree / "base/cache-pvc.yaml")[0]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert _docs(tree / "overlays/dev/cache-pvc.yaml")[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    if KUBECTL:
        dev = [o for o in _kustomize(tree / "overlays/dev") if o["kind"] == "PersistentVolumeClaim"]
        assert dev[0]["spec"]["accessModes"] == ["ReadWriteOnce"]


@pytest.mark.parametrize("case", list(CASES))
def test_secure_by_default(rendered, case):
    from tritongen import versions

    tree = rendered[case]
    objs = _objects(tree)
    text = json.dumps(objs)
    assert "hostPath" not in text and '"hostNetwork": true' not in text and '"privileged": true' not in text
    pinned = versions.default_container("engine").image()
    for obj in objs:
        for pod in _pods(obj) if obj["kind"] in ("Deployment", "LeaderWorkerSet") else (
                [obj["spec"]["template"]["spec"]] if obj["kind"] == "Job" else []):
            assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000
            assert pod["automountServiceAccountToken"] is False and pod["hostNetwork"] is False
            for c in pod.get("initContainers", []) + pod["containers"]:
                sc = c["securityContext"]
                assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
                assert sc["capabilities"] == {"drop": ["ALL"]}
                if c["name"] != "openai":
                    assert c["image"] == pinned
                for env in c.get("env", []):
                    if env["name"] in ("HF_TOKEN", "TRITONGEN_OPENAI_API_KEY"):
                        assert "value" not in env and "secretKeyRef" in env["valueFrom"]
            for vol in pod["volumes"]:
                assert set(vol) - {"name"} <= {"configMap", "persistentVolumeClaim", "emptyDir", "secret"}
    w = _workload(tree)
    args = _pods(w)[0]["containers"][0]["args"]
    assert "--model-control-mode=none" in args
    repo = [v for v in _pods(w)[0]["volumes"] if "configMap" in v]
    assert repo and all(v["configMap"]["defaultMode"] == 0o444 for v in repo)
    mounts = {m["mountPath"]: m for m in _pods(w)[0]["containers"][0]["volumeMounts"]}
    assert "/models" not in mounts and mounts["/cache"]["readOnly"] is True
    assert all(m["readOnly"] is True for path, m in mounts.items() if path.startswith("/models/"))
    netpol = _docs(tree / "base/networkpolicy.yaml")[0]
    rules = netpol["spec"]["ingress"]
    assert rules[0]["from"][0] == {"podSelector": {"matchLabels": {"tritongen.dev/client": w["metadata"]["name"]}}}
    assert [p["port"] for p in rules[0]["ports"]] == [8000, 8001]
    assert rules[1] == {"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}], "ports": [{"protocol": "TCP", "port": 8002}]}


def test_values_from_the_spec_say_so(rendered):
    text = (rendered["llama3-70b-tp4"] / "base/deployment.yaml").read_text()
    for pattern in (r"image: \S+  # spec: container\.image", r"replicas: 2  # spec: --replicas",
                    r"nvidia.com/gpu: '4'  # spec: parallelism\.tp x parallelism\.pp",
                    r"containerPort: 8000  # spec: serving\.http_port", r"values:  # spec: engine\.gpu",
                    r"sizeLimit: 5Gi  # spec: parallelism", r"failureThreshold: \d+  # spec: load-time estimate"):
        assert re.search(pattern, text), pattern
    job = (rendered["llama3-8b-1gpu"] / "base/engine-job.yaml").read_text()
    assert "# download: model.hf_id (meta-llama/Llama-3.1-8B-Instruct)" in job


# -- --check -----------------------------------------------------------------------------------------------------


def test_check_clean_tree(rendered):
    for case, tree in rendered.items():
        result = _run("k8s", "--check", str(tree))
        assert result.exit_code == 0, (case, result.output)
        assert "objects ok" in result.output


def test_check_names_what_a_cluster_would_reject(rendered, tmp_path):
    tree = tmp_path / "edited"
    shutil.copytree(rendered["llama3-70b-tp4"], tree)
    path = tree / "base/deployment.yaml"
    text = path.read_text()
    text = re.sub(r"sizeLimit: 5Gi", "sizeLimit: 1Gi", text)
    text = re.sub(r"failureThreshold: \d+  # spec: load-time", "failureThreshold: 6  # spec: load-time", text)
    path.write_text(text)
    result = _run("k8s", "--check", str(tree), "--gpus-per-node", "2")
    assert result.exit_code == 4, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Deployment/")]
    assert any("asks for 4 GPUs in one pod but nodes have 2" in line for line in lines), lines
    assert any("/dev/shm is 1Gi but the model needs 5Gi" in line for line in lines), lines
    assert any(re.search(r"the startupProbe allows 60 s but loading is estimated at \d+ s", line)
               for line in lines), lines
    assert any(line.startswith("Job/llama3-70b-engine: asks for 4 GPUs") for line in result.output.splitlines())
    assert "4 problem(s)" in result.output
    # An overlay of the edited tree shows the same problems (kubectl kustomize builds it first).
    if KUBECTL:
        again = _run("k8s", "--check", str(tree / "overlays/dev"))
        assert again.exit_code == 4 and "/dev/shm is 1Gi" in again.output


def test_check_not_a_tree(tmp_path):
    result = _run("k8s", "--check", str(tmp_path))
    assert result.exit_code == 2 and "not a folder `tritongen k8s` wrote" in result.output


# -- the command ---------------------------------------------------------------------------------------------------


def test_dry_run_prints_and_writes_nothing(tmp_path):
    result = _run("k8s", "tiny", "--dry-run", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert "# --- base/deployment.yaml" in result.output and "# --- overlays/prod/hpa.yaml" in result.output
    assert re.search(r"# --- base/repository/preprocessing/1/model\.py \(\d+ bytes, sha256 ", result.output)
    assert list(tmp_path.iterdir()) == []


def test_default_out_and_overwrite_rules(tmp_path):
    result = _run("k8s", "tiny", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    out = tmp_path / "deploy/tiny/k8s"
    assert (out / "base/kustomization.yaml").is_file() and (out / "kustomization.yaml").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["deploy"]
    assert _run("k8s", "tiny", cwd=tmp_path).exit_code == 0  # our own, unedited: replaced
    (out / "base/service.yaml").write_text("# mine\n")
    again = _run("k8s", "tiny", cwd=tmp_path)
    assert again.exit_code == 5 and "base/service.yaml changed" in again.output
    assert _run("k8s", "tiny", "--force", cwd=tmp_path).exit_code == 0
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x").write_text("x")
    refused = _run("k8s", "tiny", "--out", str(foreign))
    assert refused.exit_code == 5 and (foreign / "x").read_text() == "x"


@pytest.mark.parametrize("args, code, message", [
    (["llama3-8b"], 2, "needs the GPU type: give --gpu"),
    (["tiny", "--namespace", "Bad_NS"], 3, "--namespace: Value error, 'Bad_NS' is not a valid namespace"),
    (["llama3-8b", "--route", "llmapi", "--gpu", "h100", "--tp", "16"], 6, "runs the llmapi route on one node only"),
    (["llama3-70b", "--gpu", "h100", "--tp", "4", "--pp", "3"], 6, "does not fill whole nodes of 8 GPUs"),
    (["tiny", "--openai"], 2, "--openai needs --openai-image"),
    (["tiny", "--replicas", "0"], 3, "--replicas"),
    (["llama3-8b", "--gpu", "h100", "--engine-dir", "/engines/x"], 2, "engine.dir names an engine on this machine"),
    (["llama3-8b", "--gpu", "h100", "--checkpoint", "/data/llama"], 2, "model.checkpoint_dir names a folder on this"),
])
def test_errors_are_one_line(args, code, message, tmp_path):
    result = _run("k8s", *args, "--out", str(tmp_path / "o"))
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_make_k8s_calls_the_command():
    from test_make import VENV, make

    if shutil.which("make") is None or not (VENV / "bin" / "tritongen").exists():
        pytest.skip("needs make and the tritongen console script in the test venv")
    made = make("k8s", "MODEL=llama3-70b", "GPU=h100", "TP=8", "PP=2", "K8S_ARGS=--dry-run --replicas 2")
    assert made.returncode == 0, made.stderr
    assert "# --- base/leaderworkerset.yaml" in made.stdout and "replicas: 2  # spec: --replicas" in made.stdout


# -- the pod's main container, for real (docker) ---------------------------------------------------------------

from docker_env import _docker, _tritongen  # noqa: E402 - the daemon and image fixtures come from conftest


def _materialize(tree: Path, dest: Path) -> tuple[dict, dict[str, Path]]:
    """The Deployment of the built base, and a local folder per ConfigMap volume, laid out as the kubelet writes
    one (the files under ``..<timestamp>/``, ``..data`` linking to it, and a link per top-level entry), so that
    Triton sees exactly what it sees in a pod."""
    objs = _kustomize(tree / "base")
    deploy = next(o for o in objs if o["kind"] == "Deployment")
    cms = {o["metadata"]["name"]: o["data"] for o in objs if o["kind"] == "ConfigMap"}
    pod = deploy["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    local: dict[str, Path] = {}
    for vol in pod["volumes"]:
        if "configMap" not in vol:
            continue
        folder = dest / "volumes" / vol["name"]
        stamp = folder / "..2026_01_01_00_00_00.000000000"
        for item in vol["configMap"]["items"]:
            target = stamp / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(cms[vol["configMap"]["name"]][item["key"]])
        (folder / "..data").symlink_to(stamp.name)
        for top in sorted({item["path"].split("/", 1)[0] for item in vol["configMap"]["items"]}):
            (folder / top).symlink_to(f"..data/{top}")
        local[mounts[vol["name"]]] = folder
    return deploy, local


def _docker_run_argv(deploy: dict, volumes: dict[str, Path], cache: Path, image: str, name: str) -> list[str]:
    """`docker run` for the Deployment's main container: its command, args, env, user, read-only root, dropped
    capabilities and /dev/shm size, each ConfigMap volume and /cache mapped to local folders at the manifest's
    mount paths (host network: the test daemon has no bridge)."""
    pod = deploy["spec"]["template"]["spec"]
    main = pod["containers"][0]
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")["emptyDir"]["sizeLimit"]
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert set(mounts) == {*volumes, "/cache", "/dev/shm", "/tmp"}
    sc, psc = main["securityContext"], pod["securityContext"]
    argv = ["run", "-d", "--name", name, "--network", "host", "--entrypoint", main["command"][0],
            "--user", f"{psc['runAsUser']}:{psc['runAsGroup']}", "--security-opt", "no-new-privileges",
            "--shm-size", shm.replace("Gi", "g"), "-v", f"{cache}:/cache:ro", "--tmpfs", "/tmp:rw,exec,mode=1777"]
    for path, folder in sorted(volumes.items()):
        assert mounts[path]["readOnly"] is True
        argv += ["-v", f"{folder}:{path}:ro"]
    if sc["capabilities"] == {"drop": ["ALL"]}:
        argv += ["--cap-drop", "ALL"]
    if sc["readOnlyRootFilesystem"]:
        argv.append("--read-only")
    for env in main["env"]:
        argv += ["-e", f"{env['name']}={env['value']}"]
    return [*argv, image, *main["command"][1:], *main["args"]]


def test_docker_run_maps_the_pod(rendered, tmp_path):
    """What the docker test runs is the manifest's container (checked here without a daemon)."""
    _needs_kubectl()
    deploy, volumes = _materialize(rendered["tiny-cpu"], tmp_path)
    assert set(volumes) == {"/models/ensemble", "/models/preprocessing", "/models/postprocessing",
                            "/models/tensorrt_llm"}
    model_py = volumes["/models/preprocessing"] / "1" / "model.py"
    assert model_py.read_bytes() == (rendered["tiny-cpu"] / "base/repository/preprocessing/1/model.py").read_bytes()
    assert (volumes["/models/ensemble"] / "1" / ".keep").is_file()  # the empty version folder exists
    argv = _docker_run_argv(deploy, volumes, tmp_path / "cache", "standin:x", "n")
    assert f"{volumes['/models/ensemble']}:/models/ensemble:ro" in argv
    image_at = argv.index("standin:x")
    assert argv[image_at + 1:image_at + 4] == ["-c", model_wrapper(), "--"]
    tail = argv[image_at + 4:]
    assert tail[0] == "/opt/tritonserver/bin/tritonserver" and "--model-repository=/models" in tail
    assert {"--read-only", "--cap-drop"} <= set(argv) and argv[argv.index("--user") + 1] == "1000:1000"
    assert argv[argv.index("--shm-size") + 1] == "2g"
    assert "HF_HUB_OFFLINE=1" in argv and "HOME=/tmp" in argv


def model_wrapper() -> str:
    from tritongen.deploy.k8s.model import _STACK_WRAPPER

    return _STACK_WRAPPER


def test_the_command_wrapper_execs_the_launch_unchanged(rendered):
    """`sh -c WRAPPER -- ARGS...` raises the stack limit and runs ARGS exactly (quotes, colons and all)."""
    main = _docs(rendered["llama3-70b-tp4"] / "base/deployment.yaml")[0]["spec"]["template"]["spec"]["containers"][0]
    assert main["command"][:2] == ["/bin/sh", "-c"] and main["command"][3] == "--"
    probe = ["python3", "-c", "import json, resource, sys; print(json.dumps([resource.getrlimit("
             "resource.RLIMIT_STACK)[0], sys.argv[1:]]))", *main["args"]]
    done = subprocess.run([*main["command"], *probe], capture_output=True, text=True, check=True)
    stack, args = json.loads(done.stdout)
    assert args == main["args"]
    assert stack in (64 * 2**20, -1) or "could not raise the stack limit" in done.stderr


def test_check_refuses_a_configmap_over_1mib(rendered, tmp_path):
    _needs_kubectl()
    tree = tmp_path / "big"
    shutil.copytree(rendered["tiny-cpu"], tree)
    model_py = tree / "base/repository/preprocessing/1/model.py"
    model_py.write_text(model_py.read_text() + "#" * (2**20) + "\n")
    result = _run("k8s", "--check", str(tree))
    assert result.exit_code == 4
    assert re.search(r"ConfigMap/tiny-repo-preprocessing: holds \d+ bytes; the API server refuses", result.output)


@pytest.mark.server
def test_triton_serves_the_configmap_layout(rendered, tiny_dir, server_factory, tmp_path):
    """A real tritonserver loads the repository as the pods see it: one kubelet-style ConfigMap volume per model
    folder (``..data`` and ``..<timestamp>`` inside each). Only the checkpoint path, which in the pod is the
    cache volume, points at this machine's tiny model."""
    _needs_kubectl()
    from tritongen.clients.triton import GenerateParams, LLMClient

    _, volumes = _materialize(rendered["tiny-cpu"], tmp_path)
    root = tmp_path / "models"
    root.mkdir()
    for path, folder in volumes.items():
        for cfg in folder.glob("..2026_*/config.pbtxt"):
            cfg.write_text(cfg.read_text().replace("/cache/checkpoints/tiny", str(tiny_dir)))
        (root / path.removeprefix("/models/")).symlink_to(folder)
    record = server_factory(root, "k8s-layout")
    client = LLMClient(f"127.0.0.1:{record.grpc_port}")
    done = client.generate("Hello", GenerateParams(max_tokens=8), stream=True)
    assert done.text.strip() and len(done.chunks) > 1


@pytest.mark.docker
def test_rendered_pod_runs_in_the_standin_image(dockerd, standin_image, tiny_dir, tmp_path):
    _needs_kubectl()
    http, grpc, metrics = free_ports(3)
    out = tmp_path / "k8s"
    result = _run("k8s", "tiny", "--out", str(out), "--set", f"serving.http_port={http}",
                  "--set", f"serving.grpc_port={grpc}", "--set", f"serving.metrics_port={metrics}")
    assert result.exit_code == 0, result.output
    deploy, volumes = _materialize(out, tmp_path)
    main = deploy["spec"]["template"]["spec"]["containers"][0]
    cache = tmp_path / "cache"
    (cache / "checkpoints").mkdir(parents=True)
    shutil.copytree(tiny_dir, cache / "checkpoints" / "tiny")
    for path in [tmp_path, *tmp_path.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    name = f"tritongen-k8s-test-{os.getpid()}"
    # In a pod, 0.0.0.0 is the pod's own network; here the container shares the host's, so the test keeps the
    # server on loopback (tritonserver takes the last of a repeated flag) and changes nothing else of the launch.
    loopback = [f"--{api}-address=127.0.0.1" for api in ("http", "grpc", "metrics")]
    argv = [*_docker_run_argv(deploy, volumes, cache, standin_image, name), *loopback]
    rc, text = _docker(dockerd, *argv)
    assert rc == 0, text
    try:
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        assert ports == {"http": http, "grpc": grpc, "metrics": metrics}

        def answers(probe: dict) -> bool:
            port = probe["httpGet"]["port"]
            url = f"http://127.0.0.1:{ports.get(port, port)}{probe['httpGet']['path']}"
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    return resp.status == 200
            except OSError:
                return False

        deadline = time.monotonic() + main["startupProbe"]["periodSeconds"] * main["startupProbe"]["failureThreshold"]
        while not answers(main["startupProbe"]):
            rc, state = _docker(dockerd, "inspect", "-f", "{{.State.Running}}", name)
            assert state.strip() == "true", _docker(dockerd, "logs", name)[1][-3000:]
            assert time.monotonic() < deadline, _docker(dockerd, "logs", name)[1][-3000:]
            time.sleep(1)
        assert answers(main["readinessProbe"]) and answers(main["livenessProbe"])
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as resp:
            assert b"nv_inference" in resp.read()
        rc, text = _tritongen(dockerd, "infer", "Hello", "--url", f"127.0.0.1:{grpc}", "--max-tokens", "8")
        assert rc == 0 and text.strip(), text  # a streamed answer through the manifest's gRPC port
    finally:
        _docker(dockerd, "rm", "-f", name)
