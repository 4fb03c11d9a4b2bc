"""The last option lists a service gave (a farm's projects, instance types, software packages), kept on disk.

A DCC panel shows these at once when it opens and while the service cannot be reached, then replaces them with the
fresh lists its background fetch brings (Conductor's and Deadline Cloud's submitters keep such lists too). One JSON
file per service, profile and endpoint, in ``<data dir>/lists/``, written atomically, with the time the lists were
fetched::

    save("farm", "studio", "https://farm.example", {"instance_type": [("cpu-8", "cpu-8 (8 CPU)", "8 cores")]})
    cached = load("farm", "studio", "https://farm.example")      # None: never fetched, unreadable or another format
    cached.lists["instance_type"], cached.fetched_at
    not_listed(cached.lists, {"instance_type": "gpu-old"})       # [("instance_type", "gpu-old")]

Each item is a tuple of strings, the identifier first (the panels use ``(id, label, description)``). No secret is ever
stored: the endpoint is kept without user info, query or fragment, and text that holds a registered secret or
anything shaped like a credential is refused (:func:`tether.errors.redact` decides).

Light to import (the standard library only; settings load when the data dir is first needed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .fileio import write_text_atomic

log = logging.getLogger(__name__)

FORMAT = 1
FOLDER = "lists"
Item = Tuple[str, ...]
Lists = Dict[str, List[Item]]


@dataclass(frozen=True)
class CachedLists:
    service: str
    profile: str
    url: str  # the endpoint as :func:`clean_url` keeps it
    fetched_at: float  # seconds since the epoch
    lists: Lists
    path: Optional[Path] = None

    def ids(self, name: str) -> List[str]:
        return [item[0] for item in self.lists.get(name, [])]


def clean_url(url: str) -> str:
    """The endpoint without user info, query or fragment (where a credential could hide) or a trailing slash."""
    url = url.strip().split("#", 1)[0].split("?", 1)[0]
    url = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1", url)
    return url.rstrip("/")


def folder() -> Path:
    from .settings import data_dir

    return data_dir() / FOLDER


def cache_path(service: str, profile: str, url: str, where: Optional[Path] = None) -> Path:
    """The file for these lists: readable names for a person, a hash of the endpoint to tell farms apart."""
    digest = hashlib.sha256(clean_url(url).encode("utf-8")).hexdigest()[:16]
    safe = [re.sub(r"[^A-Za-z0-9_.-]", "_", part) or "_" for part in (service, profile)]
    return (where or folder()) / f"{safe[0]}-{safe[1]}-{digest}.json"


def save(service: str, profile: str, url: str, lists: Mapping[str, Sequence[Sequence[str]]],
         fetched_at: Optional[float] = None, where: Optional[Path] = None) -> CachedLists:
    """Write the lists atomically (a reader sees the old file or the new one); a ValueError when they hold a secret."""
    from .errors import redact

    clean: Lists = {str(name): [tuple(str(part) for part in item) for item in items if len(item)]
                    for name, items in lists.items()}
    stamp = time.time() if fetched_at is None else float(fetched_at)
    body = {"format": FORMAT, "service": service, "profile": profile, "url": clean_url(url), "fetched_at": stamp,
            "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp)),
            "lists": {name: [list(item) for item in items] for name, items in clean.items()}}
    text = json.dumps(body, indent=1, ensure_ascii=False)
    if redact(text) != text:
        raise ValueError(f"not caching the {service} lists of profile '{profile}': they contain something shaped "
                         "like a credential")
    path = cache_path(service, profile, url, where)
    write_text_atomic(path, text)
    return CachedLists(service, profile, clean_url(url), stamp, clean, path)


def load(service: str, profile: str, url: str, where: Optional[Path] = None) -> Optional[CachedLists]:
    """The lists last saved for this service, profile and endpoint; None when there are none or they are unusable."""
    path = cache_path(service, profile, url, where)
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # a damaged cache is as good as none: the next fetch rewrites it
        log.debug("ignoring the list cache %s: %s", path, exc)
        return None
    lists = _checked(body, service, profile, clean_url(url))
    if lists is None:
        log.debug("ignoring the list cache %s: another format or another endpoint", path)
        return None
    return CachedLists(service, profile, clean_url(url), float(body["fetched_at"]), lists, path)


def _checked(body: Any, service: str, profile: str, url: str) -> Optional[Lists]:
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        return None
    if (body.get("service"), body.get("profile"), body.get("url")) != (service, profile, url):
        return None
    stamp = body.get("fetched_at")
    raw = body.get("lists")
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) or not isinstance(raw, dict):
        return None
    lists: Lists = {}
    for name, items in raw.items():
        if not isinstance(items, list):
            return None
        if not all(isinstance(i, list) and i and all(isinstance(p, str) for p in i) for i in items):
            return None
        lists[str(name)] = [tuple(i) for i in items]
    return lists


def not_listed(lists: Mapping[str, Sequence[Sequence[str]]],
               chosen: Mapping[str, Optional[str]]) -> List[Tuple[str, str]]:
    """The chosen values a list does not offer (any more), as ``(list name, value)``. A list not known is not judged."""
    out: List[Tuple[str, str]] = []
    for name, value in chosen.items():
        if value and name in lists and value not in {item[0] for item in lists[name] if len(item)}:
            out.append((name, value))
    return out


__all__ = ["FORMAT", "CachedLists", "cache_path", "clean_url", "folder", "load", "not_listed", "save"]
