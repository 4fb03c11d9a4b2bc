"""Talking to the Tether agent: the one per-user background process that owns uploads, job watching and downloads.

A DCC or the command hands a prepared submission over (:func:`hand_off`): it is written to the agent's queue in the
job registry's sqlite first, so it survives the process that made it, and the agent is woken (or started). The
agent itself is :mod:`tether.agent_server`; this module is what every client needs and loads no server code.

The channel only this user can open: a Unix socket (0600) in a private runtime folder (0700). Where there are no
Unix sockets (Windows), the agent listens on loopback and every request carries a token read from a 0600 file in
the same folder. Requests are plain HTTP with JSON bodies, through httpx (``HTTPTransport(uds=...)``).

``TETHER_AGENT`` chooses: ``auto`` (default: use a running agent, start one when none runs), ``off`` (never: work
in-process, as on a render node or in CI; ``--no-agent`` does the same for one command).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Union, cast

from .errors import ConfigError, ServiceError
from .fileio import private_dir
from .jobs import Job, JobService
from .poll import SYSTEM_CLOCK, Clock
from .registry import ENDPOINT_KEY, SETTLED_STATES, JobRecord, JobRegistry, QueueEntry
from .watch import ClientFactory, JobChange, Watcher

SOCKET_NAME = "agent.sock"
TOKEN_NAME = "agent.token"  # loopback channel only (no Unix sockets)
PORT_NAME = "agent.port"
LOCK_NAME = "agent.lock"
LOG_NAME = "agent.log"
TOKEN_HEADER = "X-Tether-Agent-Token"
RECORD_KEY = "record"  # a queued request's keys the agent reads itself (the service's run_handoff ignores them)
START_TIMEOUT = 20.0

UNIX_SOCKETS = hasattr(socket, "AF_UNIX")  # Windows builds of Python have none


def runtime_dir() -> Path:
    """The agent's private folder (0700): ``TETHER_RUNTIME_DIR``, else platformdirs' user runtime dir."""
    from .settings import user_dir

    folder = private_dir(user_dir("TETHER_RUNTIME_DIR", "user_runtime_dir"))
    if hasattr(os, "getuid"):
        info = folder.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise ConfigError(f"the agent's folder {folder} is not private to this user (owner {info.st_uid}, mode "
                              f"{oct(info.st_mode & 0o777)}): remove it, or set TETHER_RUNTIME_DIR to a folder of "
                              "your own")
    return folder


def socket_path() -> Path:
    return runtime_dir() / SOCKET_NAME


def log_path() -> Path:
    from .settings import data_dir

    return private_dir(data_dir()) / LOG_NAME


def mode() -> str:
    value = os.environ.get("TETHER_AGENT", "auto").strip().lower() or "auto"
    if value not in ("auto", "off"):
        raise ConfigError(f"TETHER_AGENT={value!r} is not one of auto, off")
    return value


def new_token(folder: Path) -> str:
    """A fresh token in ``folder``/agent.token, readable by this user only (the loopback channel's key)."""
    token = secrets.token_urlsafe(32)
    path = folder / TOKEN_NAME
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return token


class AgentNotRunning(ConfigError):
    """No agent answers on this user's channel."""


class AgentClient:
    """Requests to the running agent. Raises :class:`AgentNotRunning` when none answers."""

    def __init__(self, folder: Optional[Path] = None, timeout: float = 10.0) -> None:
        import httpx

        self.folder = folder or runtime_dir()
        headers: Dict[str, str] = {}
        if UNIX_SOCKETS:
            transport = httpx.HTTPTransport(uds=str(self.folder / SOCKET_NAME))
            base = "http://agent"
        else:  # pragma: no cover - Windows: loopback with the token only this user can read
            try:
                port = int((self.folder / PORT_NAME).read_text())
                headers[TOKEN_HEADER] = (self.folder / TOKEN_NAME).read_text().strip()
            except (OSError, ValueError):
                raise AgentNotRunning("the Tether agent is not running") from None
            transport = httpx.HTTPTransport()
            base = f"http://127.0.0.1:{port}"
        self._http = httpx.Client(transport=transport, base_url=base, headers=headers, timeout=timeout)

    def call(self, method: str, path: str, body: Optional[Dict[str, Any]] = None,
             timeout: Optional[float] = None) -> Any:
        import httpx

        try:
            reply = self._http.request(method, path, json=body,
                                       timeout=timeout if timeout is not None else self._http.timeout)
        except (httpx.TransportError, FileNotFoundError) as exc:  # no socket, or one closing as we ask
            raise AgentNotRunning(f"the Tether agent is not running ({type(exc).__name__})") from None
        data = reply.json()
        if reply.status_code >= 400:
            raise ConfigError(f"the Tether agent refused {method} {path}: {data.get('error', reply.text)}")
        return data

    def status(self) -> Dict[str, Any]:
        return dict(self.call("GET", "/status"))

    def queue(self, states: Sequence[str] = ()) -> List[Dict[str, Any]]:
        """The queue's entries (:meth:`~tether.registry.QueueEntry.to_dict`, the one uploading now with its ``phase``,
        ``bytes_done`` and ``bytes_total``), only those in ``states`` when given."""
        return list(self.call("GET", "/queue" + (f"?states={','.join(states)}" if states else ""))["entries"])

    def jobs(self, after: int = -1, wait: float = 0.0) -> Dict[str, Any]:
        """The agent's view of the watched jobs; with ``wait``, held until a cycle after ``after`` has run."""
        return dict(self.call("GET", f"/jobs?after={after}&wait={wait}", timeout=wait + 10.0))

    def home(self, service: str, job_id: str, wait: float = 0.0) -> Dict[str, Any]:
        """Whether the job's results came home (:meth:`tether.agent_server.Agent.home`), held until they do, at most
        ``wait`` seconds."""
        from urllib.parse import urlencode

        query = urlencode({"service": service, "job": job_id, "wait": wait})
        return dict(self.call("GET", f"/home?{query}", timeout=wait + 10.0))

    def wake(self, poll: bool = False) -> None:
        """Have the agent look at its queue now; ``poll``: and poll the services now."""
        self.call("POST", "/wake?poll=1" if poll else "/wake")

    def pause(self) -> Dict[str, Any]:
        return dict(self.call("POST", "/pause"))

    def resume(self) -> Dict[str, Any]:
        return dict(self.call("POST", "/resume"))

    def stop(self) -> Dict[str, Any]:
        return dict(self.call("POST", "/stop"))

    def cancel(self, entry_id: int, wait: float = 30.0) -> Dict[str, Any]:
        """Cancel hand-off ``entry_id`` (:meth:`tether.agent_server.Agent.cancel`): the entry as it ended, held
        until an upload in flight has stopped (at most ``wait`` seconds)."""
        return dict(self.call("POST", f"/cancel?id={int(entry_id)}&wait={wait}", timeout=wait + 10.0))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def running() -> Optional[Dict[str, Any]]:
    """The running agent's status, or None."""
    try:
        with AgentClient() as client:
            return client.status()
    except AgentNotRunning:
        return None


def agent_command() -> Optional[List[str]]:
    """How to start ``tether agent`` from here: this Python when it is one (the command), else ``tether`` on PATH
    (a DCC's executable is Blender or Nuke, not a Python that runs modules)."""
    exe = Path(sys.executable or "")
    if exe.name.lower().startswith("python"):
        return [str(exe), "-m", "tether_cli", "agent", "--detached"]
    found = shutil.which("tether")
    return [found, "agent", "--detached"] if found else None


def _import_roots() -> List[str]:
    """Folders outside this Python's own site-packages that Tether and its dependencies were imported from (a DCC's
    extension or plugin folder): the agent is given them, and nothing else of this process's path (a DCC's own
    modules there would shadow what the agent's children import)."""
    import importlib.util
    import sysconfig

    own = {str(Path(sysconfig.get_paths()[k]).resolve()) for k in ("purelib", "platlib")}
    roots: List[str] = []
    for name in ("tether", "tether_cli", "httpx", "pydantic", "pydantic_core", "platformdirs", "keyring"):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            continue
        root = str(Path(spec.origin).resolve().parent.parent)
        if root not in own and root not in roots:
            roots.append(root)
    return roots


def start(wait: float = START_TIMEOUT, options: Sequence[str] = ()) -> Dict[str, Any]:
    """Start the agent in the background (detached: it outlives this process and its terminal) unless one runs;
    return its status once it answers. ``options`` go on its command line (``tether agent start --bandwidth``);
    a start on demand (a submit, a DCC) passes none: the agent reads TETHER_AGENT_BANDWIDTH from the environment
    it inherits, the one place its cap is set for every way it starts. A running agent keeps its own."""
    status = running()
    if status is not None:
        return status
    command = agent_command()
    if command is None:
        raise AgentNotRunning("cannot start the Tether agent: no `tether` command on PATH; run `tether agent start`")
    command = [*command, *options]
    log = log_path()
    kwargs: Dict[str, Any] = {}
    if sys.platform == "win32":  # pragma: no cover
        kwargs["creationflags"] = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        kwargs["start_new_session"] = True  # no SIGHUP when the terminal or the DCC goes
    env = {**os.environ}
    extra = _import_roots()
    if extra:
        env["PYTHONPATH"] = os.pathsep.join([*extra, *filter(None, [env.get("PYTHONPATH")])])
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                close_fds=True, env=env, **kwargs)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        status = running()
        if status is not None:
            return status
        if proc.poll() is not None:
            # Another agent may have won the race to start; it answers shortly.
            status = running()
            if status is not None:
                return status
            raise AgentNotRunning(f"the Tether agent exited at start (status {proc.returncode}); see {log}")
        time.sleep(0.05)
    raise AgentNotRunning(f"the Tether agent did not answer within {wait:g} s; see {log}")


