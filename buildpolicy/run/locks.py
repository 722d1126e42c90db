"""Short advisory file locks for read-modify-write of shared state files.

Many shells may run ``buildpolicy`` at the same moment (one per prompt, one per
terminal, build scripts in parallel). State files are replaced atomically, so
readers never need a lock; writers that *merge* into a file (the remote down
cache, the action log) hold an exclusive ``flock`` on a sidecar lock file for
the few microseconds of their update, so no update is lost.

The wait is bounded: state is advisory, and a stuck lock holder must never
make a prompt or a build hang. Without ``fcntl`` (Windows) updates go
unlocked, which only risks losing one concurrent update.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def locked(path: Path, timeout: float = 1.0, *, directory: bool = False) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` block.

    With ``directory``, ``path`` is an existing directory, locked itself: it stays
    when the files in it are replaced, so every writer of one of them finds the
    same lock, whoever they are and wherever their own state lives.

    Yields True when the lock is held, False when it could not be taken within
    ``timeout`` seconds or the file cannot be opened; the caller decides whether
    to go on unlocked or to skip its update.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield True
        return
    try:
        if directory:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Non-blocking: a FIFO planted at the lock's name must not make the open wait.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
    except OSError:
        yield False
        return
    if not directory and not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO, a device: not a lock anyone takes
        os.close(fd)
        yield False
        return
    try:
        deadline = time.monotonic() + timeout
        held = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                # Holders keep it for microseconds: a short poll keeps the wait bounded
                # without a helper thread.
                time.sleep(0.002)
            except OSError:
                break
        yield held
    finally:
        os.close(fd)  # closing the descriptor releases the lock
