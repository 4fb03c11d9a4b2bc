"""The colour a video service sees, and the colour space that puts what it returns back on the plate.

Plates are scene-linear EXR or log DPX; the services (Autopilot, TensorPix, Clipzy) read 8-bit display-referred video,
as their own clients send (Slapshot's ComfyUI node sends only .mp4/.mov). :class:`SendTransform` is the one
OpenColorIO conversion from the plate's colour space to a display space, and its :meth:`~SendTransform.inverse` is
what an enhanced or styled clip is read back with (a Read's ``colorspace``), so an unchanged pixel returns where it
was. Mattes, depth and vectors are data: they are never given a transform.

- **config**: the one the Read was read with in Nuke (the project's), else ``$OCIO``, else OCIO's built-in studio
  config (``ocio://studio-config-latest``, OCIO 2.2+);
- **from**: the Read's ``colorspace`` (a name, an alias or a role). Nuke shows ``default (X)`` where X is the space it
  uses for that file type, so X is taken; a bare ``default``/empty (the command line's case) lets the file type decide
  through the config's roles: EXR/HDR ``scene_linear``, DPX/Cineon ``compositing_log``; 8-bit images (PNG, JPEG, TIFF)
  are display-referred already and pass unchanged. The names of Nuke's own colour management (``linear``, ``sRGB``,
  ``rec709``, ``Cineon``, ...: the nuke-default config) are known in every config (:func:`add_nuke_names`);
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
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from .errors import InputError

BUILTIN_CONFIG = "ocio://studio-config-latest"
# The nuke-default config's spaces (OpenColorIO-Configs nuke-default/config.ocio: linear is its reference, scene linear
# on Rec.709 primaries; the others are curves on it, no gamut change), by the short alias of the same space in OCIO's
# built-in CG and studio configs (every version from v1.0.0 has these aliases) or its ACES 1.x name.
NUKE_EQUIVALENTS: Dict[str, Tuple[str, ...]] = {
    "linear": ("lin_rec709_srgb", "Utility - Linear - sRGB"),
    "sRGB": ("srgb_tx", "Utility - sRGB - Texture"),
    "rec709": ("camera_rec709", "Utility - Rec.709 - Camera"),
    "Gamma1.8": ("g18_rec709",),
    "Gamma2.2": ("g22_rec709",),
    "Gamma2.4": ("g24_rec709",),
    "raw": ("Raw", "Utility - Raw"),
}
# Nuke's own colour management: a script under it knows only these names (Nuke ships the config as
# plugins/OCIOConfigs/configs/nuke-default/config.ocio; a Root says `colorManagement Nuke` / `OCIO_config nuke-default`)
NUKE_DEFAULT = "nuke-default"
NUKE_NAMES = ("sRGB", "rec709", "linear", "Gamma2.2", "Gamma1.8", "Gamma2.4", "Cineon", "raw")
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
            add_nuke_names(config)
            _configs[source] = config
        return config


def _nuke_curves(ocio: Any) -> Dict[str, Callable[[], Any]]:
    """Linear Rec.709 -> the nuke-default space, for the ones a config may lack (its LUT files are these curves)."""
    black = 10 ** ((95 - 685) / 300)  # Kodak's Cineon: code 95 is black, 685 white, 0.002 density/code, gamma 0.6

    def cineon() -> Any:
        curve = ocio.LogAffineTransform(logSideSlope=[300 / 1023] * 3, logSideOffset=[685 / 1023] * 3,
                                        linSideSlope=[1 - black] * 3, linSideOffset=[black] * 3)
        curve.setBase(10)
        return curve

    def rec709() -> Any:  # the BT.709 OETF, as the studio config's Camera Rec.709 writes it
        return ocio.ExponentWithLinearTransform(gamma=[1 / 0.45] * 3 + [1], offset=[0.099] * 3 + [0],
                                                direction=ocio.TRANSFORM_DIR_INVERSE)

    return {"Cineon": cineon, "rec709": rec709}


def add_nuke_names(config: Any) -> None:
    """Make the nuke-default names Nuke shows (``linear``, ``sRGB``, ``rec709``, ``Cineon``, ``Gamma2.2``, ``raw``)
    resolve in ``config`` where it lacks them: an alias on the same space, else (``Cineon``, and ``rec709`` in the CG
    config) that curve on the config's linear Rec.709. A Nuke script made under Nuke's own colour management, or a
    command line that names those spaces, then converts exactly as Nuke would, whatever config is loaded here."""
    import PyOpenColorIO as ocio

    linear = next((config.getColorSpace(n) for n in NUKE_EQUIVALENTS["linear"] if config.getColorSpace(n)), None)
    curves = _nuke_curves(ocio)
    for name in (*NUKE_EQUIVALENTS, *curves):
        if config.getColorSpace(name) is not None:
            continue  # the config has it (nuke-default itself, or a studio's own)
        same = next((config.getColorSpace(n) for n in NUKE_EQUIVALENTS.get(name, ()) if config.getColorSpace(n)),
                    None)
        if same is not None:
            same.addAlias(name)
            config.addColorSpace(same)  # replaces the space of that name with the one carrying the alias
        elif name in curves and linear is not None:
            from_linear = linear.getTransform(ocio.COLORSPACE_DIR_FROM_REFERENCE)
            if from_linear is None:
                from_linear = linear.getTransform(ocio.COLORSPACE_DIR_TO_REFERENCE)
                from_linear.setDirection(ocio.TRANSFORM_DIR_INVERSE)
            space = ocio.ColorSpace(ocio.REFERENCE_SPACE_SCENE, name, family="Nuke",
                                    description=f"Nuke's {name}: the nuke-default curve on {linear.getName()}")
            space.setTransform(ocio.GroupTransform([from_linear, curves[name]()]), ocio.COLORSPACE_DIR_FROM_REFERENCE)
            config.addColorSpace(space)


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
    labelled = _LABELLED.match(name)
    if labelled and labelled.group(1).lower() == "default":
        name = labelled.group(2)  # Foundry: "When the default option is selected, the color transform that Nuke has set
        # for it is listed in brackets" (learn.foundry.com/nuke/content/comp_environment/configuring_nuke/
        # using_ocio_config_files.html); per file type, Project Settings > Color's defaults
    if name.lower() in DEFAULT_NAMES:
        role = ROLE_BY_EXT.get(Path(file_name.split("?")[0]).suffix.lower())
        if role is None:  # 8-bit images are display-referred already
            return SendTransform(config=source, source=target, target=target)
        if cfg.getColorSpace(role) is None:
            raise InputError(f"the OpenColorIO config {source} has no '{role}' role for {Path(file_name).name}: "
                             "set the plate's colour space (the Read's colorspace, --colorspace)")
        name = role
    return SendTransform(config=source, source=_resolve(cfg, name, source), target=target)


def is_nuke_default(config: str) -> bool:
    """``config`` (a Nuke project's config name, or a config's path) is Nuke's nuke-default."""
    text = (config or "").replace("\\", "/").rstrip("/")
    return text == NUKE_DEFAULT or text.endswith(f"/{NUKE_DEFAULT}/config.ocio")


