"""cgroup v1 and v2 limits of this process: memory limit, memory headroom, CPU quota.

Limits nest: a parent cgroup's limit binds its children, so every level from the
process's cgroup up to the mount root is read and the tightest limit wins.
All paths are read under ``root`` so tests can use fake trees. Paths are strings
(``os.path``): the warm replay re-runs these probes and must not import pathlib.
"""

from __future__ import annotations

import os

# v1 reports "no limit" as a huge number: the page-counter maximum rounded down to
# a page (9223372036854771712) or LONG_MAX; anything this large is unlimited.
V1_UNLIMITED = 1 << 62


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:  # bytes.decode("ascii"): no codec module to import
            return handle.read().decode("ascii", "replace").strip()
    except OSError:
        return None


def own_cgroups(root: str | os.PathLike) -> dict[str, str]:
    """Map controller name to this process's cgroup path from ``/proc/self/cgroup``.

    The v2 (unified) entry is under the key ``""``; v1 entries are keyed by each
    controller (``memory``, ``cpu``…) and by their joined mount name (``cpu,cpuacct``).
    """
    text = _read(os.path.join(root, "proc/self/cgroup")) or ""
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


def levels(mount: str | os.PathLike, cgroup_path: str) -> list[str]:
    """Directories from the process's cgroup up to ``mount`` (inclusive), leaf first.

    Inside a container the host's cgroup path usually does not exist under the
    container's own mount; then only the mount root (the container's cgroup) is used.
    """
    mount = os.fspath(mount).rstrip("/") or "/"
    relative = [part for part in cgroup_path.split("/") if part and part not in (".", "..")]
    dirs = [mount]
    for part in relative:
        dirs.append(os.path.join(dirs[-1], part))
    if not os.path.isdir(dirs[-1]):
        return [mount] if os.path.isdir(mount) else []
    return dirs[::-1]


def _v2_mount(root) -> str:
    # Pure v2 mounts at /sys/fs/cgroup; hybrid systems mount it at .../unified.
    base = os.path.join(root, "sys/fs/cgroup")
    return base if os.path.exists(os.path.join(base, "cgroup.controllers")) else os.path.join(base, "unified")


def _v1_mount(root, paths: dict[str, str], controller: str) -> tuple[str, str] | None:
    base = os.path.join(root, "sys/fs/cgroup")
    joined = [key for key in paths if "," in key and controller in key.split(",")]
    for name in (controller, *joined):
        if controller in paths and os.path.isdir(os.path.join(base, name)):
            return os.path.join(base, name), paths[controller]
    return None


def _hierarchies(root, controller: str) -> list[tuple[str, list[str]]]:
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


def memory_stat(directory: str | os.PathLike) -> dict[str, int]:
    """The ``memory.stat`` counters of a cgroup directory (empty when unreadable)."""
    values = {}
    for line in (_read(os.path.join(directory, "memory.stat")) or "").splitlines():
        name, _, value = line.partition(" ")
        number = _int(value)
        if number is not None:
            values[name] = number
    return values


def limited_memory_dirs(root: str | os.PathLike) -> list[tuple[str, str, int]]:
    """``(version, directory, limit)`` of every cgroup level with a memory limit, leaf first."""
    found = []
    for version, dirs in _hierarchies(root, "memory"):
        for directory in dirs:
            limit = _int(_read(os.path.join(directory, MEMORY_FILES[version][0])))  # "max" (v2 unlimited) parses as None
            if limit is not None and limit < V1_UNLIMITED:
                found.append((version, directory, limit))
    return found


def memory_usage(version: str, directory: str | os.PathLike) -> int | None:
    """The raw usage of a cgroup level (page cache included), or None when unreadable."""
    return _int(_read(os.path.join(directory, MEMORY_FILES[version][1])))


def memory_levels(root: str | os.PathLike) -> list[tuple[int, int | None]]:
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


def cpu_quota(root: str | os.PathLike) -> int | None:
    """CPUs the tightest CFS quota allows (ceil(quota/period), at least 1), or None."""
    quotas = []
    for version, dirs in _hierarchies(root, "cpu"):
        for directory in dirs:
            if version == "v2":
                fields = (_read(os.path.join(directory, "cpu.max")) or "").split()
                quota = _int(fields[0]) if fields else None  # "max" means no quota
                period = _int(fields[1]) if len(fields) > 1 else 100000
            else:
                quota = _int(_read(os.path.join(directory, "cpu.cfs_quota_us")))  # -1 means no quota
                period = _int(_read(os.path.join(directory, "cpu.cfs_period_us")))
            if quota is not None and quota > 0 and period:
                quotas.append(max(1, -(-quota // period)))  # ceil(quota / period)
    return min(quotas) if quotas else None
