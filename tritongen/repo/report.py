"""What validating a repository produces - one :class:`Problem` per finding in a :class:`Report` - and what
every rule is handed: the :class:`RepoCheck` of the run and the parse of a config.pbtxt with Triton's own
``ModelConfig`` protobuf. The rules themselves are generic (repo/validate.py, repo/ensemble.py) or a route's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import engine_config


@dataclass(frozen=True)
class Problem:
    file: str
    field: str
    message: str
    fix: str = ""
    severity: str = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        fix = f" -> {self.fix}" if self.fix else ""
        return f"{prefix}{self.file}: {self.field}: {self.message}{fix}"


@dataclass
class Report:
    repo: Path
    problems: list[Problem] = field(default_factory=list)
    models: dict[str, Any] = field(default_factory=dict)
    engine: engine_config.EngineConfig | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


class RepoCheck:
    """One validation run, handed to every rule: the repository (and where to show it), its lock file, the
    options of the run, the models parsed so far and the report being filled."""

    def __init__(self, repo: Path, display_root: Path | None = None, *, lock: dict | None = None,
                 engine_dir: Path | None = None, container_trtllm: str | None = None, gpu_arch: str | None = None):
        self.repo = repo
        self.display_root = display_root or repo
        self.report = Report(repo=self.display_root)
        self.lock = lock
        #: Options of the run: an engine folder instead of gpt_model_path, the TensorRT-LLM release and the GPU
        #: architecture to check against (None: from the lock file / the repository / nvidia-smi).
        self.engine_dir = engine_dir
        self.container_trtllm = container_trtllm
        self.gpu_arch = gpu_arch
        #: serving.model_prefix of the repository (from its lock file): models are "<prefix><role>".
        self.prefix = str((((lock or {}).get("spec") or {}).get("serving") or {}).get("model_prefix") or "")
        #: Models whose config.pbtxt does not parse: reported once, not again by every ensemble step using them.
        self.unparsable: set[str] = set()

    @property
    def models(self) -> dict[str, Any]:
        """Model name -> its parsed ``ModelConfig``."""
        return self.report.models

    def name(self, role: str) -> str:
        """The model name of a role in this repository."""
        return self.prefix + role

    def rel(self, path: Path) -> str:
        try:
            return str(self.display_root / path.relative_to(self.repo))
        except ValueError:
            return str(path)

    def add(self, path: Path | str, fld: str, message: str, fix: str = "", severity: str = "error") -> None:
        """Report one problem at ``path`` (a path under the repository is shown under its display root)."""
        where = self.rel(path) if isinstance(path, Path) else path
        self.report.problems.append(Problem(where, fld, message, fix, severity))


def _pb():
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2, text_format


def parse_config(path: Path):
    """Parse one config.pbtxt into a ``ModelConfig`` message; raises ValueError with line/column."""
    pb, text_format = _pb()
    msg = pb.ModelConfig()
    try:
        text_format.Parse(path.read_text(), msg)
    except text_format.ParseError as exc:
        raise ValueError(str(exc)) from None
    return msg


def dtype_name(value: int) -> str:
    """A ``DataType`` enum value's name (TYPE_INT32, ...)."""
    pb, _ = _pb()
    return pb.DataType.Name(value)


def params_of(cfg) -> dict[str, str]:
    """A model config's ``parameters`` as plain strings."""
    return {k: v.string_value for k, v in cfg.parameters.items()}
