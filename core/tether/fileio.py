"""Files on the artist's disk: small files written whole (a reader, another DCC session or a crash restart, sees the
old file or the new one), and output folders checked before anything is sent."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import List, Optional, Union

from .errors import InputError

# errors that mean "this disk is full" (or a quota or file size limit says so): no retry helps
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def write_text_atomic(path: Union[str, Path], text: str, *, durable: bool = True) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` through a temporary file in the same folder, then rename
    it into place. ``durable`` flushes it to disk first, so a power cut cannot leave an empty file behind."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def _limit(folder: Path, name: str, default: int) -> int:
    try:
        return int(os.pathconf(folder, name))
    except (AttributeError, OSError, ValueError):  # Windows has no pathconf
        return default


SHOWN = 5  # names a message lists before "and N more"


def summarise(items: List[str], what: str, listing: Optional[Path] = None, shown: int = SHOWN) -> str:
    """``"3 missing files: a, b, c"``, or with more than ``shown``: the count, the first names and, when ``listing``
    is given, the whole list written there one a line (a message stays one readable line however long the list)."""
    head = f"{len(items)} {what}: {', '.join(items[:shown])}"
    if len(items) <= shown:
        return head
    more = f"{head} and {len(items) - shown} more"
    if listing is None:
        return more
    try:
        write_text_atomic(listing, "".join(f"{item}\n" for item in items), durable=False)
    except OSError as exc:
        return f"{more} (the full list could not be written to {listing}: {exc.strerror})"
    return f"{more} (all {len(items)} listed in {listing})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # someone else's process, or no way to tell: leave its folder alone
        return True
    return True


def sweep_staging(prefix: str) -> int:
    """Remove ``<tmp>/<prefix><pid>-*`` folders whose process is gone (killed, or a power cut); returns how many."""
    removed = 0
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*-*"):
        pid = folder.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)) and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


@contextlib.contextmanager
def staging(prefix: str) -> Iterator[Path]:
    """A private temporary folder for copies of the artist's files, removed on any exit this process sees
    (`tether` turns SIGTERM and SIGHUP into one); what a killed process left is removed by the next one."""
    sweep_staging(prefix)
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def private_dir(path: Union[str, Path]) -> Path:
    """``path`` made if missing, readable by its owner only (0700): job titles, paths and user names live there."""
    folder = Path(path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # a folder we do not own (a studio share) stays as it is
        os.chmod(folder, 0o700)
    return folder


def private_file(path: Union[str, Path]) -> Path:
    """``path`` made if missing and set to 0600, before a database opens it (SQLite gives its -wal and -shm files
    the database file's mode)."""
    target = Path(path)
    os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o600))
    with contextlib.suppress(OSError):
        os.chmod(target, 0o600)
    return target


def _exists(path: Path, follow: bool = True) -> bool:
    try:
        os.stat(path, follow_symlinks=follow)
        return True
    except OSError:  # missing, or a name too long to look up: either way nothing is there
        return False


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def output_dir_problem(folder: Union[str, Path], needed: Optional[int] = None) -> Optional[str]:
    """Why results could not be written into ``folder``, in words, or None. Nothing is created: the nearest folder
    that exists must take a new entry (a probe file is made and removed there), every name on the way must fit the
    file system, no regular file may stand in the way, and ``needed`` bytes (when known) must be free."""
    path = Path(folder).expanduser().absolute()
    existing = path
    while not _exists(existing) and existing != existing.parent:
        if _exists(existing, follow=False):  # a dangling link: the folder cannot be made through it
            return f"the output folder {path} cannot be made: {existing} is a broken symbolic link"
        existing = existing.parent
    if not existing.is_dir():
        return (f"the output folder {path} cannot be made: {existing} is a file, not a folder; "
                "choose another output folder")
    name_max = _limit(existing, "PC_NAME_MAX", 255)
    for part in path.parts[1:]:
        if len(os.fsencode(part)) > name_max:
            return (f"the output folder name {part[:40]}... is {len(os.fsencode(part))} bytes long; this file system "
                    f"takes {name_max} at most: choose a shorter name")
    path_max = _limit(existing, "PC_PATH_MAX", 4096)
    if len(os.fsencode(str(path))) >= path_max:
        return f"the output folder's path is {len(os.fsencode(str(path)))} bytes long; at most {path_max - 1} fit"
    try:
        fd, probe = tempfile.mkstemp(prefix=".tether-probe-", dir=str(existing))
    except OSError as exc:
        where = existing if existing == path else f"{existing} (where {path} would be made)"
        return (f"the output folder {where} is not writable ({exc.strerror}); choose a folder you may write to, "
                "or fix its permissions")
    os.close(fd)
    os.unlink(probe)
    if needed is not None:
        free = shutil.disk_usage(existing).free
        if free < needed:
            return (f"the output folder {path} needs {human_bytes(needed)} but its disk has {human_bytes(free)} free; "
                    "free some space or choose another disk")
    return None


def check_output_dir(folder: Union[str, Path], needed: Optional[int] = None) -> None:
    """:func:`output_dir_problem` as an :class:`InputError`."""
    problem = output_dir_problem(folder, needed)
    if problem is not None:
        raise InputError(problem)


__all__ = ["DISK_FULL", "check_output_dir", "human_bytes", "output_dir_problem", "private_dir", "private_file",
           "staging", "summarise", "sweep_staging", "write_text_atomic"]
