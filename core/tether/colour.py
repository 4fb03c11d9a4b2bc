"""The colour a video service sees, and the colour space that puts what it returns back on the plate.

Plates are scene-linear EXR or log DPX; the services (Autopilot, TensorPix, Clipzy) read 8-bit display-referred video,
as their own clients send (Slapshot's ComfyUI node sends only .mp4/.mov). :class:`SendTransform` is the one
OpenColorIO conversion from the plate's colour space to a display space, and its :meth:`~SendTransform.inverse` is
what an enhanced or styled clip is read back with (a Read's ``colorspace``), so an unchanged pixel returns where it
was. Mattes, depth and vectors are data: they are never given a transform.

- **config**: the one the Read was read with in Nuke (the project's), else ``$OCIO``, else OCIO's built-in studio
  config (``ocio://studio-config-latest``, OCIO 2.2+);
- **from**: the Read's ``colorspace`` (a name, an alias or a role); when it is ``default``/empty (the command line's
  case) the file type decides through the config's roles: EXR/HDR ``scene_linear``, DPX/Cineon ``compositing_log``;
  8-bit images (PNG, JPEG, TIFF) are display-referred already and pass unchanged;
- **to**: the config's ``color_picking`` role (sRGB-encoded Rec.709 in the studio, CG and Nuke's default configs), a
  plain colour space, not a view transform: its inverse is exact where the service changed nothing. What lies above
  display white or outside Rec.709 clips on the way out; the README says so.

PyOpenColorIO is imported on first use (it is in the ``media`` extra, not the base install).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from .errors import InputError

BUILTIN_CONFIG = "ocio://studio-config-latest"
DISPLAY_ROLE = "color_picking"
ROLE_BY_EXT = {".exr": "scene_linear", ".hdr": "scene_linear", ".sxr": "scene_linear",
               ".dpx": "compositing_log", ".cin": "compositing_log"}
DEFAULT_NAMES = frozenset({"", "default"})
_LABELLED = re.compile(r"^(.*\S)\s+\((.+)\)$")  # Nuke shows "default (linear)", "scene_linear (ACEScg)"

_configs: Dict[str, Any] = {}
_lock = threading.Lock()


def config_source(given: Optional[str] = None) -> str:
    """The config to use: ``given``, else ``$OCIO``, else OCIO's built-in studio config."""
    return (given or "").strip() or os.environ.get("OCIO", "").strip() or BUILTIN_CONFIG


def load_config(source: str) -> Any:
    """The OCIO config at ``source`` (a path or an ``ocio://`` URI), loaded once per process."""
    import PyOpenColorIO as ocio

    with _lock:
        config = _configs.get(source)
        if config is None:
            try:
                config = ocio.Config.CreateFromFile(source)
            except Exception as exc:  # OCIO raises its own Exception type with the reason
                raise InputError(f"the OpenColorIO config {source} cannot be loaded ({exc}): set $OCIO to a "
                                 "config file, or the Read's project to a config that exists here") from None
            _configs[source] = config
        return config


def _resolve(config: Any, name: str, source: str) -> str:
    """The colour space's own name for a name, an alias, a role, or Nuke's ``label (name)`` spelling."""
    candidates = [name]
    labelled = _LABELLED.match(name)
    if labelled:
        candidates += [labelled.group(2), labelled.group(1)]
    for candidate in candidates:
        found = config.getColorSpace(candidate)
        if found is not None:
            return str(found.getName())
    some = ", ".join(sorted(str(cs.getName()) for cs in config.getColorSpaces())[:8])
    raise InputError(f"the colour space '{name}' is not in the OpenColorIO config {source} (it has {some}, ...): "
                     "set the Read's colorspace (--colorspace on the command line) to one of its names")


@dataclass(frozen=True)
class SendTransform:
    """``source`` -> ``target`` in ``config``; recorded with the job as :meth:`to_dict`."""

    config: str
    source: str
    target: str

    @property
    def identity(self) -> bool:
        return self.source == self.target

    def inverse(self) -> SendTransform:
        return SendTransform(config=self.config, source=self.target, target=self.source)

    def processor(self) -> Any:
        """The OCIO processor of this conversion."""
        return load_config(self.config).getProcessor(self.source, self.target)

    def to_dict(self) -> Dict[str, str]:
        return {"ocio_config": self.config, "from": self.source, "to": self.target}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SendTransform:
        return cls(config=str(data["ocio_config"]), source=str(data["from"]), target=str(data["to"]))


def send_transform(file_name: str, colorspace: str = "", config: Optional[str] = None,
                   display: Optional[str] = None) -> SendTransform:
    """The conversion a plate named ``file_name`` gets on its way to a video service (see the module's notes).

    ``colorspace``: the plate's (the Read's knob; ``default``/empty: by file type); ``config``: a path or URI (else
    ``$OCIO``, else the built-in studio config); ``display``: the space sent (else the config's ``color_picking``).
    Raises :class:`InputError` naming what to set when a name is not in the config.
    """
    source = config_source(config)
    cfg = load_config(source)
    if display:
        target = _resolve(cfg, display, source)
    elif cfg.getColorSpace(DISPLAY_ROLE) is not None:
        target = str(cfg.getColorSpace(DISPLAY_ROLE).getName())
    else:
        raise InputError(f"the OpenColorIO config {source} has no '{DISPLAY_ROLE}' role: name the display colour "
                         "space to send in (--display-colorspace)")
    name = (colorspace or "").strip()
    if name.lower() in DEFAULT_NAMES or name.lower().startswith("default ("):
        role = ROLE_BY_EXT.get(Path(file_name.split("?")[0]).suffix.lower())
        if role is None:  # 8-bit images are display-referred already
            return SendTransform(config=source, source=target, target=target)
        if cfg.getColorSpace(role) is None:
            raise InputError(f"the OpenColorIO config {source} has no '{role}' role for {Path(file_name).name}: "
                             "set the plate's colour space (the Read's colorspace, --colorspace)")
        name = role
    return SendTransform(config=source, source=_resolve(cfg, name, source), target=target)


@dataclass(frozen=True)
class ColourChoice:
    """What the user said about a plate's colour (each optional): resolved by :func:`send_transform`."""

    colorspace: str = ""
    config: Optional[str] = None
    display: Optional[str] = None

    def resolve(self, file_name: str) -> SendTransform:
        return send_transform(file_name, self.colorspace, self.config, self.display)


def describe(record: Optional[Mapping[str, Any]]) -> Optional[SendTransform]:
    """The transform a job was sent with, from its record's ``colour`` (None: sent as it was)."""
    if not record:
        return None
    try:
        return SendTransform.from_dict(record)
    except (KeyError, TypeError):
        return None


__all__ = ["BUILTIN_CONFIG", "DISPLAY_ROLE", "ColourChoice", "SendTransform", "config_source", "describe",
           "load_config", "send_transform"]
