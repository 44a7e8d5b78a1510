"""The exceptions tritongen raises on purpose, each with its exit code.

The CLI turns them into one printed block and the exit code in one place (``cli.main``); nothing else in the
package prints errors or calls ``sys.exit``. Anything that is not a ``TritongenError`` is a bug and exits 70.
"""

from __future__ import annotations


class TritongenError(Exception):
    """Base class: ``str(err)`` is the user-facing message (one line per problem)."""

    exit_code = 1
    #: Prefix printed before the message, naming the kind of failure.
    label = "error"

    def __init__(self, message: str, *, hint: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.hint = hint
        #: Extra text shown under the message (a log tail, a command line); may span lines.
        self.detail = detail


class UsageError(TritongenError):
    """Bad command-line use that click itself cannot catch."""

    exit_code = 2
    label = "usage error"


class SpecError(TritongenError):
    """The deployment spec is invalid; the message holds one line per field."""

    exit_code = 3
    label = "invalid spec"

    def __init__(self, problems: list[str], *, hint: str | None = None):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems), hint=hint)


class CatalogError(TritongenError):
    """Unknown model name or a broken catalogue data file."""

    exit_code = 3
    label = "catalogue"


class ValidationFailed(TritongenError):
    """A generated or hand-made repository would be rejected by Triton / TensorRT-LLM."""

    exit_code = 4
    label = "validation failed"

    def __init__(self, problems: list, *, hint: str | None = None):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems), hint=hint)


class RepoExistsError(TritongenError):
    """Refusing to overwrite a directory tritongen did not create (or that was edited by hand)."""

    exit_code = 5
    label = "refusing to overwrite"


class GatingError(TritongenError):
    """An impossible combination: precision vs GPU architecture, route vs container, parallelism vs GPUs."""

    exit_code = 6
    label = "not supported"


class CommandFailed(TritongenError):
    """An external command (docker, trtllm-build, tritonserver...) failed; ``detail`` holds its output tail."""

    exit_code = 7
    label = "command failed"

    def __init__(self, message: str, *, returncode: int | None = None, tail: str = "", hint: str | None = None):
        self.returncode = returncode
        self.tail = tail
        super().__init__(message, hint=hint, detail=tail or None)


class ServerError(TritongenError):
    """tritonserver did not become ready, is not running, or a port is taken."""

    exit_code = 8
    label = "server"


class ClientError(TritongenError):
    """A request to a running server failed (connection refused, model error, timeout)."""

    exit_code = 9
    label = "request failed"


class SloViolation(TritongenError):
    """Benchmark results broke a service-level objective given with ``--slo``."""

    exit_code = 10
    label = "SLO violated"


class OutputError(TritongenError):
    """The output folder cannot be written (disk full, read-only, permissions); nothing was changed."""

    exit_code = 12
    label = "cannot write"


class MissingDependency(TritongenError):
    """An optional Python package or external tool is needed for this command."""

    exit_code = 11
    label = "missing dependency"
