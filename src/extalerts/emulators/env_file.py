"""The ``export NAME=value`` lines that point extalerts at a running emulator (or the sandbox), and
the ``--env-file`` they are written to: readable by the owner only, complete from the moment it
appears (a script may wait for it), and removed when the servers stop."""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path


def shell_exports(env: Mapping[str, str]) -> str:
    """One ``export NAME=value`` line per variable, sorted by name, quoted for a POSIX shell."""
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items()))


@contextmanager
def env_file(path: Path | None, env: Mapping[str, str]) -> Iterator[None]:
    """Write ``env`` as exports to ``path`` for the duration of the ``with`` block (nothing when None).

    The file is written beside its final name and renamed into place, so whoever waits for it to
    exist reads all of it; it is created owner-only (it may hold made-up credentials) and removed on
    the way out, unless another run has replaced it since."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(shell_exports(env) + "\n")
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    written = _identity(path)
    try:
        yield
    finally:
        with suppress(FileNotFoundError):
            if _identity(path) == written:
                path.unlink()


def _identity(path: Path) -> tuple[int, int, int]:
    """Which file ``path`` names now: device, inode and modification time (an inode may be reused)."""
    status = path.stat()
    return status.st_dev, status.st_ino, status.st_mtime_ns
