"""``python -m tether_cli``: the `tether` command (how the agent is started from a Python without the script)."""

import sys

from . import main

sys.exit(main())
