"""The background refresh process ``env`` starts (``refresh.start``): probe, record, exit.

It reads the host settings as JSON on stdin, takes the refresh lock without
waiting (another refresh running means there is nothing to do), and probes
exactly as ``exec`` does: ``choose_host`` records every result and keeps the
down cache. Its standard streams are ``/dev/null``; it never prints.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from buildpolicy.run.remote.refresh import REFRESH_LOCK, try_lock


def main() -> int:
    """Probe the hosts of the settings on stdin and record the results (one refresh at a time)."""
    from buildpolicy.run.remote.hosts import Settings
    from buildpolicy.run.remote.probe import choose_host

    try:
        data = json.loads(sys.stdin.read(1 << 20))
        settings = Settings(
            hosts=tuple(data["hosts"]), ssh=data["ssh"], ssh_config=data["ssh_config"],
            tcp_timeout=float(data["tcp_timeout"]), recovery_timeout=float(data["recovery_timeout"]),
            down_ttl=float(data["down_ttl"]), tcp_probe=bool(data["tcp_probe"]),
            connect_timeout=float(data["connect_timeout"]), state_dir=Path(data["state_dir"]),
        )
    except (ValueError, KeyError, TypeError):
        return 2
    fd = try_lock(settings.state_dir / REFRESH_LOCK)
    if fd is None:
        return 0  # another refresh is probing these hosts
    try:
        choose_host(settings, os.environ)
    finally:
        os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