def handoff_module(service: str) -> Any:
    """The service's submit module when it can hand off to the agent (``handoff_request``/``run_handoff``)."""
    import importlib

    module = importlib.import_module(f"tether.{service}.submit")
    if not (hasattr(module, "handoff_request") and hasattr(module, "run_handoff")):
        raise ConfigError(f"{service} submissions cannot be handed to the agent yet: use --no-agent")
    return module


def hand_off(service: str, request: Dict[str, Any], *, profile: str = "", title: str = "",
             output_dir: Optional[Union[str, Path]] = None, fetch: bool = True, priority: int = 0,
             start_agent: bool = True, record: Optional[Dict[str, Any]] = None, endpoint: str = "") -> QueueEntry:
    """Queue a prepared submission for the agent and return its :class:`~tether.registry.QueueEntry`.

    ``record``: what the job's registry record keeps besides (a Blender scene's name); ``endpoint``: the service URL
    to use instead of the profile's (the add-on's override). Neither is a secret: the agent takes the credentials
    from ``profile``'s keyring or environment, so the queue and the log never hold one.

    The agent is made to run first (so a failure to start leaves nothing queued and the caller can submit
    in-process); then the entry is persisted and the agent woken. From then on the caller may exit."""
    if start_agent:
        start()
    elif running() is None:
        raise AgentNotRunning("the Tether agent is not running")
    if record:
        request = {**request, RECORD_KEY: dict(record)}
    if endpoint:
        request = {**request, ENDPOINT_KEY: endpoint}
    with JobRegistry() as registry:
        entry = registry.enqueue(service=service, request=request, profile=profile, title=title,
                                 output_dir=output_dir, fetch=fetch, priority=priority)
    with contextlib.suppress(AgentNotRunning), AgentClient() as client:
        client.wake()  # it also looks at the queue on its own, so a missed wake only delays
    return entry


