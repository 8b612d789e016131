"""What every console script shares: one stderr line per user error, and logging set up once.

Modules only ever log through ``logging.getLogger(__name__)``; the entry points
(``main`` of each CLI) are the only places that decide where records go.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from ser_edge.edge.errors import SerEdgeError

LOG_LEVELS = ("debug", "info", "warning", "error")
USER_ERROR = 2  # exit status of a SerEdgeError
INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def run(prog: str, body: Callable[[], int | None], *, interrupted: str | None = None,
        reader_gone: int | None = None) -> int:
    """``body()``'s exit status; a SerEdgeError becomes ``prog: error: ...`` and status 2.

    ``interrupted``: the line printed on Ctrl-C (status 130); without it Ctrl-C
    propagates. ``reader_gone``: the status when stdout's reader went away
    (``| head``); without it BrokenPipeError propagates.
    """
    try:
        status = body()
    except SerEdgeError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        if interrupted is None:
            raise
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        if reader_gone is None:
            raise
        return reader_gone
    return 0 if status is None else status


class _CurrentStderr(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001 - logging must never end the program
            self.handleError(record)


def log_to_stderr(level: str | int = "info", fmt: str = "%(message)s", logger: str = "") -> None:
    """Send records of ``logger`` (``""``: every logger) at ``level`` and above to stderr, one line each.

    Called again (a second ``main()`` in one process), it replaces its own
    handler instead of adding another, so no line is printed twice.
    """
    target = logging.getLogger(logger)
    for handler in [h for h in target.handlers if isinstance(h, _CurrentStderr)]:
        target.removeHandler(handler)
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter(fmt))
    target.addHandler(handler)
    target.setLevel(level.upper() if isinstance(level, str) else level)
