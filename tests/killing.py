"""Stop an install between two of its changes on disk as kill -9 would: a forked copy of the test process runs it and
``os._exit``s at the chosen change (no cleanup, no ``finally``, no flush), through the installer's one hook
``tether_install.plan.before_change``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Tuple

KILLED = 137


def run_killed(action: Callable[[], object], at: int) -> Tuple[int, int]:
    """Run ``action`` in a child that dies at change number ``at``: (exit status, changes it reached). With ``at``
    past the last change the child finishes (status 0) and the count is how many changes the action makes."""
    from tether_install import plan  # imported before the fork: the child takes no import lock another thread holds

    fd, reached = tempfile.mkstemp(prefix="tether-kill-")
    os.close(fd)
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            count = 0

            def kill(what: str) -> None:
                nonlocal count
                count += 1
                with open(reached, "w") as fh:
                    fh.write(str(count))
                if count == at:
                    os._exit(KILLED)

            plan.before_change = kill
            action()
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    text = Path(reached).read_text()
    os.unlink(reached)
    return os.waitstatus_to_exitcode(status), int(text or 0)
