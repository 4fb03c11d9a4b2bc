"""The add-on's calls into the ``tether`` core. Every function runs on a worker thread and takes plain values.

This module imports nothing heavy at import time; each function imports what it needs, so ``register()`` stays
cheap and the first network action pays for httpx and pydantic once.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from .runtime import JobRow, row_from_handoff, row_from_record

if TYPE_CHECKING:
    from tether.progress import Progress

SERVICE = "farm"
LISTED = (SERVICE, "move")  # the services whose jobs the add-on lists and follows: the farm's panel's, Move's


@dataclass(frozen=True)
class Account:
    """Which farm to talk to: a settings profile, optionally with another endpoint. No secret in here."""

    profile: str = ""  # "" = the configured default profile
    endpoint: str = ""  # "" = the profile's farm URL

    @property
    def profile_or_none(self) -> Optional[str]:
        return self.profile or None


@dataclass
class SubmitRequest:
    """What the submit operator read from the scene, on the main thread, as plain values."""

    scene: str
    scene_name: str
    frames: Optional[str] = None
    chunk_size: int = 1
    scout: str = ""
    instance_type: Optional[str] = None
    blender_version: Optional[str] = None
    project: str = "default"
    preemptible: bool = False
    preemptible_retries: int = 0
    extra_files: List[str] = field(default_factory=list)
    environment: Dict[str, str] = field(default_factory=dict)
    fetch_dir: Optional[str] = None
    auto_fetch: bool = False
    allow_missing: bool = False
    priority: int = 0  # the agent's queue order (tether agent priority): as the command's --priority

    def key(self) -> Tuple[Any, ...]:
        """What the cached summary depends on: the options and the saved file's identity."""
        try:
            stat = os.stat(self.scene)
            stamp: Tuple[int, int] = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = (0, 0)
        return (self.scene, stamp, self.scene_name, self.frames, self.chunk_size, self.scout, self.instance_type,
                self.blender_version, self.project, self.preemptible, self.preemptible_retries,
                tuple(self.extra_files), tuple(sorted(self.environment.items())), self.fetch_dir, self.allow_missing)


def options(req: SubmitRequest) -> Any:
    from tether.farm.submit import FarmOptions

    return FarmOptions(
        scene=Path(req.scene), frames=req.frames or None, chunk_size=req.chunk_size, scout=req.scout,
        instance_type=req.instance_type or None, blender_version=req.blender_version or None,
        project=req.project or "default", out_dir=Path(req.fetch_dir) if req.fetch_dir else None,
        extra_files=[Path(p) for p in req.extra_files], environment=dict(req.environment),
        preemptible=req.preemptible, preemptible_retries=req.preemptible_retries, scene_name=req.scene_name,
        allow_missing=req.allow_missing,
    )


def client(account: Account) -> Any:
    """A FarmClient for the account: the profile's URL (or the endpoint override) and its keyring credentials."""
    from tether.farm.client import FarmClient

    return FarmClient.from_profile(account.profile_or_none, url=account.endpoint or None,
                                   login_hint="log in from the Tether add-on's preferences, or run `tether login farm`")


def registry() -> Any:
    from tether.registry import JobRegistry

    return JobRegistry()


# --- lists for the enum menus ---------------------------------------------------------------------------------
LISTS = ("instance_type", "blender_version", "project")


def lists_key(account: Account) -> Tuple[str, str]:
    """Whose lists these are: the resolved profile name and farm URL (the on-disk cache is kept per pair)."""
    from tether.settings import active_profile

    prof = active_profile(account.profile_or_none)
    return prof.name, (account.endpoint.strip().rstrip("/") or prof.service(SERVICE).url)


def cached_catalog(account: Account) -> Dict[str, Any]:
    """The lists last fetched for this profile and farm, from disk (``{}`` when there are none)."""
    from tether import listcache

    profile, url = lists_key(account)
    found = listcache.load(SERVICE, profile, url)
    if found is None:
        return {}
    lists = {name: [_item(i) for i in found.lists.get(name, [])] for name in LISTS if name in found.lists}
    return {"lists": lists, "fetched_at": found.fetched_at, "cached": True, "key": f"{profile} {found.url}"}


