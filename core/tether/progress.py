"""The one progress callback every long step takes: uploads, downloads, submissions, fetches, in the command and in
both DCCs.

``progress(done, total)`` is called as bytes (or items) move, ``total`` 0 when unknown. Returning ``False`` asks the
step to stop: it raises :class:`tether.errors.CancelledByUser` and keeps what can be resumed; ``None`` or ``True``
carry on. (AWS Deadline Cloud's submitter does the same: its callbacks return False to cancel.)
:class:`tether.transfer.TransferProgress` events of a multi-file upload are built on the same rule.
"""

from __future__ import annotations

from typing import Callable, Optional

Progress = Callable[[int, int], Optional[bool]]

__all__ = ["Progress"]
