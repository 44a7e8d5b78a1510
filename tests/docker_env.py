"""The Docker daemon and the stand-in image the docker tests share, as session fixtures (registered once, in
conftest.py, so that every test file asking for them gets the same daemon).

The session fixture starts its own dockerd as root (installing docker.io with apt-get when it is missing):
its own --data-root, --exec-root, --pidfile and unix socket, a --config-file of its own (so that nothing is
written to /etc/docker), and --bridge=none --iptables=false --ip-masq=false --ip-forward=false, so that no
bridge, firewall rule or sysctl changes on the host; containers use --network host. At the end it removes any
container left, stops dockerd by pid (terminate, wait, kill), unmounts what it mounted and deletes its run
folder. Images are kept between runs in the data root (TRITONGEN_DOCKER_TEST_ROOT, default
<repo>/.cache/docker-test; delete it to start over), guarded by a lock so that two test sessions never share a
running daemon. TRITONGEN_TEST_DOCKER_HOST=unix:///... uses an already running daemon instead.

The image is docker/standin/build.py's stand-in (tritonserver 2.51 + python backend from nvidia-pytriton, CPU
torch, transformers), not the NGC image: it serves the cpu route only. Tests skip, with the reason, where no
daemon can run here.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from tritongen import proc

TRITONGEN = str(Path(sys.executable).with_name("tritongen"))
#: How long the shared setup took (printed by the first docker test).
TIMINGS: dict[str, float] = {}


def _docker(env: dict[str, str], *args: str, check: bool = False) -> tuple[int, str]:
    return proc.run(["docker", *args], env=env, check=check, tail_lines=400)


def _wait_daemon(env: dict[str, str], child, timeout: float = 60.0) -> str | None:
    """None when the daemon answers; else why not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            return f"dockerd exited with code {child.returncode}"
        rc, _ = _docker(env, "version", "--format", "{{.Server.Version}}")
        if rc == 0:
            return None
        time.sleep(0.5)
    return f"dockerd did not answer within {timeout:.0f} s"


def _install_docker() -> str | None:
    """apt-get install docker.io (root only); None on success, else why not."""
    if shutil.which("apt-get") is None:
        return "dockerd is not installed and there is no apt-get to install docker.io"
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "docker.io"]):
        rc, out = proc.run(argv, env=env, check=False)
        if rc != 0:
            return f"{' '.join(argv)} failed: {out.strip().splitlines()[-1] if out.strip() else rc}"
    return None if shutil.which("dockerd") else "docker.io installed but dockerd is still missing"


def _dockerd_major(dockerd: str) -> int:
    rc, out = proc.run([dockerd, "--version"], check=False)
    try:
        return int(out.split("version", 1)[1].strip().split(".")[0])
    except (IndexError, ValueError):
        return 0


def _our_mounts(*roots: Path) -> list[str]:
    out = []
    for line in Path("/proc/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if any(target == str(r) or target.startswith(str(r) + "/") for r in roots):
            out.append(target)
    return sorted(out, key=len, reverse=True)


@pytest.fixture(scope="session")
def dockerd():
    """Environment (DOCKER_HOST) for a Docker daemon that lives as long as the test session."""
    given = os.environ.get("TRITONGEN_TEST_DOCKER_HOST")
    if given:
        env = {"DOCKER_HOST": given}
        why = _wait_daemon(env, None, timeout=10)
        if why:
            pytest.skip(f"TRITONGEN_TEST_DOCKER_HOST={given}: {why}")
        yield env
        return
    if sys.platform != "linux":
        pytest.skip("docker tests start dockerd, which runs on Linux only")
    if os.geteuid() != 0:
        pytest.skip("starting dockerd needs root; set TRITONGEN_TEST_DOCKER_HOST to use a running daemon")
    if shutil.which("dockerd") is None:
        why = _install_docker()
        if why:
            pytest.skip(why)
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is missing (apt-get install docker.io)")
    dockerd_bin = shutil.which("dockerd")

    root = Path(os.environ.get("TRITONGEN_DOCKER_TEST_ROOT") or REPO_ROOT / ".cache" / "docker-test")
    root.mkdir(parents=True, exist_ok=True)
    lock = open(root / ".lock", "w")  # noqa: SIM115 - held for the whole session
    deadline = time.monotonic() + 600
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                lock.close()
                pytest.skip(f"another test session holds {root}/.lock (its dockerd) for over 10 minutes")
            time.sleep(2)
    run = Path(tempfile.mkdtemp(prefix="tgd-", dir="/tmp"))  # short: unix socket paths are limited
    config = {}
    if _dockerd_major(dockerd_bin) < 23:
        # Docker before 23 writes a trust key to /etc/docker/key.json unless told where.
        config["deprecated-key-path"] = str(run / "key.json")
    (run / "daemon.json").write_text(json.dumps(config))
    sock = run / "docker.sock"
    argv = [dockerd_bin, "--config-file", str(run / "daemon.json"), "--data-root", str(root / "data"),
            "--exec-root", str(run / "exec"), "--pidfile", str(run / "dockerd.pid"), "-H", f"unix://{sock}",
            "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false",
            "--userland-proxy=false"]
    log = run / "dockerd.log"
    started = time.monotonic()
    child = proc.start(argv, log_path=log)
    env = {"DOCKER_HOST": f"unix://{sock}"}
    try:
        why = _wait_daemon(env, child)
        TIMINGS["dockerd start"] = time.monotonic() - started
        if why:
            pytest.skip(f"{why}; dockerd log: {proc.tail_file(log, 5)}")
        yield env
    finally:
        rc, out = _docker(env, "ps", "-aq", "--filter", "label=tritongen.server")
        leftovers = out.split() if rc == 0 else []
        if leftovers:
            _docker(env, "rm", "--force", *leftovers)
        proc.stop_pid(child.pid, timeout=30)
        for target in _our_mounts(run, root / "data"):
            proc.run(["umount", target], check=False)
        shutil.rmtree(run, ignore_errors=True)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _load_standin_builder():
    path = REPO_ROOT / "docker" / "standin" / "build.py"
    spec = importlib.util.spec_from_file_location("tritongen_standin_build", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def standin_image(dockerd) -> str:
    build = _load_standin_builder()
    start = time.monotonic()
    try:
        tag = build.ensure_standin(dockerd, echo=lambda m: print(f"[stand-in] {m}", end="", file=sys.stderr))
    except build.StandinError as exc:
        pytest.skip(f"cannot build the stand-in image: {exc}")
    TIMINGS["stand-in image (build or reuse)"] = time.monotonic() - start
    return tag


def _tritongen(env: dict[str, str], *args: str) -> tuple[int, str]:
    return proc.run([TRITONGEN, *args], env={**env, "TRITONGEN_CACHE": os.environ["TRITONGEN_CACHE"]},
                    check=False, tail_lines=400)