def _item(raw: Tuple[str, ...]) -> Tuple[str, str, str]:
    return (raw[0], raw[1] if len(raw) > 1 else raw[0], raw[2] if len(raw) > 2 else "")


def catalog(account: Account) -> Dict[str, Any]:
    """The farm's lists, fetched now, and kept on disk for the next session (no credential goes there)."""
    import logging
    import time

    from tether import listcache
    from tether.http import RetryPolicy

    farm = client(account)
    # The panel already shows the lists from disk: say "offline" soon rather than retry for long; Refresh asks again.
    farm.retry = RetryPolicy(attempts=3)
    try:
        instances = [(i.id, _instance_label(i), _instance_text(i)) for i in farm.instances() if i.enabled]
        packages = [(p.id, p.id, "renders " + ", ".join(p.render_software or ["?"])) for p in farm.packages()]
        projects = [(p.name, p.name, "") for p in farm.projects() if not p.archived]
    finally:
        farm.close()
    from tether.farm.submit import _version_key

    packages.sort(key=lambda item: _version_key(item[0]), reverse=True)
    lists = {"instance_type": instances, "blender_version": packages, "project": projects}
    fetched_at = time.time()
    profile, url = lists_key(account)
    try:
        listcache.save(SERVICE, profile, url, lists, fetched_at)
    except (OSError, ValueError) as exc:  # the lists are still good for this session
        logging.getLogger(__name__).warning("farm lists not cached: %s", exc)
    return {"lists": lists, "fetched_at": fetched_at, "cached": False, "key": f"{profile} {listcache.clean_url(url)}"}


def _instance_label(instance: Any) -> str:
    bits = [f"{getattr(instance, name)}{unit}" for name, unit in (("cpus", " CPU"), ("memory_gb", " GB"), ("gpu", ""))
            if getattr(instance, name, None)]
    return f"{instance.id} ({', '.join(bits)})" if bits else str(instance.id)


def _instance_text(instance: Any) -> str:
    return str(getattr(instance, "description", "") or getattr(instance, "name", "") or instance.id)


# --- preflight summary --------------------------------------------------------------------------------------
def summary(account: Account, req: SubmitRequest) -> Dict[str, Any]:
    from tether.farm.submit import FarmSubmitter

    farm = client(account)
    try:
        check = FarmSubmitter(farm).preflight(options(req))
    finally:
        farm.close()
    return {"summary": summarize(check)}


def summarize(check: Any) -> Dict[str, Any]:
    """The Preflight as plain values the panel can draw."""
    try:
        size = int(check.upload_size)
    except OSError:
        size = 0
    return {
        "frames": len(check.frames), "frame_spec": check.frame_spec, "tasks": len(check.chunks),
        "scout_tasks": check.scout_tasks, "scout_frames": list(check.scout_frames),
        "found": [str(p) for p in check.deps.found], "missing": [str(p) for p in check.deps.missing],
        "missing_from": {str(k): v for k, v in check.deps.missing_from.items()},
        "extra": [str(p) for p in check.extra_files], "upload_size": size,
        "errors": list(check.errors), "warnings": list(check.warnings), "scene": check.facts.scene,
        "engine": check.facts.engine, "output": check.facts.output_pattern,
        "preview": preview_text(check), "checked_at": time.time(),
    }


def preview_text(check: Any) -> str:
    """What Submit would send, for the Preview Payload operator: the core's preview, with what Submit would do.

    The summary's check lets missing files through (to list them), so ``submit`` says when only Submit Anyway
    sends this. Made on the worker with the summary, so the operator only writes the text.
    """
    import json

    from tether.errors import redact

    doc = check.preview()
    if not check.ok:
        state = "blocked: nothing is sent until the errors below are fixed"
    elif doc["missing"]:
        state = (f"Submit refuses while {len(doc['missing'])} file(s) are missing; Submit Anyway sends this "
                 "payload and the farm renders without them")
    else:
        state = "ready: Submit sends this payload"
    return redact(json.dumps({"submit": state, **doc}, indent=2))


