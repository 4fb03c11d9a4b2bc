"""The local farm's content-addressed file store: ``blobs/<md5[:2]>/<md5>``, written once, read-only after.

An upload streams into ``tmp/`` while it is hashed and is renamed into place only when its md5 matches the one the
client claimed, so a broken or corrupted upload never becomes a blob. Jobs hard-link blobs into their workspace
(blobs are read-only, so a render cannot change a stored file through the link).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path
from typing import Dict, Optional


class Md5Mismatch(Exception):
    def __init__(self, claimed: str, actual: str, size: int) -> None:
        super().__init__(f"md5 mismatch: claimed {claimed}, received {actual} ({size} bytes)")
        self.claimed, self.actual, self.size = claimed, actual, size


class BlobWriter:
    """Receives one upload: hashes and writes each piece as it arrives."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        fd, name = tempfile.mkstemp(dir=store.tmp, prefix="upload-")
        self.tmp_path = Path(name)
        self._fh = os.fdopen(fd, "wb")
        self._md5 = hashlib.md5()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._md5.update(data)
        self._fh.write(data)
        self.size += len(data)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()
        with contextlib.suppress(OSError):
            self.tmp_path.unlink()

    def finish(self, claimed: Optional[str]) -> str:
        """Verify against the claimed md5 and store; returns the md5. Raises :class:`Md5Mismatch`."""
        self._fh.close()
        actual = self._md5.hexdigest()
        if claimed is not None and claimed.lower() != actual:
            self.abort()
            raise Md5Mismatch(claimed, actual, self.size)
        target = self.store.path(actual)
        if target.exists():
            self.tmp_path.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(self.tmp_path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            os.replace(self.tmp_path, target)
        with self.store.lock:
            self.store.sizes[actual] = self.size
        return actual


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.tmp = self.root / "tmp"
        self.blobs.mkdir(parents=True, exist_ok=True)
        # uploads a killed server left half-written; nothing else is in tmp/ before the app answers
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.sizes: Dict[str, int] = {}

    def path(self, md5: str) -> Path:
        return self.blobs / md5[:2] / md5

    def size_of(self, md5: str) -> Optional[int]:
        with self.lock:
            if md5 in self.sizes:
                return self.sizes[md5]
        try:
            return self.path(md5).stat().st_size
        except OSError:
            return None

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def materialise(self, md5: str, dest: Path) -> None:
        """Put the blob at ``dest``: a hard link when the file system allows, else a copy."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
        try:
            os.link(self.path(md5), dest)
        except OSError:
            shutil.copyfile(self.path(md5), dest)
