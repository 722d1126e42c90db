"""cgroup v1 and v2 limits of this process: memory limit, memory headroom, CPU quota.

Limits nest: a parent cgroup's limit binds its children, so every level from the
process's cgroup up to the mount root is read and the tightest limit wins.
All paths are read under ``root`` so tests can use fake trees.
"""

from __future__ import annotations

import math
from pathlib import Path

# v1 reports "no limit" as a huge number: the page-counter maximum rounded down to
# a page (9223372036854771712) or LONG_MAX; anything this large is unlimited.
V1_UNLIMITED = 1 << 62


def _read(path: Path) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


def own_cgroups(root: Path) -> dict[str, str]:
    """Map controller name to this process's cgroup path from ``/proc/self/cgroup``.

    The v2 (unified) entry is under the key ``""``; v1 entries are keyed by each
    controller (``memory``, ``cpu``…) and by their joined mount name (``cpu,cpuacct``).
    """
    text = _read(root / "proc/self/cgroup") or ""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _hier, controllers, path = parts
        path = path.removesuffix(" (deleted)")
        if controllers == "":
            paths[""] = path
            continue
        paths.setdefault(controllers, path)
        for controller in controllers.split(","):
            paths.setdefault(controller, path)
    return paths


def levels(mount: Path, cgroup_path: str) -> list[Path]:
    """Directories from the process's cgroup up to ``mount`` (inclusive), leaf first.

    Inside a container the host's cgroup path usually does not exist under the
    container's own mount; then only the mount root (the container's cgroup) is used.
    """
    relative = [part for part in cgroup_path.split("/") if part and part not in (".", "..")]
    leaf = mount.joinpath(*relative)
    if not leaf.is_dir():
        return [mount] if mount.is_dir() else []
    dirs = [leaf]
    while dirs[-1] != mount:
        dirs.append(dirs[-1].parent)
    return dirs


def _v2_mount(root: Path) -> Path:
    # Pure v2 mounts at /sys/fs/cgroup; hybrid systems mount it at .../unified.
    base = root / "sys/fs/cgroup"
    return base if (base / "cgroup.controllers").exists() else base / "unified"


def _v1_mount(root: Path, paths: dict[str, str], controller: str) -> tuple[Path, str] | None:
    base = root / "sys/fs/cgroup"
    joined = [key for key in paths if "," in key and controller in key.split(",")]
    for name in (controller, *joined):
        if controller in paths and (base / name).is_dir():
            return base / name, paths[controller]
    return None


def _hierarchies(root: Path, controller: str) -> list[tuple[str, list[Path]]]:
    """``(version, level dirs)`` for each hierarchy that may hold ``controller``'s files."""
    paths = own_cgroups(root)
    found = []
    if "" in paths:
        found.append(("v2", levels(_v2_mount(root), paths[""])))
    v1 = _v1_mount(root, paths, controller)
    if v1:
        found.append(("v1", levels(*v1)))
    return found


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


MEMORY_FILES = {  # limit, usage, and the memory.stat keys of file pages (inactive, active)
    "v2": ("memory.max", "memory.current", "inactive_file", "active_file"),
    "v1": ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file", "total_active_file"),
}


def memory_stat(directory: Path) -> dict[str, int]:
    """The ``memory.stat`` counters of a cgroup directory (empty when unreadable)."""
    values = {}
    for line in (_read(directory / "memory.stat") or "").splitlines():
        name, _, value = line.partition(" ")
        number = _int(value)
        if number is not None:
            values[name] = number
    return values


def limited_memory_dirs(root: Path) -> list[tuple[str, Path, int]]:
    """``(version, directory, limit)`` of every cgroup level with a memory limit, leaf first."""
    found = []
    for version, dirs in _hierarchies(root, "memory"):
        for directory in dirs:
            limit = _int(_read(directory / MEMORY_FILES[version][0]))  # "max" (v2 unlimited) parses as None
            if limit is not None and limit < V1_UNLIMITED:
                found.append((version, directory, limit))
    return found


def memory_usage(version: str, directory: Path) -> int | None:
    """The raw usage of a cgroup level (page cache included), or None when unreadable."""
    return _int(_read(directory / MEMORY_FILES[version][1]))


def memory_levels(root: Path) -> list[tuple[int, int | None]]:
    """``(limit, usage)`` of every cgroup level that has a memory limit, leaf first.

    ``usage`` is the working set (usage minus inactive page cache, which the kernel
    reclaims before it would OOM), or None when unreadable.
    """
    found = []
    for version, directory, limit in limited_memory_dirs(root):
        usage = memory_usage(version, directory)
        if usage is not None:
            usage = max(0, usage - memory_stat(directory).get(MEMORY_FILES[version][2], 0))
        found.append((limit, usage))
    return found


def memory_limit(found: list[tuple[int, int | None]]) -> int | None:
    """The tightest limit of ``memory_levels()``' result, or None when unlimited."""
    limits = [limit for limit, _usage in found]
    return min(limits) if limits else None


def memory_headroom(found: list[tuple[int, int | None]]) -> int | None:
    """How much more memory may be used before some level of ``memory_levels()`` is full, or None."""
    rooms = [max(0, limit - usage) for limit, usage in found if usage is not None]
    return min(rooms) if rooms else None


def cpu_quota(root: Path) -> int | None:
    """CPUs the tightest CFS quota allows (ceil(quota/period), at least 1), or None."""
    quotas = []
    for version, dirs in _hierarchies(root, "cpu"):
        for directory in dirs:
            if version == "v2":
                fields = (_read(directory / "cpu.max") or "").split()
                quota = _int(fields[0]) if fields else None  # "max" means no quota
                period = _int(fields[1]) if len(fields) > 1 else 100000
            else:
                quota = _int(_read(directory / "cpu.cfs_quota_us"))  # -1 means no quota
                period = _int(_read(directory / "cpu.cfs_period_us"))
            if quota is not None and quota > 0 and period:
                quotas.append(max(1, math.ceil(quota / period)))
    return min(quotas) if quotas else None
