"""Keep native libraries' log noise off stderr, which is for things a user needs to read.

LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." from
C++ when a model is allocated, and TensorFlow prints its oneDNN, CUDA and
CPU-feature notices when imported. Neither has a Python switch, so
``filtered()`` points file descriptor 2 at a temporary file around the call,
then writes back every line that is not known noise. Nothing else is lost: a
real error message from the library still reaches the user, just after the
call returns.

``ser-edge --verbose``, ``ser-bench --verbose`` or ``SER_EDGE_VERBOSE=1``
leave stderr untouched.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

VERBOSE_ENV = "SER_EDGE_VERBOSE"

# Lines that say nothing a user can act on. Anchored: anything else is kept.
NOISE = tuple(re.compile(pattern) for pattern in (
    r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$",
    r"^INFO: Initialized TensorFlow Lite runtime\.$",
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    r"^I\d{4} [\d:. ]+\d+ \S+:\d+\] ",  # absl / TensorFlow INFO lines (oneDNN, cudart stub, CPU features)
    r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$",
    r"^[EW]\d{4} [\d:. ]+\d+ \S+:\d+\] .*(cuInit|Unable to register cu[A-Za-z]+ factory|TensorRT"
    r"|computation placer already registered)",
))


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def set_verbose(on: bool) -> None:
    """What ``--verbose`` does; child processes inherit it."""
    if on:
        os.environ[VERBOSE_ENV] = "1"


def is_noise(line: str) -> bool:
    return any(pattern.search(line) for pattern in NOISE)


def keep(text: str) -> str:
    """``text`` without its noise lines."""
    return "".join(line for line in text.splitlines(keepends=True) if not is_noise(line.rstrip("\r\n")))


@contextlib.contextmanager
def filtered():
    """Run the body with fd 2 captured; write back what is not noise (everything when verbose)."""
    if verbose():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (closed, or a replaced sys.stderr): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()  # Python's own writes made inside the body go to the capture too
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = keep(capture.read().decode("utf-8", "replace"))
            data = text.encode()
            while data:
                data = data[os.write(2, data):]
