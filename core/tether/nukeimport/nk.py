"""An :class:`ImportDescription` as Nuke script text, and a structural reader of that text.

Two forms:

- a **snippet** (default), the same shape Nuke's own copy puts on the clipboard: it starts with
  ``set cut_paste_input [stack 0]``, and the plate is ``push $cut_paste_input``, so File > Import Script (or
  ``nuke.nodePaste(path)``) with the plate's Read selected wires the Copy to it;
- a **standalone** script (``standalone=True``): a Root with the plate's range, fps and format, and a Read that
  re-creates the plate, so ``nuke -t`` or File > Open works on it alone.

Wiring uses the script stack as Nuke writes it: each node is followed by ``set N<name> [stack 0]``; a node with
inputs is preceded by ``push`` of each input, last input first, so input 0 is the top of the stack.
Curves are ``{curve x1001 v1 v2 ...}``: consecutive frames need no ``x``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from ..colour import NUKE_DEFAULT, is_nuke_default
from ..errors import InputError
from ..fileio import write_text_atomic
from .model import Curve, FormatValue, ImportDescription, KnobValue, NodeSpec, number, versioned
from .plate import PlateFacts

NUKE_VERSION = "14.0"
_BARE = re.compile(r"^[A-Za-z0-9_.:/+\-#%@,=]+$")


def quote(text: str) -> str:
    if text and _BARE.match(text):
        return text
    escaped = "".join("\\" + c if c in '\\"[]${}' else ("\\n" if c == "\n" else c) for c in text)
    return f'"{escaped}"'


def knob_script(value: KnobValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return number(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, FormatValue):
        return f'"{value.to_script()}"'
    if isinstance(value, Curve):
        return "{{" + value.to_script() + "}}"
    if isinstance(value, tuple):
        parts = ["{" + c.to_script() + "}" if isinstance(c, Curve) else number(c) for c in value]
        return "{" + " ".join(parts) + "}"
    raise TypeError(f"no script form for knob value {value!r}")


def _var(name: str) -> str:
    return "N" + re.sub(r"\W", "_", name)


def _plate_read(plate: PlateFacts) -> NodeSpec:
    knobs: Dict[str, KnobValue] = {"file": plate.file}
    if plate.width and plate.height:
        knobs["format"] = FormatValue(plate.width, plate.height, plate.pixel_aspect, plate.format_name)
    knobs.update({"first": plate.first, "last": plate.last})
    if plate.origfirst is not None and plate.origlast is not None:
        knobs.update({"origfirst": plate.origfirst, "origlast": plate.origlast, "origset": True})
    if plate.frame_mode and plate.frame:
        knobs.update({"frame_mode": plate.frame_mode, "frame": plate.frame})
    if plate.colorspace:
        knobs["colorspace"] = plate.colorspace
    return NodeSpec("Read", plate.node, knobs, (), plate.xpos, plate.ypos)


def _node(spec: NodeSpec, lines: List[str]) -> None:
    lines.append(f"{spec.node_class} {{")
    lines.append(f" inputs {len(spec.inputs)}")
    for knob, value in spec.knobs.items():
        lines.append(f" {knob} {knob_script(value)}")
    lines.append(f" name {quote(spec.name)}")
    lines.append(f" xpos {spec.xpos}")
    lines.append(f" ypos {spec.ypos}")
    lines.append("}")
    lines.append(f"set {_var(spec.name)} [stack 0]")


def _nodes(description: ImportDescription, variables: Dict[str, str], lines: List[str]) -> None:
    for spec in description.nodes:
        for name in reversed(spec.inputs):
            if name is None:
                lines.append("push 0")
            elif name in variables:
                lines.append(f"push ${variables[name]}")
            else:
                raise ValueError(f"{spec.name} takes input {name!r}, which is neither the plate nor an earlier node")
        _node(spec, lines)
        variables[spec.name] = _var(spec.name)


def _root_colour(plate: PlateFacts) -> List[str]:
    """A standalone script's colour management: the config its Reads' colour space names come from, or nothing when
    that is unknown (Nuke's default, or ``$OCIO``, which Nuke prefers over the Root anyway). Knobs as Project
    Settings > Color writes them: a config Nuke ships by its ``OCIO_config`` name, any other file as ``custom`` with
    its path. An ``ocio://`` built-in config is left to the user's default: not every Nuke takes one as a path."""
    config = plate.script_config
    if is_nuke_default(config):  # the plate's project: its Reads' names are nuke-default's
        return [" colorManagement Nuke", f" OCIO_config {NUKE_DEFAULT}"]
    shipped = plate.ocio_project not in ("", "custom") and not any(sep in plate.ocio_project for sep in "/\\")
    if shipped:
        return [" colorManagement OCIO", f" OCIO_config {quote(plate.ocio_project)}"]
    path = plate.ocio_config if plate.ocio_project in ("", "custom") else plate.ocio_project
    if path and not path.startswith("ocio://"):
        return [" colorManagement OCIO", " OCIO_config custom", f" customOCIOConfigPath {quote(path)}"]
    return []


def to_nk(description: ImportDescription, standalone: bool = False) -> str:
    plate = description.plate
    lines = [f"# {description.title or 'Tether import'} beside {plate.node}; written by Tether"]
    variables: Dict[str, str] = {}
    if standalone:
        start, end = plate.plate_range
        lines.append(f"version {NUKE_VERSION}")
        lines.append("Root {")
        lines.append(" inputs 0")
        lines.append(f" first_frame {start}")
        lines.append(f" last_frame {end}")
        if plate.fps:
            lines.append(f" fps {number(plate.fps)}")
        if plate.width and plate.height:
            lines.append(f' format "{plate.format_script}"')
        lines.extend(_root_colour(plate))
        lines.append("}")
        _node(_plate_read(plate), lines)
        variables[plate.node] = _var(plate.node)
    else:
        lines.append("set cut_paste_input [stack 0]")
        lines.append(f"version {NUKE_VERSION}")
        for external in description.external_inputs():
            variables[external] = "cut_paste_input"
    _nodes(description, variables, lines)
    return "\n".join(lines) + "\n"


def _appended(existing: str, description: ImportDescription, path: Path) -> str:
    """``description``'s nodes added to a script Tether wrote before, in that script's own form: a snippet's nodes
    take ``$cut_paste_input`` again, a standalone script's take the plate Read it already holds."""
    plate = description.plate
    if "set cut_paste_input [stack 0]" in existing:
        variables = {external: "cut_paste_input" for external in description.external_inputs()}
    elif f"set {_var(plate.node)} [stack 0]" in existing:
        variables = {plate.node: _var(plate.node)}
    else:
        raise InputError(f"{path} exists and holds no plate Read {plate.node} written by Tether (it was written by "
                         "something else, or saved by Nuke since): give another --nk path; nothing was written")
    lines = [f"# {description.title or 'Tether import'} beside {plate.node}; added by Tether"]
    _nodes(description, variables, lines)
    return existing.rstrip("\n") + "\n" + "\n".join(lines) + "\n"


def write_nk(description: ImportDescription, path: Union[str, Path], standalone: bool = False) -> Path:
    """Write the import as a .nk file (atomically: a reader never sees half a script). Returns the path.

    Its nodes are a version (``_v001``; :func:`tether.nukeimport.model.versioned`, as the panel names them). When
    ``path`` exists (an earlier import of this or another job), nothing in it is replaced: this import is added as
    the next version, in the file's own form (snippet or standalone)."""
    target = Path(path)
    existing = target.read_text(encoding="utf-8") if target.exists() else None
    try:
        taken = [node.name for node in parse_nk(existing)] if existing is not None else []
    except ValueError as exc:
        raise InputError(f"{target} exists and is not a script Tether can add to ({exc}): give another --nk path; "
                         "nothing was written") from None
    description, _ = versioned(description, taken)
    text = to_nk(description, standalone) if existing is None else _appended(existing, description, target)
    return write_text_atomic(target, text, durable=False)


# --- reading (structure only: enough to check what was written, and to diff imports) ------------------------------
@dataclass
class ParsedNode:
    node_class: str
    knobs: Dict[str, str] = field(default_factory=dict)  # raw script text of each value
    inputs: List[Optional[str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.knobs.get("name", "")


def _tokens(text: str) -> List[Tuple[str, str]]:
    """(kind, text) tokens: ``word``, ``quoted`` (unescaped), ``braced`` (inner text), ``newline``."""
    out: List[Tuple[str, str]] = []
    i, n = 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if c == "\n":
            out.append(("newline", ""))
            line_start = True
            i += 1
            continue
        if c in " \t\r":
            i += 1
            continue
        if c == "#" and line_start:
            while i < n and text[i] != "\n":
                i += 1
            continue
        line_start = False
        if c == '"':
            i += 1
            buf = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    buf.append("\n" if text[i + 1] == "n" else text[i + 1])
                    i += 2
                    continue
                buf.append(text[i])
                i += 1
            out.append(("quoted", "".join(buf)))
            i += 1
        elif c == "{":
            depth, j = 1, i + 1
            while j < n and depth:
                if text[j] == "\\":
                    j += 2
                    continue
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            out.append(("braced", text[i + 1:j - 1]))
            i = j
        elif c == "}":
            out.append(("word", "}"))
            i += 1
        else:
            j = i
            while j < n and text[j] not in " \t\r\n{}\"":
                j += 1
            if text[i:j] == "[stack" or text[i:j].startswith("["):
                k = text.index("]", i)
                out.append(("word", text[i:k + 1]))
                i = k + 1
                continue
            out.append(("word", text[i:j]))
            i = j
    return out


def _knobs(body: str) -> Dict[str, str]:
    knobs: Dict[str, str] = {}
    lines: List[List[Tuple[str, str]]] = [[]]
    for token in _tokens(body):
        if token[0] == "newline":
            lines.append([])
        else:
            lines[-1].append(token)
    for line in lines:
        if not line:
            continue
        name = line[0][1]
        value = line[1][1] if len(line) > 1 else ""
        if line[1:] and line[1][0] == "braced":
            value = "{" + value + "}"
        knobs[name] = value
    return knobs


def parse_nk(text: str) -> List[ParsedNode]:
    """The nodes of a script with their knobs (raw text) and inputs (by name), following the stack as Nuke does.

    ``$cut_paste_input`` stands for the node selected at paste time and reads as the name ``<paste>``.
    """
    tokens = _tokens(text)
    stack: List[Optional[str]] = []
    variables: Dict[str, Optional[str]] = {"cut_paste_input": "<paste>"}
    nodes: List[ParsedNode] = []
    i = 0
    while i < len(tokens):
        kind, word = tokens[i]
        if kind == "newline":
            i += 1
            continue
        if word == "set" and i + 2 < len(tokens):
            variables[tokens[i + 1][1]] = stack[-1] if stack else "<paste>"
            i += 3
            continue
        if word == "push" and i + 1 < len(tokens):
            ref = tokens[i + 1][1]
            stack.append(None if ref == "0" else variables.get(ref.lstrip("$"), ref))
            i += 2
            continue
        if word in ("version", "end_group"):
            while i < len(tokens) and tokens[i][0] != "newline":
                i += 1
            continue
        if i + 1 < len(tokens) and tokens[i + 1][0] == "braced":
            knobs = _knobs(tokens[i + 1][1])
            if word != "Root":
                count = int(knobs.get("inputs", "1"))
                inputs = [stack.pop() if stack else None for _ in range(count)]
                node = ParsedNode(word, knobs, inputs)
                nodes.append(node)
                stack.append(node.name)
            i += 2
            continue
        raise ValueError(f"unexpected {word!r} in the script")
    return nodes


def parse_curve(text: str) -> List[Tuple[float, float]]:
    """``{curve x1001 1 2 x1005 3}`` (braces optional) -> keys."""
    words = text.strip().strip("{}").split()
    if not words or words[0] != "curve":
        raise ValueError(f"not a curve: {text[:40]!r}")
    keys: List[Tuple[float, float]] = []
    frame: Optional[float] = None
    for word in words[1:]:
        if word.startswith("x"):
            frame = float(word[1:])
            continue
        if word[0].isalpha():  # interpolation letters (K, L, C...) are not used by Tether
            continue
        if frame is None:
            frame = 0.0 if not keys else keys[-1][0] + 1
        keys.append((frame, float(word)))
        frame = frame + 1
    return keys


def channel_curves(text: str) -> List[str]:
    """``{{curve ...} {curve ...} 5}`` -> each channel's text."""
    inner = text.strip()[1:-1] if text.strip().startswith("{") else text
    return [("{" + t + "}" if kind == "braced" else t) for kind, t in _tokens(inner) if kind != "newline"]


__all__ = [
    "ParsedNode", "channel_curves", "knob_script", "parse_curve", "parse_nk", "quote", "to_nk",
    "write_nk",
]
