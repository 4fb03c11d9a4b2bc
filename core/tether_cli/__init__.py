"""The `tether` command. Each subcommand lives in its own module with a ``register(subparsers)`` function."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from typing import Callable, Optional, Sequence

from tether import __version__
from tether.spec import SERVICES

# Each module's register(subparsers) adds its commands; one `<service>_cmd` per service of tether.spec
# (`tether SERVICE submit|jobs|status|fetch|cancel`, plus what that service alone offers).
COMMAND_MODULES = (
    "config_cmd",   # tether config show / tether login
    "frames_cmd",   # tether frames
    "jobs_cmd",     # tether jobs [list|watch|cancel|fetch]
    "serve_cmd",    # tether serve
    "demo_cmd",     # tether demo
    "blender_cmd",  # tether blender build-extension
    *(f"{service}_cmd" for service in SERVICES),
    "install_cmd",  # tether install / tether doctor
    "agent_cmd",    # tether agent [start|status|queue|pause|resume|stop]
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tether",
        description="Send work from Nuke and Blender to cloud job services and bring the results back.",
    )
    parser.add_argument("--version", action="version", version=f"tether {__version__}")
    parser.add_argument("--profile", help="settings profile to use (default: the configured one, else 'local')")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from tether.errors import TetherError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .progress import announcing

    restore = _exit_on_termination()
    try:
        # a command that logs on its own (the agent, to its log and terminal) would otherwise print each warning twice
        with announcing() if getattr(args, "announce", True) else contextlib.nullcontext():
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `tether ... | head`: the reader left. Point stdout at devnull so the interpreter's final flush is quiet.
        _silence_stdout()
        return 141
    except TetherError as exc:
        print(f"tether: error: {exc}{_hint(exc, args)}", file=sys.stderr)
        return 1
    finally:
        restore()


def _exit_on_termination() -> Callable[[], None]:
    """SIGTERM and SIGHUP (a closed terminal, a job scheduler's stop) unwind like Ctrl-C, so temporary copies and
    partial files are cleaned up by the code that made them instead of left behind."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # embedders calling main() from a thread keep their own handlers

    def stop(signum: int, _frame: object) -> None:
        print(f"stopped by {signal.Signals(signum).name}", file=sys.stderr)
        raise SystemExit(128 + signum)

    kinds = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    before = {kind: signal.signal(kind, stop) for kind in kinds}

    def restore() -> None:
        for kind, handler in before.items():
            signal.signal(kind, handler)

    return restore


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (tests): nothing left to flush
        pass


def _hint(exc: Exception, args: argparse.Namespace) -> str:
    """What to do next, for errors whose own text cannot know the command that was run."""
    from tether.errors import NotFound, ServiceUnavailable, TetherError

    service = getattr(exc, "service", "") or ""
    text = str(exc)
    if isinstance(exc, NotFound) and service and "`tether" not in text and (
            getattr(args, "job", None) or getattr(args, "id", None)):
        lister = "tether jobs --service farm" if service == "farm" else f"tether {service} jobs"
        return f"; check the id: `{lister}` lists the {service} jobs"
    if isinstance(exc, ServiceUnavailable) and "`tether serve" not in text:
        from tether.settings import LOCAL_PORT, LOCAL_PROFILE, load_settings, local_base_url

        try:
            settings = load_settings(getattr(args, "profile", None))
        except TetherError:
            return ""
        port = settings.local_port
        if settings.name == LOCAL_PROFILE and getattr(exc, "url", "").startswith(local_base_url(port)):
            serve = "tether serve" if port == LOCAL_PORT else f"tether serve --port {port}"
            return f"; the 'local' profile uses the local services: start them with `{serve}`"
    return ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
