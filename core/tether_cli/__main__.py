"""``python -m tether_cli``: the `tether` command (how the agent is started from a Python without the script)."""

import sys

from . import main

if __name__ == "__main__":  # importing it (a walk of the package) runs nothing
    sys.exit(main())
