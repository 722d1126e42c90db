"""Process probes: is earlyoom / systemd-oomd running, how many rustc processes are.

On Linux one scan of /proc/*/comm (a few bytes per process, no psutil) serves all
three facts; elsewhere psutil lists process names.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from buildpolicy.facts.unknown import FactUnknown

EARLYOOM = "earlyoom"
OOMD = "systemd-oomd"
RUSTC = "rustc"


def scan_proc(proc: Path) -> Counter:
    """Count processes by ``comm`` under a /proc directory (vanished ones skipped)."""
    counts: Counter = Counter()
    with os.scandir(proc) as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                # os.open/read: several times faster than open() for hundreds of tiny files.
                fd = os.open(f"{entry.path}/comm", os.O_RDONLY)
                try:
                    comm = os.read(fd, 64)
                finally:
                    os.close(fd)
            except OSError:
                continue  # the process exited while we looked
            counts[comm.rstrip(b"\n").decode("utf-8", "replace")] += 1
    return counts


def _psutil_names() -> Counter:
    import psutil  # lazy: slow to import, and Linux never needs it

    counts: Counter = Counter()
    for proc in psutil.process_iter(["name"]):
        name = proc.info.get("name")
        if name:
            counts[name] += 1
    return counts


def _process_counts(s) -> Counter:
    def scan() -> Counter:
        if not s.ctx.is_linux:
            return _psutil_names()
        proc = s.ctx.host_path("/proc")
        try:
            return scan_proc(proc)
        except OSError as exc:
            raise FactUnknown(f"cannot list {proc}: {exc.strerror}") from None

    return s.shared("process.counts", scan)


def probe_earlyoom(s) -> bool:
    """The ``process.earlyoom`` fact."""
    return _process_counts(s)[EARLYOOM] > 0


def probe_oomd(s) -> bool:
    """The ``process.oomd`` fact (systemd-oomd)."""
    return _process_counts(s)[OOMD] > 0


def probe_rustc_count(s) -> int:
    """The ``process.rustc_count`` fact."""
    return _process_counts(s)[RUSTC]
