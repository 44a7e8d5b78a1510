"""What validating a repository produces: one :class:`Problem` per finding in a :class:`Report`, and the parse
of a config.pbtxt with Triton's own ``ModelConfig`` protobuf that every check shares."""

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


class Ctx:
    """One validation run: the repository, its display root, the report being filled."""

    def __init__(self, repo: Path, display_root: Path | None):
        self.repo = repo
        self.display_root = display_root or repo
        self.report = Report(repo=self.display_root)
        #: serving.model_prefix of the repository (from its lock file): models are "<prefix><role>".
        self.prefix = ""
        #: Models whose config.pbtxt does not parse: reported once, not again by every ensemble step using them.
        self.unparsable: set[str] = set()

    def name(self, role: str) -> str:
        return self.prefix + role

    def rel(self, path: Path) -> str:
        try:
            return str(self.display_root / path.relative_to(self.repo))
        except ValueError:
            return str(path)

    def add(self, path: Path | str, fld: str, message: str, fix: str = "", severity: str = "error") -> None:
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
    pb, _ = _pb()
    return pb.DataType.Name(value)


def params_of(cfg) -> dict[str, str]:
    return {k: v.string_value for k, v in cfg.parameters.items()}
