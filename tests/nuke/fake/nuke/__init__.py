"""A strict stand-in for Nuke's ``nuke`` module, for the plugin's tests.

Strict on purpose, unlike a MagicMock: an attribute Nuke does not have raises AttributeError, a knob a node class
does not have raises NameError (``node["nope"]``) or gives None (``node.knob("nope")``), an enumeration knob refuses
a value it does not list, a node touched from a thread other than the main thread raises RuntimeError (Nuke would
crash), and ``executeInMainThread`` called *from* the main thread raises (Nuke would hang).

Knobs keep values and animation (per channel keys; ``fromScript`` reads ``{curve x1001 1 2 3}`` with its own small
parser, independent of Tether's writer). Nodes connect, are named uniquely, and are deleted by ``undo()`` of the
``Undo`` group they were created in.

Test helpers (not part of Nuke) start with ``_``: ``_reset()``, ``_run_main_queue()``, ``_messages``, ``_undo_log``.
"""

from __future__ import annotations

import os
import queue
import re
import sys
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

GUI = True
NUKE_VERSION_MAJOR = 15
NUKE_VERSION_MINOR = 1
NUKE_VERSION_STRING = "15.1v3"
env: Dict[str, Any] = {"gui": True, "NukeVersionMajor": 15, "NukeVersionMinor": 1}


def _check_thread(what: str) -> None:
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(f"{what} touched off the main thread: Nuke's nodes may only be used on the main thread")


# --- formats ---------------------------------------------------------------------------------------------------
class Format:
    def __init__(self, width: int, height: int, pixel_aspect: float = 1.0, name: str = "") -> None:
        self._w, self._h, self._pa, self._name = width, height, pixel_aspect, name

    def width(self) -> int:
        return self._w

    def height(self) -> int:
        return self._h

    def pixelAspect(self) -> float:
        return self._pa

    def name(self) -> str:
        return self._name

    def x(self) -> int:
        return 0

    def y(self) -> int:
        return 0

    def r(self) -> int:
        return self._w

    def t(self) -> int:
        return self._h

    def __repr__(self) -> str:
        return f"Format({self._w}x{self._h} {self._pa} {self._name})"


_formats: Dict[str, Format] = {}


def _default_formats() -> Dict[str, Format]:
    return {f.name(): f for f in (Format(1920, 1080, 1.0, "HD_1080"), Format(2048, 1556, 1.0, "2K_Super_35(full-ap)"),
                                  Format(1280, 720, 1.0, "HD_720"), Format(640, 480, 1.0, "PC_Video"))}


def formats() -> List[Format]:
    return list(_formats.values())


def addFormat(text: str) -> Format:
    parts = text.split()
    if len(parts) == 4:
        w, h, pa, name = parts
    elif len(parts) == 8:
        w, h, _, _, _, _, pa, name = parts
    else:
        raise ValueError(f"bad format string {text!r}")
    fmt = Format(int(w), int(h), float(pa), name)
    _formats[name] = fmt
    return fmt


# --- script values (the fake's own reader, not Tether's) ---------------------------------------------------------
def _wrapped(text: str) -> bool:
    """True when the first brace closes at the very end: ``{a {b} c}``, not ``{a} {b}``."""
    if not text.startswith("{"):
        return False
    depth = 0
    for i, c in enumerate(text):
        depth += {"{": 1, "}": -1}.get(c, 0)
        if depth == 0:
            return i == len(text) - 1
    return False


def _split_braced(text: str) -> List[str]:
    """Top-level items of ``{a {b c} d}`` or ``a {b c} d``."""
    text = text.strip()
    if _wrapped(text):
        text = text[1:-1]
    items, depth, current = [], 0, ""
    for c in text:
        if c == "{":
            depth += 1
            if depth == 1:
                continue
        elif c == "}":
            depth -= 1
            if depth == 0:
                items.append("{" + current + "}")
                current = ""
                continue
        if depth == 0 and c.isspace():
            if current:
                items.append(current)
            current = ""
            continue
        current += c
    if current:
        items.append(current)
    return items


def _read_curve(text: str) -> Dict[float, float]:
    words = text.strip().strip("{}").split()
    assert words and words[0] == "curve", text
    keys: Dict[float, float] = {}
    frame = 0.0
    for word in words[1:]:
        if word.startswith("x"):
            frame = float(word[1:])
            continue
        keys[frame] = float(word)
        frame += 1
    return keys


