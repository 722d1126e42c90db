"""Live memory for the governor loop: what is available now, and whether tasks stall.

Read several times a second while a build runs, so the cgroup levels that
have a limit are found once and only their usage files are read after that.

*Available* is the tightest of the machine's ``MemAvailable`` and, for every
cgroup level with a limit (v1 and v2), the limit minus what cannot be
reclaimed: usage without its file pages. Page cache counts as free because the
kernel reclaims it before it would OOM-kill anything, and a build writes a lot
of it (every ``.rlib``), which must not look like pressure. When reclaiming it
is not enough, tasks stall: pressure stall information (PSI, the cgroup's
``memory.pressure`` on v2, else ``/proc/pressure/memory``) tells the governor
that before the OOM killer would act.
"""

from __future__ import annotations

import time
from pathlib import Path

from buildpolicy.facts import cgroup

MIB = 1 << 20


def _read(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(65536).decode("ascii", "replace")
    except OSError:
        return None


def _meminfo(text: str | None) -> dict[str, int]:
    values = {}
    for line in (text or "").splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            values[key] = int(fields[0]) * 1024
    return values


def _psi_full_total(text: str | None) -> int | None:
    """Microseconds all non-idle tasks stalled on memory (``full … total=``), or None."""
    for line in (text or "").splitlines():
        if line.startswith("full "):
            for field in line.split():
                if field.startswith("total="):
                    return int(field[6:]) if field[6:].isdigit() else None
    return None


class Sample:
    """One look at memory: bytes available, the limit that applies, stalls since the last look."""

    __slots__ = ("available", "limit", "stall_fraction", "at")

    def __init__(self, available: int, limit: int, stall_fraction: float, at: float):
        self.available = available
        self.limit = limit
        self.stall_fraction = stall_fraction
        self.at = at


class LiveMemory:
    """Samples available memory (cgroup-aware) and memory stalls."""

    def __init__(self, root: Path = Path("/")):
        self.root = root
        self.levels = cgroup.limited_memory_dirs(root)
        v2 = [directory for version, directory, _limit in self.levels if version == "v2"]
        # The leaf v2 cgroup's own pressure file counts only its tasks; v1 has none.
        self.psi_path = Path(v2[0]) / "memory.pressure" if v2 else root / "proc/pressure/memory"
        self._last_stall: tuple[int, float] | None = None

    def known(self) -> bool:
        """Whether available memory can be read at all (else the governor cannot govern)."""
        return self.sample() is not None

    def sample(self) -> Sample | None:
        """Memory now, or None when nothing can be read."""
        now = time.monotonic()
        meminfo = _meminfo(_read(self.root / "proc/meminfo"))
        available = meminfo.get("MemAvailable")
        limit = meminfo.get("MemTotal")
        for version, directory, level_limit in self.levels:
            usage = cgroup.memory_usage(version, directory)
            if usage is None:
                continue
            stat = cgroup.memory_stat(directory)
            _lim, _use, inactive, active = cgroup.MEMORY_FILES[version]
            unreclaimable = max(0, usage - stat.get(inactive, 0) - stat.get(active, 0))
            room = max(0, level_limit - unreclaimable)
            available = room if available is None else min(available, room)
            limit = level_limit if limit is None else min(limit, level_limit)
        if available is None or limit is None:
            return None
        return Sample(available, limit, self._stall_fraction(now), now)

    def _stall_fraction(self, now: float) -> float:
        """The share of wall time since the last sample in which all tasks stalled on memory."""
        total = _psi_full_total(_read(self.psi_path))
        if total is None:
            return 0.0
        last, self._last_stall = self._last_stall, (total, now)
        if last is None or now <= last[1]:
            return 0.0
        return min(1.0, (total - last[0]) / 1e6 / (now - last[1]))


def process_memory(pid: int, root: Path = Path("/")) -> tuple[int, int] | None:
    """``(rss, peak rss)`` of a process in bytes (``VmRSS``, ``VmHWM``), or None when it is gone."""
    text = _read(root / f"proc/{pid}/status")
    if text is None:
        return None
    values = _meminfo(text)
    if "VmRSS" not in values:
        return None  # a zombie: its memory is already free
    return values["VmRSS"], values.get("VmHWM", values["VmRSS"])
