"""What tritongen remembers about the servers it started: one JSON record per server.

The records live in one folder per user, ``~/.cache/tritongen/run`` (``<cache>/run`` when ``$TRITONGEN_CACHE``
is set), shared by every checkout: server names and ports are the machine's, so a second checkout sees who holds
a port or a name. Each record names the cache that started it (``owner``): ``tritongen stop`` and ``logs``
without a name only pick this cache's servers, so a checkout never stops another's server unless it is named.
``tritongen stop``/``status``/``logs`` read these records; a record whose process (or container) is gone is
reported as stale and removed by ``stop``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..names import check_name, inside
from ..paths import cache_dir, user_cache_dir


def run_dir() -> Path:
    if os.environ.get("TRITONGEN_CACHE"):
        return cache_dir() / "run"
    return user_cache_dir() / "run"


def this_owner() -> str:
    """The cache this process works with: what a record's ``owner`` is compared with."""
    return str(cache_dir())


@dataclass
class ServerRecord:
    name: str
    repo: str
    #: Where the server runs, as `status` shows it: "local" (this machine) | "docker".
    runtime: str
    host: str
    http_port: int
    grpc_port: int
    metrics_port: int
    log: str
    pid: int | None = None
    container: str | None = None
    image: str | None = None
    command: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    extra: dict = field(default_factory=dict)
    #: The cache (checkout) that started the server; records of older releases have none.
    owner: str | None = field(default_factory=this_owner)
    #: The runtime that started the server and stops it: a key of ``runtime.base.RUNTIMES``
    #: ("local" | "mpi" | "docker"). Records of older releases have none: see :func:`_launcher_of_old_record`.
    launcher: str | None = None

    def __post_init__(self) -> None:
        if self.launcher is None:
            self.launcher = _launcher_of_old_record(self)

    @property
    def mine(self) -> bool:
        """Started with this process's cache. A record without an owner was started by a release that kept its
        state in the cache itself, ~/.cache/tritongen outside a checkout."""
        return (self.owner or str(user_cache_dir())) == this_owner()

    @property
    def path(self) -> Path:
        loaded_from = getattr(self, "_loaded_from", None)
        if loaded_from is not None:  # a record of an older release may have any name: keep its own file
            return loaded_from
        check_name(self.name, "server name")
        return inside(run_dir() / f"{self.name}.json", run_dir(), "server name")

    @property
    def client_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host

    @property
    def grpc_url(self) -> str:
        return f"{self.client_host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"{self.client_host}:{self.http_port}"

    @property
    def model_prefix(self) -> str:
        """serving.model_prefix of the (first) served repository, from its lock file ('' when unknown)."""
        from ..repo.lock import read_lock

        lock = read_lock(Path(self.repo)) or {}
        return str((((lock.get("spec") or {}).get("serving")) or {}).get("model_prefix") or "")

    def save(self) -> None:
        run_dir().mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, self.path)

    def remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def _launcher_of_old_record(record: ServerRecord) -> str:
    """Which runtime started a server whose record predates ``launcher``: older releases told an mpirun launch
    on this machine only by its launch mode or its command line."""
    if record.runtime == "docker":
        return "docker"
    if record.extra.get("launch_mode") in ("leader", "orchestrator") or record.command[:1] == ["mpirun"]:
        return "mpi"
    return "local"


def load_all() -> list[ServerRecord]:
    out = []
    for path in sorted(run_dir().glob("*.json")):
        try:
            data = json.loads(path.read_text())
            data.setdefault("owner", None)  # written by an older release: not this process's cache by default
            record = ServerRecord(**data)
        except (OSError, json.JSONDecodeError, TypeError, AttributeError):
            continue
        record._loaded_from = path
        out.append(record)
    return out


def find(name_or_repo: str | None, *, everyone: bool = False) -> list[ServerRecord]:
    """Records matching a server name or a repository path, of any owner; with None, this cache's records
    (every record with ``everyone``)."""
    records = load_all()
    if not name_or_repo:
        return records if everyone else [r for r in records if r.mine]
    wanted = str(name_or_repo)
    resolved = str(Path(wanted).expanduser().resolve())
    return [r for r in records if r.name == wanted or r.repo == resolved or Path(r.repo).name == wanted]
