"""``tether install`` (deploy to Nuke and Blender, for one artist or a studio folder) and ``tether doctor``.

The work lives in the ``tether_install`` package (install/); it is imported only when these commands run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, List

from tether import __version__
from tether.errors import InputError

if TYPE_CHECKING:
    from tether_install.plan import Plan


def register(subparsers: Any) -> None:
    inst = subparsers.add_parser(
        "install", help="deploy Tether to Nuke and/or Blender (one artist, or a studio folder)",
        description="Deploy Tether's Nuke plugin and Blender extension with their Python dependencies. Idempotent; "
                    "--dry-run lists every change; --uninstall removes exactly what an install added.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  tether install all --user --dry-run                  # what would change for this artist
  tether install nuke --user                           # for the Nukes installed here, media libraries included
  tether install nuke --user --no-media                # without them: sequences go to Autopilot as a zip
  tether install all --studio /studio/tools/tether --rez
  tether install nuke --studio /studio/tools/tether --nuke-version 15 --nuke-version 16
  tether install nuke --studio /studio/tools/tether --rollback     # back to the version before
  tether install all --user --uninstall
  tether install wheelhouse ./tether-wheels            # on a connected machine, for offline ones""")
    inst.add_argument("dcc", choices=("nuke", "blender", "all", "wheelhouse"),
                      help="what to deploy; `wheelhouse DIR` instead fills DIR with every wheel an offline install "
                           "needs")
    inst.add_argument("folder", nargs="?", type=Path, metavar="DIR", help="with wheelhouse: the folder to fill")
    where = inst.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="for this artist (~/.nuke/init.py, Blender user folder)")
    where.add_argument("--studio", type=Path, metavar="DIR", help="publish to a shared folder for launchers")
    inst.add_argument("--dry-run", action="store_true", help="print every file it would write or change")
    inst.add_argument("--uninstall", action="store_true", help="remove what the install added")
    inst.add_argument("--rollback", nargs="?", const="", metavar="VERSION",
                      help="with nuke --studio: make an earlier version on the share the current one (default: the "
                           "one before; or a version, e.g. 0.1.0, or its folder name in DIR/versions)")
    inst.add_argument("--wheelhouse", type=Path, metavar="DIR",
                      help="take every wheel from this folder, no index (made by `tether install wheelhouse DIR`)")
    which = inst.add_mutually_exclusive_group()
    which.add_argument("--nuke-version", action="append", metavar="V",
                       help="Nuke version(s) to provide for (repeat); default: the Nukes installed on this machine "
                            "(TETHER_NUKE_ROOTS to look elsewhere), or every supported Nuke when none is found")
    which.add_argument("--all-versions", action="store_true",
                       help="provide for every supported Nuke (14 and newer), whatever is installed here")
    inst.add_argument("--blender", action="append", metavar="PATH", help="a blender binary to install into (repeat)")
    inst.add_argument("--platform", action="append", dest="platforms", metavar="P",
                      help="platform(s) to deploy for (studio default: linux-x64, windows-x64, macos-arm64; "
                           "user: this machine; wheelhouse: every one)")
    inst.add_argument("--blender-python", action="append", choices=("3.11", "3.13"), metavar="X.Y",
                      help="with blender --studio (or --user with only BLENDER_USER_RESOURCES): Blender Pythons to "
                           "bundle compiled wheels for (default both: "
                           "3.11 for Blender 4.2-5.0, 3.13 for 5.1+)")
    inst.add_argument("--python", action="append", dest="pythons", metavar="X.Y",
                      help="with wheelhouse: the Pythons to fetch wheels for (default every one Tether supports)")
    inst.add_argument("--no-media", dest="media", action="store_false",
                      help="with nuke (and wheelhouse): leave out the media libraries (PyAV, numpy, OpenImageIO, "
                           "OpenColorIO: large compiled wheels per Python and platform) that send an image sequence "
                           "as a movie; without them Autopilot gets a zip of the frames and TensorPix/Clipzy refuse "
                           "sequences")
    inst.add_argument("--verbose", action="store_true", help="list every file written")
    inst.add_argument("--rez", action="store_true", help="with --studio: also write a rez package.py")
    inst.set_defaults(func=run_install)
    doc = subparsers.add_parser(
        "doctor", help="check the Nuke/Blender installs, keyring and endpoints",
        description="Check the Nuke and Blender installs, the keyring and every endpoint of the profile. Each line "
                    "starts with a mark: ok (fine), FAIL (a problem to fix; the exit status is then 1) or -- (not a "
                    "problem here: not installed, not configured or not checked).")
    doc.add_argument("--blender", action="append", metavar="PATH", help="a blender binary to check (repeat)")
    doc.add_argument("--json", action="store_true", help="print the checks as JSON")
    doc.add_argument("--no-endpoints", action="store_true", help="skip the endpoint checks")
    doc.set_defaults(func=run_doctor)


def user_target() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("tether", appauthor=False)) / "deploy"