def home_folder(parent: Union[str, Path], label: str) -> Path:
    """A folder of its own under ``parent`` for one hand-off's results (``<label>_<time>-<4 hex>``): the agent brings
    them home there when the job finishes (:func:`hand_off`'s ``output_dir``), so two sends never mix their files."""
    import uuid

    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    return Path(parent).absolute() / f"{label}_{stamp}"


def job_view(rec: Any) -> Job:
    """A registry record as the one job view (what the agent publishes of each job it watches)."""
    counts = {k: int(v) for k, v in (rec.extra.get("counts") or {}).items() if isinstance(v, (int, float))}
    return Job(service=rec.service, id=rec.job_id, title=rec.title, state=rec.state, raw_state=rec.raw_state,
               progress=rec.progress, error=rec.error, finished_at=rec.finished_at, counts=counts)


class _AgentView:
    """One service's jobs as the agent saw them in its latest cycle: the :class:`~tether.jobs.JobService` an
    :class:`AgentWatcher` polls, without a request to the service."""

    def __init__(self, watcher: AgentWatcher, service: str, profile: Optional[str]) -> None:
        self.watcher, self.service, self.profile = watcher, service, profile or ""

    def jobs_by_id(self, job_ids: Iterable[str]) -> Dict[str, Job]:
        snapshot = self.watcher.snapshot
        error = snapshot.get("errors", {}).get(f"{self.service}|{self.profile}")
        if error:
            raise ServiceError(error, service=self.service)
        seen = {j["id"]: j for j in snapshot.get("jobs", []) if j.get("service") == self.service}
        missing = {job_id for service, job_id in snapshot.get("missing", []) if service == self.service}
        found: Dict[str, Job] = {}
        for job_id in job_ids:
            if job_id in seen:
                found[job_id] = Job.model_validate(seen[job_id])
            elif job_id not in missing:  # recorded after the agent's cycle began: as the registry has it
                rec = self.watcher.registry.get(self.service, job_id)
                if rec is not None:
                    found[job_id] = job_view(rec)
        return found

    def abort(self) -> None:
        pass  # no request of its own: it reads the agent's snapshot

    def close(self) -> None:
        pass


