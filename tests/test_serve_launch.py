"""Launch command lines for `tritongen serve --docker`, without Docker or GPUs.

Golden files under tests/golden/serve/ hold the exact `docker run` (and the `mpirun` inside it) for tp=1,
tp=2, tp=4 x pp=2 and an orchestrator multi-model server, and the compose file for tp=2. Paths under the
test's temporary root are written as /srv/tritongen. Regenerate after an intended change with
TRITONGEN_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import FIXTURES, GOLDEN, REPO_ROOT, render
from tritongen.deploy.compose import render_compose
from tritongen.errors import GatingError, ServerError, UsageError
from tritongen.repo.inspect import inspect_repo
from tritongen.runtime import docker, launch
from tritongen.runtime.command import ServeOptions, format_launch

ROOT_ALIAS = "/srv/tritongen"
UPDATE = os.environ.get("TRITONGEN_UPDATE_GOLDEN") == "1"


# -- repositories ----------------------------------------------------------------------------------------


def _engine_copy(root: Path, fixture: str, *, tp: int | None = None, pp: int | None = None) -> Path:
    """An engine directory (config.json only) under ``root``; tp/pp rewrite its mapping."""
    dest = root / "engines" / (fixture if tp is None else f"{fixture}-as-tp{tp}pp{pp}")
    dest.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((FIXTURES / "engines" / fixture / "config.json").read_text())
    if tp is not None:
        mapping = cfg["pretrained_config"]["mapping"]
        mapping.update(world_size=tp * pp, tp_size=tp, pp_size=pp, moe_tp_size=tp, attn_tp_size=tp)
    (dest / "config.json").write_text(json.dumps(cfg, indent=2))
    return dest


def _engine_repo(root: Path, name: str, fixture: str, precision: str, *, tp: int = 1, pp: int = 1,
                 remap: bool = False, gpu_ids: list[int] | None = None) -> Path:
    engine = _engine_copy(root, fixture, tp=tp if remap else None, pp=pp if remap else None)
    checkpoint = root / "models" / "llama3-8b"
    checkpoint.mkdir(parents=True, exist_ok=True)
    options = {"route": "engine", "precision.format": precision, "parallelism.tp": tp, "parallelism.pp": pp,
               "engine.dir": str(engine), "model.checkpoint_dir": str(checkpoint)}
    if gpu_ids is not None:
        options["parallelism.gpu_ids"] = gpu_ids
    return render("llama3-8b", root / "repos" / name, **options)


def _draft_repo(root: Path) -> Path:
    """A repository holding only a tp=1 engine model named tensorrt_llm_draft, the way TensorRT-LLM's
    llama_multi_instance.md makes a second model: copy tensorrt_llm and rename it."""
    full = _engine_repo(root, "draft-full", "llama3-8b-fp16-tp1", "fp16", gpu_ids=[2])
    repo = root / "repos" / "draft"
    (repo / "tensorrt_llm_draft").mkdir(parents=True, exist_ok=True)
    shutil.copytree(full / "tensorrt_llm" / "1", repo / "tensorrt_llm_draft" / "1", dirs_exist_ok=True)
    cfg = (full / "tensorrt_llm" / "config.pbtxt").read_text()
    assert 'name: "tensorrt_llm"' in cfg
    (repo / "tensorrt_llm_draft" / "config.pbtxt").write_text(
        cfg.replace('name: "tensorrt_llm"', 'name: "tensorrt_llm_draft"', 1))
    shutil.copy2(full / "tritongen.lock.yaml", repo / "tritongen.lock.yaml")
    return repo


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("launch")


@pytest.fixture(scope="module")
def repo_tp1(root):
    return _engine_repo(root, "llama-tp1", "llama3-8b-fp16-tp1", "fp16")


@pytest.fixture(scope="module")
def repo_tp2(root):
    return _engine_repo(root, "llama-tp2", "llama3-8b-fp8-tp2", "fp8", tp=2)


@pytest.fixture(scope="module")
def repo_tp4pp2(root):
    return _engine_repo(root, "llama-tp4pp2", "llama3-8b-fp8-tp2", "fp8", tp=4, pp=2, remap=True)


@pytest.fixture(scope="module")
def repo_draft(root):
    return _draft_repo(root)


@pytest.fixture(scope="module")
def repo_cpu(tiny_repo):
    return tiny_repo


def _plan(name, repos, opts=None, **kw) -> docker.ContainerPlan:
    infos = [inspect_repo(r) for r in repos]
    image = kw.pop("image", None) or docker.resolve_image(infos, None)
    return docker.container_plan(name, infos, opts or ServeOptions(), image=image, **kw)


def _golden(name: str, text: str, root: Path) -> None:
    text = text.replace(str(root), ROOT_ALIAS)
    path = GOLDEN / "serve" / name
    if UPDATE or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if not UPDATE:
            pytest.fail(f"wrote missing golden file {path.relative_to(REPO_ROOT)}; review and commit it")
    assert text == path.read_text(), f"{path.name} differs; TRITONGEN_UPDATE_GOLDEN=1 rewrites it"


def _args(plan) -> list[str]:
    return docker.docker_run_args(plan, docker="docker")


def _after_image(argv: list[str], image: str) -> list[str]:
    return argv[argv.index(image) + 1:]


def _ranks(command: list[str]) -> list[list[str]]:
    """Split an mpirun command into its per-rank tritonserver argument lists."""
    assert command[:3] == ["mpirun", "--allow-run-as-root", "--tag-output"]
    ranks, current = [], []
    for arg in command[3:] + [":"]:
        if arg == ":":
            assert current[:2] == ["-n", "1"]
            ranks.append(current[2:])
            current = []
        else:
            current.append(arg)
    return ranks


# -- golden command lines --------------------------------------------------------------------------------


def test_golden_tp1_single_process(repo_tp1, root):
    plan = _plan("llama-tp1", [repo_tp1])
    argv = _args(plan)
    assert plan.launch.mode == "single" and not plan.launch.mpirun
    assert argv[argv.index("--gpus") + 1] == '"device=0"'
    assert _after_image(argv, plan.image)[0] == "/opt/tritonserver/bin/tritonserver"
    _golden("docker-run-tp1.txt", format_launch(argv), root)


def test_golden_tp2_leader_mode(repo_tp2, root):
    plan = _plan("llama-tp2", [repo_tp2])
    argv = _args(plan)
    assert plan.launch.mode == "leader" and plan.launch.ranks == 2
    assert argv[argv.index("--gpus") + 1] == '"device=0,1"'
    ranks = _ranks(_after_image(argv, plan.image))
    assert len(ranks) == 2
    assert "--http-port=8000" in ranks[0] and "--model-control-mode=none" in ranks[0]
    assert ranks[1][ranks[1].index("--model-control-mode=explicit") + 1] == "--load-model=tensorrt_llm"
    _golden("docker-run-tp2.txt", format_launch(argv), root)


def test_golden_tp4_pp2_leader_mode_eight_ranks(repo_tp4pp2, root):
    plan = _plan("llama-tp4pp2", [repo_tp4pp2])
    argv = _args(plan)
    assert plan.launch.mode == "leader" and plan.launch.ranks == 8
    assert argv[argv.index("--gpus") + 1] == '"device=0,1,2,3,4,5,6,7"'
    ranks = _ranks(_after_image(argv, plan.image))
    prefixes = [next(a for a in r if "shm-region-prefix-name" in a).rsplit("=", 1)[1] for r in ranks]
    assert prefixes == [f"prefix{i}_" for i in range(8)]
    for rank in ranks[1:]:
        # No endpoint at all on worker ranks: they cannot be asked to load anything.
        assert {"--allow-http=false", "--allow-grpc=false", "--allow-metrics=false"} <= set(rank)
        assert not any(a.startswith(("--http-port", "--grpc-port", "--metrics-port", "--http-address")) for a in rank)
        assert [a for a in rank if a.startswith("--load-model=")] == ["--load-model=tensorrt_llm"]
    _golden("docker-run-tp4-pp2.txt", format_launch(argv), root)


def test_golden_orchestrator_multi_model(repo_tp2, repo_draft, root):
    plan = _plan("spec-decode", [repo_tp2, repo_draft])
    argv = _args(plan)
    assert plan.launch.mode == "orchestrator" and plan.launch.ranks == 1
    assert plan.launch.trtllm_models == ["tensorrt_llm", "tensorrt_llm_draft"]
    assert "TRTLLM_ORCHESTRATOR=1" in argv and "TRTLLM_ORCHESTRATOR_SPAWN_PROCESSES=1" in argv
    # GPUs 0,1 (target, tp=2) and 2 (draft): ids as written in the configs stay valid inside.
    assert argv[argv.index("--gpus") + 1] == '"device=0,1,2"'
    (rank,) = _ranks(_after_image(argv, plan.image))
    assert [a for a in rank if a.startswith("--model-repository=")] == [
        f"--model-repository={repo_tp2}", f"--model-repository={repo_draft}"]
    assert {"--pinned-memory-pool-byte-size=0", "--enable-peer-access=false",
            "--cuda-memory-pool-byte-size=2:0"} <= set(rank)
    _golden("docker-run-orchestrator-multi-model.txt", format_launch(argv), root)


def test_golden_compose_tp2(repo_tp2, root):
    plan = _plan("llama-tp2", [repo_tp2])
    text = render_compose(plan)
    data = yaml.safe_load(text)
    svc = data["services"]["tritonserver"]
    assert svc["command"] == plan.command
    assert svc["ports"] == ["127.0.0.1:8000:8000", "127.0.0.1:8001:8001", "127.0.0.1:8002:8002"]
    assert all(v["read_only"] is True and v["type"] == "bind" for v in svc["volumes"])
    assert svc["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == ["0", "1"]
    assert svc["ulimits"] == {"memlock": -1, "stack": 67108864}
    assert svc["tmpfs"] == [docker.TMPFS]
    _golden("compose-tp2.yaml", text, root)


# -- secure defaults -------------------------------------------------------------------------------------


def test_secure_defaults_present(repo_tp2):
    plan = _plan("llama-tp2", [repo_tp2])
    argv = _args(plan)
    pubs = [argv[i + 1] for i, a in enumerate(argv) if a == "--publish"]
    assert pubs == ["127.0.0.1:8000:8000", "127.0.0.1:8001:8001", "127.0.0.1:8002:8002"]
    mounts = [argv[i + 1] for i, a in enumerate(argv) if a == "--mount"]
    assert mounts and all(m.startswith("type=bind,") and m.endswith(",readonly") for m in mounts)
    assert not any("docker.sock" in a for a in argv)
    assert "--privileged" not in argv and "-v" not in argv and "--volume" not in argv
    assert argv[argv.index("--security-opt"):][:2] == ["--security-opt", "no-new-privileges"]
    assert argv[argv.index("--tmpfs"):][:2] == ["--tmpfs", docker.TMPFS]
    rank0 = _ranks(_after_image(argv, plan.image))[0]
    assert "--model-control-mode=none" in rank0
    assert not any("restricted" in a for a in rank0)
    assert "HF_HUB_OFFLINE=1" in argv


def test_expose_to_network_keeps_metrics_on_loopback(repo_tp1):
    plan = _plan("llama-tp1", [repo_tp1], ServeOptions(host="0.0.0.0"))
    pubs = [p for h, hp, cp in plan.ports for p in [f"{h}:{hp}:{cp}"]]
    assert pubs == ["0.0.0.0:8000:8000", "0.0.0.0:8001:8001", "127.0.0.1:8002:8002"]


def test_host_network_binds_loopback_inside(repo_tp1):
    plan = _plan("llama-tp1", [repo_tp1], network="host")
    argv = _args(plan)
    assert "--publish" not in argv and argv[argv.index("--network") + 1] == "host"
    cmd = _after_image(argv, plan.image)
    assert {"--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1"} <= set(cmd)


def test_explicit_model_control_restricts_admin_apis_on_rank0_only(repo_tp2):
    opts = ServeOptions(model_control="explicit", admin_key="k3y")
    plan = _plan("llama-tp2", [repo_tp2], opts)
    rank0, rank1 = _ranks(plan.command)
    assert "--model-control-mode=explicit" in rank0
    assert "--http-restricted-api=model-repository,shared-memory,logging,trace:triton-admin-key=k3y" in rank0
    assert "--grpc-restricted-protocol=model-repository,shared-memory,logging,trace:triton-admin-key=k3y" in rank0
    assert "--allow-http=false" in rank1 and not any("restricted" in a for a in rank1)


def test_cpu_route_needs_no_gpu_and_runs_one_server(repo_cpu):
    plan = _plan("tiny", [repo_cpu])
    argv = _args(plan)
    assert "--gpus" not in argv
    assert plan.launch.mode == "single" and not plan.launch.mpirun
    targets = [m.target for m in plan.mounts]
    assert str(repo_cpu) in targets
    info = inspect_repo(repo_cpu)
    tokenizer = next(p for p in info.referenced_paths if p.endswith("/models/tiny"))
    assert tokenizer in targets


def test_non_root_user_and_read_only_root(repo_cpu):
    plan = _plan("tiny", [repo_cpu], run_as="1000:1000", read_only_root=True, memlock="inherit")
    argv = _args(plan)
    assert argv[argv.index("--user") + 1] == "1000:1000"
    assert "--read-only" in argv and "HOME=/tmp" in argv
    assert not any(a.startswith("memlock=") for a in argv)


# -- decisions and refusals ------------------------------------------------------------------------------


def test_visible_gpus_keep_config_ids_valid():
    assert docker.visible_gpus([]) == []
    assert docker.visible_gpus([0, 1]) == [0, 1]
    assert docker.visible_gpus([3]) == [0, 1, 2, 3]
    assert docker.visible_gpus([2, 3]) == [0, 1, 2, 3]


def test_gpus_chosen_by_hand_are_renumbered_inside(repo_tp2):
    plan = _plan("x", [repo_tp2], gpus=[4, 5])
    argv = _args(plan)
    assert argv[argv.index("--gpus") + 1] == '"device=4,5"'
    with pytest.raises(UsageError, match="models use GPU ids up to 1"):
        _plan("x", [repo_tp2], gpus=[4])


def test_single_mode_refuses_a_multi_rank_engine(repo_tp2):
    with pytest.raises(GatingError, match="needs 2 ranks"):
        _plan("x", [repo_tp2], launch_mode="single")


def test_leader_mode_refuses_different_world_sizes(repo_tp2, repo_draft):
    with pytest.raises(GatingError, match="world sizes differ"):
        _plan("x", [repo_tp2, repo_draft], launch_mode="leader")


def test_orchestrator_on_request_for_one_model(repo_tp2):
    plan = _plan("x", [repo_tp2], launch_mode="orchestrator")
    assert plan.launch.mode == "orchestrator" and plan.command[:4] == ["mpirun", "--allow-run-as-root",
                                                                       "--tag-output", "-n"]
    assert len(_ranks(plan.command)) == 1


def test_same_model_names_in_two_repositories_are_refused(repo_tp1, repo_tp2):
    with pytest.raises(UsageError, match="model 'ensemble' is in both"):
        _plan("x", [repo_tp1, repo_tp2])


def test_missing_referenced_path_is_reported(root, repo_tp1):
    info = inspect_repo(repo_tp1)
    info.referenced_paths.append(str(root / "not-built-yet"))
    with pytest.raises(ServerError, match="not-built-yet"):
        docker.collect_mounts([info])


def test_system_directories_are_never_mounted(repo_tp1):
    info = inspect_repo(repo_tp1)
    info.referenced_paths.append("/etc")
    with pytest.raises(GatingError, match="refusing to mount /etc"):
        docker.collect_mounts([info])


def test_nested_paths_are_mounted_once(root, repo_tp1):
    info = inspect_repo(repo_tp1)
    inner = repo_tp1 / "tensorrt_llm" / "1"
    info.referenced_paths.append(str(inner))
    assert [m.target for m in docker.collect_mounts([info])].count(str(inner)) == 0


def test_image_for_another_trtllm_release_is_refused(repo_tp2):
    infos = [inspect_repo(repo_tp2)]
    with pytest.raises(GatingError, match="engines load only in the release that built them"):
        docker.resolve_image(infos, "nvcr.io/nvidia/tritonserver:25.01-trtllm-python-py3")
    assert docker.resolve_image(infos, "registry.local/triton:custom") == "registry.local/triton:custom"


def test_container_name_is_docker_safe():
    assert docker.container_name("llama 3/8b") == "tritongen-llama-3-8b"


def test_dockerfile_tracks_the_pinned_container():
    from tritongen import versions

    text = (REPO_ROOT / "docker" / "Dockerfile").read_text()
    tag = versions.default_container("engine").tag
    assert f"ARG TRITON_TAG={tag}" in text
    assert "FROM nvcr.io/nvidia/tritonserver:${TRITON_TAG}-trtllm-python-py3" in text


# -- the CLI ---------------------------------------------------------------------------------------------


def _cli(*args):
    from tritongen.cli import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_dry_run_prints_docker_run(repo_tp2):
    result = _cli("serve", str(repo_tp2), "--docker", "--dry-run", "--no-validate", "--http-port", "9100")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("docker run \\\n")
    assert "--publish 127.0.0.1:9100:9100" in result.output and "mpirun" in result.output


def test_cli_compose_out(repo_tp1, tmp_path):
    out = tmp_path / "compose.yaml"
    result = _cli("serve", str(repo_tp1), "--docker", "--compose-out", str(out), "--no-validate")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(out.read_text())["services"]["tritonserver"]["container_name"] == "tritongen-llama-tp1"


def test_cli_docker_options_need_docker(repo_tp1):
    result = _cli("serve", str(repo_tp1), "--gpus", "0", "--no-validate")
    assert result.exit_code == 2 and "--gpus applies to --docker" in result.output


def test_ready_needs_every_rank_running(repo_tp4pp2):
    plan = _plan("x", [repo_tp4pp2]).launch
    launch.check_ranks("x", plan, 8)
    with pytest.raises(ServerError, match="only 7 of 8 tritonserver ranks are running"):
        launch.check_ranks("x", plan, 7)


def test_two_llms_in_one_server_with_model_prefixes(root):
    """Two complete engine repositories, kept apart by serving.model_prefix: one server, orchestrator mode."""
    (root / "models" / "llama3-8b").mkdir(parents=True, exist_ok=True)
    repos = []
    for prefix, gpu in (("llama-", 0), ("qwen-", 1)):
        engine = _engine_copy(root, "llama3-8b-fp16-tp1", tp=None, pp=None)
        repos.append(render("llama3-8b", root / "repos" / f"{prefix}two", **{
            "route": "engine", "precision.format": "fp16", "engine.dir": str(engine), "parallelism.gpu_ids": [gpu],
            "model.checkpoint_dir": str(root / "models" / "llama3-8b"), "serving.model_prefix": prefix}))
    plan = _plan("two-llms", repos)
    assert plan.launch.mode == "orchestrator"
    assert plan.launch.trtllm_models == ["llama-tensorrt_llm", "qwen-tensorrt_llm"]
    (rank,) = _ranks(_after_image(_args(plan), plan.image))
    assert [a for a in rank if a.startswith("--model-repository=")] == [f"--model-repository={r}" for r in repos]
    # Without prefixes the same two repositories collide, and tritongen says so before Triton does.
    plain = [render("llama3-8b", root / "repos" / f"plain-{i}", **{
        "route": "engine", "engine.dir": str(_engine_copy(root, "llama3-8b-fp16-tp1", tp=None, pp=None)),
        "model.checkpoint_dir": str(root / "models" / "llama3-8b")}) for i in range(2)]
    with pytest.raises(Exception, match="one server needs unique model names"):
        _plan("collide", plain)
