"""`tether agent install|uninstall`: the agent as a login service of this user, reversible.

One file per OS, written through the installer's :mod:`tether_install.plan` (journalled in a manifest, so
``uninstall`` removes exactly what was written and keeps a file the user changed since):

- Linux: a systemd user unit ``~/.config/systemd/user/tether-agent.service`` (``$XDG_CONFIG_HOME`` honoured);
- macOS: a launchd agent ``~/Library/LaunchAgents/com.tether.agent.plist`` (written with :mod:`plistlib`);
- Windows: a Task Scheduler task definition (XML, UTF-16 as ``schtasks /XML`` wants) run at logon.

The files are generated here; :func:`enable_commands` and :func:`disable_commands` are what makes them live or not
(``systemctl --user``, ``launchctl``, ``schtasks``), run by the command unless told not to.
"""

from __future__ import annotations

import os
import plistlib
import sys
from pathlib import Path
from typing import List, Optional
from xml.sax.saxutils import escape

from .plan import Plan

COMPONENT = "agent-service"
UNIT = "tether-agent.service"
LABEL = "com.tether.agent"
TASK = "Tether Agent"


def kind(platform: Optional[str] = None) -> str:
    platform = platform or sys.platform
    if platform.startswith("linux"):
        return "systemd"
    if platform == "darwin":
        return "launchd"
    if platform == "win32":
        return "schtasks"
    raise ValueError(f"no login service for platform {platform!r}: run `tether agent start` at login instead")


def service_path(platform: Optional[str] = None, home: Optional[Path] = None) -> Path:
    """Where the service definition goes for ``platform`` (default: this machine) under ``home``."""
    home = home or Path.home()
    which = kind(platform)
    if which == "systemd":
        config = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
        return Path(config) / "systemd" / "user" / UNIT
    if which == "launchd":
        return home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
    from tether.settings import data_dir

    return data_dir() / COMPONENT / "tether-agent-task.xml"


def _systemd_quote(arg: str) -> str:
    if arg and not any(c in arg for c in ' "\'\\;$%'):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$") + '"'


def service_file(command: List[str], log: Path, platform: Optional[str] = None) -> bytes:
    """The service definition that runs ``command`` (the agent, in the foreground) at login."""
    which = kind(platform)
    if which == "systemd":
        return (
            "[Unit]\n"
            "Description=Tether agent: uploads handed off by Blender, Nuke and tether; job watching; downloads\n\n"
            "[Service]\n"
            f"ExecStart={' '.join(_systemd_quote(a) for a in command)}\n"
            "Restart=on-failure\n"
            "RestartSec=5\n\n"
            "[Install]\n"
            "WantedBy=default.target\n"
        ).encode()
    if which == "launchd":
        return plistlib.dumps({
            "Label": LABEL, "ProgramArguments": list(command), "RunAtLoad": True,
            "KeepAlive": {"SuccessfulExit": False},  # restarted after a crash, not after `tether agent stop`
            "StandardOutPath": str(log), "StandardErrorPath": str(log), "ProcessType": "Background",
        })
    exe, *args = command
    # Task Scheduler's schema (learn.microsoft.com, "Task Scheduler Schema"): a logon trigger for this user.
    xml = (
        '<?xml version="1.0" encoding="UTF-16"?>\n'
        '<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">\n'
        "  <RegistrationInfo><Description>Tether agent: uploads, job watching, downloads</Description>"
        "</RegistrationInfo>\n"
        "  <Triggers><LogonTrigger><Enabled>true</Enabled></LogonTrigger></Triggers>\n"
        "  <Principals><Principal id=\"Author\"><LogonType>InteractiveToken</LogonType>"
        "<RunLevel>LeastPrivilege</RunLevel></Principal></Principals>\n"
        "  <Settings><MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>"
        "<DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>"
        "<StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>"
        "<ExecutionTimeLimit>PT0S</ExecutionTimeLimit>"
        "<RestartOnFailure><Interval>PT1M</Interval><Count>3</Count></RestartOnFailure></Settings>\n"
        "  <Actions Context=\"Author\"><Exec>"
        f"<Command>{escape(exe)}</Command>"
        f"<Arguments>{escape(' '.join(_windows_quote(a) for a in args))}</Arguments>"
        "</Exec></Actions>\n"
        "</Task>\n"
    )
    return xml.encode("utf-16")


def _windows_quote(arg: str) -> str:
    return f'"{arg}"' if (" " in arg or not arg) else arg


def enable_commands(path: Path, platform: Optional[str] = None) -> List[List[str]]:
    which = kind(platform)
    if which == "systemd":
        return [["systemctl", "--user", "daemon-reload"], ["systemctl", "--user", "enable", "--now", UNIT]]
    if which == "launchd":
        return [["launchctl", "bootstrap", f"gui/{_uid()}", str(path)]]
    return [["schtasks", "/Create", "/TN", TASK, "/XML", str(path), "/F"], ["schtasks", "/Run", "/TN", TASK]]


def disable_commands(path: Path, platform: Optional[str] = None) -> List[List[str]]:
    which = kind(platform)
    if which == "systemd":
        return [["systemctl", "--user", "disable", "--now", UNIT], ["systemctl", "--user", "daemon-reload"]]
    if which == "launchd":
        return [["launchctl", "bootout", f"gui/{_uid()}", str(path)]]
    return [["schtasks", "/Delete", "/TN", TASK, "/F"]]


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0


def manifest_folder() -> Path:
    """Where the install's manifest lives: Tether's own data folder (never the OS's service folder, which
    uninstall must leave in place)."""
    from tether.settings import data_dir

    return data_dir() / COMPONENT


def plan(command: List[str], log: Path, platform: Optional[str] = None, home: Optional[Path] = None) -> Plan:
    result = Plan(component=COMPONENT, target=manifest_folder())
    result.files[service_path(platform, home)] = service_file(command, log, platform)
    return result


__all__ = ["COMPONENT", "disable_commands", "enable_commands", "kind", "manifest_folder", "plan", "service_file",
           "service_path"]
