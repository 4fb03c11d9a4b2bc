"""The local farm's durable state: one SQLite file, ``<state_dir>/farm.sqlite3``, next to the upload store.

It keeps what a restart of ``tether serve`` must not forget: projects, upload bindings (path -> md5), access tokens
(as SHA-256 hashes with a wall-clock expiry, never the token itself), jobs with their tasks and delivered frames,
the next job sequence number, the billing ledger and transactions. Uploaded blobs, workspaces and outputs are files
under the same state_dir already.

The engine writes through on every change, under its own lock (one connection, used by one thread at a time).
``transaction()`` nests, so one engine action (a task finishing, which may fail the job and charge it) is one commit.
WAL with ``synchronous=NORMAL``: a commit is not an fsync, and a killed server still finds every committed change.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from tether.errors import ConfigError

SCHEMA_VERSION = 1
FILENAME = "farm.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (id TEXT PRIMARY KEY, name TEXT NOT NULL, archived INTEGER NOT NULL,
    created_at TEXT, pos INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bindings (path TEXT PRIMARY KEY, md5 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, request TEXT NOT NULL,
    bound TEXT NOT NULL, priority INTEGER NOT NULL, phase TEXT NOT NULL, held INTEGER NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, finished_at TEXT, error TEXT, scene TEXT NOT NULL,
    render_seconds REAL NOT NULL, cost REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (job_id TEXT NOT NULL, idx INTEGER NOT NULL, id TEXT NOT NULL, frames TEXT NOT NULL,
    spec TEXT NOT NULL, scout INTEGER NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
    failures INTEGER NOT NULL, started_at TEXT, finished_at TEXT, error TEXT, PRIMARY KEY (job_id, idx));
CREATE TABLE IF NOT EXISTS frames (job_id TEXT NOT NULL, frame INTEGER NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (job_id, frame));
CREATE TABLE IF NOT EXISTS ledger (at TEXT NOT NULL, seconds REAL NOT NULL, cost REAL NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (pos INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL);
"""


class FarmStateError(ConfigError):
    """The state file cannot be used; the message names it and says what to do."""


def unreadable(path: Path, why: object) -> FarmStateError:
    return FarmStateError(
        f"the local farm's state file {path} cannot be read ({why}); stop the server, move that file aside "
        "(a backup or an empty farm: jobs are forgotten, uploads and job folders stay) and start it again")


