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
from dataclasses import dataclass
from typing import Any, Dict, Protocol

from pydantic import ValidationError

from .errors import InputError, redact

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


__all__ = ["UPLOAD_PLACEHOLDER", "DocumentPreview", "Preview", "field_errors", "invalid_options", "preview_json"]