# --- submission -----------------------------------------------------------------------------------------------
def hand_off(account: Account, req: SubmitRequest) -> Optional[Dict[str, Any]]:
    """Give the checked submission to the Tether agent (started if needed), so it finishes after Blender closes;
    None to submit in-process: TETHER_AGENT=off, or no agent. An endpoint override goes with the request (a URL,
    no secret: the agent logs in with the profile's keyring credentials), and the job's record keeps the scene."""
    from tether import agent
    from tether.errors import InputError
    from tether.farm.submit import FarmSubmitter, handoff_request

    if not agent.use_agent():
        return None
    opts = options(req)
    farm = client(account)
    try:
        check = FarmSubmitter(farm).preflight(opts)
    finally:
        farm.close()
    try:
        check.raise_errors()  # nothing is queued while the scene has errors
    except InputError as exc:
        raise InputError(str(exc).replace("(--allow-missing)", "(the Submit Anyway button)")) from None
    entry = agent.offer(SERVICE, lambda: handoff_request(opts), profile=farm.profile, title=Path(req.scene).stem,
                        output_dir=req.fetch_dir or None, fetch=bool(req.auto_fetch and req.fetch_dir),
                        record={"scene": req.scene_name}, endpoint=account.endpoint, priority=req.priority)
    if entry is None:
        return None
    home = f"; the frames come home to {req.fetch_dir}" if req.auto_fetch and req.fetch_dir else ""
    return {"job_id": "", "warnings": list(check.warnings), "fetch_dir": "",
            "message": f"handed to the Tether agent (queue entry {entry.id}): it uploads and creates the job, "
                       f"Blender may close{home}"}


def submit(account: Account, req: SubmitRequest, progress: Callable[[Any], bool],
           uses: Callable[[Any], Any] = lambda client: client) -> Dict[str, Any]:
    """The headless submitter, as the CLI runs it; then the job is tagged with its scene in the registry. Handed
    to the Tether agent instead when one runs or can be started (:func:`hand_off`). ``uses(client)`` is given the
    farm client (a worker task's :meth:`~blender_addon.runtime.WorkerTask.uses`, which aborts it on cancel)."""
    from tether.errors import InputError
    from tether.farm.submit import FarmSubmitter
    from tether.registry import ENDPOINT_KEY

    handed = hand_off(account, req)
    if handed is not None:
        return handed
    farm = uses(client(account))
    reg = registry()
    try:
        try:
            result = FarmSubmitter(farm, registry=reg).submit(options(req), progress=progress, source=req.scene)
        except InputError as exc:  # the core speaks CLI; say it the panel's way
            raise InputError(str(exc).replace("(--allow-missing)", "(the Submit Anyway button)")) from None
        # the endpoint it went to, as the agent records a hand-off's: the monitor follows it there (at_job)
        reg.record(service=SERVICE, job_id=result.job.id,
                   extra={"scene": req.scene_name, **({ENDPOINT_KEY: account.endpoint} if account.endpoint else {})})
    finally:
        reg.close()
        farm.close()
    check = result.preflight
    return {
        "job_id": result.job.id,
        "message": f"job {result.job.id} submitted: {len(check.frames)} frames in {len(check.chunks)} tasks",
        "warnings": list(check.warnings), "fetch_dir": (req.fetch_dir or "") if req.auto_fetch else "",
    }


# --- the job monitor ------------------------------------------------------------------------------------------
def at_job(account: Account, job_id: str) -> Account:
    """Where a farm job is followed, fetched and acted on: the endpoint it was submitted to (recorded with it: the
    override of its day, in-process or handed to the agent), else its profile's URL, whatever the override is now
    (a job from `tether farm submit`, or from before the override was set)."""
    from tether.registry import ENDPOINT_KEY

    reg = registry()
    try:
        rec = reg.get(SERVICE, job_id)
    finally:
        reg.close()
    if rec is None:
        return account
    return Account(rec.profile or account.profile, str(rec.extra.get(ENDPOINT_KEY) or ""))


WATCH_WAIT = 0.5  # how long one monitor cycle waits for the Tether agent's next: Monitor.stop joins it soon