# --- knobs --------------------------------------------------------------------------------------------------------
class Knob:
    def __init__(self, name: str, default: Any = "") -> None:
        self._name = name
        self._value = default
        self._node: Optional[Node] = None

    def name(self) -> str:
        return self._name

    def Class(self) -> str:
        return type(self).__name__

    def node(self) -> Node:
        assert self._node is not None
        return self._node

    def _coerce(self, value: Any) -> Any:
        return value

    def value(self) -> Any:
        _check_thread(f"knob {self._name}")
        return self._value

    def getValue(self) -> Any:
        return self.value()

    def setValue(self, value: Any) -> bool:
        _check_thread(f"knob {self._name}")
        self._value = self._coerce(value)
        return True

    def fromScript(self, text: str) -> None:
        self.setValue(text.strip().strip('"'))

    def toScript(self) -> str:
        return str(self._value)

    def isAnimated(self, index: int = 0) -> bool:
        return False


class String_Knob(Knob):
    def _coerce(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise TypeError(f"knob {self._name} takes a string, not {type(value).__name__}")
        return value


class File_Knob(String_Knob):
    def evaluate(self) -> str:
        return str(self._value)


class EvalString_Knob(String_Knob):
    pass


class Int_Knob(Knob):
    def __init__(self, name: str, default: int = 0) -> None:
        super().__init__(name, default)

    def _coerce(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise TypeError(f"knob {self._name} takes a whole number, not {value!r}")
        return int(value)

    def fromScript(self, text: str) -> None:
        self.setValue(int(float(text)))


class Boolean_Knob(Knob):
    def __init__(self, name: str, default: bool = False) -> None:
        super().__init__(name, default)

    def _coerce(self, value: Any) -> Any:
        if not isinstance(value, (bool, int)):
            raise TypeError(f"knob {self._name} takes a bool, not {value!r}")
        return bool(value)

    def fromScript(self, text: str) -> None:
        self.setValue(text.strip() in ("true", "1"))


class Enumeration_Knob(Knob):
    def __init__(self, name: str, values: Sequence[str], default: Optional[str] = None) -> None:
        super().__init__(name, default if default is not None else values[0])
        self._values = list(values)

    def values(self) -> List[str]:
        return list(self._values)

    def _coerce(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return self._values[value]
        if value not in self._values:
            raise ValueError(f"knob {self._name}: {value!r} is not one of {self._values}")
        return value


class Channel_Knob(Knob):
    def _coerce(self, value: Any) -> Any:
        if not isinstance(value, str) or not re.match(r"^(none|[a-z]\w*\.[a-z]\w*)$", value):
            raise ValueError(f"knob {self._name}: {value!r} is not a channel like rgba.alpha")
        return value


class Format_Knob(Knob):
    def __init__(self, name: str) -> None:
        super().__init__(name, None)

    def _coerce(self, value: Any) -> Any:
        if isinstance(value, Format):
            return value
        if isinstance(value, str) and value in _formats:
            return _formats[value]
        raise ValueError(f"knob {self._name}: no format named {value!r} (add it with nuke.addFormat first)")

    def fromScript(self, text: str) -> None:
        self._value = addFormat(text.strip().strip('"'))


class AnimationKey:
    def __init__(self, x: float, y: float) -> None:
        self.x = x
        self.y = y


class AnimationCurve:
    def __init__(self, knob: Array_Knob, index: int) -> None:
        self._knob = knob
        self._index = index

    def keys(self) -> List[AnimationKey]:
        return [AnimationKey(x, y) for x, y in sorted(self._knob._keys[self._index].items())]

    def setKey(self, x: float, y: float) -> AnimationKey:
        self._knob._keys[self._index][float(x)] = float(y)
        return AnimationKey(x, y)

    def evaluate(self, x: float) -> float:
        return self._knob.getValueAt(x, self._index)


_FRAME_EXPR = re.compile(r"^\s*frame\s*(?:([+-])\s*(\d+(?:\.\d+)?))?\s*$")


class Array_Knob(Knob):
    """Numbers per channel, each constant or animated (keys by frame; straight lines between keys)."""

    def __init__(self, name: str, size: int = 1, default: Sequence[float] = (0.0,)) -> None:
        super().__init__(name, None)
        values = list(default) if len(default) == size else [float(default[0])] * size
        self._size = size
        self._consts = [float(v) for v in values]
        self._keys: List[Dict[float, float]] = [{} for _ in range(size)]
        self._exprs: List[Optional[str]] = [None] * size

    def arraySize(self) -> int:
        return self._size

    def _index(self, index: int) -> int:
        if not 0 <= index < self._size:
            raise IndexError(f"knob {self._name} has {self._size} channel(s), not index {index}")
        return index

    def value(self, index: int = 0) -> float:  # type: ignore[override]
        _check_thread(f"knob {self._name}")
        return self.getValueAt(float(_frame), index)

    def getValue(self, index: int = 0) -> float:  # type: ignore[override]
        return self.value(index)

    def setValue(self, value: Any, index: int = -1) -> bool:  # type: ignore[override]
        _check_thread(f"knob {self._name}")
        if isinstance(value, (list, tuple)):
            if len(value) != self._size:
                raise ValueError(f"knob {self._name} takes {self._size} values, not {len(value)}")
            for i, v in enumerate(value):
                self.setValue(v, i)
            return True
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"knob {self._name} takes numbers, not {value!r}")
        for i in range(self._size) if index == -1 else [self._index(index)]:
            self._consts[i] = float(value)
            self._keys[i] = {}
            self._exprs[i] = None
        return True

    def setExpression(self, expression: str, index: int = -1, view: Optional[str] = None) -> bool:
        """Only ``frame``, ``frame+N`` and ``frame-N`` are understood (the fake evaluates them itself)."""
        _check_thread(f"knob {self._name}")
        if not isinstance(expression, str) or _FRAME_EXPR.match(expression) is None:
            raise ValueError(f"knob {self._name}: the fake cannot evaluate the expression {expression!r}")
        for i in range(self._size) if index == -1 else [self._index(index)]:
            self._exprs[i] = expression.strip()
            self._keys[i] = {}
        return True

    def hasExpression(self, index: int = -1) -> bool:
        indices = range(self._size) if index == -1 else [self._index(index)]
        return any(self._exprs[i] is not None for i in indices)

    def setValueAt(self, value: float, time: float, index: int = 0) -> bool:
        _check_thread(f"knob {self._name}")
        self._keys[self._index(index)][float(time)] = float(value)
        return True

    def getValueAt(self, time: float, index: int = 0) -> float:
        expression = self._exprs[self._index(index)]
        if expression is not None:
            match = _FRAME_EXPR.match(expression)
            assert match is not None
            sign, amount = match.groups()
            return float(time) + (0.0 if not amount else float(amount) * (1 if sign == "+" else -1))
        keys = self._keys[self._index(index)]
        if not keys:
            return self._consts[index]
        if time in keys:
            return keys[time]
        frames = sorted(keys)
        if time <= frames[0]:
            return keys[frames[0]]
        if time >= frames[-1]:
            return keys[frames[-1]]
        for a, b in zip(frames, frames[1:]):
            if a <= time <= b:
                t = (time - a) / (b - a)
                return keys[a] + (keys[b] - keys[a]) * t
        raise AssertionError("unreachable")

    def isAnimated(self, index: int = 0) -> bool:
        return bool(self._keys[self._index(index)])

    def setAnimated(self, index: int = -1) -> bool:
        for i in range(self._size) if index == -1 else [self._index(index)]:
            if not self._keys[i]:
                self._keys[i][float(_frame)] = self._consts[i]
        return True

    def animation(self, index: int) -> Optional[AnimationCurve]:
        return AnimationCurve(self, self._index(index)) if self._keys[index] else None

    def animations(self) -> List[AnimationCurve]:
        return [AnimationCurve(self, i) for i in range(self._size) if self._keys[i]]

    def fromScript(self, text: str) -> None:
        _check_thread(f"knob {self._name}")
        text = text.strip()
        if self._size == 1 and text.startswith("{") and _wrapped(text):
            inner = text[1:-1].strip()
            text = inner if inner.startswith("{") else text  # {{curve ...}} as a .nk line writes it
        items = _split_braced(text) if text.startswith("{") else [text]
        if self._size == 1 and len(items) == 1 and items[0].startswith("{curve"):
            pass
        elif self._size == 1 and text.startswith("{") and _wrapped(text):
            items = [text]  # {curve ...} or {frame-1000}: one channel's animation or expression
        if len(items) == 1 and self._size > 1 and not items[0].startswith("{"):
            items = items * self._size
        if len(items) != self._size:
            raise ValueError(f"knob {self._name}: {len(items)} values for {self._size} channels in {text[:60]!r}")
        for i, item in enumerate(items):
            self._exprs[i] = None
            if item.startswith("{curve"):
                self._keys[i] = _read_curve(item)
            elif item.startswith("{"):  # {frame-1000}: an expression
                self.setExpression(item[1:-1], i)
            else:
                self._consts[i] = float(item)
                self._keys[i] = {}

    def toScript(self) -> str:
        parts = []
        for i in range(self._size):
            expression = self._exprs[i]
            if expression is not None:
                parts.append("{" + expression + "}")
            elif self._keys[i]:
                parts.append("{curve " + " ".join(f"x{x:g} {y:g}" for x, y in sorted(self._keys[i].items())) + "}")
            else:
                parts.append(f"{self._consts[i]:g}")
        if self._size == 1:
            return "{" + parts[0] + "}" if self._exprs[0] is not None else parts[0]
        return "{" + " ".join(parts) + "}"


class Double_Knob(Array_Knob):
    def __init__(self, name: str, default: float = 0.0) -> None:
        super().__init__(name, 1, (default,))


class XYZ_Knob(Array_Knob):
    def __init__(self, name: str, default: Sequence[float] = (0.0, 0.0, 0.0)) -> None:
        super().__init__(name, 3, default)


# --- nodes --------------------------------------------------------------------------------------------------------
_COMMON: List[Callable[[], Knob]] = [
    lambda: String_Knob("name"), lambda: Int_Knob("xpos"), lambda: Int_Knob("ypos"),
    lambda: Boolean_Knob("selected"), lambda: String_Knob("label"), lambda: Boolean_Knob("disable"),
]
_ROT_ORDERS = ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"]
_COLORSPACES = ["default", "linear", "sRGB", "rec709", "Gamma2.2", "ACES - ACEScg", "Output - sRGB",
                "sRGB Encoded Rec.709 (sRGB)"]  # the last: OCIO's studio/CG configs' color_picking


def _read_knobs() -> List[Knob]:
    return [
        File_Knob("file"), File_Knob("proxy"), Format_Knob("format"), Format_Knob("proxy_format"),
        Int_Knob("first", 1), Int_Knob("last", 1), Int_Knob("origfirst", 1), Int_Knob("origlast", 1),
        Boolean_Knob("origset"), Enumeration_Knob("before", ["hold", "loop", "bounce", "black"]),
        Enumeration_Knob("after", ["hold", "loop", "bounce", "black"]),
        Enumeration_Knob("frame_mode", ["expression", "start at", "offset"]), String_Knob("frame"),
        Enumeration_Knob("on_error", ["error", "black", "checkerboard", "nearest frame"]),
        Enumeration_Knob("colorspace", _COLORSPACES), Boolean_Knob("raw"), Boolean_Knob("premultiplied"),
        Boolean_Knob("auto_alpha"),
    ]


def _camera_knobs(with_file: bool = True) -> List[Knob]:
    knobs: List[Knob] = [
        XYZ_Knob("translate"), XYZ_Knob("rotate"), XYZ_Knob("scaling", (1.0, 1.0, 1.0)),
        Enumeration_Knob("rot_order", _ROT_ORDERS, "ZXY"),
        Enumeration_Knob("xform_order", ["SRT", "STR", "RST", "RTS", "TSR", "TRS"], "SRT"),
        Double_Knob("focal", 50.0), Double_Knob("haperture", 24.576), Double_Knob("vaperture", 18.672),
        Double_Knob("near", 0.1), Double_Knob("far", 10000.0), Array_Knob("win_translate", 2, (0.0, 0.0)),
    ]
    if with_file:
        # the File tab (learn.foundry.com/nuke/10.5/content/reference_guide/3d_nodes/camera.html: read_from_file,
        # file; frame_rate as public loaders set it)
        knobs += [Boolean_Knob("read_from_file"), File_Knob("file"), Double_Knob("frame_rate", 24.0)]
    return knobs


CLASSES: Dict[str, Tuple[int, Callable[[], List[Knob]]]] = {
    "Read": (0, _read_knobs),
    "Copy": (2, lambda: [Channel_Knob("from0", "rgba.alpha"), Channel_Knob("to0", "rgba.alpha"),
                         Channel_Knob("from1", "none"), Channel_Knob("to1", "none")]),
    "Reformat": (1, lambda: [Enumeration_Knob("type", ["to format", "to box", "scale"]), Format_Knob("format"),
                             Enumeration_Knob("resize", ["none", "width", "height", "fit", "fill", "distort"],
                                              "width")]),
    "Camera2": (2, _camera_knobs),
    "Camera3": (2, _camera_knobs),
    # Foundry's user guide: TimeOffset works on 3D nodes too; knobs as public scripts set them
    "TimeOffset": (1, lambda: [Int_Knob("time_offset", 0), Boolean_Knob("reverse_input")]),
    "Dot": (1, list),
    "Blur": (1, lambda: [Double_Knob("size", 0.0)]),
    "Write": (1, lambda: [File_Knob("file")]),
}
_CLASSES_AVAILABLE = set(CLASSES)  # a test may remove a class to stand for an older or newer Nuke


class Node:
    __slots__ = ("_class", "_deleted", "_inputs", "_knobs", "_max_inputs")

    def __init__(self, cls: str) -> None:
        max_inputs, factory = CLASSES[cls]
        self._class = cls
        self._knobs: Dict[str, Knob] = {}
        for knob in [f() for f in _COMMON] + factory():
            knob._node = self
            self._knobs[knob.name()] = knob
        self._inputs: List[Optional[Node]] = [None] * max_inputs
        self._max_inputs = max_inputs
        self._deleted = False
        if cls == "Read":
            self._knobs["format"]._value = _formats.get("HD_1080")

    def _alive(self) -> None:
        _check_thread(f"node {self._knobs['name']._value}")
        if self._deleted:
            raise ValueError("A PythonObject is not attached to a node")

    def Class(self) -> str:
        self._alive()
        return self._class

    def name(self) -> str:
        self._alive()
        return str(self._knobs["name"]._value)

    def fullName(self) -> str:
        return self.name()

    def setName(self, name: str, uncollide: bool = True, updateExpressions: bool = False) -> None:
        self._alive()
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise ValueError(f"bad node name {name!r}")
        other = _by_name.get(name)
        if other is not None and other is not self:
            if not uncollide:
                raise ValueError(f"name {name!r} is already in use")
            name = _unique(name)
        _by_name.pop(self._knobs["name"]._value, None)
        self._knobs["name"]._value = name
        _by_name[name] = self

    def knob(self, name: str) -> Optional[Knob]:
        self._alive()
        return self._knobs.get(name)

    def knobs(self) -> Dict[str, Knob]:
        self._alive()
        return dict(self._knobs)

    def __getitem__(self, name: str) -> Knob:
        self._alive()
        if name not in self._knobs:
            raise NameError(f"knob {name} does not exist")
        return self._knobs[name]

    def input(self, index: int) -> Optional[Node]:
        self._alive()
        if 0 <= index < len(self._inputs):
            node = self._inputs[index]
            return node if node is not None and not node._deleted else None
        return None

    def inputs(self) -> int:
        self._alive()
        connected = [i for i, n in enumerate(self._inputs) if n is not None and not n._deleted]
        return connected[-1] + 1 if connected else 0

    def maxInputs(self) -> int:
        return self._max_inputs

    def setInput(self, index: int, node: Optional[Node]) -> bool:
        self._alive()
        if not 0 <= index < self._max_inputs:
            return False
        self._inputs[index] = node
        return True

    def dependent(self) -> List[Node]:
        self._alive()
        return [n for n in _nodes if any(i is self for i in n._inputs)]

    def xpos(self) -> int:
        self._alive()
        return int(self._knobs["xpos"]._value)

    def ypos(self) -> int:
        self._alive()
        return int(self._knobs["ypos"]._value)

    def setXYpos(self, x: int, y: int) -> None:
        self._knobs["xpos"].setValue(int(x))
        self._knobs["ypos"].setValue(int(y))

    def setXpos(self, x: int) -> None:
        self._knobs["xpos"].setValue(int(x))

    def setYpos(self, y: int) -> None:
        self._knobs["ypos"].setValue(int(y))

    def screenWidth(self) -> int:
        return 80

    def screenHeight(self) -> int:
        return 78 if self._class == "Read" else 18

    def isSelected(self) -> bool:
        self._alive()
        return bool(self._knobs["selected"]._value)

    def setSelected(self, selected: bool) -> None:
        self._alive()
        self._knobs["selected"]._value = bool(selected)

    def selectOnly(self) -> None:
        for node in _nodes:
            node._knobs["selected"]._value = False
        self.setSelected(True)

    def _offset(self) -> int:
        mode = self._knobs["frame_mode"]._value
        text = str(self._knobs["frame"]._value).strip()
        if not text:
            return 0
        if mode == "start at":
            return int(float(text)) - int(self._knobs["first"]._value)
        if mode == "offset":
            return int(float(text))
        return 0

    def firstFrame(self) -> int:
        self._alive()
        if self._class == "Read":  # the node's output range: its file range moved by frame_mode
            return int(self._knobs["first"]._value) + self._offset()
        return int(_root._knobs["first_frame"]._value)

    def lastFrame(self) -> int:
        self._alive()
        if self._class == "Read":
            return int(self._knobs["last"]._value) + self._offset()
        return int(_root._knobs["last_frame"]._value)

    def format(self) -> Format:
        self._alive()
        knob = self._knobs.get("format")
        if knob is not None and knob._value is not None:
            return knob._value  # type: ignore[no-any-return]
        return _root._knobs["format"]._value  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<fake {self._class} {self._knobs['name']._value}>"


class Root:
    __slots__ = ("_knobs",)

    def __init__(self) -> None:
        self._knobs: Dict[str, Knob] = {}
        for knob in [String_Knob("name"), Int_Knob("first_frame", 1), Int_Knob("last_frame", 100),
                     Double_Knob("fps", 24.0), Format_Knob("format"), Boolean_Knob("proxy"),
                     # Project Settings > Color (Nuke 14+)
                     Enumeration_Knob("colorManagement", ["Nuke", "OCIO"]),
                     Enumeration_Knob("OCIO_config", ["nuke-default", "fn-nuke_cg-config-v1.0.0_aces-v1.3_ocio-v2.1",
                                                      "fn-nuke_studio-config-v1.0.0_aces-v1.3_ocio-v2.1", "custom"]),
                     File_Knob("customOCIOConfigPath")]:
            self._knobs[knob.name()] = knob
        self._knobs["format"]._value = _formats.get("HD_1080")

    def knob(self, name: str) -> Optional[Knob]:
        _check_thread("root")
        return self._knobs.get(name)

    def __getitem__(self, name: str) -> Knob:
        _check_thread("root")
        if name not in self._knobs:
            raise NameError(f"knob {name} does not exist")
        return self._knobs[name]

    def fps(self) -> float:
        return float(self._knobs["fps"].value())

    def name(self) -> str:
        return "root"

    def firstFrame(self) -> int:
        return int(self._knobs["first_frame"].value())

    def lastFrame(self) -> int:
        return int(self._knobs["last_frame"].value())

    def format(self) -> Format:
        return self._knobs["format"].value()  # type: ignore[no-any-return]


_nodes: List[Node] = []
_by_name: Dict[str, Node] = {}
_root = Root()
_frame = 1


def _unique(base: str) -> str:
    stem = re.sub(r"\d+$", "", base) or base
    n = 1
    while f"{stem}{n}" in _by_name:
        n += 1
    return f"{stem}{n}"


def _make(cls: str, knobs: Iterable[Tuple[str, Any]] = ()) -> Node:
    _check_thread("createNode")
    if cls not in CLASSES or cls not in _CLASSES_AVAILABLE:
        raise RuntimeError(f"{cls}: unknown command")
    node = Node(cls)
    name = _unique(cls)
    node._knobs["name"]._value = name
    _by_name[name] = node
    _nodes.append(node)
    if _undo_stack:
        _undo_stack[-1][1].append(node)
    for key, value in knobs:
        if key == "name":
            node.setName(value)
        else:
            node[key].setValue(value)
    return node


class _Nodes:
    """``nuke.nodes.Read(file=...)``: creates without connecting to the selection (unlike createNode)."""

    def __getattr__(self, cls: str) -> Callable[..., Node]:
        if cls.startswith("_") or cls not in CLASSES or cls not in _CLASSES_AVAILABLE:
            raise AttributeError(f"module 'nuke.nodes' has no node class {cls!r}")

        def create(**knobs: Any) -> Node:
            return _make(cls, knobs.items())

        return create


nodes = _Nodes()


def createNode(node: str, args: str = "", inpanel: bool = True) -> Node:
    """Like Nuke: the new node is connected to the selected node, and becomes the only one selected."""
    selected = [n for n in _nodes if n._knobs["selected"]._value]
    new = _make(node)
    if args:
        raise NotImplementedError("the fake createNode takes no knob string")
    if selected and new.maxInputs():
        new.setInput(0, selected[-1])
    new.selectOnly()
    return new


def toNode(name: str) -> Optional[Node]:
    _check_thread("toNode")
    node = _by_name.get(name)
    return node if node is not None and not node._deleted else None


def allNodes(filter: Optional[str] = None, group: Any = None) -> List[Node]:
    _check_thread("allNodes")
    return [n for n in _nodes if not n._deleted and (filter is None or n._class == filter)]


def selectedNode() -> Node:
    _check_thread("selectedNode")
    chosen = [n for n in _nodes if n._knobs["selected"]._value and not n._deleted]
    if not chosen:
        raise ValueError("no node selected")
    return chosen[-1]


def selectedNodes(filter: Optional[str] = None) -> List[Node]:
    _check_thread("selectedNodes")
    return [n for n in _nodes if n._knobs["selected"]._value and not n._deleted
            and (filter is None or n._class == filter)]


def delete(node: Node) -> None:
    _check_thread("delete")
    node._deleted = True
    if node in _nodes:
        _nodes.remove(node)
    _by_name.pop(node._knobs["name"]._value, None)
    for other in _nodes:
        other._inputs = [None if i is node else i for i in other._inputs]


def root() -> Root:
    _check_thread("root")
    return _root


def frame(f: Optional[int] = None) -> int:
    global _frame
    if f is not None:
        _frame = int(f)
    return _frame


def views() -> List[str]:
    return list(_views)


_views = ["main"]


def scriptName() -> str:
    name = str(_root._knobs["name"]._value)
    if not name:
        raise RuntimeError("No script name")
    return name


# --- undo ---------------------------------------------------------------------------------------------------------
_undo_stack: List[Tuple[str, List[Node]]] = []
_undo_log: List[Tuple[str, List[Node]]] = []


class Undo:
    def __init__(self, name: str = "") -> None:
        self._name = name

    def begin(self, name: str = "") -> None:
        _check_thread("Undo")
        _undo_stack.append((name or self._name, []))

    def end(self) -> None:
        if not _undo_stack:
            raise RuntimeError("Undo.end() without begin()")
        _undo_log.append(_undo_stack.pop())

    def cancel(self) -> None:
        if not _undo_stack:
            raise RuntimeError("Undo.cancel() without begin()")
        _, created = _undo_stack.pop()
        for node in reversed(created):
            if not node._deleted:
                delete(node)

    def name(self) -> str:
        return _undo_stack[-1][0] if _undo_stack else ""

    def __enter__(self) -> Undo:
        self.begin(self._name)
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self.cancel()
        else:
            self.end()


def undo() -> None:
    """Undo the last finished Undo group: deletes the nodes it created."""
    _check_thread("undo")
    if not _undo_log:
        return
    _, created = _undo_log.pop()
    for node in reversed(created):
        if not node._deleted:
            delete(node)


# --- threads ------------------------------------------------------------------------------------------------------
_main_queue: queue.Queue[Tuple[Callable[..., Any], Tuple[Any, ...], Dict[str, Any]]] = queue.Queue()


def executeInMainThread(call: Callable[..., Any], args: Any = (), kwargs: Optional[Dict[str, Any]] = None) -> None:
    if threading.current_thread() is threading.main_thread():
        raise RuntimeError("executeInMainThread called from the main thread: this hangs Nuke")
    if not isinstance(args, tuple):
        args = (args,)
    _main_queue.put((call, args, dict(kwargs or {})))


def _run_main_queue(timeout: float = 0.0) -> int:
    """Run what workers queued for the main thread (the test's stand-in for Nuke's event loop)."""
    assert threading.current_thread() is threading.main_thread()
    ran = 0
    while True:
        try:
            call, args, kwargs = _main_queue.get(timeout=timeout) if timeout and not ran else _main_queue.get_nowait()
        except queue.Empty:
            return ran
        call(*args, **kwargs)
        ran += 1


# --- UI -----------------------------------------------------------------------------------------------------------
_messages: List[str] = []


def message(prompt: str) -> None:
    _check_thread("message")
    _messages.append(prompt)


def tprint(*args: Any, sep: str = " ", end: str = "\n", file: Any = None) -> None:
    print(*args, sep=sep, end=end, file=file or sys.stdout)


class MenuItem:
    def __init__(self, name: str, command: Any = None, shortcut: str = "", icon: str = "") -> None:
        self._name = name
        self._command = command
        self._shortcut = shortcut
        self._icon = icon

    def name(self) -> str:
        return self._name

    def invoke(self) -> None:
        if callable(self._command):
            self._command()
        elif isinstance(self._command, str):
            exec(self._command, {})

    def script(self) -> str:
        return self._command if isinstance(self._command, str) else ""

    def shortcut(self) -> str:
        return self._shortcut


class Menu(MenuItem):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._items: List[MenuItem] = []

    def addMenu(self, name: str, icon: str = "", tooltip: str = "", index: int = -1) -> Menu:
        _check_thread("menu")
        existing = self.findItem(name)
        if isinstance(existing, Menu):
            return existing
        menu = Menu(name)
        self._items.append(menu)
        return menu

    def addCommand(self, name: str, command: Any = None, shortcut: str = "", icon: str = "", tooltip: str = "",
                   index: int = -1, readonly: bool = False, shortcutContext: int = 0, tag: int = 0,
                   tagTarget: int = 0) -> MenuItem:
        _check_thread("menu")
        if "/" in name:
            head, _, rest = name.partition("/")
            return self.addMenu(head).addCommand(rest, command, shortcut, icon)
        item = MenuItem(name, command, shortcut, icon)
        self._items = [i for i in self._items if i.name() != name] + [item]
        return item

    def addSeparator(self, **kwargs: Any) -> MenuItem:
        item = MenuItem("")
        self._items.append(item)
        return item

    def findItem(self, name: str) -> Optional[MenuItem]:
        head, _, rest = name.partition("/")
        for item in self._items:
            if item.name() == head:
                if rest:
                    return item.findItem(rest) if isinstance(item, Menu) else None
                return item
        return None

    def items(self) -> List[MenuItem]:
        return list(self._items)


_menus: Dict[str, Menu] = {}


def menu(name: str) -> Menu:
    _check_thread("menu")
    if not env.get("gui"):
        raise RuntimeError("no menus in terminal mode")
    if name not in ("Nuke", "Nodes", "Pane", "Viewer", "Node Graph", "Properties", "Animation", "Axis"):
        raise RuntimeError(f"no menu named {name!r}")
    return _menus.setdefault(name, Menu(name))


class Dock:
    def __init__(self, name: str) -> None:
        self._name = name


def getPaneFor(name: str) -> Optional[Dock]:
    return Dock(name)


# --- plugin path --------------------------------------------------------------------------------------------------
_plugin_path: List[str] = []


def pluginAddPath(args: str, addToSysPath: bool = True) -> None:
    path = os.path.normpath(args)
    if path not in _plugin_path:
        _plugin_path.insert(0, path)
    if addToSysPath and path not in sys.path:
        sys.path.insert(0, path)


def pluginPath() -> List[str]:
    return list(_plugin_path)


def _reset() -> None:
    """Start a test from an empty script (test helper, not Nuke)."""
    global _root, _frame
    _nodes.clear()
    _by_name.clear()
    _undo_stack.clear()
    _undo_log.clear()
    _messages.clear()
    _menus.clear()
    _plugin_path.clear()
    _formats.clear()
    _formats.update(_default_formats())
    _CLASSES_AVAILABLE.clear()
    _CLASSES_AVAILABLE.update(CLASSES)
    _views[:] = ["main"]
    env["gui"] = True
    _frame = 1
    _root = Root()
    while not _main_queue.empty():
        _main_queue.get_nowait()


_reset()