class FarmDB:
    """Write-through store of the farm's state. ``path=None``: nothing is kept (every call is a no-op)."""

    def __init__(self, path: Optional[Path]) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        self._conn: Optional[sqlite3.Connection] = None
        self.fresh = True
        if path is None:
            return
        try:
            conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise unreadable(path, exc) from None
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            check = conn.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                raise unreadable(path, f"integrity check: {check[0] if check else 'no answer'}")
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif row[0] != str(SCHEMA_VERSION):
                raise unreadable(path, f"schema version {row[0]}, this Tether reads version {SCHEMA_VERSION}")
            self.fresh = conn.execute("SELECT value FROM meta WHERE key = 'initialised'").fetchone() is None
        except sqlite3.Error as exc:
            conn.close()
            raise unreadable(path, exc) from None
        except FarmStateError:
            conn.close()
            raise
        self._conn = conn

    @property
    def enabled(self) -> bool:
        return self._conn is not None

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            conn = self._conn
            if conn is None:
                yield
                return
            if self._depth == 0:
                conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0 and self._conn is not None:
                    conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if self._depth == 0 and self._conn is not None:
                conn.execute("COMMIT")

    def _run(self, sql: str, params: Any = ()) -> None:
        with self.transaction():
            if self._conn is not None:
                self._conn.execute(sql, params)

    def _many(self, sql: str, rows: Sequence[Any]) -> None:
        with self.transaction():
            if self._conn is not None and rows:
                self._conn.executemany(sql, rows)

    # --- meta ---------------------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> Optional[str]:
        with self._lock:
            if self._conn is None:
                return None
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._run("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- small tables -------------------------------------------------------------------------------------------
    def save_project(self, project: Dict[str, Any], pos: int) -> None:
        self._run("INSERT OR REPLACE INTO projects VALUES (?, ?, ?, ?, ?)",
                  (project["id"], project["name"], int(project["archived"]), project["created_at"], pos))

    def bind(self, path: str, md5: str) -> None:
        self._run("INSERT OR REPLACE INTO bindings VALUES (?, ?)", (path, md5))

    def add_token(self, digest: str, expires: float) -> None:
        self._run("INSERT OR REPLACE INTO tokens VALUES (?, ?)", (digest, expires))

    def drop_tokens(self, digest: Optional[str] = None, *, expired_before: Optional[float] = None) -> None:
        if digest is not None:
            self._run("DELETE FROM tokens WHERE hash = ?", (digest,))
        elif expired_before is not None:
            self._run("DELETE FROM tokens WHERE expires < ?", (expired_before,))
        else:
            self._run("DELETE FROM tokens")

    def add_ledger(self, at: str, seconds: float, cost: float) -> None:
        self._run("INSERT INTO ledger VALUES (?, ?, ?)", (at, seconds, cost))

    def add_transaction(self, transaction: Dict[str, Any]) -> None:
        self._run("INSERT INTO transactions (data) VALUES (?)", (json.dumps(transaction),))

    # --- jobs ---------------------------------------------------------------------------------------------------
    def save_job(self, row: Dict[str, Any], tasks: List[Dict[str, Any]]) -> None:
        with self.transaction():
            self._run("INSERT OR REPLACE INTO jobs VALUES (:id, :seq, :request, :bound, :priority, :phase, :held, "
                      ":created_at, :updated_at, :finished_at, :error, :scene, :render_seconds, :cost)", row)
            self._many("INSERT OR REPLACE INTO tasks VALUES (:job_id, :idx, :id, :frames, :spec, :scout, :status, "
                       ":attempts, :failures, :started_at, :finished_at, :error)", tasks)

    def add_frame(self, job_id: str, frame: int, name: str, updated_at: str) -> None:
        with self.transaction():
            self._run("INSERT OR REPLACE INTO frames VALUES (?, ?, ?)", (job_id, frame, name))
            self._run("UPDATE jobs SET updated_at = ? WHERE id = ?", (updated_at, job_id))

    def delete_job(self, job_id: str) -> None:
        with self.transaction():
            for table, column in (("frames", "job_id"), ("tasks", "job_id"), ("jobs", "id")):
                self._run(f"DELETE FROM {table} WHERE {column} = ?", (job_id,))

    # --- loading ------------------------------------------------------------------------------------------------
    def load(self) -> Dict[str, Any]:
        """Everything, as plain rows; the engine rebuilds its objects. Raises :class:`FarmStateError`."""
        assert self.path is not None and self._conn is not None
        conn = self._conn
        try:
            with self._lock:
                conn.row_factory = sqlite3.Row
                try:
                    state: Dict[str, Any] = {
                        "projects": [dict(r) for r in conn.execute("SELECT * FROM projects ORDER BY pos")],
                        "bindings": {r["path"]: r["md5"] for r in conn.execute("SELECT * FROM bindings")},
                        "tokens": {r["hash"]: float(r["expires"]) for r in conn.execute("SELECT * FROM tokens")},
                        "ledger": [(r["at"], float(r["seconds"]), float(r["cost"]))
                                   for r in conn.execute("SELECT * FROM ledger ORDER BY rowid")],
                        "transactions": [json.loads(r["data"])
                                         for r in conn.execute("SELECT data FROM transactions ORDER BY pos")],
                        "jobs": [dict(r) for r in conn.execute("SELECT * FROM jobs ORDER BY seq")],
                    }
                    tasks: Dict[str, List[Dict[str, Any]]] = {}
                    for r in conn.execute("SELECT * FROM tasks ORDER BY job_id, idx"):
                        task = dict(r)
                        task["frames"] = json.loads(task["frames"])
                        tasks.setdefault(task["job_id"], []).append(task)
                    frames: Dict[str, List[Tuple[int, str]]] = {}
                    for r in conn.execute("SELECT * FROM frames"):
                        frames.setdefault(r["job_id"], []).append((int(r["frame"]), str(r["name"])))
                finally:
                    conn.row_factory = None
        except (sqlite3.Error, ValueError, TypeError) as exc:
            raise unreadable(self.path, exc) from None
        for job in state["jobs"]:
            try:
                job["request"] = json.loads(job["request"])
                job["bound"] = json.loads(job["bound"])
            except ValueError as exc:
                raise unreadable(self.path, f"job {job['id']}: {exc}") from None
            job["tasks"] = tasks.get(job["id"], [])
            job["frames"] = frames.get(job["id"], [])
        return state
