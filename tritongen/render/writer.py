"""Write a rendered repository safely: into a temporary sibling, validated, then swapped into place.

A failure never leaves a half-written or mixed repository behind; a folder tritongen did not write (or one edited
since) is not replaced without ``force``; the temporary folders of a killed run are cleaned up by the next one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from ..errors import OutputError, RepoExistsError, UsageError, ValidationFailed
from ..repo.lock import LOCK_NAME, file_hashes, read_lock, write_lock
from ..repo.validate import Report, validate_repo
from ..resolve import Deployment, resolve
from ..spec import Spec
from .tree import render_into

_TMP_PREFIX = ".tritongen-tmp-"
_OLD_PREFIX = ".tritongen-old-"


def check_overwritable(out_dir: Path) -> None:
    """Refuse to replace a directory tritongen did not create, or one edited since it was written."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise RepoExistsError(f"{out_dir} exists and is not a directory", hint="pass --force to replace it")
    if not any(out_dir.iterdir()):
        return
    lock = read_lock(out_dir)
    if lock is None:
        raise RepoExistsError(
            f"{out_dir} exists and was not created by tritongen (no {LOCK_NAME})",
            hint="choose another --name/--out, or pass --force to replace it",
        )
    recorded = lock.get("files") or {}
    current = file_hashes(out_dir)
    changed = sorted(p for p in recorded if current.get(p) != recorded[p])
    added = sorted(p for p in current if p not in recorded)
    if changed or added:
        what = ", ".join([*(f"{p} changed" for p in changed), *(f"{p} added" for p in added)][:5])
        raise RepoExistsError(
            f"{out_dir} was edited after tritongen wrote it ({what})",
            hint="move your edits into the spec, or pass --force to overwrite them",
        )


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
    tmp = None
    report = None
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp(out_dir.parent)
        # The owner's pid is in the name, so that a later run can tell a dead run's leftovers from a live run's.
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-{out_dir.name}-", dir=out_dir.parent))
        render_into(deployment, tmp)
        write_lock(deployment, tmp)
        if validate:
            report = validate_repo(tmp, display_root=out_dir)
            if report.errors:
                raise ValidationFailed(report.errors, hint="the repository was not written; fix the spec")
        _swap_into_place(tmp, out_dir)
    except OSError as exc:
        # Disk full, read-only file system, permissions: the render went to a temporary sibling, so the
        # repository that was there (if any) is untouched.
        what = exc.strerror or str(exc)
        raise OutputError(f"cannot write {out_dir}: {what}" + (f" ({exc.filename})" if exc.filename else ""),
                          hint="nothing was changed; free space or pick another --out, then run again") from None
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir, report


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
        if path.is_dir():
            path.chmod(0o755)
        elif path.is_file():
            path.chmod(0o644)
