"""Writing a file so that a reader, or a crash, never sees half of it: created with its mode, fsynced, renamed.

Keys, API keys, bundles, the manifests and promotion records of projection generations and the audit segments'
manifest are written through here.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def write_new_file(path: Path, content: bytes, mode: int) -> None:
    """Create `path` exclusively with `mode` from the first byte on, write and fsync it."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(content)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, content: bytes, mode: int) -> None:
    """Atomically replace `path`: write a fresh temporary file beside it, then rename over it."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        write_new_file(temporary, content, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