def make_watcher(account: Account) -> Any:
    """The monitor's watcher of the farm's and Move's jobs (``tether.agent.watcher_for``): it reads the Tether agent's
    cycles while one answers, so Blender asks the services nothing; else it polls them itself, each farm job at its
    own endpoint (:func:`at_job`), as the agent's watcher does."""
    from tether.agent import watcher_for
    from tether.clients import client_for

    def clients(service: str, profile: Optional[str]) -> Any:
        if service == SERVICE:
            return client(Account(profile or account.profile))
        return client_for(service, profile or account.profile_or_none)

    return watcher_for(registry(), clients, wait=WATCH_WAIT, skip=lambda key: key[0] not in LISTED, fast=2.0,
                       cap=30.0, endpoints=True)


def list_rows(limit: int = 50) -> List[JobRow]:
    """The farm and Move submissions the agent holds that are not jobs yet (``tether.agent.handoffs``: none read with
    TETHER_AGENT=off), then the jobs; each panel shows its service's (:attr:`JobRow.service`)."""
    from tether import agent

    handed = [row_from_handoff(h) for h in agent.handoffs(LISTED)] if agent.use_agent() else []
    reg = registry()
    try:
        return handed + [row_from_record(r) for service in LISTED for r in reg.list(service=service, limit=limit)]
    finally:
        reg.close()


ACTIONS = ("hold", "unhold", "cancel", "priority")


def job_action(account: Account, job_id: str, action: str, priority: int = 50) -> Dict[str, Any]:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    farm = client(at_job(account, job_id))
    try:
        if action == "priority":
            farm.set_priority(job_id, priority)
        elif action == "cancel":
            farm.cancel_job(job_id)
        else:
            farm.update_job(job_id, action=action)
    finally:
        farm.close()
    return {}


def cancel_handoff(entry: int) -> Dict[str, Any]:
    """Cancel a submission the agent holds (:func:`tether.agent.cancel`): its upload stops and no job is made."""
    from tether import agent
    from tether.errors import ConfigError

    ended = agent.cancel(entry)
    if ended["state"] != "cancelled" and not ended.get("cancelled_job"):
        raise ConfigError(f"the Tether agent has not stopped it yet ({ended['state']})")
    return {}


def fetch(account: Account, job_id: str, folder: str, progress: Progress) -> Dict[str, Any]:
    farm = client(at_job(account, job_id))
    reg = registry()
    try:
        written = farm.fetch_outputs(job_id, Path(folder), progress=progress)
        reg.mark_fetched(SERVICE, job_id, folder)
    finally:
        reg.close()
        farm.close()
    return {"count": len(written), "files": [str(p) for p in written], "folder": folder, "done": True}


# --- login ----------------------------------------------------------------------------------------------------
def login(account: Account, email: str, password: str) -> Dict[str, Any]:
    """Trade e-mail and password for a token, kept in the OS keyring; the password itself is not stored."""
    from tether.farm.client import FarmClient
    from tether.settings import active_profile, set_secret

    prof = active_profile(account.profile_or_none)
    url = account.endpoint or prof.service(SERVICE).url
    token = FarmClient.login_token(url.rstrip("/"), email, password)
    set_secret(prof.name, SERVICE, token, "token")
    return {"state": f"logged in to {url} as {email} (profile '{prof.name}', token in the OS keyring)"}


def logout(account: Account) -> Dict[str, Any]:
    from tether.settings import active_profile, delete_secret

    prof = active_profile(account.profile_or_none)
    delete_secret(prof.name, SERVICE, "token")
    return login_state(account)


def login_state(account: Account) -> Dict[str, Any]:
    from tether.settings import active_profile, secret_source

    prof = active_profile(account.profile_or_none)
    url = account.endpoint or prof.service(SERVICE).url
    token = secret_source(prof.name, SERVICE, "token")
    password = secret_source(prof.name, SERVICE, "password")
    if token:
        return {"state": f"profile '{prof.name}' at {url}: token from {token}"}
    if password:
        return {"state": f"profile '{prof.name}' at {url}: password from {password} (logs in by itself)"}
    return {"state": f"profile '{prof.name}' at {url}: not logged in"}
