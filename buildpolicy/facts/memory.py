"""Memory probes: memory.total/available, swap.total/free and cgroup.memory_limit.

Linux reads /proc/meminfo (one read serves all four facts) and the cgroup tree;
other systems ask psutil, imported only there.
"""

from __future__ import annotations

from buildpolicy.facts.unknown import FactUnknown

_MEMINFO_KEYS = ("MemTotal", "MemAvailable", "SwapTotal", "SwapFree")


def parse_meminfo(text: str) -> dict[str, int]:
    """Byte values of the /proc/meminfo fields buildpolicy uses (``kB`` is KiB)."""
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in _MEMINFO_KEYS:
            fields = rest.split()
            if fields and fields[0].isdigit():
                values[key] = int(fields[0]) * (1024 if fields[1:2] == ["kB"] else 1)
    return values


def _meminfo(s) -> dict[str, int]:
    def read() -> dict[str, int]:
        path = s.ctx.host_path("/proc/meminfo")
        try:
            with open(path, "rb") as handle:
                return parse_meminfo(handle.read().decode("ascii", "replace"))
        except OSError as exc:
            raise FactUnknown(f"cannot read {path}: {exc.strerror}") from None

    return s.shared("meminfo", read)


def _meminfo_field(s, key: str) -> int:
    values = _meminfo(s)
    if key not in values:
        raise FactUnknown(f"/proc/meminfo has no {key}")
    return values[key]


def _cgroup_levels(s):
    from buildpolicy.facts import cgroup

    return s.shared("cgroup.memory", lambda: cgroup.memory_levels(s.ctx.root))


def _psutil_memory(s):
    def read():
        import psutil  # lazy: slow to import, and Linux never needs it

        return psutil.virtual_memory(), psutil.swap_memory()

    return s.shared("psutil.memory", read)


def probe_cgroup_memory_limit(s) -> int | None:
    """The ``cgroup.memory_limit`` fact: the tightest limit, or None when unlimited."""
    if not s.ctx.is_linux:
        raise FactUnknown("cgroups exist only on Linux")
    from buildpolicy.facts import cgroup

    limit = cgroup.memory_limit(_cgroup_levels(s))
    if limit is None:
        raise FactUnknown("no cgroup memory limit applies")
    return limit


def probe_memory_total(s) -> int:
    """The ``memory.total`` fact: physical memory, capped by the cgroup limit."""
    if not s.ctx.is_linux:
        return int(_psutil_memory(s)[0].total)
    from buildpolicy.facts import cgroup

    total = _meminfo_field(s, "MemTotal")
    limit = cgroup.memory_limit(_cgroup_levels(s))
    return total if limit is None else min(total, limit)


def probe_memory_available(s) -> int:
    """The ``memory.available`` fact: MemAvailable, capped by the cgroup headroom.

    On macOS psutil's ``available`` is free + inactive + speculative pages.
    """
    if not s.ctx.is_linux:
        return int(_psutil_memory(s)[0].available)
    from buildpolicy.facts import cgroup

    available = _meminfo_field(s, "MemAvailable")
    levels = _cgroup_levels(s)
    headroom = cgroup.memory_headroom(levels)
    if headroom is not None:
        available = min(available, headroom)
    limit = cgroup.memory_limit(levels)
    return available if limit is None else min(available, limit)


def probe_swap_total(s) -> int:
    """The ``swap.total`` fact in bytes."""
    if not s.ctx.is_linux:
        return int(_psutil_memory(s)[1].total)
    return _meminfo_field(s, "SwapTotal")


def probe_swap_free(s) -> int:
    """The ``swap.free`` fact in bytes."""
    if not s.ctx.is_linux:
        return int(_psutil_memory(s)[1].free)
    return _meminfo_field(s, "SwapFree")
