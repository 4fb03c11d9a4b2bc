"""The colour space names a Nuke Read shows, resolved with the real OpenColorIO library on OCIO's built-in configs.

Names Nuke shows (Foundry's docs): under Nuke's own colour management the nuke-default config's ``linear``, ``sRGB``,
``rec709``, ``Cineon``, ``Gamma1.8``/``2.2``, ``raw``; under OCIO an ACES config's names and its roles; and
``default (X)`` where "When the default option is selected, the color transform that Nuke has set for it is listed in
brackets" (learn.foundry.com/nuke/content/comp_environment/configuring_nuke/using_ocio_config_files.html), the defaults
being sRGB for 8- and 16-bit files, Cineon for .cin/.dpx and linear for float files
(learn.foundry.com/nuke/14.1/content/comp_environment/configuring_nuke/selecting_luts.html). Cineon is Kodak's
conversion, black 95 and white 685 (the Log2Lin node's defaults: learn.foundry.com/nuke/content/reference_guide/
color_nodes/log2lin.html). Each mapping is checked by what it does to pixels, against the curve's own formula."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Dict

import pytest
from tether.colour import SendTransform, load_config, send_transform
from tether.errors import InputError

ocio = pytest.importorskip("PyOpenColorIO")

CONFIGS = ["ocio://default", "ocio://cg-config-latest", "ocio://studio-config-latest",
           "ocio://cg-config-v1.0.0_aces-v1.3_ocio-v2.1", "ocio://studio-config-v1.0.0_aces-v1.3_ocio-v2.1"]
_BLACK = 10 ** ((95 - 685) / 300)

# linear (Rec.709 primaries, nuke-default's reference) -> the encoded value, from each curve's definition
ENCODE: Dict[str, Callable[[float], float]] = {
    "linear": lambda x: x,
    "sRGB": lambda x: 12.92 * x if x <= 0.0031308 else 1.055 * x ** (1 / 2.4) - 0.055,  # IEC 61966-2-1
    "rec709": lambda x: 4.5 * x if x < 0.018 else 1.099 * x ** 0.45 - 0.099,  # ITU-R BT.709 OETF
    "Cineon": lambda x: (685 + 300 * math.log10(x * (1 - _BLACK) + _BLACK)) / 1023,
    "Gamma1.8": lambda x: x ** (1 / 1.8),
    "Gamma2.2": lambda x: x ** (1 / 2.2),
}


@pytest.fixture(autouse=True)
def _no_ocio_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCIO", raising=False)


def _to_linear(config: str, name: str, value: float) -> float:
    """``value`` in the space ``name`` resolves to, converted to the config's linear Rec.709."""
    space = send_transform("plate.dpx", name, config).source
    cpu = SendTransform(config, space, "Linear Rec.709 (sRGB)").processor().getDefaultCPUProcessor()
    return float(cpu.applyRGB([value] * 3)[0])


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", sorted(ENCODE))
def test_nuke_default_names_convert_as_their_curves_on_every_builtin_config(config: str, name: str) -> None:
    for linear in (0.05, 0.18, 0.9):  # above the toes (OCIO joins the BT.709 toe where its slope matches)
        assert _to_linear(config, name, ENCODE[name](linear)) == pytest.approx(linear, rel=2e-3, abs=2e-5), \
            (config, name, linear)
    # the "default (X)" form is X, whatever the file type's role would have been
    assert send_transform("plate.exr", f"default ({name})", config).source == \
        send_transform("plate.dpx", name, config).source


@pytest.mark.parametrize("config", CONFIGS)
def test_aces_names_roles_and_labels_resolve_to_the_configs_own_spaces(config: str) -> None:
    cfg = load_config(config)
    expected = {
        "ACES - ACEScg": "ACEScg", "ACEScg": "ACEScg", "lin_ap1": "ACEScg", "scene_linear": "ACEScg",
        "scene_linear (ACEScg)": "ACEScg", "ACES - ACEScct": "ACEScct", "compositing_log": "ACEScct",
        "ACES - ACES2065-1": "ACES2065-1", "Utility - Linear - sRGB": "Linear Rec.709 (sRGB)",
        "Utility - Raw": "Raw", "raw": "Raw", "data": "Raw",
        "Utility - sRGB - Texture": cfg.getColorSpace("color_picking").getName(),
    }
    for name, space in expected.items():
        assert send_transform("plate.exr", name, config).source == space, (config, name)
    # a bare default (the command line's case): the file type's role
    assert send_transform("plate.exr", "default", config).source == "ACEScg"
    assert send_transform("plate.dpx", "", config).source == "ACEScct"


def test_a_config_with_its_own_nuke_names_keeps_them_and_unknown_names_still_fail(tmp_path: Path) -> None:
    """A studio config that defines Cineon itself is not overridden; a name no config knows is a clear error."""
    own = ocio.Config.CreateRaw()
    own.setMajorVersion(2)
    own.addColorSpace(ocio.ColorSpace(ocio.REFERENCE_SPACE_SCENE, "lin"))  # the reference itself
    cineon = ocio.ColorSpace(ocio.REFERENCE_SPACE_SCENE, "Cineon")
    cineon.setTransform(ocio.ExponentTransform(value=[2.0, 2.0, 2.0, 1.0]), ocio.COLORSPACE_DIR_TO_REFERENCE)
    own.addColorSpace(cineon)
    own.setRole("scene_linear", "lin")
    own.setRole("color_picking", "Cineon")
    path = tmp_path / "show.ocio"
    path.write_text(own.serialize())
    transform = send_transform("plate.dpx", "Cineon", str(path))
    assert transform.source == "Cineon" and transform.identity  # its own Cineon, the one it sends in too
    cpu = SendTransform(str(path), "Cineon", "lin").processor().getDefaultCPUProcessor()
    assert cpu.applyRGB([0.5, 0.5, 0.5])[0] == pytest.approx(0.25, rel=1e-4)  # its curve (x^2), not Kodak's
    with pytest.raises(InputError, match=r"'SLog9' is not in the OpenColorIO config"):
        send_transform("plate.exr", "SLog9", "ocio://studio-config-latest")


@pytest.mark.parametrize("config", CONFIGS)
def test_a_nuke_default_script_reads_a_clip_by_its_own_name_for_the_space(config: str) -> None:
    """A clip sent in a config's display space is read in a nuke-default script by the nuke-default name of that
    same space (Nuke refuses a name its config lacks), and by the config's own name anywhere else."""
    from tether.colour import name_in_script

    cfg = load_config(config)
    display = send_transform("plate.exr", "", config).target
    assert name_in_script(display, config, "nuke-default") == "sRGB"
    assert name_in_script(display, config, "/opt/Nuke15.1v1/plugins/OCIOConfigs/configs/nuke-default/config.ocio") \
        == "sRGB"
    assert name_in_script(display, config, config) == display  # the script's config has the name itself
    assert name_in_script(display, config, "") == display  # not known: the name the send was made with
    for nuke_name in ("linear", "rec709", "Cineon", "Gamma2.2"):
        own = cfg.getColorSpace(nuke_name).getName()
        assert name_in_script(own, config, "nuke-default") == nuke_name, (config, own)
    # a display space nuke-default has no name for (ACEScct): none, and the import says so
    assert name_in_script("ACEScct", config, "nuke-default") is None
