"""Finding the rustc that really runs a compilation when sccache runs it.

With sccache in front, the wrapper's child is the sccache client; the rustc
doing the work is a child of the sccache server, which is not ours. It is
found by its command line: cargo gives every unit a unique ``-C metadata=``
hash, which sccache passes on unchanged. The server's other children are
looked at first (cheap); the whole process table only while the server is
not known yet.
"""

from __future__ import annotations

import os

# One reader of /proc children, the wrapper's (it scans parent pids where the kernel has no children files).
from buildpolicy.run.governor.wrapper import children_of


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(1 << 20)
    except OSError:
        return None


def _matches(pid: int, crate: str, metadata: str) -> bool:
    if _read(f"/proc/{pid}/comm") != b"rustc\n":  # not the wrapper, whose command line is the same
        return False
    try:
        if os.stat(f"/proc/{pid}").st_uid != os.getuid():
            return False  # another user's build (the governor preempts what it finds: never theirs)
    except OSError:
        return False
    args = (_read(f"/proc/{pid}/cmdline") or b"").split(b"\0")
    joined = b"\0" + b"\0".join(args) + b"\0"
    return (crate.encode() in args and (b"metadata=" + metadata.encode()) in joined)


def _parent(pid: int) -> int | None:
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rpartition(b")")[2].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


class ServerRustcFinder:
    """Finds the rustc processes sccache servers run for given units."""

    def __init__(self):
        self.servers: set[int] = set()

    def find(self, crate: str, metadata: str | None, exclude: set[int] = frozenset()) -> int | None:
        """The pid of the rustc compiling ``crate`` with ``-C metadata=<metadata>``, or None."""
        if not metadata:
            return None
        for server in list(self.servers):
            if not os.path.exists(f"/proc/{server}"):
                self.servers.discard(server)
                continue
            for child in children_of(server):
                if child not in exclude and _matches(child, crate, metadata):
                    return child
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) not in exclude and _matches(int(entry), crate, metadata):
                parent = _parent(int(entry))
                if parent:
                    self.servers.add(parent)
                return int(entry)
        return None