class AgentWatcher(Watcher):
    """A :class:`~tether.watch.Watcher` that subscribes to the running agent instead of polling the services: each
    :meth:`poll_once` waits (at most ``wait`` seconds) for the agent's next cycle and reads the jobs it saw. Any number
    of DCC sessions and `tether jobs watch` cost the services nothing more than the agent's one poll per cycle.

    With a ``fallback`` client factory, a cycle in which no agent answers polls the services itself through it, as a
    plain :class:`~tether.watch.Watcher` would, and the next cycle asks the agent again: a watcher that outlives the
    agent, or starts before it, is never left blind and never polls twice. Without one, no agent raises
    :class:`AgentNotRunning`."""

    def __init__(self, registry: JobRegistry, client: Optional[AgentClient] = None, wait: float = 30.0,
                 fallback: Optional[ClientFactory] = None, **kwargs: Any) -> None:
        super().__init__(registry, fallback or _no_fallback, **kwargs)
        self.fallback = fallback
        self._agent = client
        self.wait = wait
        self.snapshot: Dict[str, Any] = {}
        self.agent_cycle = 0
        self.subscribed = False  # the latest cycle read the agent's (else it polled the services, or none ran yet)
        self._asked: Set[Tuple[str, str]] = set()  # jobs the agent was asked to poll at once (see _new_to_agent)

    @property
    def agent(self) -> AgentClient:
        if self._agent is None:
            self._agent = AgentClient()  # may raise AgentNotRunning (no port file on loopback)
        return self._agent

    def poll_once(self) -> List[JobChange]:
        try:
            # a watcher that polled last time asks without waiting: an agent's cycle to read may be there already
            self.snapshot = self.agent.jobs(after=self.agent_cycle, wait=self.wait if self.subscribed else 0.0)
        except AgentNotRunning:
            if self.fallback is None:
                raise
            self.subscribed = False
            return super().poll_once()
        if not _same_file(self.snapshot.get("registry"), self.registry.path):
            # an agent keeping another registry (TETHER_DATA_DIR set for one process only) follows other jobs
            if self.fallback is None:
                raise ConfigError(f"the Tether agent follows the jobs of {self.snapshot.get('registry')}, not "
                                  f"{self.registry.path}: run both with the same TETHER_DATA_DIR")
            self.subscribed = False
            return super().poll_once()
        self.subscribed = True
        self.agent_cycle = int(self.snapshot.get("cycle", 0))  # a restarted agent counts from 0 again
        changes = super().poll_once()
        self._new_to_agent()
        return changes

    def _new_to_agent(self) -> None:
        """A job this watcher follows that the agent's latest cycle did not poll (recorded since, by a DCC that sent
        it in-process): the agent is asked to poll now, once per job, rather than at its next backed-off cycle."""
        polled = {(j.get("service"), j.get("id")) for j in self.snapshot.get("jobs", [])}
        polled.update(tuple(k) for k in self.snapshot.get("missing", []))
        new = {r.key for r in self.followed if not r.finished and not r.missing} - polled - self._asked
        if new:
            self._asked |= new
            with contextlib.suppress(AgentNotRunning):
                self.agent.wake(poll=True)

    def _client(self, service: str, profile: str, endpoint: str = "") -> JobService:
        if self.subscribed:  # the agent polls each job at its own endpoint; the view reads its snapshot
            return cast(JobService, _AgentView(self, service, profile))
        return super()._client(service, profile, endpoint)

    def next_delay(self) -> float:
        # subscribed, poll_once itself waited for the agent's cycle; else the fallback's own backoff
        return 0.0 if self.subscribed else super().next_delay()

    def close(self) -> None:
        super().close()
        if self._agent is not None:
            self._agent.close()


