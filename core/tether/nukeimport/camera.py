"""Camera solves in the forms a tracker exports: ``.chan`` and JSON (FBX is left to Nuke's own reader).

``.chan`` (Nuke's own and most trackers'): one line per frame, ``frame tx ty tz rx ry rz [vfov]``, whitespace
separated, rotations in degrees, vfov the **vertical** field of view in degrees. Lines starting with ``#`` are
comments. Rotation order is not in the file: trackers export ZXY, Nuke's camera default.

JSON: Tether's own schema, which the local Autopilot writes::

    {
      "schema": "tether.camera/1",
      "rotation_order": "ZXY",            # any of XYZ XZY YXZ YZX ZXY ZYX, any case
      "angle_unit": "degrees",            # or "radians"
      "film_back_mm": [36.0, 24.0],       # horizontal and vertical aperture (optional)
      "image": {"width": 1920, "height": 1080},
      "fps": 24,
      "frames": [
        {"frame": 1, "translate": [0, 1.6, 5], "rotate": [-2, 10, 0], "focal_mm": 35.0},
        {"frame": 2, "translate": [0.1, 1.6, 5], "rotate": [-2, 11, 0], "vfov_deg": 37.8}
      ]
    }

Variants accepted (vendors differ): a bare list of frames, ``frames`` as an object keyed by frame number,
``camera``/``cameras[0]`` wrapping the above, ``translation``/``position``/``location``/``t`` and
``rotation``/``euler``/``r`` for the vectors, ``tx ty tz rx ry rz`` as separate fields, ``focal``/
``focal_length``/``lens``, ``vfov``/``fov_y``/``fovy``/``vertical_fov``, ``hfov``/``fov_x`` (in the file's angle
unit; ``vfov_deg``/``hfov_deg`` are degrees whatever it says), ``units`` (``"radians"`` or
``{"angle": "radians"}``), ``haperture``/``vaperture``/``sensor_width``/``sensor_height``.
Frames without a number are numbered from ``first_frame`` (default 1, Autopilot's numbering).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from ..errors import InputError

ROT_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
TRACKER_ROT_ORDER = "ZXY"
# Nuke's camera defaults (mm): a Super 35 gate
DEFAULT_HAPERTURE = 24.576
DEFAULT_VAPERTURE = 18.672

Vec3 = Tuple[float, float, float]


def focal_from_fov(fov_deg: float, aperture_mm: float) -> float:
    """focal = (aperture/2) / tan(fov/2), both of the same axis."""
    if not 0.0 < fov_deg < 180.0:
        raise InputError(f"a field of view of {fov_deg} degrees is impossible (it must be between 0 and 180)")
    return (aperture_mm / 2.0) / math.tan(math.radians(fov_deg) / 2.0)


def image_vaperture(haperture: float, width: int, height: int, pixel_aspect: float = 1.0) -> Optional[float]:
    """The height of the gate a Nuke camera projects the plate through: Nuke fits the horizontal aperture to the
    format's width and derives the vertical from the format's aspect, whatever ``vaperture`` says. So a 38 degree
    vertical FOV on a 16:9 plate with Nuke's 24.576 mm back is focal 20.074, drawn as 38 degrees; through the
    back's 18.672 mm it would be 27.114, drawn as 28.6 degrees (the check of issue 14). Public camera-from-metadata
    scripts compute it the same way (``vAperture = hAperture / aspectRatio``, gist jeremybep 5bfbcc32). None when the
    plate's size is unknown."""
    if not (width and height):
        return None
    return haperture / (width * (pixel_aspect or 1.0) / height)


@dataclass
class CameraTrack:
    """A solved camera per result frame. Lists run in parallel with ``frames``; angles in degrees."""

    frames: List[int]
    translate: List[Vec3]
    rotate: List[Vec3]
    focal: Optional[List[float]] = None
    vfov: Optional[List[float]] = None
    hfov: Optional[List[float]] = None
    rot_order: str = TRACKER_ROT_ORDER
    haperture: Optional[float] = None
    vaperture: Optional[float] = None
    fps: Optional[float] = None
    source: str = ""
    notes: List[str] = field(default_factory=list)

    def focals(self, haperture: float, vaperture: float) -> Optional[List[float]]:
        """Focal length per frame in mm: given directly, or from the vertical (else horizontal) FOV.

        ``vaperture`` is the gate height the image's vertical FOV spans: for a Nuke camera that is the horizontal
        aperture over the plate's aspect (see :func:`image_vaperture`), not the film back's own height."""
        if self.focal is not None:
            return list(self.focal)
        if self.vfov is not None:
            return [focal_from_fov(v, vaperture) for v in self.vfov]
        if self.hfov is not None:
            return [focal_from_fov(h, haperture) for h in self.hfov]
        return None


