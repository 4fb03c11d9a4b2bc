"""What the PySide6 tests and the PySide2 driver both set up (no pytest here: the driver runs without it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Tuple

import nuke
from tether.errors import ServiceUnavailable


def sequence_read(folder: Path, missing: tuple = ()) -> Any:
    """``Plate7``: an EXR sequence 1001-1024 (16x9 grey half-float frames, real where OpenImageIO is there: a send
    encodes them; else an EXR magic, as in Nuke's own Python, which sends them zipped) read with a -1000 offset
    (plate frames 1-24), selected; ``missing`` frames are left off the disk."""
    try:
        import numpy as np
        import OpenImageIO as oiio
    except ImportError:  # the PySide2 venv (Nuke 14's Python) has neither
        oiio = None
    seq = folder / "seq"
    seq.mkdir()
    for n in range(1001, 1025):
        if n in missing:
            continue
        path = str(seq / f"plate.{n:04d}.exr")
        if oiio is None:
            Path(path).write_bytes(b"v/1\x01")  # an empty frame is refused
            continue
        out = oiio.ImageOutput.create(path)
        out.open(path, oiio.ImageSpec(16, 9, 3, oiio.HALF))
        out.write_image(np.full((9, 16, 3), 0.18 + 0.01 * (n - 1001), np.float32))
        out.close()
    read = nuke.nodes.Read()
    read.setName("Plate7")
    read["file"].setValue(f"{seq.as_posix()}/plate.####.exr")
    read["first"].setValue(1001)
    read["last"].setValue(1024)
    read["frame_mode"].setValue("offset")
    read["frame"].setValue("-1000")
    read["colorspace"].setValue("ACES - ACEScg")
    read.setSelected(True)
    return read


class SpecOnly:
    """An adapter described by ``options_spec`` alone (how Clipzy plugs in); never reaches a network."""

    service, label, suffix, action = "specsvc", "Spec", "spec", "Style it"
    options_spec = [{"name": "template", "label": "Template clip", "kind": "file", "required": True},
                    {"name": "strength", "label": "Strength", "kind": "number"},
                    {"name": "keep_audio", "label": "Keep audio", "kind": "bool"}]

    def client(self, profile: Any) -> Any:
        raise AssertionError("no network for this adapter")


def monitor(registry: Any, autopilot: Any = None, root: Optional[Path] = None, poll: Tuple[float, float] = (2.0, 30.0),
            **services: Any) -> Any:
    """A job monitor (``JobController``) on ``registry``: Autopilot's clients from the factory ``autopilot``, its
    downloads in ``root``; ``services`` (name -> ``ServiceController``) for the others."""
    from tether_nuke.autopilot import AutopilotAdapter
    from tether_nuke.controller import JobController
    from tether_nuke.service import ServiceController

    if autopilot is not None:
        services["autopilot"] = ServiceController(AutopilotAdapter(), registry, autopilot, download_root=root,
                                                  poll=poll[0], poll_cap=poll[1])
    return JobController(registry, controllers=services, poll_fast=poll[0], poll_cap=poll[1])


class NoNetwork:
    """A client for every service that is never reached: asking anything fails as an unreachable service does."""

    profile = ""
    base_url = ""

    def close(self) -> None:
        pass

    def abort(self) -> None:  # nothing is in flight: nothing was ever sent
        pass

    def __getattr__(self, name: str) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise ServiceUnavailable("could not connect", service="autopilot")

        return refuse
