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
_ROOT = Path("/")


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(65536).decode("ascii", "replace")
    except OSError:
        return None


def field(text: str | None, key: str) -> int | None:
    """The first number after ``key`` at the start of a line of ``text`` (``/proc`` and
    ``memory.stat`` style), or None. Only the needed keys are looked up: sampling runs
    several times a second, and parsing every line was most of the governor's own cost."""
    if not text:
        return None
    at = text.find(key)
    while at > 0 and text[at - 1] != "\n":
        at = text.find(key, at + 1)
    if at < 0:
        return None
    end = text.find("\n", at)
    fields = text[at + len(key):end if end >= 0 else len(text)].split()
    return int(fields[0]) if fields and fields[0].isdigit() else None


def _number(text: str | None) -> int | None:
    """A file holding one number (a cgroup's usage), or None."""
    text = (text or "").strip()
    return int(text) if text.isdigit() else None


def _psi_full_total(text: str | None) -> int | None:
    """Microseconds all non-idle tasks stalled on memory (``full … total=``), or None."""
    for line in (text or "").splitlines():
        if line.startswith("full "):
            for item in line.split():
                if item.startswith("total="):
                    return int(item[6:]) if item[6:].isdigit() else None
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
        # Paths as strings and the keys to pick, worked out once: sample() runs many times a second.
        self._meminfo_path = str(root / "proc/meminfo")
        self._psi_path = str(self.psi_path)
        self._reads = []
        for version, directory, level_limit in self.levels:
            _lim, usage, inactive, active = cgroup.MEMORY_FILES[version]
            directory = Path(directory)  # the probe gives strings (the prompt path avoids pathlib)
            self._reads.append((str(directory / usage), str(directory / "memory.stat"),
                                inactive + " ", active + " ", level_limit))

    def known(self) -> bool:
        """Whether available memory can be read at all (else the governor cannot govern)."""
        return self.sample() is not None

    def sample(self) -> Sample | None:
        """Memory now, or None when nothing can be read."""
        now = time.monotonic()
        meminfo = _read(self._meminfo_path)
        available = _kib(field(meminfo, "MemAvailable:"))
        limit = _kib(field(meminfo, "MemTotal:"))
        for usage_path, stat_path, inactive, active, level_limit in self._reads:
            usage = _number(_read(usage_path))
            if usage is None:
                continue
            stat = _read(stat_path)
            unreclaimable = max(0, usage - (field(stat, inactive) or 0) - (field(stat, active) or 0))
            room = max(0, level_limit - unreclaimable)
            available = room if available is None else min(available, room)
            limit = level_limit if limit is None else min(limit, level_limit)
        if available is None or limit is None:
            return None
        return Sample(available, limit, self._stall_fraction(now), now)

    def _stall_fraction(self, now: float) -> float:
        """The share of wall time since the last sample in which all tasks stalled on memory."""
        total = _psi_full_total(_read(self._psi_path))
        if total is None:
            return 0.0
        last, self._last_stall = self._last_stall, (total, now)
        if last is None or now <= last[1]:
            return 0.0
        return min(1.0, (total - last[0]) / 1e6 / (now - last[1]))


def process_memory(pid: int, root: Path = Path("/")) -> tuple[int, int] | None:
    """``(rss, peak rss)`` of a process in bytes (``VmRSS``, ``VmHWM``), or None when it is gone."""
    text = _read(f"/proc/{pid}/status" if root == _ROOT else str(root / f"proc/{pid}/status"))
    rss = _kib(field(text, "VmRSS:"))
    if rss is None:
        return None  # gone, or a zombie: its memory is already free
    return rss, _kib(field(text, "VmHWM:")) or rss


def _kib(value: int | None) -> int | None:
    return None if value is None else value * 1024
