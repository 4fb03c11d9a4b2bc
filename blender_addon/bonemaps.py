"""Bone maps from Move's skeleton to the rigs artists animate (plain Python, no ``bpy``).

Move's pre-retarget FBX "always has the same bone names and bone hierarchy", in T-pose (help.move.ai, "What's the
difference between pre-retarget and retargeted FBX"), HumanIK style (its Maya guide maps ``Hips`` onto a HumanIK
template): the names below, which the local Move's rig uses too. Each preset maps those onto a target's bones to
rotate; ``Hips`` also carries the location. Target names are the rigs' FK controls, so set a Rigify or Auto-Rig Pro
rig's limbs to FK before retargeting (IK controls would override the baked FK keys).
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

SIDES = (("Left", "L", "l"), ("Right", "R", "r"))
MOVE_BONES: Tuple[str, ...] = (
    "Hips", "Spine", "Spine1", "Spine2", "Neck", "Head",
    *(f"{side}{part}" for side, _, _ in SIDES
      for part in ("Shoulder", "Arm", "ForeArm", "Hand", "UpLeg", "Leg", "Foot", "ToeBase")),
)
ROOT = "Hips"  # the bone whose location is retargeted too


def _sided(table: Dict[str, str], fmt: str) -> Dict[str, str]:
    """Expand ``{"Arm": "upper_arm_fk"}`` to both sides with ``fmt`` (fields: name, S = L/R, s = l/r)."""
    out: Dict[str, str] = {}
    for side, upper, lower in SIDES:
        for part, target in table.items():
            out[f"{side}{part}"] = fmt.format(name=target, S=upper, s=lower, side=side)
    return out


_LIMBS = ("Shoulder", "Arm", "ForeArm", "Hand", "UpLeg", "Leg", "Foot", "ToeBase")

PRESETS: Dict[str, Tuple[str, str, Dict[str, str]]] = {
    "MOVE": ("Move", "Move's own skeleton (a second Move rig, or a character rigged on it)",
             {b: b for b in MOVE_BONES}),
    "MIXAMO": ("Mixamo", "Mixamo characters (mixamorig:Hips ...)", {b: f"mixamorig:{b}" for b in MOVE_BONES}),
    "RIGIFY": ("Rigify", "A generated Rigify human (FK controls: torso, spine_fk..., upper_arm_fk.L ...)", {
        "Hips": "torso", "Spine": "spine_fk.001", "Spine1": "spine_fk.002", "Spine2": "spine_fk.003",
        "Neck": "neck", "Head": "head",
        **_sided(dict(zip(_LIMBS, ("shoulder", "upper_arm_fk", "forearm_fk", "hand_fk", "thigh_fk", "shin_fk",
                                   "foot_fk", "toe_fk"))), "{name}.{S}"),
    }),
    "AUTO_RIG_PRO": ("Auto-Rig Pro", "An Auto-Rig Pro control rig (c_root.x, c_arm_fk.l ...)", {
        "Hips": "c_root.x", "Spine": "c_spine_01.x", "Spine1": "c_spine_02.x", "Spine2": "c_spine_03.x",
        "Neck": "c_neck.x", "Head": "c_head.x",
        **_sided(dict(zip(_LIMBS, ("c_shoulder", "c_arm_fk", "c_forearm_fk", "c_hand_fk", "c_thigh_fk", "c_leg_fk",
                                   "c_foot_fk", "c_toes_fk"))), "{name}.{s}"),
    }),
}


def preset_items() -> List[Tuple[str, str, str]]:
    return [(key, label, text) for key, (label, text, _) in PRESETS.items()]


def preset_pairs(key: str) -> List[Tuple[str, str]]:
    """(Move bone, target bone) in Move's order, parents first."""
    table = PRESETS[key][2]
    return [(b, table[b]) for b in MOVE_BONES if b in table]


def guess_preset(target_bones: Iterable[str]) -> Optional[str]:
    """The preset that finds the most of its bones in the target (None when none finds half of them)."""
    names = set(target_bones)
    best: Optional[str] = None
    best_found = 0
    for key, (_, _, table) in PRESETS.items():
        found = sum(1 for t in table.values() if t in names)
        if found > best_found:
            best, best_found = key, found
    return best if best is not None and best_found * 2 >= len(PRESETS[best][2]) else None


__all__ = ["MOVE_BONES", "PRESETS", "ROOT", "guess_preset", "preset_items", "preset_pairs"]