def _rot_order(value: Any, source: str) -> str:
    order = str(value).strip().upper()
    if order not in ROT_ORDERS:
        raise InputError(f"{source}: rotation order {value!r} is not one of {', '.join(ROT_ORDERS)}")
    return order


# --- .chan -------------------------------------------------------------------------------------------------------
def parse_chan(text: str, source: str = ".chan") -> CameraTrack:
    frames: List[int] = []
    translate: List[Vec3] = []
    rotate: List[Vec3] = []
    vfov: List[float] = []
    columns: Optional[int] = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.replace(",", " ").split()
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise InputError(f"{source} line {number}: {stripped[:60]!r} is not numbers "
                             "(expected: frame tx ty tz rx ry rz vfov)") from None
        if len(values) not in (7, 8):
            raise InputError(f"{source} line {number}: {len(values)} columns; a .chan line has 7 or 8 "
                             "(frame tx ty tz rx ry rz [vfov])")
        if columns is None:
            columns = len(values)
        elif columns != len(values):
            raise InputError(f"{source} line {number}: {len(values)} columns where earlier lines had {columns}")
        if not values[0].is_integer():
            raise InputError(f"{source} line {number}: frame {values[0]} is not a whole frame")
        frames.append(int(values[0]))
        translate.append((values[1], values[2], values[3]))
        rotate.append((values[4], values[5], values[6]))
        if len(values) == 8:
            vfov.append(values[7])
    if not frames:
        raise InputError(f"{source} holds no camera frames")
    if len(set(frames)) != len(frames):
        raise InputError(f"{source} lists a frame twice")
    track = CameraTrack(frames=frames, translate=translate, rotate=rotate, vfov=vfov or None, source=source)
    if not vfov:
        track.notes.append(f"{source} has no field of view column: the camera keeps its default focal length")
    return track


# --- JSON --------------------------------------------------------------------------------------------------------
def _first(data: Mapping[str, Any], *names: str) -> Any:
    lowered = {str(k).lower(): v for k, v in data.items()}
    for name in names:
        if name in lowered and lowered[name] is not None:
            return lowered[name]
    return None


def _vec(data: Mapping[str, Any], names: Sequence[str], parts: Sequence[str], what: str, source: str) -> Vec3:
    value = _first(data, *names)
    if value is None:
        lowered = {str(k).lower(): v for k, v in data.items()}
        if all(p in lowered for p in parts):
            value = [lowered[p] for p in parts]
    if isinstance(value, Mapping):
        value = [_first(value, "x", "0"), _first(value, "y", "1"), _first(value, "z", "2")]
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise InputError(f"{source}: a frame has no {what} as three numbers (looked for {', '.join(names)})")
    try:
        x, y, z = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{source}: {what} {value!r} is not three numbers") from None
    return (x, y, z)


def _angle_unit(data: Mapping[str, Any]) -> str:
    unit = _first(data, "angle_unit", "angle_units", "rotation_unit", "units", "unit")
    if isinstance(unit, Mapping):
        unit = _first(unit, "angle", "angles", "rotation", "rotate")
    text = str(unit or "degrees").strip().lower()
    if text in ("rad", "radian", "radians"):
        return "radians"
    if text in ("deg", "degree", "degrees"):
        return "degrees"
    return text


