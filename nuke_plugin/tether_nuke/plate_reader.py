"""A Read node -> :class:`PlateFacts` (main thread only: it reads knobs).

- ``file`` as written on the knob (``####``, ``%04d``, ``%d``; ``%V``/``%v`` resolved to one view), made absolute
  the way Nuke resolves a relative one; a file knob holding a TCL expression is refused with what to do, since its
  value depends on the frame;
- ``first``/``last`` are the frames used, ``origfirst``/``origlast`` the files found (a file in fileseq's ranged form,
  ``plate.1-3####_v2.exr``, names both); a sequence sends ``first..last``; a movie's range comes from
  ``firstFrame()``/``lastFrame()`` (the node's output, so the offset is taken back out) and the whole movie is sent;
- ``frame_mode`` ("expression", "start at", "offset") with ``frame`` as a string: the plate offset;
- the full-resolution ``file`` and ``format`` always: the ``proxy`` file and proxy mode are ignored;
- fps from the node when it has an ``fps`` knob, else the script's;
- the OCIO config its ``colorspace`` names (:func:`project_ocio_config`), for the colour a video service is sent in.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import nuke
from tether.errors import InputError
from tether.media import is_movie, one_run, split_range
from tether.nukeimport import PlateFacts


def _knob_value(node: nuke.Node, name: str, default: Any = None) -> Any:
    knob = node.knob(name)
    return knob.value() if knob is not None else default


def absolute_file(path: str) -> str:
    """A Read's file as an absolute path, so the plate recorded with a job (and a .nk written from it) finds it from
    any folder: Nuke reads a relative path against the project directory (Root ``project_directory``), else its
    working folder. A project directory that is an expression (``[python {nuke.script_directory()}]``) is taken
    as the script's folder."""
    if not path or os.path.isabs(path) or path.startswith("/"):
        return path
    knob = nuke.root().knob("project_directory")
    base = str(knob.value() or "") if knob is not None else ""
    if "[" in base:
        try:
            script = nuke.scriptName()
        except RuntimeError:  # an unsaved script: Nuke itself falls back to its working folder
            script = ""
        base = os.path.dirname(script) if script else ""
    return os.path.normpath(os.path.join(base or os.getcwd(), path)).replace("\\", "/")


def selected_read() -> Optional[nuke.Node]:
    """The selected Read node (the last one selected when several are), or None."""
    reads = [n for n in nuke.selectedNodes() if n.Class() == "Read"]
    return reads[-1] if reads else None


KEY_KNOBS = ("file", "first", "last", "origfirst", "origlast", "frame_mode", "frame", "colorspace", "fps")


def read_key(node: Optional[nuke.Node]) -> Any:
    """What :func:`read_plate` reads from ``node``, cheaply: equal keys, equal plates (a panel following the
    selection compares them a few times a second). None for no node."""
    if node is None:
        return None
    fmt = node.format()
    return (node.name(), tuple(_knob_value(node, name) for name in KEY_KNOBS), fmt.width(), fmt.height(),
            fmt.name(), script_fps())


def script_fps() -> Optional[float]:
    knob = nuke.root().knob("fps")
    return float(knob.value()) if knob is not None else None


def _root_knob(name: str) -> str:
    found = nuke.root().knob(name)
    return str(found.value() or "") if found is not None else ""


def project_config_name() -> str:
    """The project's config as Project Settings > Color names it: ``nuke-default`` under Nuke's own colour
    management, else ``OCIO_config`` (``custom``, a config Nuke ships); ``$OCIO`` when set, as Nuke prefers it."""
    if os.environ.get("OCIO"):
        return os.environ["OCIO"]
    return "nuke-default" if _root_knob("colorManagement") == "Nuke" else _root_knob("OCIO_config")


