"""The ``fs.tmp_is_memory`` probe: is /tmp on tmpfs or ramfs?"""

from __future__ import annotations

import os

from buildpolicy.facts.unknown import FactUnknown

MEMORY_FILESYSTEMS = ("tmpfs", "ramfs")


def _unescape(field: str) -> str:
    # /proc/self/mounts writes space, tab, newline and backslash as octal escapes.
    if "\\" not in field:
        return field
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def parse_mounts(text: str) -> list[tuple[str, str]]:
    """``(mount point, fstype)`` pairs of a /proc/self/mounts text, in mount order."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append((_unescape(fields[1]), fields[2]))
    return mounts


def filesystem_of(path: str, mounts: list[tuple[str, str]]) -> str | None:
    """The fstype of the mount containing ``path``: the longest matching mount point.

    A later mount over the same point hides the earlier one, as in the kernel.
    """
    best, best_type = "", None
    for point, fstype in mounts:
        point = point.rstrip("/") or "/"
        inside = path == point or path.startswith(point + "/") or point == "/"
        if inside and len(point) >= len(best):
            best, best_type = point, fstype
    return best_type


def probe_tmp_is_memory(s) -> bool:
    """The ``fs.tmp_is_memory`` fact from /proc/self/mounts (psutil off Linux)."""
    ctx = s.ctx
    real_root = str(ctx.root) == "/"
    # /tmp may be a symlink (macOS: /private/tmp); only follow it on the real machine.
    tmp = os.path.realpath("/tmp") if real_root else "/tmp"
    if ctx.is_linux:
        path = ctx.host_path("/proc/self/mounts")
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                mounts = parse_mounts(handle.read())
        except OSError as exc:
            raise FactUnknown(f"cannot read {path}: {exc.strerror}") from None
    else:
        import psutil  # lazy: slow to import

        mounts = [(part.mountpoint, part.fstype) for part in psutil.disk_partitions(all=True)]
    return filesystem_of(tmp, mounts) in MEMORY_FILESYSTEMS
