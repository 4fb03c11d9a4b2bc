"""A description of Nuke nodes, independent of the ``nuke`` module: what an import will create.

A :class:`NodeSpec` is a node class, a name, knob values in the order they are set, inputs named (another spec's
name, or the plate's Read), and a DAG position. Knob values are plain data:

- ``bool``, ``int``, ``float``, ``str``;
- :class:`FormatValue` (a format knob);
- :class:`Curve` (an animated single value) or a tuple of floats and curves (an array knob such as ``translate``,
  each channel constant or animated).

The same description is written as a .nk snippet (:mod:`tether.nukeimport.nk`) and applied in Nuke by the plugin
(``tether_nuke.importer``), so both paths create exactly the same nodes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .plate import PlateFacts


def number(value: float) -> str:
    """A float as Nuke writes it: shortest exact form, no trailing ``.0``."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value!r} as a knob value")
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    # 12 significant digits: exact enough for any camera, and 0.1 * 3 reads 0.3, not 0.30000000000000004
    return f"{float(value):.12g}"


@dataclass(frozen=True)
class Curve:
    """Keys ``(frame, value)`` in frame order: one animated channel."""

    keys: Tuple[Tuple[float, float], ...]

    @classmethod
    def from_pairs(cls, pairs: Iterable[Tuple[float, float]]) -> Curve:
        keys = tuple(sorted((float(f), float(v)) for f, v in pairs))
        frames = [f for f, _ in keys]
        if len(set(frames)) != len(frames):
            raise ValueError("a curve has two keys on one frame")
        return cls(keys)

    @property
    def frames(self) -> List[float]:
        return [f for f, _ in self.keys]

    def value_at(self, frame: float) -> float:
        for key_frame, value in self.keys:
            if key_frame == frame:
                return value
        raise KeyError(frame)

    @property
    def constant(self) -> Optional[float]:
        values = {v for _, v in self.keys}
        return values.pop() if len(values) == 1 else None

    def to_script(self) -> str:
        """``curve x1001 v1 v2 ...``: a value without ``x`` goes on the frame after the previous key."""
        parts = ["curve"]
        previous: Optional[float] = None
        for frame, value in self.keys:
            if previous is None or frame != previous + 1:
                parts.append(f"x{number(frame)}")
            parts.append(number(value))
            previous = frame
        return " ".join(parts)


@dataclass(frozen=True)
class FormatValue:
    width: int
    height: int
    pixel_aspect: float = 1.0
    name: str = ""

    def to_script(self) -> str:
        name = self.name or f"tether_{self.width}x{self.height}"
        return f"{self.width} {self.height} 0 0 {self.width} {self.height} {number(self.pixel_aspect)} {name}"


Channel = Union[float, Curve]


KnobValue = Union[bool, int, float, str, FormatValue, Curve, Tuple[Channel, ...]]


@dataclass
class NodeSpec:
    node_class: str
    name: str
    knobs: Dict[str, KnobValue] = field(default_factory=dict)
    inputs: Tuple[Optional[str], ...] = ()
    xpos: int = 0
    ypos: int = 0
    # classes to try, in order, when ``node_class`` does not exist in this Nuke (Camera3 -> Camera2)
    fallback_classes: Tuple[str, ...] = ()
    role: str = ""  # "matte", "fit", "alpha", "camera", "retime", "depth"

    @property
    def classes(self) -> Tuple[str, ...]:
        return (self.node_class, *self.fallback_classes)


@dataclass
class ImportDescription:
    """Everything one import creates, beside one plate. ``notes`` are shown to the user (what was guessed or left)."""

    plate: PlateFacts
    nodes: List[NodeSpec] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    job_id: str = ""
    title: str = "Tether import"

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def by_role(self, role: str) -> List[NodeSpec]:
        return [spec for spec in self.nodes if spec.role == role]

    @property
    def names(self) -> List[str]:
        return [spec.name for spec in self.nodes]

    def external_inputs(self) -> List[str]:
        """Inputs that name nodes outside the description (the plate)."""
        own = set(self.names)
        seen: List[str] = []
        for spec in self.nodes:
            for name in spec.inputs:
                if name is not None and name not in own and name not in seen:
                    seen.append(name)
        return seen


_VERSIONED = re.compile(r"^(?P<base>.+)_v(?P<n>\d{3,})$")
VERSION_STEP = 4 * 110  # DAG distance between two versions of an import (below the earlier one)


def next_version(description: ImportDescription, taken: Iterable[str]) -> int:
    """1 + the highest version of this import's nodes among ``taken`` (the names already in the script)."""
    bases = set(description.names)
    found = [int(m.group("n")) for m in map(_VERSIONED.match, taken) if m is not None and m.group("base") in bases]
    return max(found, default=0) + 1


def versioned(description: ImportDescription, taken: Iterable[str]) -> Tuple[ImportDescription, Dict[str, str]]:
    """The description with every node named ``<name>_vNNN`` (the next version free among ``taken``) and moved
    below the earlier versions, so importing a job again adds nodes beside the first import and never replaces
    them. Returns it and each original name -> versioned name. The panel and the .nk writer both go through here."""
    version = next_version(description, taken)
    names = {spec.name: f"{spec.name}_v{version:03d}" for spec in description.nodes}
    nodes = [replace(spec, name=names[spec.name], knobs=dict(spec.knobs),
                     inputs=tuple(names.get(i, i) if i is not None else None for i in spec.inputs),
                     ypos=spec.ypos + (version - 1) * VERSION_STEP) for spec in description.nodes]
    title = f"{description.title} v{version:03d}"
    return replace(description, nodes=nodes, notes=list(description.notes), title=title), names


def channels(value: Any) -> Sequence[Channel]:
    """The channels of a knob value (one for a scalar or curve)."""
    if isinstance(value, tuple):
        return value
    return (value,)


__all__ = ["Channel", "Curve", "FormatValue", "ImportDescription", "KnobValue", "NodeSpec", "channels",
           "next_version", "number", "versioned"]


@dataclass
class Sent:
    """What a clip-in/clip-out service adapter returns after sending a clip (shared by every adapter)."""

    job_id: str
    first_index: int = 0  # 0-based index, in the sent clip, of the output's first frame
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class HandOffRequest:
    """What an adapter gives for a send handed to the agent (:mod:`tether.agent`) instead of made in-process: the
    service's ``handoff_request`` JSON, and what the job's record keeps besides, as :class:`Sent` says of a send."""

    request: Dict[str, Any]
    first_index: int = 0
    extra: Dict[str, Any] = field(default_factory=dict)