def _same_file(reported: Any, path: Path) -> bool:
    if not reported:  # an agent from before the snapshot said which registry it keeps
        return True
    try:
        return Path(str(reported)).resolve() == path.resolve()
    except OSError:
        return False


def _no_fallback(service: str, profile: Optional[str]) -> JobService:
    raise AgentNotRunning("the Tether agent is not running")


def watcher_for(registry: JobRegistry, clients: ClientFactory, *, no_agent: bool = False, wait: float = 30.0,
                **kwargs: Any) -> Watcher:
    """The one way a DCC or the command follows jobs: through the agent whenever one runs (:class:`AgentWatcher`,
    polling through ``clients`` in a cycle when none answers), or polling the services itself with
    ``no_agent``/``TETHER_AGENT=off``. ``wait`` bounds how long one :meth:`~Watcher.poll_once` waits for the agent's
    next cycle (a DCC's thread that must stop promptly passes a short one); ``kwargs`` go to the watcher."""
    if not use_agent(no_agent):
        return Watcher(registry, clients, **kwargs)
    return AgentWatcher(registry, wait=wait, fallback=clients, **kwargs)


HOME_WAIT = 120.0  # how long an import waits for a running agent that does not start bringing results home


def bring_home(client: JobService, registry: JobRegistry, rec: JobRecord) -> List[Path]:
    """Download a completed job's outputs into its record's ``output_dir`` (verified and atomic: the client's
    ``fetch_outputs``) and note them fetched there: what the agent does for a hand-off asked to bring its results
    home, and what a DCC does in its stead when no agent runs."""
    files = client.fetch_outputs(rec.job_id, Path(str(rec.output_dir)))
    registry.mark_fetched(rec.service, rec.job_id, rec.output_dir)
    return files


def await_home(registry: JobRegistry, service: str, job_id: str, *, quiet: float = HOME_WAIT, wait: float = 1.0,
               cancelled: Callable[[], bool] = lambda: False,
               waiting: Callable[[], None] = lambda: None) -> Optional[JobRecord]:
    """Wait for the running agent to bring a completed job's results home (it downloads them in the cycle that sees
    the job complete, or a later one): the job's record once they came home. None when ``cancelled()``, or when for
    ``quiet`` seconds the agent neither brought them nor was downloading them (whoever waits then fetches a copy of
    its own and leaves home to the agent: two downloads into one folder would share their partial files). Raises
    :class:`AgentNotRunning` when no agent answers, as none will bring them: the caller does (:func:`bring_home`).
    Each ask is held by the agent until a download ends, at most ``wait`` seconds, so a cancel is seen soon.
    ``waiting()`` is told once an agent runs to wait for (whoever waits says so, as this may last a download)."""
    deadline = time.monotonic() + quiet
    with AgentClient() as client:
        waiting()
        while not cancelled():
            seen = client.home(service, job_id, wait=max(0.0, min(wait, deadline - time.monotonic())))
            if seen.get("fetched") or not seen.get("known"):
                rec = registry.get(service, job_id)
                return rec if rec is not None and rec.fetched_at is not None else None
            if seen.get("fetching"):  # downloading it now: as long as that takes
                deadline = time.monotonic() + quiet
            elif time.monotonic() >= deadline:
                return None
    return None


def use_agent(no_agent: bool = False) -> bool:
    """Whether a submission goes to the agent: not with ``--no-agent`` or ``TETHER_AGENT=off``."""
    return not no_agent and mode() != "off"


