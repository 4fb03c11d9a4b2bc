"""The one shape of every service's ``submit`` module, and what they share.

Each ``tether.<service>.submit`` offers the same three verbs, with its own typed client and request:

- ``prepare(client, request...) -> Prepared``: everything that can be wrong with the input is found here, before a
  byte is uploaded, and raised as :class:`~tether.errors.InputError` saying what to change;
- ``preview(client, request...) -> Preview``: what a send would post, as plain JSON values (:class:`Preview`),
  with a placeholder where only the upload can give a value; nothing is uploaded or created;
- ``submit(client, request..., registry=JobRegistry) -> Submission``: prepare, upload, create the job and record it
  in the :class:`~tether.registry.JobRegistry` (when one is given), so it survives a restart.

The CLI, the Nuke plug-in, the Blender add-on and the tests all call these; the older names (``submit_clip``,
``enhance_clip``, ``submit_video``, ``FarmSubmitter``) stay as aliases of the same path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Protocol

from pydantic import ValidationError

from .errors import InputError, redact

if TYPE_CHECKING:
    from .registry import JobRegistry

UPLOAD_PLACEHOLDER = "<uploaded clip>"  # stands for what only the upload gives (a storage key, a video id)


class Preview(Protocol):
    """What a submission would send: :meth:`document` as plain JSON values, :meth:`to_json` redacted."""

    def document(self) -> Dict[str, Any]: ...

    def to_json(self) -> str: ...


@dataclass
class DocumentPreview:
    """A :class:`Preview` over a ready document (the services whose preview is only their payload and upload)."""

    doc: Dict[str, Any]

    def document(self) -> Dict[str, Any]:
        return self.doc

    def to_json(self) -> str:
        return preview_json(self.doc)


@dataclass
class Recording:
    """How a submit records its job: in ``registry`` (None records nothing), with the folder its results are fetched
    into, the source shown for it and the caller's extra facts. The same in a submit (:meth:`checked` first) and in
    the agent's hand-off (:meth:`request` is what the queue keeps, :meth:`of` reads it back)."""

    registry: Optional[JobRegistry] = None
    out_dir: Optional[Path] = None
    source_label: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def checked(self) -> Recording:
        """This, once the output folder is known to be usable (:class:`InputError` saying why not)."""
        if self.out_dir is not None:
            from .fileio import check_output_dir

            check_output_dir(self.out_dir)
        return self

    def request(self) -> Dict[str, Any]:
        """What a hand-off's queue entry keeps of it, as JSON (the registry is the agent's own)."""
        return {"source_label": self.source_label, "out_dir": str(self.out_dir) if self.out_dir is not None else None,
                "extra": dict(self.extra)}

    @classmethod
    def of(cls, request: Dict[str, Any], registry: Optional[JobRegistry]) -> Recording:
        """Read back from a queue entry's :meth:`request`, recording into the agent's ``registry``."""
        out = request.get("out_dir")
        return cls(registry, Path(out) if out else None, request.get("source_label"), dict(request.get("extra") or {}))


def preview_json(doc: Dict[str, Any]) -> str:
    """A preview document as indented JSON with sorted keys, any registered secret redacted."""
    return redact(json.dumps(doc, indent=2, sort_keys=True))


def field_errors(exc: ValidationError) -> str:
    """A pydantic error as ``field: what is wrong; ...`` (list positions left out, pydantic's prefix dropped)."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if not isinstance(p, int))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def invalid_options(title: str, exc: ValidationError) -> InputError:
    return InputError(f"the {title} options are not valid: {field_errors(exc)}")


__all__ = ["UPLOAD_PLACEHOLDER", "DocumentPreview", "Preview", "Recording", "field_errors", "invalid_options",
           "preview_json"]
