"""A finished job's files -> the nodes to create beside the plate (an :class:`ImportDescription`).

- **Mattes**: a Read of the matte sequence, loaded ``raw`` (a matte is data: no colour transform may bend a soft
  edge), numbered by the service (1..N, 0..N-1 or the plate's own numbers, see :class:`FrameMap`) and placed on the
  plate's frames with ``frame_mode "start at"``; a Reformat to the plate's format when the mattes' size differs
  (or cannot be read); a Copy putting the matte's red channel into the plate's alpha (red, not alpha: a grey PNG
  has no alpha channel, and an RGBA matte carries the matte in its colour too).
- **Camera**: a classic Camera (Camera3, else Camera2) animated on plate frames from .chan or JSON: translate,
  rotate (with the file's rotation order, ZXY for tracker exports), focal (from a vertical FOV through the gate
  the plate is seen through, the horizontal aperture over the plate's aspect, as Nuke draws it), haperture,
  vaperture. An FBX or Alembic camera (used only when no .chan/JSON came; FBX before ABC) is read by Nuke's own
  reader (``read_from_file`` + ``file``, ``frame_rate`` the plate's rate when known) and put on the plate's frames
  by a TimeOffset below it (``time_offset 1000`` when result frame 1 is plate frame 1001).
- **Depth**: a raw Read per depth sequence or movie, on plate frames.

Names follow the plate (``Plate1_roto``, ``Plate1_camera``, ``Plate1_depth``), in columns to its right; each import
of a job is a version of its own (``Plate1_roto_v001``, then ``_v002`` beside it: :func:`versioned`).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..autopilot.results import ResultFiles
from ..errors import InputError
from ..media import group_files, is_movie
from .camera import DEFAULT_HAPERTURE, DEFAULT_VAPERTURE, CameraTrack, image_vaperture, read_camera
from .model import Channel, Curve, FormatValue, ImportDescription, KnobValue, NodeSpec, number
from .plate import FrameMap, PlateFacts, format_ranges, sequence_pattern

CAMERA_EXTS = frozenset({".chan", ".json", ".fbx", ".abc"})
# cameras Nuke's Camera reads itself (read_from_file), in order of preference
READER_CAMERA_EXTS = (".fbx", ".abc")
# The classic Camera: Camera3 (Nuke 13+), else Camera2. Their knobs (translate/rotate curves, rot_order, focal,
# haperture, vaperture, read_from_file, file) are the ones Foundry's own nukescripts.unrealreader sets on a Camera and
# public .nk writers emit (``Camera2 { rot_order XYZ translate {{curve x1001 ...}} focal ... haperture ...}``).
# The new 3D system's Camera4 is not tried: the knob names it was probed for (focal_length, horizontal_aperture...)
# are in no Foundry page or public script found, so a Nuke without a classic Camera gets a clear error instead.
CAMERA_CLASSES = ("Camera3", "Camera2")
# Autopilot numbers its outputs 1..N (the local service does the same)
AUTOPILOT_BASE = 1

COLUMN = 150  # DAG distance between columns (a Read is 80 wide)
ROW = 110


# --- image sizes (enough of each header to know whether a Reformat is needed) -------------------------------------
def image_size(path: Path) -> Optional[Tuple[int, int]]:
    try:
        with open(path, "rb") as fh:
            head = fh.read(64 * 1024)
    except OSError:
        return None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return (int(width), int(height))
    if head[:2] == b"\xff\xd8":
        pos = 2
        while pos + 9 < len(head):
            if head[pos] != 0xFF:
                pos += 1
                continue
            marker = head[pos + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                pos += 2
                continue
            length = struct.unpack(">H", head[pos + 2:pos + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                height, width = struct.unpack(">HH", head[pos + 5:pos + 9])
                return (int(width), int(height))
            pos += 2 + length
        return None
    if head[:4] in (b"SDPX", b"XPDS") and len(head) >= 780:
        # DPX (SMPTE 268M): the image header at 768 holds pixels per line, then lines per element
        order = ">" if head[:4] == b"SDPX" else "<"
        width, height = struct.unpack(order + "II", head[772:780])
        return (int(width), int(height))
    if head[:4] == b"\x76\x2f\x31\x01":
        pos = 8
        while pos < len(head):
            end = head.find(b"\0", pos)
            if end <= pos:
                return None
            name = head[pos:end]
            type_end = head.find(b"\0", end + 1)
            size = struct.unpack("<i", head[type_end + 1:type_end + 5])[0]
            value = head[type_end + 5:type_end + 5 + size]
            if name == b"dataWindow" and size == 16:
                xmin, ymin, xmax, ymax = struct.unpack("<iiii", value)
                return (xmax - xmin + 1, ymax - ymin + 1)
            pos = type_end + 5 + size
    return None


# --- building ---------------------------------------------------------------------------------------------------
def _groups(paths: Iterable[Path]) -> Tuple[List[List[Path]], List[Path]]:
    """Image files grouped into sequences (by folder, name and extension; a file on its own is a group of one),
    and movies apart."""
    paths = list(paths)
    movies = [p for p in paths if is_movie(p)]
    sequences, singles = group_files([p for p in paths if not is_movie(p)], lone_numbers=True)
    groups = {(s.folder.as_posix(), s.head, s.ext): s.files for s in sequences}
    groups.update({(p.parent.as_posix(), p.stem, p.suffix.lower()): [p] for p in singles})
    return [groups[k] for k in sorted(groups)], movies


def _movie_frames(path: Path) -> Optional[int]:
    try:
        from ..autopilot.clip import movie_facts
    except ImportError:  # pragma: no cover - the Autopilot client is part of the same distribution
        return None
    try:
        return movie_facts(path).frames
    except Exception:  # not an MP4/QuickTime we can read: the plate's count stands in
        return None


class _Builder:
    def __init__(self, plate: PlateFacts, declared_base: Optional[int]) -> None:
        self.plate = plate
        self.map: FrameMap = plate.frame_map
        self.declared = declared_base
        self.desc = ImportDescription(plate=plate)
        self.x = plate.xpos
        self.y = plate.ypos

    def name(self, suffix: str) -> str:
        base = f"{self.plate.node}_{suffix}"
        taken = set(self.desc.names)
        if base not in taken:
            return base
        n = 2
        while f"{base}{n}" in taken:
            n += 1
        return f"{base}{n}"

    def sequence_read(self, files: Sequence[Path], suffix: str, role: str, column: int, row: int) -> NodeSpec:
        pattern, numbers = sequence_pattern(files)
        base = self.map.base(numbers, self.declared)
        lo, hi = numbers[0], numbers[-1]
        knobs: Dict[str, KnobValue] = {
            "file": pattern.path,
            "first": lo, "last": hi, "origfirst": lo, "origlast": hi, "origset": True,
            "frame_mode": "start at", "frame": str(self.map.plate_frame(lo, base)),
            "raw": True,
        }
        missing = self.map.missing(numbers, base)
        present = set(numbers)
        gaps = [n for n in range(lo, hi + 1) if n not in present]
        if missing:
            self.desc.notes.append(f"{suffix}: no result for plate frames {format_ranges(missing)}")
        if gaps:
            knobs["on_error"] = "black"  # holes inside the range show black, not an error, in the comp
        spec = NodeSpec("Read", self.name(suffix), knobs, (), self.x + column * COLUMN, self.y + row * ROW, role=role)
        self.desc.nodes.append(spec)
        return spec

    def movie_read(self, path: Path, suffix: str, role: str, column: int, row: int) -> NodeSpec:
        count = _movie_frames(path) or self.map.count
        if count != self.map.count:
            self.desc.notes.append(f"{path.name} has {count} frames for the {self.map.count} frames sent")
        knobs: Dict[str, KnobValue] = {
            "file": Path(path).as_posix(), "first": 1, "last": count, "origfirst": 1, "origlast": count,
            "origset": True, "frame_mode": "start at", "frame": str(self.map.plate_start), "raw": True,
        }
        spec = NodeSpec("Read", self.name(suffix), knobs, (), self.x + column * COLUMN, self.y + row * ROW, role=role)
        self.desc.nodes.append(spec)
        return spec

    # --- mattes ---------------------------------------------------------------------------------------------------
    def mattes(self, paths: Sequence[Path]) -> None:
        groups, movies = _groups(paths)
        if movies:
            self.desc.notes.append(f"matte movies are not imported: {', '.join(p.name for p in movies)}")
        for index, files in enumerate(groups):
            # the first sequence beside the plate, any other (e.g. motion-blur mattes) above it
            read = self.sequence_read(files, "roto", "matte", 1, -index)
            if index:
                continue  # only the first matte goes into the plate's alpha; the others are there to swap in
            source = read.name
            size = image_size(sorted(files)[0])
            plate_size = (self.plate.width, self.plate.height)
            if self.plate.width and self.plate.height and size != plate_size:
                fmt = FormatValue(self.plate.width, self.plate.height, self.plate.pixel_aspect,
                                  self.plate.format_name)
                fit = NodeSpec("Reformat", self.name("roto_fit"), {"format": fmt}, (read.name,), read.xpos,
                               read.ypos + ROW, role="fit")
                self.desc.nodes.append(fit)
                source = fit.name
                if size is not None:
                    self.desc.notes.append(f"mattes are {size[0]}x{size[1]}, the plate {plate_size[0]}x"
                                           f"{plate_size[1]}: reformatted to the plate's format")
            copy = NodeSpec("Copy", self.name("roto_alpha"), {"from0": "rgba.red", "to0": "rgba.alpha"},
                            (self.plate.node, source), read.xpos, read.ypos + 2 * ROW, role="alpha")
            self.desc.nodes.append(copy)

    # --- camera ---------------------------------------------------------------------------------------------------
    def camera(self, paths: Sequence[Path], sensor: Optional[Tuple[float, float]]) -> None:
        solved = [p for p in paths if p.suffix.lower() in (".chan", ".json")]
        read = sorted((p for p in paths if p.suffix.lower() in READER_CAMERA_EXTS),
                      key=lambda p: (READER_CAMERA_EXTS.index(p.suffix.lower()), p.name))
        others = [p for p in paths if p not in solved and p not in read]
        if others:
            self.desc.notes.append(f"camera files not understood: {', '.join(p.name for p in others)}")
        if solved:
            # JSON carries its rotation order and film back, so it wins over .chan when both came
            solved.sort(key=lambda p: (p.suffix.lower() != ".json", p.name))
            track = read_camera(solved[0])
            self.desc.notes.extend(track.notes)
            self.camera_from_track(track, sensor)
            if read:
                self.desc.notes.append(f"{', '.join(p.name for p in read)} not imported: {solved[0].name} has "
                                       "the same camera")
        elif read:
            self.camera_from_file(read[0])
            if read[1:]:
                self.desc.notes.append(f"{', '.join(p.name for p in read[1:])} not imported: {read[0].name} has "
                                       "the same camera")

    def camera_from_file(self, path: Path) -> None:
        """A camera Nuke reads itself (FBX, Alembic), moved onto the plate's frames by a TimeOffset below it.

        The file's keys sit on result frames (Autopilot: 1..N), not on plate frames. A TimeOffset of
        ``plate_start - base`` shows result frame ``base`` at ``plate_start``: Foundry documents TimeOffset for 3D
        nodes ("Unlike TimeClip, the TimeOffset node can also be used with 3D nodes, for example, if you want to offset
        camera times": learn.foundry.com/nuke/8.0/content/user_guide/temporal_operations/offsetting_slipping_clips.html;
        a positive offset moves the input later, frame f of the input at f + offset, as Natron's TimeOffset, modelled
        on Nuke's, documents). Its knob is ``time_offset``, as public Nuke tools set it
        (``nuke.nodes.TimeOffset(inputs=[n], time_offset=1)``). The Camera's own knobs: ``read_from_file`` + ``file``
        (learn.foundry.com/nuke/10.5/content/reference_guide/3d_nodes/camera.html), ``frame_rate`` as public loaders
        set it after reading an .abc (ynput/ayon-nuke load_camera_abc.py). Cameras and renders downstream take the
        TimeOffset's output, so both the panel and the .nk wire it the same way.
        """
        base = self.declared if self.declared is not None else AUTOPILOT_BASE
        shift = self.map.plate_start - base  # plate frame - file frame
        knobs: Dict[str, KnobValue] = {"read_from_file": True, "file": path.as_posix()}
        if self.plate.fps:
            knobs["frame_rate"] = float(self.plate.fps)  # the file's seconds -> frames at the rate that was sent
        camera = NodeSpec("Camera3", self.name("camera"), knobs, (), self.x + 2 * COLUMN, self.y + ROW // 2,
                          fallback_classes=CAMERA_CLASSES[1:], role="camera")
        self.desc.nodes.append(camera)
        self.desc.nodes.append(NodeSpec(
            "TimeOffset", self.name("camera_time"), {"time_offset": shift}, (camera.name,), camera.xpos,
            camera.ypos + ROW, role="retime"))
        last_file = base + self.map.count - 1
        last_plate = self.map.plate_start + self.map.count - 1
        self.desc.notes.append(
            f"{path.name} is read by Nuke's {path.suffix.lower().lstrip('.').upper()} reader: its frames "
            f"{base}-{last_file} are shown on plate frames {self.map.plate_start}-{last_plate} through a "
            f"TimeOffset of {number(shift)} frames below {camera.name}: "
            "connect the TimeOffset, not the Camera, to the render")

    def camera_from_track(self, track: CameraTrack, sensor: Optional[Tuple[float, float]]) -> None:
        base = self.map.base(track.frames, self.declared)
        plate_frames = [self.map.plate_frame(n, base) for n in track.frames]
        haperture = track.haperture or (sensor[0] if sensor else None) or DEFAULT_HAPERTURE
        # the gate the plate is seen through: the back's width over the plate's aspect (what Nuke draws)
        image_gate = image_vaperture(haperture, self.plate.width, self.plate.height, self.plate.pixel_aspect)
        vaperture = track.vaperture or (sensor[1] if sensor else None) or image_gate or DEFAULT_VAPERTURE

        def curve(values: Sequence[float]) -> Curve:
            return Curve.from_pairs(zip(plate_frames, values))

        def vector(values: Sequence[Tuple[float, float, float]]) -> Tuple[Channel, ...]:
            return tuple(curve([v[i] for v in values]) for i in range(3))

        knobs: Dict[str, KnobValue] = {
            "rot_order": track.rot_order,
            "translate": vector(track.translate),
            "rotate": vector(track.rotate),
        }
        focals = track.focals(haperture, image_gate or vaperture)
        if focals is not None:
            focal_curve = curve(focals)
            constant = focal_curve.constant
            knobs["focal"] = constant if constant is not None else focal_curve
        knobs["haperture"] = haperture
        knobs["vaperture"] = vaperture
        missing = self.map.missing(track.frames, base)
        if missing:
            self.desc.notes.append(f"camera: no solve for plate frames {format_ranges(missing)}")
        self.desc.nodes.append(NodeSpec(
            "Camera3", self.name("camera"), knobs, (), self.x + 2 * COLUMN, self.y + ROW // 2,
            fallback_classes=CAMERA_CLASSES[1:], role="camera"))

    # --- depth ----------------------------------------------------------------------------------------------------
    def depth(self, paths: Sequence[Path]) -> None:
        groups, movies = _groups(paths)
        column = 3
        for files in groups:
            self.sequence_read(files, "depth", "depth", column, 0)
            column += 1
        for movie in movies:
            self.movie_read(movie, "depth", "depth", column, 0)
            column += 1


def describe_import(
    plate: PlateFacts,
    files: ResultFiles,
    *,
    sensor: Optional[Tuple[float, float]] = None,
    result_base: Optional[int] = AUTOPILOT_BASE,
    job_id: str = "",
    include: Iterable[str] = ("roto", "camera", "depth"),
) -> ImportDescription:
    """The nodes that import ``files`` beside ``plate``.

    ``sensor`` is the (width, height) in mm sent with a tracking job; ``result_base`` the result numbering the
    service is known to use (numbers that do not fit it are placed by :meth:`FrameMap.base`).
    """
    wanted = set(include)
    unknown = wanted - {"roto", "camera", "depth"}
    if unknown:
        raise InputError(f"unknown import part(s) {', '.join(sorted(unknown))}; use roto, camera, depth")
    if not files:
        raise InputError("the job's results hold no mattes, camera or depth files to import")
    builder = _Builder(plate, result_base)
    builder.desc.job_id = job_id
    builder.desc.title = f"Tether import {job_id}".strip()
    if "roto" in wanted and files.mattes:
        builder.mattes(ResultFiles.paths(files.mattes))
    if "camera" in wanted and files.cameras:
        builder.camera(files.cameras, sensor)
    if "depth" in wanted and files.depth:
        builder.depth(ResultFiles.paths(files.depth))
    other = [path for path, _ in files.unknown]
    if other:
        builder.desc.notes.append(f"not imported (not mattes, camera or depth): "
                                  f"{', '.join(p.name for p in other[:5])}{' ...' if len(other) > 5 else ''}")
    if not builder.desc.nodes:
        raise InputError("nothing to import: the job's results hold none of the parts asked for")
    return builder.desc


__all__ = ["AUTOPILOT_BASE", "ResultFiles", "describe_import", "image_size"]
