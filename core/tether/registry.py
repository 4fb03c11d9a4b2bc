"""The local record of every job this user submitted, so closing the DCC (or the terminal) loses nothing.

One sqlite file in the user data dir (``jobs.sqlite``), shared by every Blender and Nuke session and the CLI at
once: WAL mode so readers never block the writer, a busy timeout so two writers wait for each other instead of
failing, and only short ``BEGIN IMMEDIATE`` transactions (taking the write lock up front, so two processes cannot
deadlock upgrading a read to a write). The schema carries a version (``PRAGMA user_version``) and a list of
migrations, so a later Tether can add columns without losing what an earlier one recorded.

Only plain SQL that sqlite 3.7 understands is used (no UPSERT, no RETURNING): a DCC may link an old sqlite.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from .errors import ConfigError
from .fileio import private_file
from .jobs import Job, JobState

FILE_NAME = "jobs.sqlite"
BUSY_TIMEOUT_S = 15.0

_FINISHED = tuple(s.value for s in JobState if s.finished)

_COLUMNS = (
    "service", "job_id", "profile", "title", "source", "output_dir", "state", "raw_state", "progress",
    "submitted_at", "updated_at", "finished_at", "fetched_at", "error", "extra",
)


def _v1(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE IF NOT EXISTS jobs (
            service      TEXT NOT NULL,
            job_id       TEXT NOT NULL,
            profile      TEXT NOT NULL DEFAULT '',
            title        TEXT NOT NULL DEFAULT '',
            source       TEXT,
            output_dir   TEXT,
            state        TEXT NOT NULL,
            raw_state    TEXT NOT NULL DEFAULT '',
            progress     REAL NOT NULL DEFAULT 0,
            submitted_at TEXT NOT NULL,
            updated_at   TEXT NOT NULL,
            finished_at  TEXT,
            fetched_at   TEXT,
            error        TEXT,
            extra        TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (service, job_id)
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state)")
    db.execute("CREATE INDEX IF NOT EXISTS jobs_submitted ON jobs (submitted_at)")


def _v2(db: sqlite3.Connection) -> None:
    # The agent's hand-off queue (tether.agent): submissions a DCC or the command handed over, persisted so a
    # killed or rebooted agent resumes them. ``request`` is the service's own JSON form of its prepared request.
    db.execute(
        """CREATE TABLE IF NOT EXISTS queue (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            service      TEXT NOT NULL,
            profile      TEXT NOT NULL DEFAULT '',
            title        TEXT NOT NULL DEFAULT '',
            request      TEXT NOT NULL,
            output_dir   TEXT,
            fetch        INTEGER NOT NULL DEFAULT 1,
            priority     INTEGER NOT NULL DEFAULT 0,
            state        TEXT NOT NULL,
            job_id       TEXT,
            attempts     INTEGER NOT NULL DEFAULT 0,
            error        TEXT,
            created_at   TEXT NOT NULL,
            updated_at   TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS queue_state ON queue (state)")


# MIGRATIONS[i] takes the schema from version i to i + 1. Append, never edit a released one.
MIGRATIONS: List[Callable[[sqlite3.Connection], None]] = [_v1, _v2]
SCHEMA_VERSION = len(MIGRATIONS)


def default_path() -> Path:
    """``<user data dir>/jobs.sqlite``; the data dir honours ``TETHER_DATA_DIR`` (tests point it at a temp dir)."""
    try:
        from .settings import data_dir
    except ImportError:  # settings not importable (partial install): same rule, done here
        override = os.environ.get("TETHER_DATA_DIR")
        if override:
            return Path(override).expanduser() / FILE_NAME
        from platformdirs import user_data_dir

        return Path(user_data_dir("tether", appauthor=False)) / FILE_NAME
    return Path(data_dir()) / FILE_NAME


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: Optional[datetime]) -> Optional[str]:
    if value is None:
        return None
    if value.tzinfo is None:  # a vendor's naive timestamp: the services speak UTC
        value = value.replace(tzinfo=timezone.utc)
    # One fixed format, so the text sorts in time order.
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: Optional[str]) -> Optional[datetime]:
    if not value:
        return None
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def _state(value: str) -> JobState:
    try:
        return JobState(value)
    except ValueError:  # written by a newer Tether that knows more states
        return JobState.UNKNOWN


