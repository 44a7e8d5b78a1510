"""Build the STAND-IN image for the NGC Triton TensorRT-LLM container (see README.md here).

    .venv/bin/python docker/standin/build.py            # uses DOCKER_HOST; prints the image tag

Steps, each skipped when its result is already in the daemon:

1. base ``tritongen-standin-base:bookworm-<hash>``: ``debootstrap --variant=minbase`` of Debian bookworm with
   python3, python3-venv and libpython3.11 (needs root and the ``debootstrap`` package), imported with
   ``docker import`` (no registry is needed);
2. a build context with a local wheelhouse: the exact versions of torch (the CPU wheel this host installed),
   transformers and their dependencies that run tritongen's tests here (``pip download --no-deps``), plus the
   nvidia-pytriton 0.7.0 wheel that carries tritonserver;
3. ``docker build --network none`` of Dockerfile here, tagged ``tritongen-standin:<recipe hash>``.

The recipe hash covers the Dockerfile, the debootstrap recipe and the pinned wheel list, so the image is rebuilt
exactly when one of them changes and reused otherwise.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITE = "bookworm"
DEBOOTSTRAP_INCLUDE = ["python3", "python3-venv", "libpython3.11"]
MIRROR = os.environ.get("TRITONGEN_DEBIAN_MIRROR", "http://deb.debian.org/debian")
#: What the cpu route's models import, and the Python that must match the image's (bookworm: 3.11).
ROOTS = ["torch", "transformers", "tokenizers", "safetensors", "numpy", "jinja2"]
PYTRITON = "nvidia-pytriton==0.7.0"
PYTHON = (3, 11)
IMAGE = "tritongen-standin"
BASE_IMAGE = "tritongen-standin-base"


class StandinError(RuntimeError):
    """The stand-in cannot be built here (the message says why); tests skip with it."""


def pinned_requirements(roots: list[str] = ROOTS) -> list[str]:
    """``name==version`` for ``roots`` and everything they need, as installed in this interpreter."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: dict[str, str] = {}
    stack = list(roots)
    while stack:
        name = canonicalize_name(stack.pop())
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            raise StandinError(f"{name} is not installed in {sys.prefix}; install tritongen[cpu] first") from None
        seen[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                stack.append(req.name)
    return [f"{n}=={v}" for n, v in sorted(seen.items())]


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def base_tag() -> str:
    return f"{BASE_IMAGE}:{SUITE}-{_digest({'suite': SUITE, 'variant': 'minbase', 'include': DEBOOTSTRAP_INCLUDE})}"


def image_tag(requirements: list[str]) -> str:
    recipe = {"dockerfile": (HERE / "Dockerfile").read_text(), "base": base_tag(), "wheels": requirements,
              "pytriton": PYTRITON}
    return f"{IMAGE}:{_digest(recipe)}"


def _docker(args: list[str], env: dict[str, str] | None, **kw):
    from tritongen import proc

    return proc.run(["docker", *args], env=env, **kw)


def _have_image(tag: str, env: dict[str, str] | None) -> bool:
    rc, _ = _docker(["image", "inspect", "--format", "{{.Id}}", tag], env, check=False)
    return rc == 0


def build_base(env: dict[str, str] | None, workdir: Path, echo: Callable[[str], None]) -> str:
    from tritongen import proc

    tag = base_tag()
    if _have_image(tag, env):
        return tag
    if os.geteuid() != 0:
        raise StandinError("building the stand-in's base image needs root (debootstrap)")
    debootstrap = shutil.which("debootstrap")
    if not debootstrap:
        raise StandinError("debootstrap is not installed (apt-get install debootstrap)")
    rootfs = workdir / "rootfs"
    tarball = workdir / "rootfs.tar"
    echo(f"debootstrap {SUITE} (minbase + {', '.join(DEBOOTSTRAP_INCLUDE)}) from {MIRROR}\n")
    try:
        try:
            proc.run([debootstrap, "--variant=minbase", f"--include={','.join(DEBOOTSTRAP_INCLUDE)}", SUITE,
                      str(rootfs), MIRROR], what="debootstrap")
        except proc.CommandFailed as exc:
            last = exc.tail.strip().splitlines()[-1:] or [""]
            raise StandinError(f"debootstrap {SUITE} from {MIRROR} failed (no Debian mirror reachable?): "
                               f"{last[0]}") from None
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / leftover).glob("*"):
                if item.is_file():
                    item.unlink()
        proc.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."], what="tar rootfs")
        _docker(["import", "--message", "debootstrap minbase bookworm for the tritongen stand-in", str(tarball),
                 tag], env, what="docker import")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
        tarball.unlink(missing_ok=True)
    return tag


def ensure_standin(env: dict[str, str] | None = None, *, workdir: Path | None = None,
                   echo: Callable[[str], None] = lambda m: None) -> str:
    """The stand-in image's tag, building it (and its base) only when missing."""
    from tritongen import proc

    if sys.version_info[:2] != PYTHON:
        raise StandinError(f"the stand-in installs this interpreter's cp{PYTHON[0]}{PYTHON[1]} wheels; "
                           f"run it with Python {PYTHON[0]}.{PYTHON[1]} (this is {sys.version.split()[0]})")
    requirements = pinned_requirements()
    tag = image_tag(requirements)
    if _have_image(tag, env):
        return tag
    own_tmp = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="tritongen-standin-"))
    try:
        base = build_base(env, workdir, echo)
        ctx = workdir / "context"
        wheels = ctx / "wheels"
        (wheels / "pytriton").mkdir(parents=True, exist_ok=True)
        shutil.copy2(HERE / "Dockerfile", ctx / "Dockerfile")
        (wheels / "requirements.txt").write_text("\n".join(requirements) + "\n")
        echo(f"pip download {len(requirements)} pinned wheels + {PYTRITON}\n")
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
        proc.run([*pip, "-d", str(wheels), "-r", str(wheels / "requirements.txt")], what="pip download")
        proc.run([*pip, "-d", str(wheels / "pytriton"), PYTRITON], what="pip download nvidia-pytriton")
        echo(f"docker build {tag} (FROM {base})\n")
        # The classic builder: it needs no buildx plugin and can build with no network at all.
        _docker(["build", "--network", "none", "--build-arg", f"BASE={base}", "--label",
                 f"tritongen.recipe={tag.split(':')[1]}", "-t", tag, str(ctx)],
                {**(env or {}), "DOCKER_BUILDKIT": "0"}, what="docker build", tail_lines=60)
    finally:
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            shutil.rmtree(workdir / "context", ignore_errors=True)
    return tag


def main() -> int:
    sys.path.insert(0, str(HERE.parent.parent))
    try:
        tag = ensure_standin(echo=lambda m: print(m, end="", file=sys.stderr))
    except StandinError as exc:
        print(f"cannot build the stand-in: {exc}", file=sys.stderr)
        return 1
    print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
