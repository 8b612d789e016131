"""Write a file so that readers see the old content or the new, never half of it.

Every writer of results, models, caches and reports goes through ``replacing``:
a temporary file in the same folder (so the final rename stays on one file
system) that becomes ``path`` only once it is complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed over it when the block ends without an error.

    The temporary name keeps ``path``'s suffix: Keras refuses to save to a name
    without ``.keras``, and numpy appends ``.npy``/``.npz`` to one without its own.
    The file gets the permissions a plain ``open()`` would give (mkstemp's are 0600,
    and a model file must be readable by the service's own user).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".partial{path.suffix}")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_current_umask())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with replacing(path) as temporary:
        temporary.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    with replacing(path) as temporary:
        temporary.write_text(text)


def write_json(path: str | os.PathLike, data, indent: int = 1) -> None:
    write_text(path, json.dumps(data, indent=indent))


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
