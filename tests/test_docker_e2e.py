"""`tritongen serve --docker` against a real Docker daemon, with a STAND-IN for the NGC image.

The daemon and the image are the session fixtures of tests/docker_env.py (how the daemon is started and kept
apart from the host is said there). Tests skip, with the reason, where no daemon can run here.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest
from docker_env import TIMINGS, _docker, _tritongen

from conftest import free_ports

pytestmark = pytest.mark.docker

CAP_SYS_RESOURCE = 24


def _memlock_args() -> list[str]:
    """--ulimit memlock=-1 needs CAP_SYS_RESOURCE in the daemon; dockerd has this process's capabilities."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:") and not int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1:
            return ["--memlock", "inherit"]
    return []


def _listening(port: int) -> set[str]:
    """Addresses with a listening TCP socket on ``port`` (this network namespace = the host's)."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:
                out.add(_addr(addr))
    return out


def _addr(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return ".".join(str(b) for b in raw[::-1])
    words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
    flat = b"".join(words)
    if flat[:12] == b"\0" * 10 + b"\xff\xff":
        return "::ffff:" + ".".join(str(b) for b in flat[12:])
    return flat.hex()


def _serve(env, repo, name, image, *extra) -> tuple[int, str, list[int]]:
    ports = free_ports(3)
    start = time.monotonic()
    rc, out = _tritongen(env, "serve", str(repo), "--docker", "--image", image, "--name", name,
                         "--network", "host", "--http-port", str(ports[0]), "--grpc-port", str(ports[1]),
                         "--metrics-port", str(ports[2]), "--timeout", "240", *_memlock_args(), *extra)
    TIMINGS[f"serve --docker {name} (to ready)"] = time.monotonic() - start
    return rc, out, ports


def _inspect(env, container: str) -> dict:
    rc, out = _docker(env, "inspect", "--type", "container", container, check=True)
    return json.loads(out)[0]


def _left(env, name: str) -> list[str]:
    _, out = _docker(env, "ps", "-aq", "--filter", f"label=tritongen.server={name}")
    return out.split()


def test_serve_docker_stream_stop(dockerd, standin_image, tiny_repo, tiny_dir):
    name = "dk-tiny"
    rc, out, (http, grpc, metrics) = _serve(dockerd, tiny_repo, name, standin_image)
    try:
        assert rc == 0, out
        assert f"tritonserver '{name}' ready" in out and "container tritongen-dk-tiny" in out
        info = _inspect(dockerd, "tritongen-dk-tiny")
        # Everything from the host is mounted read-only, at the path the configs use.
        mounts = {m["Destination"]: m for m in info["Mounts"]}
        assert str(tiny_repo) in mounts and str(tiny_dir) in mounts
        assert all(m["Type"] == "bind" and m["RW"] is False for m in mounts.values()), mounts
        host = info["HostConfig"]
        assert host["NetworkMode"] == "host" and "/tmp" in (host.get("Tmpfs") or {})
        assert "no-new-privileges" in host["SecurityOpt"] and not host["Privileged"]
        assert not any("docker.sock" in m for m in mounts)
        cmd = info["Config"]["Cmd"]
        assert {"--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
                "--model-control-mode=none"} <= set(cmd)
        # ...and what actually listens: loopback only.
        for port in (http, grpc, metrics):
            assert _listening(port) and _listening(port) <= {"127.0.0.1", "::ffff:127.0.0.1"}, port

        start = time.monotonic()
        rc, text = _tritongen(dockerd, "infer", "Tell me about the river and the old mill.", "--server", name,
                              "--max-tokens", "24")
        TIMINGS["tritongen infer (24 tokens, streamed)"] = time.monotonic() - start
        assert rc == 0, text
        assert "chunks" in text and text.split("[")[0].strip()
        chunks = int(text.rsplit("[", 1)[1].split()[0])
        assert chunks > 1, text  # streamed: more than one response

        rc, status = _tritongen(dockerd, "status")
        row = next(line for line in status.splitlines() if line.startswith(name))
        assert "ready" in row and "docker" in row
        rc, logs = _tritongen(dockerd, "logs", name, "-n", "200")
        assert rc == 0 and "Started GRPCInferenceService" in logs
    finally:
        rc, stopped = _tritongen(dockerd, "stop", name)
    assert rc == 0 and f"stopped '{name}' (docker, container tritongen-{name})" in stopped
    assert _left(dockerd, name) == []
    print(f"\ndocker e2e timings: {json.dumps(TIMINGS, indent=1)}", file=sys.stderr)


def test_serve_docker_non_root_read_only_root(dockerd, standin_image, tiny_repo):
    name = "dk-nobody"
    rc, out, (_, grpc, _) = _serve(dockerd, tiny_repo, name, standin_image, "--user", "65534:65534",
                                   "--read-only-root")
    try:
        assert rc == 0, out
        info = _inspect(dockerd, f"tritongen-{name}")
        assert info["Config"]["User"] == "65534:65534" and info["HostConfig"]["ReadonlyRootfs"] is True
        rc, uid = _docker(dockerd, "exec", f"tritongen-{name}", "id", "-u")
        assert uid.strip() == "65534"
        rc, err = _docker(dockerd, "exec", f"tritongen-{name}", "touch", f"{tiny_repo}/written-by-container")
        assert rc != 0 and "Read-only file system" in err
        assert not (tiny_repo / "written-by-container").exists()
        rc, text = _tritongen(dockerd, "infer", "Hello", "--url", f"127.0.0.1:{grpc}", "--max-tokens", "8")
        assert rc == 0 and text.strip(), text
    finally:
        _tritongen(dockerd, "stop", name)
    assert _left(dockerd, name) == []


def test_failed_start_shows_the_log_tail_and_leaves_no_container(dockerd, standin_image, tiny_repo, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_repo, broken)
    model = broken / "preprocessing" / "1" / "model.py"
    model.write_text(model.read_text() + "\nraise RuntimeError('deliberately broken for the docker failure test')\n")
    for path in [broken, *broken.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    name = "dk-broken"
    rc, out, _ = _serve(dockerd, broken, name, standin_image, "--no-validate")
    assert rc == 8, out  # ServerError
    assert "deliberately broken for the docker failure test" in out
    assert _left(dockerd, name) == []
    rc, status = _tritongen(dockerd, "status")
    assert name not in status
