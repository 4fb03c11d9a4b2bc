"""`tether agent`: the per-user background process that owns hand-off uploads, job watching and downloads.

``tether agent`` runs it in the foreground; ``start`` runs it detached (it outlives the terminal); ``status``,
``queue``, ``pause``, ``resume``, ``cancel`` and ``stop`` talk to the running one over its private channel
(:mod:`tether.agent`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any, Dict, List

from tether import __version__
from tether.errors import ConfigError, InputError
from tether.fileio import human_bytes


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "agent", help="the background agent: uploads handed off by Blender, Nuke and `tether`, watching, downloads",
        description="Without an action: run the agent in the foreground until Ctrl-C or `tether agent stop`.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    parser.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)  # started by `agent start`
    parser.add_argument("--bandwidth", type=_rate_arg, metavar="RATE",
                        help="cap uploads at RATE bytes per second, e.g. 20M or 500K (also TETHER_AGENT_BANDWIDTH)")
    parser.set_defaults(func=cmd_run, announce=False)  # its own log handlers say the library's warnings
    actions = parser.add_subparsers(dest="agent_command", metavar="ACTION")
    start = actions.add_parser("start", help="start the agent in the background unless it runs")
    # SUPPRESS: unless given here, the cap given before the action (`tether agent --bandwidth 5M start`) stands;
    # a default of None would overwrite it
    start.add_argument("--bandwidth", type=_rate_arg, metavar="RATE", default=argparse.SUPPRESS,
                       help="cap its uploads at RATE bytes per second (a submit or a DCC that starts the agent "
                            "passes TETHER_AGENT_BANDWIDTH on to it; a running agent keeps its cap)")
    start.set_defaults(func=cmd_start)
    inst = actions.add_parser("install", help="run the agent at login (systemd user unit, launchd, Task Scheduler)")
    inst.add_argument("--no-enable", action="store_true", help="write the service file only; do not enable it")
    inst.add_argument("--dry-run", action="store_true", help="print what would be written and run")
    inst.set_defaults(func=cmd_install)
    uninst = actions.add_parser("uninstall", help="undo `tether agent install`")
    uninst.add_argument("--no-disable", action="store_true", help="remove the file only; do not disable it first")
    uninst.add_argument("--dry-run", action="store_true", help="print what would be removed and run")
    uninst.set_defaults(func=cmd_uninstall)
    prio = actions.add_parser("priority", help="change a waiting hand-off's priority (higher uploads first)")
    prio.add_argument("entry", type=int, help="its queue entry (`tether agent queue`)")
    prio.add_argument("priority", type=int, help="the new priority; higher goes first, and overtakes a running "
                                                 "upload of lower priority between files")
    prio.set_defaults(func=cmd_priority)
    canc = actions.add_parser("cancel", help="cancel a hand-off: it stops uploading and no job is made (one that is "
                                             "a job already is cancelled on its service)")
    canc.add_argument("entry", type=int, help="its queue entry (`tether agent queue`)")
    canc.add_argument("--json", action="store_true", help="print JSON")
    canc.set_defaults(func=cmd_cancel)
    for name, helptext in (("status", "whether it runs, what it does now, its queue's counts"),
                           ("queue", "the hand-offs it holds, in the order it takes them"),
                           ("pause", "stop taking hand-offs (an upload in flight goes back to the queue)"),
                           ("resume", "take hand-offs again"),
                           ("stop", "stop the agent (its queue is kept; it resumes on the next start)")):
        p = actions.add_parser(name, help=helptext)
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=cmd_action, action=name)


def cmd_run(args: argparse.Namespace) -> int:
    from tether.agent import log_path
    from tether.agent_server import Agent, configure_logging

    # detached, stderr is the log file already (it catches a crash's traceback too)
    configure_logging(log_path(), verbose=args.verbose, stderr=not args.detached)
    bandwidth = args.bandwidth
    if bandwidth is None and os.environ.get("TETHER_AGENT_BANDWIDTH"):
        bandwidth = _rate(os.environ["TETHER_AGENT_BANDWIDTH"])
    Agent(bandwidth=bandwidth).serve()
    return 0


def _rate(text: str) -> float:
    """``20M``, ``500K``, ``1.5G`` or a plain number: bytes per second."""
    units = {"K": 1e3, "M": 1e6, "G": 1e9}
    value = text.strip().upper().removesuffix("B/S").removesuffix("B")
    try:
        number = float(value[:-1]) * units[value[-1]] if value and value[-1] in units else float(value)
    except ValueError:
        number = 0.0
    if number <= 0:
        raise InputError(f"bandwidth {text!r} is not a rate: give bytes per second, e.g. 20M or 500K")
    return number


def _rate_arg(text: str) -> float:
    try:
        return _rate(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_start(args: argparse.Namespace) -> int:
    from tether import agent

    was = agent.running()
    status = agent.start(options=["--bandwidth", f"{args.bandwidth:.0f}"] if args.bandwidth else ())
    if was is not None and args.bandwidth and status.get("bandwidth") != args.bandwidth:
        print(f"the agent already runs with its own cap ({status.get('bandwidth') or 'none'}): `tether agent stop`, "
              "then start it with --bandwidth", file=sys.stderr)
    print(f"agent running (pid {status['pid']}); log: {agent.log_path()}")
    return 0


def _run_all(commands: List[List[str]], dry_run: bool, check: bool) -> int:
    import subprocess

    for command in commands:
        print("run   ", " ".join(command))
        if dry_run:
            continue
        try:
            status = subprocess.run(command, check=False).returncode
        except OSError as exc:
            status = 127
            print(f"tether: could not run {command[0]}: {exc}", file=sys.stderr)
        if status and check:
            print(f"tether: `{' '.join(command)}` failed (status {status}); the service file stays, "
                  "`tether agent uninstall` removes it", file=sys.stderr)
            return 1
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from tether.agent import agent_command, log_path
    from tether_install import agent_service
    from tether_install.plan import apply, describe

    command = agent_command()
    if command is None:  # pragma: no cover - the command runs under a Python
        raise ConfigError("cannot tell how to start the agent from here")
    plan = agent_service.plan(command, log_path())
    path = agent_service.service_path()
    if args.dry_run:
        for line in describe(plan):
            print(line)
    else:
        for line in apply(plan, __version__).changed:
            print(line)
    if args.no_enable:
        print(f"not enabled; to enable: {' && '.join(' '.join(c) for c in agent_service.enable_commands(path))}")
        return 0
    return _run_all(agent_service.enable_commands(path), args.dry_run, check=True)


def cmd_uninstall(args: argparse.Namespace) -> int:
    from tether_install import agent_service
    from tether_install.plan import load_manifest, uninstall

    folder = agent_service.manifest_folder()
    if load_manifest(folder, agent_service.COMPONENT) is None:
        print("the agent is not installed as a login service")
        return 0
    if not args.no_disable:
        # a service that is already off makes these fail: nothing to undo there, so they do not stop the removal
        _run_all(agent_service.disable_commands(agent_service.service_path()), args.dry_run, check=False)
    for line in uninstall(folder, agent_service.COMPONENT, dry_run=args.dry_run):
        print(line)
    return 0


def cmd_action(args: argparse.Namespace) -> int:
    from tether.agent import AgentClient, AgentNotRunning, queue

    try:
        with AgentClient() as client:
            reply: Any = client.queue() if args.action == "queue" else getattr(client, args.action)()
    except AgentNotRunning:
        if args.action == "stop":
            print("the agent is not running")
            return 0
        if args.action == "queue":
            reply = queue()  # the registry's: it waits there for the next start
        else:
            print("the agent is not running: `tether agent start` starts it (a submit starts it too)")
            return 3
    if args.json:
        print(json.dumps(reply, indent=2))
    elif args.action == "queue":
        _print_queue(reply)
    elif args.action == "stop":
        print(f"agent {reply['pid']} stopping")
    else:
        _print_status(reply)
    return 0


def cmd_priority(args: argparse.Namespace) -> int:
    """The queue is the registry's: written here, so it works whether or not the agent runs; a running one is woken
    so that a raised priority overtakes at once."""
    from tether.agent import AgentClient, AgentNotRunning
    from tether.registry import JobRegistry

    with JobRegistry() as registry:
        entry = registry.set_priority(args.entry, args.priority)
    with contextlib.suppress(AgentNotRunning), AgentClient() as client:
        client.wake()
    print(f"queue entry {entry.id} ({entry.service} '{entry.title}', {entry.state}): priority {entry.priority}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from tether.agent import cancel

    entry = cancel(args.entry)
    if args.json:
        print(json.dumps(entry, indent=2))
    elif entry.get("cancelled_job"):
        print(f"queue entry {entry['id']} was {entry['service']} job {entry['job_id']} already: the job is cancelled")
    elif entry["state"] == "cancelled":
        print(f"queue entry {entry['id']} ({entry['service']} '{entry['title']}') cancelled: no job was made")
    else:
        print(f"queue entry {entry['id']} is {entry['state']}: the agent has not stopped it yet", file=sys.stderr)
        return 1
    return 0


def _print_status(status: Dict[str, Any]) -> None:
    state = "paused" if status["paused"] else "running"
    counts = ", ".join(f"{n} {s}" for s, n in sorted(status["queue"].items())) or "empty"
    print(f"agent {state} (pid {status['pid']}, up {status['uptime']:.0f} s); queue: {counts}; "
          f"watching {status['watching']} job(s), {status['cycle']} poll cycle(s)")
    current = status.get("current") or {}
    if current:
        done, total = current.get("bytes_done"), current.get("bytes_total")
        moved = f": {current.get('phase')} {human_bytes(done or 0)} of {human_bytes(total)}" if total else ""
        print(f"  now: hand-off {current['entry']} ({current['service']} '{current['title']}'){moved}")


def _print_queue(entries: Any) -> None:
    from .tables import print_table

    if not entries:
        print("the agent's queue is empty")
        return
    print_table(("id", "service", "title", "state", "job", "priority", "error"),
                [(str(e["id"]), e["service"], e["title"], e["state"], e["job_id"] or "", str(e["priority"]),
                  e["error"] or "") for e in entries])
