"""What keeps a local job service's records across a restart of `tether serve`, as a vendor's database would.

Each service hands :class:`Journal` a ``snapshot()`` of its records (dataclasses, lists, dicts, paths) and calls
:meth:`Journal.save` after each change; the snapshot is written whole to ``<state_dir>/journal.json`` through a
temporary file (a reader or a crash sees the old snapshot or the new one), mode 0600. On start :meth:`Journal.load`
gives it back and :func:`revive` turns the plain data into the service's dataclasses again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import threading
import typing
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Type, TypeVar, Union

T = TypeVar("T")
FILENAME = "journal.json"


def plain(value: Any) -> Any:
    """``value`` as JSON-ready data; ``threading.Event`` fields (cancel flags) are left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not isinstance(getattr(value, f.name), threading.Event)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _revive_as(hint: Any, data: Any) -> Any:
    if data is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Union:
        kinds = [a for a in args if a is not type(None)]
        return _revive_as(kinds[0], data) if len(kinds) == 1 else data
    if origin in (list, typing.List):
        return [_revive_as(args[0], v) for v in data] if args else list(data)
    if origin in (dict, typing.Dict):
        return {k: _revive_as(args[1], v) for k, v in data.items()} if args else dict(data)
    if hint is Path:
        return Path(data)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return revive(hint, data)
    return data


def revive(cls: Type[T], data: Dict[str, Any]) -> T:
    """A ``cls`` dataclass from :func:`plain` data; fields the data lacks keep their defaults."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: _revive_as(hints.get(k, Any), v) for k, v in data.items() if k in known})


def revive_all(cls: Type[T], items: Any, key: str) -> Dict[Any, T]:
    """Each of ``items`` revived as ``cls``, by its ``key`` field, in their order."""
    revived = (revive(cls, item) for item in items or [])
    return {getattr(obj, key): obj for obj in revived}


class Journal:
    def __init__(self, state_dir: Path, snapshot: Callable[[], Dict[str, Any]]) -> None:
        self.path = Path(state_dir) / FILENAME
        self._snapshot = snapshot
        self._lock = threading.Lock()

    def load(self) -> Optional[Dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"the local service's journal {self.path} cannot be read ({exc}); move it away to "
                               "start with an empty service") from None
        return data if isinstance(data, dict) else None

    def save(self) -> None:
        with self._lock:
            text = json.dumps(plain(self._snapshot()))
            fd, tmp = tempfile.mkstemp(prefix=f".{FILENAME}.", dir=str(self.path.parent))
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise


__all__ = ["Journal", "plain", "revive", "revive_all"]
