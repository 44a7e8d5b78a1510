"""Write output folders safely: into a temporary sibling, checked, then swapped into place.

The one writer of everything tritongen generates: model repositories (validated before the swap, their lock file
the record) and deploy artefacts such as Kubernetes and Dynamo manifests (a JSON record of their hashes). A
failure never leaves a half-written or mixed folder behind; a folder tritongen did not write (or one edited since)
is not replaced without ``force``; the temporary folders of a killed run are cleaned up by the next one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..errors import OutputError, RepoExistsError, UsageError, ValidationFailed
from ..names import inside
from ..repo.lock import LOCK_NAME, file_hashes, read_lock, write_lock
from ..repo.validate import Report, validate_repo
from ..resolve import Deployment, resolve
from ..spec import Spec
from .tree import render_into

T = TypeVar("T")

_TMP_PREFIX = ".tritongen-tmp-"
_OLD_PREFIX = ".tritongen-old-"


def check_overwritable(out_dir: Path) -> None:
    """Refuse to replace a directory tritongen did not create, or one edited since it was written."""
    if not out_dir.exists():
        return
    lock = read_lock(out_dir) if out_dir.is_dir() else None
    refuse_foreign_or_edited(
        out_dir, None if lock is None else (lock.get("files") or {}), lambda: file_hashes(out_dir),
        tool="tritongen", record=LOCK_NAME, not_dir_hint="pass --force to replace it",
        foreign_hint="choose another --name/--out, or pass --force to replace it",
        edited_hint="move your edits into the spec, or pass --force to overwrite them")


def refuse_foreign_or_edited(out_dir: Path, recorded: dict[str, str] | None, current: Callable[[], dict[str, str]],
                             *, tool: str, record: str, not_dir_hint: str, foreign_hint: str,
                             edited_hint: str) -> None:
    """The one rule for replacing an output folder: an empty or absent one is free; one without ``tool``'s record
    (``recorded`` None) is someone else's; one whose files differ from the recorded hashes was edited by hand."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise RepoExistsError(f"{out_dir} exists and is not a directory", hint=not_dir_hint)
    if not any(out_dir.iterdir()):
        return
    if recorded is None:
        raise RepoExistsError(f"{out_dir} exists and was not created by {tool} (no {record})", hint=foreign_hint)
    found = current()
    changed = sorted(p for p in recorded if found.get(p) != recorded[p])
    added = sorted(p for p in found if p not in recorded)
    if changed or added:
        what = ", ".join([*(f"{p} changed" for p in changed), *(f"{p} added" for p in added)][:5])
        raise RepoExistsError(f"{out_dir} was edited after {tool} wrote it ({what})", hint=edited_hint)


def write_repo(target: Spec | Deployment, out_dir: Path, *, force: bool = False, validate: bool = True) -> Path:
    """Render, validate, then atomically put the repository at ``out_dir``. Returns ``out_dir``."""
    deployment = target if isinstance(target, Deployment) else resolve(target)
    return write(deployment, out_dir, force=force, validate=validate)[0]


def write(deployment: Deployment, out_dir: Path, *, force: bool = False,
          validate: bool = True) -> tuple[Path, Report | None]:
    """:func:`write_repo`, also returning the validation report of what was written (None when not validated)."""
    out_dir = Path(out_dir).absolute()
    if out_dir.parent == out_dir:
        raise UsageError(f"{out_dir}: a repository cannot be the file system root")
    if not force:
        check_overwritable(out_dir)

    def fill(tmp: Path) -> Report | None:
        render_into(deployment, tmp)
        write_lock(deployment, tmp)
        if not validate:
            return None
        report = validate_repo(tmp, display_root=out_dir)
        if report.errors:
            raise ValidationFailed(report.errors, hint="the repository was not written; fix the spec")
        return report

    return out_dir, write_atomically(out_dir, fill)