def project_ocio_config() -> str:
    """The OCIO config this script's colour spaces come from, as a path or ``ocio://`` URI; empty for ``$OCIO``
    (which Nuke itself prefers when set) or when it cannot be told (then the caller's default applies).

    Project Settings > Color: ``OCIO_config`` names a config Nuke ships under ``plugins/OCIOConfigs/configs/<name>``
    (``nuke-default`` in Nuke's own colour management too), ``custom`` means ``customOCIOConfigPath``; Foundry's CG and
    studio configs are OCIO's of the same names, which OCIO 2.2+ has built in.
    """
    if os.environ.get("OCIO"):
        return ""
    name = project_config_name()
    if name == "custom":
        return _root_knob("customOCIOConfigPath")
    for family in ("cg-config", "studio-config"):
        if family in name:
            return f"ocio://{family}-latest"
    exe = str(getattr(nuke, "EXE_PATH", "") or "")
    shipped = os.path.join(os.path.dirname(exe), "plugins", "OCIOConfigs", "configs", name, "config.ocio")
    return shipped if name and exe and os.path.isfile(shipped) else ""


def read_plate(node: nuke.Node, view: Optional[str] = None) -> PlateFacts:
    if node.Class() != "Read":
        raise InputError(f"{node.name()} is a {node.Class()} node: select the plate's Read node")
    file_text = str(_knob_value(node, "file", "") or "")
    if "[" in file_text:
        raise InputError(f"Read {node.name()}: its file is an expression ({file_text}); "
                         "set the path itself, or bake the expression into a new Read")
    # a file pasted in fileseq's ranged form (plate.1001-1100#.exr, plate.1-3####_v2.exr) names its frames: the
    # pattern is read as the Read's file and the range as the frames used, as `tether ... submit` reads it
    file_text, ranged = split_range(absolute_file(file_text))
    if ranged:
        one_run(ranged)
    if "%V" in file_text or "%v" in file_text:
        views = nuke.views()
        view = view or (views[0] if views else None)
    fmt = node.format()
    fps_value = _knob_value(node, "fps")
    fps = float(fps_value) if fps_value else None
    if not fps:
        fps = script_fps()
    first = ranged[0] if ranged else int(_knob_value(node, "first", 1))
    last = ranged[-1] if ranged else int(_knob_value(node, "last", first))
    origfirst_value = _knob_value(node, "origfirst")
    origlast_value = _knob_value(node, "origlast")
    origfirst = first if ranged else int(origfirst_value) if origfirst_value is not None else None
    origlast = last if ranged else int(origlast_value) if origlast_value is not None else None
    frame_mode = str(_knob_value(node, "frame_mode", "expression") or "expression")
    frame = str(_knob_value(node, "frame", "") or "")
    movie = is_movie(file_text)
    facts = PlateFacts(
        node=node.name(), file=file_text, first=first, last=last, origfirst=origfirst, origlast=origlast,
        frame_mode=frame_mode, frame=frame, width=fmt.width(), height=fmt.height(),
        pixel_aspect=float(fmt.pixelAspect()), format_name=fmt.name() or "",
        colorspace=str(_knob_value(node, "colorspace", "") or ""), ocio_config=project_ocio_config(),
        ocio_project=project_config_name(), fps=fps,
        movie=movie, view=view,
        xpos=node.xpos(), ypos=node.ypos(),
    )
    if movie and file_text:
        # the node's output range is in plate frames: take the offset back out to get the movie's own frames
        offset = facts.offset
        out_first, out_last = node.firstFrame() - offset, node.lastFrame() - offset
        lo = min(out_first, origfirst) if origfirst is not None else out_first
        hi = max(out_last, origlast) if origlast is not None else out_last
        facts = PlateFacts(**{**facts.__dict__, "origfirst": lo, "origlast": hi})
    return facts


def selected_plate(view: Optional[str] = None) -> Optional[PlateFacts]:
    node = selected_read()
    return read_plate(node, view) if node is not None else None


__all__ = ["absolute_file", "project_config_name", "project_ocio_config", "read_key", "read_plate", "script_fps",
           "selected_plate", "selected_read"]