def offer(service: str, request: Callable[[], Dict[str, Any]], *, no_agent: bool = False,
          unavailable: Callable[[AgentNotRunning], None] = lambda exc: None, **kwargs: Any) -> Optional[QueueEntry]:
    """The one hand-off rule of every submitter (the command, the Nuke panel): the queued entry, or None to submit
    in-process: ``no_agent``/``TETHER_AGENT=off``, or no agent runs and none can be started (``unavailable`` is told
    why). ``request`` builds the service's ``handoff_request`` JSON once the agent is known to run, as it may encode
    a clip first; ``kwargs`` go to :func:`hand_off`. Once it is built the submission is the agent's: an agent that
    died meanwhile is started again, and if none will start the error is raised, the request's own folder gone."""
    if not use_agent(no_agent):
        return None
    handoff_module(service)
    try:
        start()
    except AgentNotRunning as exc:
        unavailable(exc)
        return None
    built = request()
    try:
        return hand_off(service, built, **kwargs)
    except BaseException:
        from .handoff import release

        release(built)
        raise


@contextlib.contextmanager
def service_client(service: str, profile: str, endpoint: str = "",
                   clients: Optional[ClientFactory] = None) -> Iterator[JobService]:
    """A client of its own for one hand-off's service, closed after it: at ``endpoint`` (the hand-off's own service
    URL, with the profile's credentials still), else made by ``clients`` (default: the profile's)."""
    from .clients import client_at

    client = client_at(service, profile, endpoint, clients)
    try:
        yield client
    finally:
        client.close()


def cancel_made(entry: QueueEntry, clients: Optional[ClientFactory] = None) -> Optional[Dict[str, Any]]:
    """A hand-off the agent already made into a job is cancelled as any job: on its service, at the endpoint it
    went to; the entry with ``cancelled_job``. None when ``entry`` is no job (yet)."""
    if entry.state != "done" or not entry.job_id:
        return None
    with service_client(entry.service, entry.profile, str(entry.request.get(ENDPOINT_KEY) or ""), clients) as client:
        client.cancel_job(entry.job_id)
    return {**entry.to_dict(), "cancelled_job": True}


def cancel(entry_id: int) -> Dict[str, Any]:
    """Cancel a hand-off (``tether agent cancel``, a DCC's Cancel on a hand-off's row) through the running agent,
    which stops an upload in flight; with no agent running, in the registry (nothing uploads it then), its kept
    folder removed; one that is a job already has the job cancelled on its service. The entry as it ended."""
    try:
        with AgentClient() as client:
            return client.cancel(entry_id)
    except AgentNotRunning:
        pass
    from .handoff import release

    with JobRegistry() as registry:
        entry = registry.queue_entry(entry_id)
        if entry is None:
            raise ConfigError(f"the agent's queue has no entry {entry_id}: `tether agent queue` lists them")
        made = cancel_made(entry)
        if made is not None:
            return made
        dropped = registry.withdraw(entry_id, ("queued", "running", "failed"))  # a dead agent's running one too
    if dropped is None:
        return entry.to_dict()
    release(dropped.request)
    return dropped.to_dict()


QUEUE_WAITING = ("queued", "running")  # not yet a job: waiting for the agent, or being uploaded by it
FAILED_SHOWN = 24 * 3600.0  # a failed hand-off stays in a DCC's jobs list this long (seconds)
SETTLED_KEPT = 30 * 24 * 3600.0  # a settled one (done, failed, cancelled) stays in the queue this long, then is pruned


def queue(states: Sequence[str] = ()) -> List[Dict[str, Any]]:
    """The agent's queue as :meth:`AgentClient.queue` answers it; from the registry when no agent runs (the entries
    wait there for the next start), without progress then."""
    try:
        with AgentClient() as client:
            return client.queue(states)
    except AgentNotRunning:
        with JobRegistry() as registry:
            return [e.to_dict() for e in registry.queue(list(states) or None)]


