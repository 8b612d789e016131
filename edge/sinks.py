"""Where result lines go (stdout, the JSONL file): whole lines, failures counted, never fatal.

A full SD card must not become a crash-restart loop: a line that cannot be
written is counted and reported at most once per ``WARN_INTERVAL_S``, and the
daemon keeps listening. Only a closed reader on stdout (EPIPE) ends it, so
``Restart=on-failure`` brings the service back.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time

from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.paths import os_reason

log = logging.getLogger(__name__)

WARN_INTERVAL_S = 60.0


class OutputClosed(SerEdgeError):
    """Nobody reads stdout any more (broken pipe)."""


class LineSink:
    def __init__(self, name: str, fd: int | None, path: str | None = None, *, clock=time.monotonic):
        self.name = name
        self.path = path
        self.unwritten = 0
        self._fd = fd
        self._clock = clock
        self._last_warning: float | None = None
        self._unreported = 0
        self._torn = False  # a partial line was written: the next write starts a new line first

    @classmethod
    def stdout(cls) -> "LineSink":
        return cls("stdout", 1)

    @classmethod
    def append_to(cls, path: str) -> "LineSink":
        """Open ``path`` for appending; one-line error for a FIFO, socket or directory."""
        return cls(path, open_for_append(path), path)

    def write(self, line: str) -> bool:
        data = (b"\n" if self._torn else b"") + line.encode() + b"\n"
        if self._fd is None:
            self._failed("not open")
            return False
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as error:
            if error.errno == errno.EPIPE and self.path is None:
                raise OutputClosed("stdout was closed by its reader (broken pipe); stopping") from None
            self._torn = self._torn or written > 0
            self._failed(os_reason(error))
            return False
        self._torn = False
        return True

    def reopen(self) -> None:
        """Close and open ``path`` again (SIGHUP after logrotate renamed it)."""
        if self.path is None:
            return
        self.close()
        try:
            self._fd = open_for_append(self.path)
        except SerEdgeError as error:
            log.warning("%s; results for it are counted as unwritten", error)
            return
        self._torn = False
        log.info("reopened %s", self.path)

    def close(self) -> None:
        if self._fd is not None and self.path is not None:  # stdout is not ours to close
            os.close(self._fd)
            self._fd = None

    def _failed(self, reason: str) -> None:
        self.unwritten += 1
        self._unreported += 1
        now = self._clock()
        if self._last_warning is None or now - self._last_warning >= WARN_INTERVAL_S:
            log.warning("cannot write results to %s (%s): %d line(s) lost since the last report, %d in all; "
                        "still listening", self.name, reason, self._unreported, self.unwritten)
            self._last_warning, self._unreported = now, 0


def open_for_append(path: str) -> int:
    """A file descriptor for appending. O_NONBLOCK: a FIFO must not block open() before READY."""
    try:
        if stat.S_ISFIFO(os.stat(path).st_mode) or stat.S_ISSOCK(os.stat(path).st_mode):
            raise SerEdgeError(f"{path}: is a FIFO or socket; the JSONL path must be a regular file")
    except FileNotFoundError:
        pass
    except OSError as error:
        raise SerEdgeError(f"{path}: cannot open for appending ({os_reason(error)})") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise SerEdgeError(f"{path}: cannot open for appending ({os_reason(error)})") from None
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):  # a FIFO swapped in after the check
        os.close(fd)
        raise SerEdgeError(f"{path}: not a regular file; the JSONL path must be a regular file")
    os.set_blocking(fd, True)
    return fd
