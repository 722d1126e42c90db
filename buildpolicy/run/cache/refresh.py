"""Refresh a backend's recorded probe in the background (DESIGN §13: a prompt never waits on the network).

``env`` decides from the record (``reach.Records``). When there is none yet, or
the last one says down, it starts ``buildpolicy cache -q`` detached (its own
session, no terminal, output discarded): that probes in its own time and
writes the record, and the next prompt, whose replay depends on the record
file, decides again from it. At most one start per backend every
:data:`THROTTLE` seconds, remembered by a marker file's time.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

THROTTLE = 30.0  # seconds between background probes of one backend


def start(probe_key: str, state_dir, cwd, environ: Mapping[str, str]) -> bool:
    """Start a background ``buildpolicy cache`` for the backend ``probe_key``; False when throttled or it could not."""
    marker = Path(state_dir) / "sccache-refresh" / hashlib.sha256(probe_key.encode()).hexdigest()[:16]
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        if time.time() - marker.stat().st_mtime < THROTTLE:
            return False
    except FileNotFoundError:
        pass
    except OSError:
        return False
    try:
        marker.touch()
        subprocess.Popen(
            [sys.executable, "-m", "buildpolicy", "cache", "-q", "--format", "json"],
            cwd=str(cwd), env=dict(environ), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    except OSError:
        return False
    return True


def cwd_of(ctx) -> str:
    """The run's working directory (the probe context's), else the process's."""
    probe_ctx = getattr(ctx.facts, "ctx", None)
    return str(getattr(probe_ctx, "cwd", None) or os.getcwd())