def parse_camera_json(text: str, source: str = "camera.json") -> CameraTrack:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{source} is not JSON: {exc}") from None
    if isinstance(data, Mapping):
        cams = _first(data, "cameras")
        if isinstance(cams, list) and cams and isinstance(cams[0], Mapping):
            data = {**{k: v for k, v in data.items() if k != "cameras"}, **cams[0]}
        inner = _first(data, "camera")
        if isinstance(inner, Mapping):
            data = {**{k: v for k, v in data.items() if k != "camera"}, **inner}
        raw_frames = _first(data, "frames", "keys", "samples", "keyframes")
        header: Mapping[str, Any] = data
    elif isinstance(data, list):
        raw_frames, header = data, {}
    else:
        raise InputError(f"{source}: expected an object or a list of frames")
    if isinstance(raw_frames, Mapping):
        raw_frames = [{**v, "frame": k} for k, v in raw_frames.items() if isinstance(v, Mapping)]
    if not isinstance(raw_frames, list) or not raw_frames:
        raise InputError(f"{source} holds no camera frames (expected a 'frames' list)")
    unit = _angle_unit(header)
    if unit not in ("degrees", "radians"):
        raise InputError(f"{source}: angle unit {unit!r} is neither degrees nor radians")
    to_deg = math.degrees if unit == "radians" else float
    order = _rot_order(_first(header, "rotation_order", "rot_order", "euler_order", "order") or TRACKER_ROT_ORDER,
                       source)
    start = _first(header, "first_frame", "start_frame", "frame_start")
    start_number = int(start) if start is not None else 1

    frames: List[int] = []
    translate: List[Vec3] = []
    rotate: List[Vec3] = []
    focal: List[Optional[float]] = []
    vfov: List[Optional[float]] = []
    hfov: List[Optional[float]] = []
    for index, item in enumerate(raw_frames):
        if not isinstance(item, Mapping):
            raise InputError(f"{source}: frame {index} is not an object")
        number = _first(item, "frame", "f", "time", "frame_number")
        try:
            frame_value = float(number) if number is not None else float(start_number + index)
        except (TypeError, ValueError):
            raise InputError(f"{source}: frame number {number!r} is not a number") from None
        if not frame_value.is_integer():
            raise InputError(f"{source}: frame {number!r} is not a whole frame")
        frames.append(int(frame_value))
        translate.append(_vec(item, ("translate", "translation", "position", "location", "t"), ("tx", "ty", "tz"),
                              "translation", source))
        rx, ry, rz = _vec(item, ("rotate", "rotation", "euler", "r"), ("rx", "ry", "rz"), "rotation", source)
        rotate.append((to_deg(rx), to_deg(ry), to_deg(rz)))
        f = _first(item, "focal_mm", "focal", "focal_length", "lens")
        # ``*_deg`` fields say their unit in their name: degrees whatever the file's angle unit; the others
        # (``vfov``, ``fov_y``, ``fov``...) follow the file's angle unit
        v_deg, h_deg = _first(item, "vfov_deg"), _first(item, "hfov_deg")
        v = _first(item, "vfov", "fov_y", "fovy", "vertical_fov")
        h = _first(item, "hfov", "fov_x", "fovx", "horizontal_fov")
        fov = _first(item, "fov")
        if fov is not None and v is None and h is None and v_deg is None and h_deg is None:
            axis = str(_first(item, "fov_axis") or _first(header, "fov_axis") or "vertical").lower()
            if axis.startswith("h"):
                h = fov
            else:
                v = fov
        focal.append(float(f) if f is not None else None)
        vfov.append(float(v_deg) if v_deg is not None else (to_deg(float(v)) if v is not None else None))
        hfov.append(float(h_deg) if h_deg is not None else (to_deg(float(h)) if h is not None else None))
    if len(set(frames)) != len(frames):
        raise InputError(f"{source} lists a frame twice")

    def complete(values: List[Optional[float]]) -> Optional[List[float]]:
        if all(v is not None for v in values):
            return [float(v) for v in values if v is not None]
        if any(v is not None for v in values):
            # a lens given once (e.g. on the first frame) holds for all frames
            known = [v for v in values if v is not None]
            if len(known) == 1:
                return [float(known[0])] * len(values)
            raise InputError(f"{source}: some frames give a lens value and others do not")
        return None

    focal_all = complete(focal)
    top_focal = _first(header, "focal_mm", "focal", "focal_length", "lens")
    if focal_all is None and top_focal is not None:
        focal_all = [float(top_focal)] * len(frames)
    back = _first(header, "film_back_mm", "film_back", "sensor_mm", "sensor")
    hap = _first(header, "haperture", "horizontal_aperture", "sensor_width", "film_back_width")
    vap = _first(header, "vaperture", "vertical_aperture", "sensor_height", "film_back_height")
    if isinstance(back, (list, tuple)) and len(back) == 2:
        hap, vap = back
    elif isinstance(back, Mapping):
        hap = _first(back, "width", "w", "horizontal") if hap is None else hap
        vap = _first(back, "height", "h", "vertical") if vap is None else vap
    fps = _first(header, "fps", "frame_rate")
    track = CameraTrack(
        frames=frames, translate=translate, rotate=rotate, focal=focal_all,
        vfov=None if focal_all is not None else complete(vfov),
        hfov=None if focal_all is not None else complete(hfov),
        rot_order=order, haperture=float(hap) if hap is not None else None,
        vaperture=float(vap) if vap is not None else None, fps=float(fps) if fps else None, source=source,
    )
    if track.focal is None and track.vfov is None and track.hfov is None:
        track.notes.append(f"{source} gives no lens (focal or field of view): the camera keeps its default focal")
    return track


def read_camera(path: Path) -> CameraTrack:
    """A .chan or JSON camera file (by content when the extension says neither)."""
    text = Path(path).read_text(encoding="utf-8-sig")
    suffix = Path(path).suffix.lower()
    if suffix == ".chan":
        return parse_chan(text, Path(path).name)
    if suffix == ".json" or text.lstrip()[:1] in ("{", "["):
        return parse_camera_json(text, Path(path).name)
    return parse_chan(text, Path(path).name)


__all__ = [
    "DEFAULT_HAPERTURE", "DEFAULT_VAPERTURE", "ROT_ORDERS", "TRACKER_ROT_ORDER", "CameraTrack", "focal_from_fov",
    "image_vaperture", "parse_camera_json", "parse_chan", "read_camera",
]
