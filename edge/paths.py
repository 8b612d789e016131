"""Open user-named files with one-line errors: missing, unreadable, a directory, a FIFO or a device.

``Path.exists()`` raises ``PermissionError`` inside a directory the service
user cannot enter (``ProtectHome=yes`` does exactly that to /home), and a
FIFO or a character device has no size, so every input file goes through here.
"""

from __future__ import annotations

import errno
import os
import stat

from ser_edge.edge.errors import SerEdgeError

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


def os_reason(error: OSError) -> str:
    """'permission denied' and friends, from an OSError, for a one-line message."""
    if error.errno is not None and error.errno in errno.errorcode:
        return os.strerror(error.errno).lower()
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def check_regular_file(path: str | os.PathLike, what: str = "file") -> os.stat_result:
    """The stat of ``path`` when it is a readable regular file; a SerEdgeError otherwise."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SerEdgeError(f"{path}: no such {what}") from None
    except OSError as error:  # EACCES on a parent directory, ELOOP, ENAMETOOLONG...
        raise SerEdgeError(f"{path}: cannot access {what} ({os_reason(error)})") from None
    kind = stat.S_IFMT(info.st_mode)
    if kind != stat.S_IFREG:
        raise SerEdgeError(f"{path}: is {_KINDS.get(kind, 'not a regular file')}, not a {what}")
    return info


def open_regular_file(path: str | os.PathLike, what: str = "file"):
    """A binary file object for a regular file; O_NONBLOCK so a FIFO swapped in cannot block open()."""
    check_regular_file(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise SerEdgeError(f"{path}: cannot open {what} ({os_reason(error)})") from None
    info = os.fstat(fd)  # the file opened may differ from the one checked
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise SerEdgeError(f"{path}: is {_KINDS.get(stat.S_IFMT(info.st_mode), 'not a regular file')}, not a {what}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_regular_file(path: str | os.PathLike, what: str, max_bytes: int) -> bytes:
    """The whole content of a regular file of at most ``max_bytes``."""
    with open_regular_file(path, what) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_bytes:
            raise SerEdgeError(f"{path}: {size:,} bytes is too large for a {what} (at most {max_bytes:,})")
        try:
            data = handle.read(max_bytes + 1)
        except OSError as error:  # EIO on a failing SD card
            raise SerEdgeError(f"{path}: cannot read {what} ({os_reason(error)})") from None
    if len(data) > max_bytes:
        raise SerEdgeError(f"{path}: grew past {max_bytes:,} bytes while being read")
    return data


def exists(path: str | os.PathLike) -> bool:
    """``Path.exists()`` that treats an unreachable path as existing (so the caller's open says why)."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return True

