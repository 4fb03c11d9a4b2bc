"""Apply an :class:`ImportDescription` in Nuke: create the nodes, in one undo step, beside the plate.

**Creating nodes, not pasting a .nk** (``nuke.nodePaste``), because:

- names: a paste renames on collision (``Plate1_roto`` -> ``Plate1_roto1``) and does not say what it made; creating
  each node gives us its final name to wire inputs and report back, and nodes are found again by that name;
- wiring: a pasted snippet connects its ``cut_paste_input`` to whatever is selected at that moment (the user may
  have clicked elsewhere while the job ran); here the plate is looked up by name and connected explicitly;
- classes: Camera3 may be missing (an older Nuke has Camera2); creation tries the classes in order and checks each
  knob with ``node.knob(name)``, naming exactly what is missing;
- versions: an import is named ``<node>_vNNN`` after the versions already in the script
  (:func:`tether.nukeimport.model.versioned`, the same step the .nk writer takes), so importing a job again adds
  ``_v002`` nodes beside ``_v001`` and never replaces a comp's nodes;
- errors: a bad value fails on the knob that refused it, and ``Undo.cancel()`` removes the half-made import;
  a paste would leave a half-parsed script behind.

The speed argument for a paste does not apply: curves still go in bulk through ``knob.fromScript("{curve ...}")``,
parsed by Nuke in C++, the same text a .nk carries (:func:`tether.nukeimport.nk.knob_script`). No ``nuke.nodes``
call connects to the selection or opens a panel, unlike ``createNode``.

Everything here runs on the main thread (the controller calls it through ``mainthread.run_on_main``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

import nuke
from tether.errors import InputError
from tether.nukeimport import Curve, FormatValue, ImportDescription, NodeSpec
from tether.nukeimport.model import KnobValue, versioned
from tether.nukeimport.nk import knob_script


@dataclass
class Applied:
    """What an import made: spec name (unversioned) -> the node's real name, and notes for the user."""

    names: Dict[str, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


def _create(spec: NodeSpec) -> nuke.Node:
    tried: List[str] = []
    for cls in spec.classes:
        try:
            maker = getattr(nuke.nodes, cls)
            node: nuke.Node = maker()
            return node
        except (AttributeError, RuntimeError):  # no such node class in this Nuke
            tried.append(cls)
    raise InputError(f"this Nuke has none of the node classes {', '.join(tried)} needed for {spec.name}")


def _format_name(value: FormatValue) -> str:
    for fmt in nuke.formats():
        if fmt.width() == value.width and fmt.height() == value.height and (
            abs(fmt.pixelAspect() - value.pixel_aspect) < 1e-6
        ) and (not value.name or fmt.name() == value.name):
            return fmt.name()
    return nuke.addFormat(value.to_script()).name()


def _set(knob: nuke.Knob, value: KnobValue) -> None:
    if isinstance(value, FormatValue):
        knob.setValue(_format_name(value))
    elif isinstance(value, Curve):
        knob.fromScript("{" + value.to_script() + "}")
    elif isinstance(value, tuple):
        if any(isinstance(c, Curve) for c in value):
            # the knob's script form without the outer braces a .nk line adds: "{curve ..} {curve ..} 0"
            knob.fromScript(knob_script(value)[1:-1])
        else:
            knob.setValue([float(c) for c in value if not isinstance(c, Curve)])
    else:
        knob.setValue(value)


def _fill(node: nuke.Node, spec: NodeSpec) -> None:
    for name, value in spec.knobs.items():
        knob = node.knob(name)
        if knob is None:
            raise InputError(f"{node.Class()} {node.name()} has no '{name}' knob: this Nuke's node differs from "
                             "what Tether knows (the .nk from `tether autopilot import JOB --nk` holds the values)")
        try:
            _set(knob, value)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise InputError(f"{node.name()}.{name}: Nuke refused the value ({exc})") from None


def apply_description(description: ImportDescription, select: bool = True) -> Applied:
    """Create ``description``'s nodes beside its plate (found by name) in one undo group. Main thread only."""
    description, versions = versioned(description, (n.name() for n in nuke.allNodes()))
    plate_name = description.plate.node
    plate = nuke.toNode(plate_name)
    if plate is None:
        raise InputError(f"the plate's Read node {plate_name} is no longer in this script: rename the plate back, "
                         "or select the plate and import again")
    # keep the layout relative to where the plate is now (it may have moved since the job was sent)
    dx = plate.xpos() - description.plate.xpos
    dy = plate.ypos() - description.plate.ypos
    applied = Applied(notes=list(description.notes))
    made_names: Dict[str, str] = {}
    made: List[nuke.Node] = []
    undo = nuke.Undo()
    undo.begin(description.title or "Tether import")
    try:
        for spec in description.nodes:
            node = _create(spec)
            node.setName(spec.name, uncollide=True)
            made_names[spec.name] = node.name()
            _fill(node, spec)
            node.setXYpos(spec.xpos + dx, spec.ypos + dy)
            made.append(node)
        for spec in description.nodes:
            target = nuke.toNode(made_names[spec.name])
            assert target is not None
            for index, name in enumerate(spec.inputs):
                if name is None:
                    continue
                source = nuke.toNode(made_names.get(name, name))
                if source is None:
                    raise InputError(f"{spec.name} needs the node {name}, which is not in the script")
                target.setInput(index, source)
        if select:
            for node in nuke.selectedNodes():
                node.setSelected(False)
            for node in made:
                node.setSelected(True)
    except BaseException:
        undo.cancel()  # nothing half-made stays in the script
        raise
    undo.end()
    # keyed by the description's own names: callers need not know which version this import became
    applied.names = {original: made_names[name] for original, name in versions.items()}
    return applied


__all__ = ["Applied", "apply_description"]