def write_atomically(out_dir: Path, fill: Callable[[Path], T]) -> T:
    """Fill a new temporary sibling of ``out_dir``, then swap it into place; returns what ``fill`` returns.

    Whatever fails (``fill`` raising, a full disk, a read-only file system) leaves the folder that was there, if
    any, untouched and no temporary folder behind; an ``OSError`` becomes one OutputError line.
    """
    tmp = None
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp(out_dir.parent)
        # The owner's pid is in the name, so that a later run can tell a dead run's leftovers from a live run's.
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-{out_dir.name}-", dir=out_dir.parent))
        result = fill(tmp)
        _swap_into_place(tmp, out_dir)
        return result
    except OSError as exc:
        what = exc.strerror or str(exc)
        raise OutputError(f"cannot write {out_dir}: {what}" + (f" ({exc.filename})" if exc.filename else ""),
                          hint="nothing was changed; free space or pick another --out, then run again") from None
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_files(out_dir: Path, files: dict[str, bytes | str], *, tool: str, record: str, force: bool = False) -> Path:
    """Write generated artefacts (manifests, scripts) to ``out_dir`` the way repositories are written: atomically,
    never outside it, with a ``record`` of their hashes so that a folder edited by hand is not replaced unless
    ``force``. A file keeps an executable bit only if its name ends in ``.sh``."""
    out_dir = Path(out_dir).absolute()
    if out_dir.parent == out_dir:
        raise UsageError(f"{out_dir}: not the file system root")
    data = {rel: content.encode("utf-8") if isinstance(content, str) else content for rel, content in files.items()}
    hashes = {rel: hashlib.sha256(content).hexdigest() for rel, content in sorted(data.items())}
    if not force:
        refuse_foreign_or_edited(out_dir, _read_record(out_dir / record), lambda: _hashes_except(out_dir, record),
                                 tool=tool, record=record, not_dir_hint="choose another --out",
                                 foreign_hint="choose another --out, or pass --force to replace it",
                                 edited_hint="move the edits into the spec (or a kustomize overlay of your own), "
                                             "or pass --force")

    def fill(tmp: Path) -> None:
        for rel, content in data.items():
            target = inside(tmp / rel, tmp, f"{tool} file")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            if rel.endswith(".sh"):
                target.chmod(0o755)
        (tmp / record).write_text(json.dumps({"generated_by": tool, "files": hashes}, indent=1, sort_keys=True)
                                  + "\n")

    write_atomically(out_dir, fill)
    return out_dir


def _read_record(path: Path) -> dict[str, str] | None:
    try:
        files = json.loads(path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return files if isinstance(files, dict) else None


def _hashes_except(out_dir: Path, record: str) -> dict[str, str]:
    return {path.relative_to(out_dir).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(out_dir.rglob("*")) if path.is_file() and path.name != record}


def remove_stale_temp(parent: Path) -> list[Path]:
    """Remove the temporary folders a killed ``write_repo`` left in ``parent``: those whose owning process is gone.

    A folder of a live run (its pid is in the name) is never touched; one in the format of older releases (no pid)
    counts as stale once it is an hour old, so a run of such a release still going on is spared.
    """
    removed = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith((_TMP_PREFIX, _OLD_PREFIX)) or entry.is_symlink() or not entry.is_dir():
            continue
        rest = entry.name.removeprefix(_TMP_PREFIX).removeprefix(_OLD_PREFIX)
        pid_text = rest.split("-", 1)[0]
        if pid_text.isdigit():
            if _pid_alive(int(pid_text)):
                continue
        else:
            try:
                if time.time() - entry.stat().st_mtime < 3600:
                    continue
            except OSError:
                continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    old = None
    if out_dir.exists() or out_dir.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f"{_OLD_PREFIX}{os.getpid()}-{out_dir.name}-", dir=out_dir.parent))
        os.rmdir(old)
        os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except OSError:
        if old is not None:
            os.rename(old, out_dir)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
    # mkdtemp made the folder 0700; a repository is mounted into containers, so make it world-readable.
    for path in [out_dir, *out_dir.rglob("*")]:
        if path.is_dir() or (path.is_file() and path.stat().st_mode & 0o100):
            path.chmod(0o755)
        elif path.is_file():
            path.chmod(0o644)