def name_in_script(space: str, config: str, script_config: str) -> Optional[str]:
    """``space``, a colour space of ``config``, as a Read in a script under ``script_config`` must name it.

    Any OCIO config's script takes the name the transform was made with; a nuke-default script knows only its own
    names, so there the nuke-default space that is the same space in ``config`` (:func:`add_nuke_names` made them
    aliases or curves there: ``sRGB Encoded Rec.709 (sRGB)`` is ``sRGB``). None when it has no such space (a display
    space chosen outside Rec.709): the caller leaves the knob to Nuke and says so.
    """
    if not is_nuke_default(script_config) or is_nuke_default(config) or space in NUKE_NAMES:
        return space
    try:
        cfg = load_config(config)
    except InputError:  # the send's config is not on this machine: which space it was cannot be told here
        return None
    own = cfg.getColorSpace(space)
    if own is None:
        return None
    for name in NUKE_NAMES:
        same = cfg.getColorSpace(name)
        if same is not None and same.getName() == own.getName():
            return name
    return None


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


__all__ = ["BUILTIN_CONFIG", "DISPLAY_ROLE", "NUKE_DEFAULT", "NUKE_EQUIVALENTS", "NUKE_NAMES", "ColourChoice",
           "SendTransform", "add_nuke_names", "config_source", "describe", "is_nuke_default", "load_config",
           "name_in_script", "send_transform"]
