"""Shared fixtures. Tests never touch ~: the cache, HOME and the Hugging Face cache point into tmp dirs.

Servers started here bind 127.0.0.1 on free ports and are stopped by pid when the session ends.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

_SESSION_ROOT = Path(tempfile.mkdtemp(prefix="tritongen-tests-"))
if not os.environ.get("TRITONGEN_KEEP_TEST_TMP"):
    # After pytest has stopped the session's servers (fixture teardown comes first). TRITONGEN_KEEP_TEST_TMP=1
    # keeps the folder (logs, repositories) to look at after a failure.
    atexit.register(shutil.rmtree, _SESSION_ROOT, ignore_errors=True)
# Set before any tritongen import reads them (cache_dir() reads the environment at call time anyway).
os.environ["TRITONGEN_CACHE"] = str(_SESSION_ROOT / "cache")
os.environ["HOME"] = str(_SESSION_ROOT / "home")
os.environ["HF_HOME"] = str(_SESSION_ROOT / "hf")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.pop("TRITON_IMAGE", None)
(_SESSION_ROOT / "home").mkdir(parents=True, exist_ok=True)

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE_GOLDEN = os.environ.get("TRITONGEN_UPDATE_GOLDEN") == "1"


def file_tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


#: In a golden tree: the files the renderer copies verbatim from templates/, by template path and sha256, instead
#: of a second copy of each template.
COPIED_NAME = "_copied.yaml"


def _verbatim_templates() -> dict[str, str]:
    """sha256 -> path under templates/ of every file the renderer may copy as it is (anything but *.j2)."""
    import hashlib

    root = REPO_ROOT / "templates"
    return {hashlib.sha256(p.read_bytes()).hexdigest(): p.relative_to(root).as_posix()
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".j2" and "__pycache__" not in p.parts}


def check_golden_tree(out: Path, golden: Path) -> dict[str, bytes]:
    """Assert ``out`` equals the golden tree byte for byte (TRITONGEN_UPDATE_GOLDEN=1 rewrites it first).

    Rendered files are stored in the golden tree; a file that is a verbatim copy of a template is recorded in
    ``_copied.yaml`` (its template and sha256) and checked against the template itself.
    """
    import hashlib

    import yaml

    got = file_tree(out)
    if UPDATE_GOLDEN:
        templates = _verbatim_templates()
        copied = {}
        shutil.rmtree(golden, ignore_errors=True)
        for rel, data in got.items():
            digest = hashlib.sha256(data).hexdigest()
            if digest in templates:
                copied[rel] = {"template": templates[digest], "sha256": digest}
                continue
            (golden / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden / rel).write_bytes(data)
        if copied:
            (golden / COPIED_NAME).write_text(yaml.safe_dump(copied, sort_keys=True))
    want = file_tree(golden)
    copied = yaml.safe_load(want.pop(COPIED_NAME, b"{}")) or {}
    assert sorted(got) == sorted([*want, *copied])
    label = golden.relative_to(GOLDEN.parent)
    for rel in want:
        assert got[rel] == want[rel], f"{rel} differs from {label} (TRITONGEN_UPDATE_GOLDEN=1 to refresh)"
    for rel, entry in copied.items():
        template = (REPO_ROOT / "templates" / entry["template"]).read_bytes()
        assert got[rel] == template, f"{rel} is not a verbatim copy of templates/{entry['template']}"
        assert hashlib.sha256(got[rel]).hexdigest() == entry["sha256"], \
            f"{rel} (templates/{entry['template']}) differs from {label} (TRITONGEN_UPDATE_GOLDEN=1 to refresh)"
    return got


def free_ports(n: int = 3) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


@pytest.fixture(scope="session")
def session_root() -> Path:
    return _SESSION_ROOT


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    """The tiny model, built once per test session."""
    from tritongen.paths import cache_dir
    from tritongen.tiny import build

    return build(cache_dir() / "models" / "tiny")


def _servers():
    """A start(repo_paths, name=..., **serve options) -> ServerRecord function, and the records it started."""
    from tritongen.runtime import local
    from tritongen.runtime.command import ServeOptions

    started = []

    def start(repos, name: str, timeout: float = 180.0, **options):
        http, grpc, metrics = free_ports(3)
        opts = ServeOptions(http_port=http, grpc_port=grpc, metrics_port=metrics, **options)
        repos = [repos] if isinstance(repos, (str, Path)) else repos
        record = local.start(name, [Path(r) for r in repos], opts, timeout=timeout)
        started.append(record)
        return record

    return start, started


def _stop_all(started) -> None:
    # Stop them all at once: each waits for its own graceful shutdown.
    from concurrent.futures import ThreadPoolExecutor

    from tritongen.runtime import local

    with ThreadPoolExecutor(max_workers=max(1, len(started))) as pool:
        list(pool.map(local.stop, started))


@pytest.fixture(scope="module")
def server_factory():
    """start(repo_paths, name=..., **serve options) -> ServerRecord; the module's servers are stopped when it
    ends (each holds about 1 GB with its python stubs: kept for the whole session, they filled 24 GB)."""
    start, started = _servers()
    yield start
    _stop_all(started)


@pytest.fixture(scope="session")
def session_server_factory():
    """server_factory for the servers several modules share (tiny_server), stopped at the end of the session."""
    start, started = _servers()
    yield start
    _stop_all(started)


def render(model: str, out: Path, **options) -> Path:
    """Render a repository with dotted-key options, e.g. render("tiny", p, **{"cpu.engine": "mock"})."""
    from tritongen.render import write_repo
    from tritongen.spec import load_spec

    spec = load_spec(model, options=options)
    return write_repo(spec, out, force=True)


@pytest.fixture(scope="session")
def tiny_repo(tiny_dir, session_root) -> Path:
    """cpu route, PyTorch engine on the tiny model, streaming ensemble + BLS."""
    return render("tiny", session_root / "repos" / "tiny", **{"serving.bls": True})


@pytest.fixture(scope="session")
def tiny_server(tiny_repo, session_server_factory):
    return session_server_factory(tiny_repo, "test-tiny")


def sentencepiece_style_tokenizer():
    """A Llama-2-style tokenizer, built offline: metaspace, BPE with byte fallback, leading-space strip on
    decode (the other tokenizer family besides byte-level BPE: characters it lacks become byte tokens)."""
    import json

    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from transformers import PreTrainedTokenizerFast

    text = (REPO_ROOT / "tritongen/data/tiny_corpus.txt").read_text()
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.train_from_iterator(text.splitlines(), trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>",
                                                                                                    "</s>"],
                                                                     show_progress=False))
    # As in SentencePiece models, the byte tokens are ordinary vocabulary (a trainer's special tokens would be
    # dropped by skip_special_tokens, and with them every character the vocabulary lacks).
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for b in range(256):
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    tok = Tokenizer.from_str(json.dumps(spec))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


@pytest.fixture(scope="session")
def sentencepiece_style_dir(session_root) -> Path:
    """sentencepiece_style_tokenizer() saved as a tokenizer directory (a repository's model.tokenizer_dir)."""
    out = session_root / "tokenizers" / "sentencepiece-style"
    if not (out / "tokenizer.json").is_file():
        sentencepiece_style_tokenizer().save_pretrained(out)
    return out


def with_env(env: dict[str, str], start):
    """Call ``start()`` with ``env`` set in os.environ (a server started then inherits it), then put every
    variable back as it was."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# The docker tests' session fixtures, registered here once: a fixture imported into two test files would be two
# fixtures, and the second would wait on the first one's daemon lock.
from docker_env import dockerd, standin_image  # noqa: E402,F401
