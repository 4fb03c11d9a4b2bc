"""Clipzy ML Engine (seed 001): style transfer of a clip from a template video. See :mod:`.client`."""

from __future__ import annotations

from .client import (
    CancelNotSupported,
    ClipzyClient,
    ClipzyResult,
    OutputOnEngineHost,
    parse_job,
    parse_webhook,
    stage_text,
    to_job,
)

__all__ = ["CancelNotSupported", "ClipzyClient", "ClipzyResult", "OutputOnEngineHost", "parse_job", "parse_webhook",
           "stage_text", "to_job"]