@dataclass(frozen=True)
class HandOff:
    """A hand-off that is not a job yet (waiting, uploading) or that failed, as a DCC's jobs list shows it."""

    entry: QueueEntry
    phase: str = ""  # what the agent does with it now ("upload"); "" while it waits
    bytes_done: int = 0
    bytes_total: int = 0

    @classmethod
    def from_row(cls, entry: QueueEntry, row: Dict[str, Any]) -> HandOff:
        """``entry`` with the upload progress its agent's queue row carries (none for one not uploading)."""
        return cls(entry, str(row.get("phase") or ""), int(row.get("bytes_done") or 0),
                   int(row.get("bytes_total") or 0))

    @property
    def failed(self) -> bool:
        return self.entry.state == "failed"

    @property
    def record(self) -> Dict[str, Any]:
        """What the job's record will keep besides the service's facts (a Nuke plate, a Blender scene's name)."""
        return dict(self.entry.request.get(RECORD_KEY) or {})

    @property
    def progress(self) -> float:
        """Percent of its upload sent."""
        return 100.0 * self.bytes_done / self.bytes_total if self.bytes_total else 0.0

    @property
    def words(self) -> str:
        """Its state in a few words, for a jobs list's state column."""
        if self.failed:
            return "hand-off failed"
        if self.entry.state == "running":
            return f"uploading {self.progress:.0f}%" if self.bytes_total else "uploading"
        return "queued for upload"

    @property
    def note(self) -> str:
        """A sentence on it, for the selected row."""
        if self.failed:
            return f"The Tether agent could not send it: {self.entry.error or 'no reason given'}"
        retry = f" (trying again after: {self.entry.error})" if self.entry.error else ""
        return (f"Handed to the Tether agent (queue entry {self.entry.id}): it uploads and creates the job, whether "
                f"or not this application stays open{retry}")


def handoffs(services: Optional[Iterable[str]] = None, now: Optional[float] = None) -> List[HandOff]:
    """The hand-offs a DCC's jobs list shows, in the order the agent takes them: queued and uploading ones (the one
    uploading with its bytes), and those that failed in the last :data:`FAILED_SHOWN` seconds; only ``services``'
    when given. From the running agent's queue, else the registry's."""
    wanted = set(services) if services is not None else None
    since = (time.time() if now is None else now) - FAILED_SHOWN
    found: List[HandOff] = []
    for row in queue((*QUEUE_WAITING, "failed")):
        entry = QueueEntry.from_dict(row)
        if wanted is not None and entry.service not in wanted:
            continue
        if entry.state == "failed" and entry.updated_at.timestamp() < since:
            continue
        found.append(HandOff.from_row(entry, row))
    return found


SETTLED = SETTLED_STATES  # a queue entry the agent is finished with


def follow_handoff(entry_id: int, on_update: Optional[Callable[[HandOff], Optional[bool]]] = None, *,
                   clock: Clock = SYSTEM_CLOCK, interval: float = 0.25, cap: float = 2.0) -> Optional[HandOff]:
    """Follow one hand-off until the agent settles it (``done``: its entry's ``job_id``; ``failed``: its ``error``),
    for a DCC that shows its upload and then follows the job the agent made. The entry is read from the registry
    (whether or not the agent runs); while it uploads, its bytes from the agent's queue. ``on_update(hand_off)`` sees
    each look first and may return False to stop following (the hand-off goes on in the agent); returns the last look,
    None when stopped before the first. ``clock.sleep`` may be an abortable wait (a client's ``pause``)."""
    from .poll import Backoff, poll_until, polls

    def look(registry: JobRegistry) -> HandOff:
        entry = registry.queue_entry(entry_id)
        if entry is None:
            raise ConfigError(f"the agent's queue has no entry {entry_id}: `tether agent queue` lists them")
        if entry.state != "running":
            return HandOff(entry)
        return HandOff.from_row(entry, next((r for r in queue(("running",)) if r.get("id") == entry_id), {}))

    with JobRegistry() as registry:
        ticks = polls(lambda: look(registry), key=lambda seen: (seen.entry.state, seen.bytes_done),
                      backoff=Backoff(interval, cap), clock=clock)
        return poll_until(ticks, lambda seen: seen.entry.state in SETTLED,
                          None if on_update is None else lambda tick: on_update(tick.value))


__all__ = [
    "AgentClient",
    "AgentNotRunning",
    "AgentWatcher",
    "HandOff",
    "agent_command",
    "await_home",
    "bring_home",
    "cancel",
    "cancel_made",
    "follow_handoff",
    "hand_off",
    "handoff_module",
    "handoffs",
    "home_folder",
    "job_view",
    "log_path",
    "mode",
    "new_token",
    "offer",
    "queue",
    "running",
    "runtime_dir",
    "service_client",
    "socket_path",
    "start",
    "use_agent",
    "watcher_for",
]
