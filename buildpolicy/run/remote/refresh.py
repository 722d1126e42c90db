"""The background refresh of recorded probe results (``records``), started by ``env``.

``env`` never probes: when a result it relied on is old or missing it starts
``python -P -m buildpolicy.run.remote.background`` detached (its own session, no
terminal, standard streams on ``/dev/null`` except the settings on stdin) and
returns at once. The refresh probes exactly as ``exec`` does (``choose_host``,
which records every result and keeps the down cache) and exits.

At most one refresh runs per state directory: it holds ``remote-refresh.lock``
for its whole run, a second one exits at once, and ``env`` does not start one
while the lock is held. ``-P`` keeps the working directory off ``sys.path``
(it runs in ``/`` anyway): a repository's files never become its code.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

REFRESH_LOCK = "remote-refresh.lock"
MODULE = "buildpolicy.run.remote.background"  # the refresh process itself
_started: list = []  # Popen objects of detached refreshes: kept so they are never reaped with a warning


def try_lock(path: Path):
    """An open descriptor holding ``path``'s exclusive lock, or None when it is held elsewhere."""
    import fcntl
    import stat

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW, 0o600)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError("not a regular file")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def running(state_dir: Path) -> bool:
    """Whether a refresh holds the lock of ``state_dir`` now."""
    fd = try_lock(Path(state_dir) / REFRESH_LOCK)
    if fd is None:
        return True
    os.close(fd)
    return False


def start(settings, environ: Mapping[str, str]) -> str:
    """Start a detached refresh of ``settings``' hosts unless one runs; say what happened."""
    import subprocess

    if running(settings.state_dir):
        return "a background refresh is running"
    payload = {
        "hosts": list(settings.hosts), "ssh": settings.ssh, "ssh_config": settings.ssh_config,
        "tcp_timeout": settings.tcp_timeout, "recovery_timeout": settings.recovery_timeout,
        "down_ttl": settings.down_ttl, "tcp_probe": settings.tcp_probe,
        "connect_timeout": settings.connect_timeout, "state_dir": str(settings.state_dir),
    }
    try:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", MODULE], env=dict(environ), cwd="/", stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
        )
        proc.stdin.write(json.dumps(payload).encode())  # a few hundred bytes: never blocks on the pipe
        proc.stdin.close()
    except OSError as exc:
        return f"the background refresh could not start: {exc.strerror or exc}"
    _started.append(proc)
    return "refreshing in the background"
