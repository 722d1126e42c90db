"""buildpolicy's own files on disk: has a file changed, and writing one safely.

A base module: standard library only, no attrs, because the warm ``env`` replay
(``buildpolicy.replay``), the policy cache (``buildpolicy.policy.loader``), the
plugin host's entry-point cache, cargo-profile facts and trust all answer the
same question (is this file still the one that was read?) with the same token,
and the replay runs at every prompt.
"""

from __future__ import annotations

import os
import sys


def xdg_dir(environ, variable: str, default: str) -> str:
    """``$<variable>`` when it is an absolute path, else ``$HOME/<default>``.

    The XDG base directory specification says relative values are invalid and
    must be ignored.
    """
    value = environ.get(variable)
    if value and os.path.isabs(value):
        return value
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, default)


def cache_dir(environ) -> str:
    """``$XDG_CACHE_HOME/buildpolicy`` (default ``~/.cache/buildpolicy``)."""
    return os.path.join(xdg_dir(environ, "XDG_CACHE_HOME", ".cache"), "buildpolicy")


def stat_token(path) -> str:
    """Inode, size, mtime and ctime of a file or directory, symlinks followed
    (``missing`` when absent, ``dangling`` for a symlink to nothing).

    A file replaced by another (a rename, an upgrade) gets a new inode; an edit
    changes mtime and ctime, and ctime cannot be set back even by a copy that
    preserves mtimes. A directory's times change when entries come or go.
    """
    try:
        st = os.stat(path)
    except OSError:
        return "dangling" if os.path.lexists(path) else "missing"
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


# The kernel stamps files from a clock that lags the wall clock by up to a tick
# (1-10 ms). Filesystems with coarser timestamps (FAT: 2 s) are not covered.
RACY_MARGIN_NS = 20_000_000


def racy(token: str, since_ns: int) -> bool:
    """Whether the file behind ``token`` may have changed at or after ``since_ns``
    (the start of the run that read it), so that a read during the run and a later
    write could carry the same token (the "racy git" problem). Results built from
    such a file are not kept; the next run, a moment later, keeps them."""
    fields = token.split(":")
    return len(fields) == 4 and int(fields[3]) >= since_ns - RACY_MARGIN_NS


def sys_path_state() -> str:
    """A cheap fingerprint of the installed distributions: each ``sys.path`` entry with its mtime.

    Installing or removing a distribution changes its site directory's mtime.
    ``sys.path[0]`` is left out: it is the script's directory or the working
    directory (``python -m``), where distributions are not installed.
    """
    parts = []
    for entry in sys.path[1:]:
        if entry in ("", "."):
            continue
        try:
            parts.append(f"{entry}={os.stat(entry).st_mtime_ns}")
        except OSError:
            parts.append(f"{entry}=-")
    return "\n".join(parts)


def atomic_write(path, data: bytes, *, mode: int = 0o644, durable: bool = False) -> None:
    """Write ``data`` to ``path`` atomically: a temp file in the same directory, then rename.

    Readers see the old or the new file, never half of one; concurrent writers
    each use their own temp name. (No tempfile module: it is slow to import.)
    ``mode`` is set explicitly, so the umask cannot narrow a shared file;
    ``durable`` also syncs the data to disk before the rename (user-edited files).
    """
    path = os.fspath(path)
    directory, name = os.path.split(path)
    os.makedirs(directory or ".", exist_ok=True)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