QUEUE_STATES = ("queued", "running", "done", "failed", "cancelled")
SETTLED_STATES = QUEUE_STATES[2:]  # a queue entry the agent is finished with
# the service URL a job went to when not its profile's (a Blender farm override): a record's extra keeps it here,
# as a queued hand-off's request does; the watchers, the agent and the add-on follow the job there
ENDPOINT_KEY = "endpoint"
GAVE_WAY_KEY = "gave_way"  # a queue entry's request counts here the times it gave way to a higher priority
_QUEUE_COLUMNS = ("id", "service", "profile", "title", "request", "output_dir", "fetch", "priority", "state",
                  "job_id", "attempts", "error", "created_at", "updated_at")


@dataclass(frozen=True)
class QueueEntry:
    """One hand-off in the agent's queue: ``queued`` -> ``running`` -> ``done`` (``job_id`` set) or ``failed``;
    ``cancelled`` by the user before it was a job."""

    id: int
    service: str
    profile: str
    title: str
    request: Dict[str, Any]
    output_dir: Optional[str]
    fetch: bool
    priority: int
    state: str
    job_id: Optional[str]
    attempts: int
    error: Optional[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> QueueEntry:
        v = dict(zip(_QUEUE_COLUMNS, row))
        created = _parse(v["created_at"]) or utcnow()
        return cls(id=int(v["id"]), service=v["service"], profile=v["profile"] or "", title=v["title"] or "",
                   request=json.loads(v["request"]), output_dir=v["output_dir"], fetch=bool(v["fetch"]),
                   priority=int(v["priority"]), state=v["state"], job_id=v["job_id"], attempts=int(v["attempts"]),
                   error=v["error"], created_at=created, updated_at=_parse(v["updated_at"]) or created)

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["created_at"], data["updated_at"] = _iso(self.created_at), _iso(self.updated_at)
        return data

    @property
    def resumed(self) -> bool:
        """Whether an earlier attempt ran (so it may have sent files or made the job): one that failed or was cut
        off, or one that gave way to a higher priority (:meth:`JobRegistry.give_way` does not count it in
        ``attempts``, and notes it in the request)."""
        return self.attempts > 1 or bool(self.request.get(GAVE_WAY_KEY)) or bool(self.request.get("done"))

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> QueueEntry:
        """An entry as :meth:`to_dict` gave it (the agent's ``/queue`` reply); other keys are left out."""
        return cls.from_row([data[k] if k != "request" else json.dumps(data[k]) for k in _QUEUE_COLUMNS])


@dataclass(frozen=True)
class JobRecord:
    """One row of the registry."""

    service: str
    job_id: str
    profile: str
    title: str
    source: Optional[str]
    output_dir: Optional[str]
    state: JobState
    raw_state: str
    progress: float
    submitted_at: datetime
    updated_at: datetime
    finished_at: Optional[datetime] = None
    fetched_at: Optional[datetime] = None
    error: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> Tuple[str, str]:
        return (self.service, self.job_id)

    @property
    def finished(self) -> bool:
        return self.state.finished

    @property
    def missing(self) -> bool:
        """The service no longer knows this job (deleted there), or never gave its id (an unconfirmed create): the
        watcher does not ask for it."""
        return bool(self.extra.get("missing") or self.unconfirmed)

    @property
    def unconfirmed(self) -> bool:
        """The reply to its create was lost and the service's list did not show it (tether.creation)."""
        return bool(self.extra.get("unconfirmed"))

    @property
    def state_label(self) -> str:
        if self.unconfirmed:
            return "unconfirmed: its create's reply was lost (tether jobs adopt)"
        if self.state is JobState.UNKNOWN:
            label = f"unknown ({self.raw_state})" if self.raw_state else "unknown"
        else:
            label = self.state.value
        return f"{label}, not found on the service" if self.missing else label

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["state_label"] = self.state_label
        for name in ("submitted_at", "updated_at", "finished_at", "fetched_at"):
            data[name] = _iso(data[name])
        return data

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> JobRecord:
        values = dict(zip(_COLUMNS, row))
        try:
            extra = json.loads(values["extra"] or "{}")
        except ValueError:
            extra = {}
        submitted = _parse(values["submitted_at"]) or utcnow()
        return cls(
            service=values["service"], job_id=values["job_id"], profile=values["profile"] or "",
            title=values["title"] or "", source=values["source"], output_dir=values["output_dir"],
            state=_state(values["state"]), raw_state=values["raw_state"] or "", progress=float(values["progress"] or 0),
            submitted_at=submitted, updated_at=_parse(values["updated_at"]) or submitted,
            finished_at=_parse(values["finished_at"]), fetched_at=_parse(values["fetched_at"]),
            error=values["error"], extra=extra if isinstance(extra, dict) else {},
        )


class JobRegistry:
    """The jobs this user submitted, in ``path`` (default: :func:`default_path`).

    One object may be shared by threads (a lock serialises its connection); any number of processes may open the
    same file. The file is opened on first use, so creating a registry costs nothing at start-up.
    """

    def __init__(self, path: Optional[Union[str, Path]] = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._db: Optional[sqlite3.Connection] = None
        self._lock = threading.RLock()

    # --- connection ------------------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            private_file(self.path)
            # isolation_level=None: we issue BEGIN ourselves, so every transaction is explicit and short.
            db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                 check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the job registry {self.path}: {exc}; check the folder is writable "
                "(or set TETHER_DATA_DIR to another folder)"
            ) from None
        try:
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            # WAL lets a DCC read while the CLI writes. A file system without shared memory (some network shares)
            # refuses it; sqlite then keeps its rollback journal, which is slower but still correct.
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            self._migrate(db)
        except sqlite3.DatabaseError as exc:
            db.close()
            raise ConfigError(
                f"the job registry {self.path} is not readable ({exc}); move it aside and Tether starts a new one"
            ) from None
        self._db = db
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        target = len(MIGRATIONS)
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version == target:
            return
        if version > target:
            raise ConfigError(
                f"the job registry {self.path} was written by a newer Tether (schema {version}, this one knows "
                f"{target}): update Tether in this application too"
            )
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock.
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            for step in MIGRATIONS[version:]:
                step(db)
            db.execute(f"PRAGMA user_version = {target}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._connect()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> JobRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- queries ---------------------------------------------------------------------------------------------
    @staticmethod
    def _fetch(db: sqlite3.Connection, service: str, job_id: str) -> Optional[JobRecord]:
        row = db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE service = ? AND job_id = ?", (service, str(job_id))
        ).fetchone()
        return JobRecord.from_row(row) if row else None

    def get(self, service: str, job_id: str) -> Optional[JobRecord]:
        with self._read() as db:
            return self._fetch(db, service, job_id)

    def find(self, job_id: str, service: Optional[str] = None) -> List[JobRecord]:
        """Every record with this id (one per service that has it), for commands given a bare id."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE job_id = ?"
        params: List[Any] = [str(job_id)]
        if service:
            sql += " AND service = ?"
            params.append(service)
        with self._read() as db:
            return [JobRecord.from_row(r) for r in db.execute(sql + " ORDER BY service", params).fetchall()]

    def unfetched(self) -> List[JobRecord]:
        """Completed jobs with an output folder whose outputs were not fetched yet, oldest first: however many
        jobs the registry holds (the agent brings them home)."""
        sql = (f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE state = ? AND fetched_at IS NULL"
               " AND output_dir IS NOT NULL AND output_dir != '' ORDER BY submitted_at, job_id")
        with self._read() as db:
            return [JobRecord.from_row(r) for r in db.execute(sql, (JobState.COMPLETED.value,)).fetchall()]

    def list(
        self,
        service: Optional[str] = None,
        profile: Optional[str] = None,
        source: Optional[str] = None,
        unfinished_only: bool = False,
        limit: Optional[int] = None,
    ) -> List[JobRecord]:
        """Newest first."""
        where: List[str] = []
        params: List[Any] = []
        for column, value in (("service", service), ("profile", profile), ("source", source)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if unfinished_only:
            where.append(f"state NOT IN ({', '.join('?' for _ in _FINISHED)})")
            params.extend(_FINISHED)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY submitted_at DESC, job_id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._read() as db:
            return [JobRecord.from_row(r) for r in db.execute(sql, params).fetchall()]

    def count(self) -> int:
        with self._read() as db:
            return int(db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])

    # --- writes ----------------------------------------------------------------------------------------------
    def record(
        self,
        *,
        service: str,
        job_id: str,
        profile: str = "",
        title: str = "",
        source: Optional[str] = None,
        output_dir: Optional[Union[str, Path]] = None,
        state: Optional[JobState] = None,
        raw_state: Optional[str] = None,
        progress: Optional[float] = None,
        submitted_at: Optional[datetime] = None,
        error: Optional[str] = None,
        extra: Optional[Dict[str, Any]] = None,
    ) -> JobRecord:
        """Record a submitted job. Recording it again fills in what is given and merges ``extra``."""
        now = _iso(utcnow())
        # Absolute: `tether jobs fetch` may run from another folder than the submit did.
        out = str(Path(output_dir).expanduser().absolute()) if output_dir is not None else None
        with self._write() as db:
            old = self._fetch(db, service, job_id)
            if old is None:
                new_state = state or JobState.QUEUED
                db.execute(
                    f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})",
                    (service, str(job_id), profile, title, source, out, new_state.value,
                     raw_state if raw_state is not None else "", float(progress or 0.0),
                     _iso(submitted_at) or now, now, now if new_state.finished else None, None, error,
                     json.dumps(extra or {}, default=str)),
                )
            else:
                merged = {**old.extra, **(extra or {})}
                new_state = state or old.state
                finished_at = _iso(old.finished_at) or (now if new_state.finished else None)
                db.execute(
                    "UPDATE jobs SET profile = ?, title = ?, source = ?, output_dir = ?, state = ?, raw_state = ?,"
                    " progress = ?, submitted_at = ?, updated_at = ?, finished_at = ?, error = ?, extra = ?"
                    " WHERE service = ? AND job_id = ?",
                    (profile or old.profile, title or old.title, source if source is not None else old.source,
                     out if out is not None else old.output_dir, new_state.value,
                     raw_state if raw_state is not None else old.raw_state,
                     float(progress) if progress is not None else old.progress,
                     _iso(submitted_at) or _iso(old.submitted_at), now, finished_at,
                     error if error is not None else old.error, json.dumps(merged, default=str),
                     service, str(job_id)),
                )
            result = self._fetch(db, service, job_id)
        assert result is not None
        return result

    def update_from(self, job: Job, profile: str = "") -> JobRecord:
        """Store what the service says about ``job`` (recording it if it was not known yet)."""
        return self.update_many([job], profile)[0][1]

    def update_many(self, jobs: Iterable[Job], profile: str = "") -> List[Tuple[Optional[JobRecord], JobRecord]]:
        """Store many service views in one short transaction; return ``(before, after)`` for each."""
        jobs = [*jobs]
        results: List[Tuple[Optional[JobRecord], JobRecord]] = []
        if not jobs:
            return results
        now = _iso(utcnow())
        with self._write() as db:
            for job in jobs:
                old = self._fetch(db, job.service, job.id)
                counts = {"counts": dict(job.counts)} if job.counts else {}
                if old is None:
                    extra = json.dumps(counts)
                    db.execute(
                        f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})",
                        (job.service, job.id, profile, job.title, None, None, job.state.value, job.raw_state,
                         job.progress, _iso(job.created_at) or now, now, self._finished_at(job, None, now), None,
                         job.error, extra),
                    )
                else:
                    merged = {**old.extra, **counts}
                    merged.pop("missing", None)  # the service answered for it: it exists
                    db.execute(
                        "UPDATE jobs SET profile = ?, title = ?, state = ?, raw_state = ?, progress = ?,"
                        " updated_at = ?, finished_at = ?, error = ?, extra = ? WHERE service = ? AND job_id = ?",
                        (old.profile or profile, job.title or old.title, job.state.value, job.raw_state,
                         job.progress, now, self._finished_at(job, old, now), job.error,
                         json.dumps(merged, default=str), job.service, job.id),
                    )
                after = self._fetch(db, job.service, job.id)
                assert after is not None
                results.append((old, after))
        return results

    @staticmethod
    def _finished_at(job: Job, old: Optional[JobRecord], now: Optional[str]) -> Optional[str]:
        if not job.state.finished:
            return None  # re-queued by the service: no longer finished
        if job.finished_at is not None:
            return _iso(job.finished_at)
        if old is not None and old.finished_at is not None:
            return _iso(old.finished_at)
        return now

    def mark_missing(self, service: str, job_id: str, message: str) -> Optional[JobRecord]:
        """The service no longer knows the job: keep the record (with why) but stop polling it."""
        with self._write() as db:
            old = self._fetch(db, service, job_id)
            if old is None:
                return None
            db.execute(
                "UPDATE jobs SET error = ?, extra = ?, updated_at = ? WHERE service = ? AND job_id = ?",
                (message, json.dumps({**old.extra, "missing": True}, default=str), _iso(utcnow()), service,
                 str(job_id)),
            )
            return self._fetch(db, service, job_id)

    def mark_fetched(self, service: str, job_id: str, dest: Optional[Union[str, Path]] = None) -> Optional[JobRecord]:
        """Note that the outputs were downloaded (to ``dest``, when given)."""
        with self._write() as db:
            old = self._fetch(db, service, job_id)
            if old is None:
                return None
            extra = ({**old.extra, "fetched_to": str(Path(dest).expanduser().absolute())} if dest is not None
                     else old.extra)
            db.execute(
                "UPDATE jobs SET fetched_at = ?, updated_at = ?, extra = ? WHERE service = ? AND job_id = ?",
                (_iso(utcnow()), _iso(utcnow()), json.dumps(extra, default=str), service, str(job_id)),
            )
            return self._fetch(db, service, job_id)

    def forget(self, service: str, job_id: str) -> bool:
        """Remove the record (the job itself is left alone on the service). True when there was one."""
        with self._write() as db:
            cursor = db.execute("DELETE FROM jobs WHERE service = ? AND job_id = ?", (service, str(job_id)))
            return cursor.rowcount > 0

    # --- the agent's hand-off queue ----------------------------------------------------------------------------
    def _entry(self, db: sqlite3.Connection, entry_id: int) -> Optional[QueueEntry]:
        row = db.execute(f"SELECT {', '.join(_QUEUE_COLUMNS)} FROM queue WHERE id = ?", (entry_id,)).fetchone()
        return QueueEntry.from_row(row) if row else None

    def enqueue(self, *, service: str, request: Dict[str, Any], profile: str = "", title: str = "",
                output_dir: Optional[Union[str, Path]] = None, fetch: bool = True, priority: int = 0) -> QueueEntry:
        """Persist a hand-off: from here on it survives the process that made it."""
        now = _iso(utcnow())
        out = str(Path(output_dir).expanduser().absolute()) if output_dir is not None else None
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO queue (service, profile, title, request, output_dir, fetch, priority, state, attempts,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?)",
                (service, profile, title, json.dumps(request, default=str), out, int(fetch), int(priority), now, now))
            entry = self._entry(db, int(cursor.lastrowid or 0))
        assert entry is not None
        return entry

    def queue_entry(self, entry_id: int) -> Optional[QueueEntry]:
        with self._read() as db:
            return self._entry(db, entry_id)

    def queue(self, states: Optional[Sequence[str]] = None) -> List[QueueEntry]:
        """Entries in the order the agent takes them: higher priority first, then oldest first."""
        sql = f"SELECT {', '.join(_QUEUE_COLUMNS)} FROM queue"
        params: List[Any] = []
        if states:
            sql += f" WHERE state IN ({', '.join('?' for _ in states)})"
            params.extend(states)
        with self._read() as db:
            rows = db.execute(sql + " ORDER BY priority DESC, id ASC", params).fetchall()
        return [QueueEntry.from_row(r) for r in rows]

    def claim(self) -> Optional[QueueEntry]:
        """Take the next queued entry (marking it running, one more attempt); None when nothing waits."""
        with self._write() as db:
            row = db.execute("SELECT id FROM queue WHERE state = 'queued' ORDER BY priority DESC, id ASC LIMIT 1"
                             ).fetchone()
            if row is None:
                return None
            db.execute("UPDATE queue SET state = 'running', attempts = attempts + 1, updated_at = ? WHERE id = ?",
                       (_iso(utcnow()), row[0]))
            return self._entry(db, int(row[0]))

    def settle(self, entry_id: int, state: str, *, job_id: Optional[str] = None,
               error: Optional[str] = None) -> Optional[QueueEntry]:
        """Move an entry to ``state`` (one of :data:`QUEUE_STATES`), with the job it made or why it stopped."""
        if state not in QUEUE_STATES:
            raise ValueError(f"unknown queue state {state!r}")
        with self._write() as db:
            db.execute("UPDATE queue SET state = ?, job_id = COALESCE(?, job_id), error = ?, updated_at = ?"
                       " WHERE id = ?", (state, job_id, error, _iso(utcnow()), entry_id))
            return self._entry(db, entry_id)

    def withdraw(self, entry_id: int, states: Sequence[str] = ("queued", "failed")) -> Optional[QueueEntry]:
        """Cancel a hand-off that is in one of ``states`` (by default: not being uploaded): the entry, now
        ``cancelled``; None when it is not (an agent took it meanwhile: only that agent can stop it)."""
        with self._write() as db:
            changed = db.execute(f"UPDATE queue SET state = 'cancelled', updated_at = ? WHERE id = ? AND state IN "
                                 f"({', '.join('?' for _ in states)})", (_iso(utcnow()), entry_id, *states)).rowcount
            return self._entry(db, entry_id) if changed else None

    def give_way(self, entry_id: int) -> Optional[QueueEntry]:
        """A running entry that stopped for one of higher priority goes back to the queue; the attempt is not
        counted (it met no fault)."""
        with self._write() as db:
            entry = self._entry(db, entry_id)
            if entry is None or entry.state != "running":
                return entry
            request = {**entry.request, GAVE_WAY_KEY: int(entry.request.get(GAVE_WAY_KEY) or 0) + 1}
            db.execute("UPDATE queue SET state = 'queued', attempts = MAX(attempts - 1, 0), request = ?, "
                       "updated_at = ? WHERE id = ?", (json.dumps(request, default=str), _iso(utcnow()), entry_id))
            return self._entry(db, entry_id)

    def outranked(self, entry_id: int) -> bool:
        """Whether a queued entry has a higher priority than this one (which then gives way between files)."""
        with self._read() as db:
            row = db.execute("SELECT 1 FROM queue WHERE state = 'queued' AND priority > "
                             "(SELECT priority FROM queue WHERE id = ?) LIMIT 1", (entry_id,)).fetchone()
        return row is not None

    def set_priority(self, entry_id: int, priority: int) -> QueueEntry:
        """Change a waiting (or running) hand-off's priority: higher goes first."""
        with self._write() as db:
            entry = self._entry(db, entry_id)
            if entry is None:
                raise ConfigError(f"the agent's queue has no entry {entry_id}: `tether agent queue` lists them")
            if entry.state not in ("queued", "running"):
                raise ConfigError(f"queue entry {entry_id} is {entry.state}: only a queued or running hand-off "
                                  "has a priority to change")
            db.execute("UPDATE queue SET priority = ?, updated_at = ? WHERE id = ?",
                       (int(priority), _iso(utcnow()), entry_id))
            changed = self._entry(db, entry_id)
        assert changed is not None
        return changed

    def checkpoint(self, entry_id: int, done: Dict[str, Any]) -> None:
        """Note the steps of a running hand-off its service confirmed (in its request, under ``done``): a resumed
        attempt skips them (tether.handoff.Steps)."""
        with self._write() as db:
            row = db.execute("SELECT request FROM queue WHERE id = ?", (entry_id,)).fetchone()
            if row is None:
                return
            request = {**json.loads(row[0]), "done": done}
            db.execute("UPDATE queue SET request = ?, updated_at = ? WHERE id = ?",
                       (json.dumps(request, default=str), _iso(utcnow()), entry_id))

    def prune_queue(self, before: datetime, states: Sequence[str] = SETTLED_STATES) -> List[QueueEntry]:
        """Delete the entries in ``states`` (settled ones only) last changed before ``before``; those deleted, whose
        kept folders the caller may remove. A waiting or uploading entry is never touched."""
        if not states or set(states) - set(SETTLED_STATES):
            raise ValueError(f"only settled queue entries ({', '.join(SETTLED_STATES)}) are pruned, not {states!r}")
        where = f"state IN ({', '.join('?' for _ in states)}) AND updated_at < ?"
        params = (*states, _iso(before))
        with self._write() as db:
            rows = db.execute(f"SELECT {', '.join(_QUEUE_COLUMNS)} FROM queue WHERE {where}", params).fetchall()
            db.execute(f"DELETE FROM queue WHERE {where}", params)
        return [QueueEntry.from_row(r) for r in rows]

    def requeue_running(self) -> int:
        """Entries a dead agent left running go back to the queue (the agent resumes them on start)."""
        with self._write() as db:
            return int(db.execute("UPDATE queue SET state = 'queued', updated_at = ? WHERE state = 'running'",
                                  (_iso(utcnow()),)).rowcount)


__all__ = ["ENDPOINT_KEY", "MIGRATIONS", "QUEUE_STATES", "SCHEMA_VERSION", "SETTLED_STATES", "JobRecord", "JobRegistry",
           "QueueEntry", "default_path"]