def run_install(args: argparse.Namespace) -> int:
    from tether_install import blender, deps, extension, nuke, plan

    if args.dcc == "wheelhouse":
        if args.folder is None or args.user or args.studio or args.uninstall or args.rollback is not None:
            raise InputError("give the folder to fill, alone: tether install wheelhouse DIR [--python X.Y] "
                             "[--platform P]")
        for line in deps.build_wheelhouse(args.folder.expanduser().resolve(), args.pythons or
                                          deps.WHEELHOUSE_PYTHONS, args.platforms or sorted(extension.PLATFORMS),
                                          media=args.media):
            print(line)
        return 0
    if args.folder is not None:
        raise InputError(f"{args.folder}: only `tether install wheelhouse DIR` takes a folder; a studio deploy is "
                         f"--studio {args.folder}")
    if not args.user and not args.studio:
        raise InputError(f"say where: tether install {args.dcc} --user (for you) or --studio DIR (a shared folder)")
    target = (args.studio.expanduser().resolve() if args.studio else user_target())
    dccs = ["nuke", "blender"] if args.dcc == "all" else [args.dcc]
    if args.rollback is not None:
        if not args.studio or args.dcc != "nuke" or args.uninstall:
            raise InputError("--rollback works on a studio share's Nuke versions: tether install nuke --studio DIR "
                             "--rollback [VERSION]")
        print("\n".join(nuke.rollback(target, args.rollback or None)))
        return 0
    if not args.uninstall:
        plan.check_writable(target)
    for dcc in dccs:
        print(f"== {dcc} -> {target}")
        if args.uninstall:
            lines = plan.uninstall(target, dcc, dry_run=args.dry_run)
            print("\n".join(lines) if lines else "nothing installed here: nothing to remove")
            continue
        platforms: List[str] = args.platforms or (
            [deps.this_platform()] if args.user else ["linux-x64", "windows-x64", "macos-arm64"])
        if dcc == "nuke":
            pythons = nuke_pythons(args, target)
            p = nuke.plan(target, bool(args.user), pythons, platforms, args.wheelhouse, args.rez, __version__,
                          media=args.media)
        elif args.user:
            try:
                p = blender.user_plan(target, args.blender or [], platforms[0], args.wheelhouse, __version__,
                                      args.blender_python or ["3.11", "3.13"])
            except InputError as exc:
                if args.dcc != "all" or not str(exc).startswith("no Blender found"):
                    raise
                print(f"skipped: {exc}")
                continue
        else:
            p = blender.studio_plan(target, platforms, args.wheelhouse, __version__,
                                    pythons=args.blender_python or ["3.11", "3.13"])
        with p:  # its wheels' archives closed and their temporary folder removed when done
            _run_plan(p, args)
    return 0


def _run_plan(p: Plan, args: argparse.Namespace) -> None:
    """Say what the plan would change (``--dry-run``) or apply it, and its notes."""
    from tether_install import plan

    if args.dry_run:
        lines = plan.describe(p)
        print("\n".join(lines) if lines else "already up to date: nothing would change")
        if p.after:
            print(f"run    Blender's extension installer ({len(p.after)} Blender(s))")
    else:
        result = plan.apply(p, __version__)
        if result.repaired:
            print("an earlier install was unfinished or had missing files: repaired")
        for line in result.changed[:20] if not args.verbose else result.changed:
            print(line)
        if len(result.changed) > 20 and not args.verbose:
            print(f"... and {len(result.changed) - 20} more (--verbose lists them all)")
        print(f"{len(result.changed)} change(s), {result.unchanged} file(s) already up to date" if result.changed
              else "already up to date: nothing changed")
    for note in p.notes:
        print(note)


def nuke_pythons(args: argparse.Namespace, target: Path) -> List[str]:
    """The Nuke Pythons to deploy for: as asked, or those of the Nukes installed here (printed either way)."""
    from tether_install import detect

    # a studio share serves every machine's Nuke, not only this one's: all supported Nukes unless told which
    all_versions = args.all_versions or (bool(args.studio) and not args.nuke_version)
    found = [] if args.nuke_version or all_versions else detect.find_nukes()
    pythons, lines = detect.choose_pythons(args.nuke_version or [], all_versions, found, user=bool(args.user))
    for line in lines:
        print(line)
    return pythons


DOCTOR_LEGEND = ("marks: ok = checked and fine; FAIL = a problem to fix (the exit status is 1); -- = not a problem "
                 "here (not installed, not configured or not checked), said for information")


def run_doctor(args: argparse.Namespace) -> int:
    from tether_install import doctor

    checks = doctor.run(args.blender or [], getattr(args, "profile", None), endpoints=not args.no_endpoints)
    if args.json:
        print(json.dumps(checks, indent=1))
    else:
        for c in checks:
            mark = "ok  " if c["ok"] else ("FAIL" if c["problem"] else "--  ")
            print(f"{mark} {c['check']}: {c['detail']}")
        print(DOCTOR_LEGEND)
    return 1 if any(c["problem"] for c in checks) else 0
