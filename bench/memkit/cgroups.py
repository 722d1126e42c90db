"""Real memory cgroups (v1 and v2) for tests and benchmarks that need a memory limit to bind.

A ``MemoryCgroup`` is a new child of the memory cgroup this process is in, read from
/proc/self/cgroup and /proc/self/mountinfo. Only cgroups made here are ever written to or
removed: the process's own cgroup is read, never changed, and this process never moves.

Starting a process inside: ``wrap(argv)`` prefixes a tiny ``sh`` launcher that writes its
own pid into the cgroup's ``cgroup.procs`` and then ``exec``s the command, so the command
and everything it forks are inside from their first instruction. That is robust where the
alternatives are not: ``preexec_fn`` may deadlock in a process with threads (pytest
plugins, the governor's own loop), ``CLONE_INTO_CGROUP`` exists only on v2, and moving a
pid after it started races with its first forks. If the write fails the launcher exits 125
with the shell's message and the command never runs outside the limit.

Choice of hierarchy: v1's memory controller when this process has one (then a cgroup2
mount, if any, has no memory controller: a controller is bound to one hierarchy), else v2.
On v2 the children of a cgroup get the memory controller only through its
``cgroup.subtree_control``, which the kernel forbids for a non-root cgroup that holds
processes; this module does not move this process to make room, so on v2 it works only
where this process's cgroup already delegates memory (the root cgroup of a VM, say), and
``skip_reason()`` says so otherwise.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import signal
import subprocess
import time
import warnings
from pathlib import Path

# The launcher of ``wrap``: $1 is the cgroup directory, the rest the command.
_LAUNCHER = 'echo $$ > "$1/cgroup.procs" || exit 125; shift; exec "$@"'
_PREFIX = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")


class CgroupError(Exception):
    """No memory cgroup can be made or used here; the message says why."""


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def locate(proc_cgroup: str, mountinfo: str) -> tuple[int, Path]:
    """``(version, directory)`` of the memory cgroup that ``proc_cgroup`` places a process in.

    ``proc_cgroup`` and ``mountinfo`` are the texts of /proc/<pid>/cgroup and
    /proc/<pid>/mountinfo. Prefers v1's memory hierarchy; raises CgroupError saying why
    when no mounted hierarchy holds the process's memory cgroup. Does not check that the
    v2 memory controller is enabled (that needs the files: see ``MemoryCgroup.create``).
    """
    v1_path = v2_path = None
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if "memory" in controllers.split(","):
            v1_path = path
        elif hierarchy == "0" and controllers == "":
            v2_path = path
    mounts = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        fstype, options = fields[separator + 1], fields[separator + 3].split(",")
        mounts.append((fstype, options, _unescape(fields[3]), Path(_unescape(fields[4]))))
    if v1_path is not None:
        candidates = [(root, point) for fstype, options, root, point in mounts
                      if fstype == "cgroup" and "memory" in options]
        version, wanted, what = 1, v1_path, "cgroup v1 memory hierarchy"
    elif v2_path is not None:
        candidates = [(root, point) for fstype, _, root, point in mounts if fstype == "cgroup2"]
        version, wanted, what = 2, v2_path, "cgroup2 hierarchy"
    else:
        raise CgroupError("this process is in no memory cgroup (/proc/self/cgroup lists neither a v1 "
                          "memory hierarchy nor cgroup2): the kernel has no memory cgroups")
    for root, point in candidates:
        # A mount shows its hierarchy from ``root`` down (containers mount their own subtree).
        if root == "/":
            return version, point / wanted.lstrip("/")
        if wanted == root or wanted.startswith(root.rstrip("/") + "/"):
            return version, point / wanted[len(root):].lstrip("/")
    raise CgroupError(f"this process's {what} ({wanted}) is not mounted where it can be reached "
                      f"(no cgroup mount in /proc/self/mountinfo shows it)")


def own_cgroup() -> tuple[int, Path]:
    """``(version, directory)`` of the memory cgroup this process is in, checked against its files."""
    try:
        version, path = locate(Path("/proc/self/cgroup").read_text(), Path("/proc/self/mountinfo").read_text())
    except OSError as error:
        raise CgroupError(f"cannot read this process's cgroups: {error}") from error
    if not (path / "cgroup.procs").is_file():
        raise CgroupError(f"{path}: not a cgroup directory (no cgroup.procs)")
    return version, path


def _read(path: Path) -> str:
    return path.read_text()


def _write(path: Path, value: str) -> None:
    with open(path, "w") as file:
        file.write(value)


def _pids_of(cgroup: Path) -> list[int]:
    return [int(pid) for pid in _read(cgroup / "cgroup.procs").split()]


def _is_descendant(pid: int, ancestor: int) -> bool:
    """Whether ``pid`` is a (grand)child of ``ancestor``, by /proc's parent links."""
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rpartition(")")[2].split()[1])  # after the comm, which may hold spaces
        if pid == ancestor:
            return True
    return False


def v2_memory_problem(cgroup: Path) -> str | None:
    """Why children of the cgroup2 directory ``cgroup`` cannot get a memory limit, or None if they can."""
    controllers = _read(cgroup / "cgroup.controllers").split()
    if "memory" not in controllers:
        return (f"cgroup v2: the memory controller is not available in {cgroup} "
                f"(cgroup.controllers: {' '.join(controllers) or 'none'}): it is disabled, "
                "or bound to a cgroup v1 hierarchy that this process is not in")
    if "memory" not in _read(cgroup / "cgroup.subtree_control").split():
        return (f"cgroup v2: {cgroup} does not give its children the memory controller "
                "(memory is not in its cgroup.subtree_control), and the kernel forbids "
                "enabling it there while it holds processes, this one included; run the "
                "tests from a cgroup whose children get memory (the root cgroup, or a "
                "delegated one where they run in a leaf)")
    return None


def _kill_all(cgroup: Path, version: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    kill_file = cgroup / "cgroup.kill"
    while True:
        pids = _pids_of(cgroup)
        if not pids:
            return
        if time.monotonic() > deadline:
            raise CgroupError(f"{cgroup}: processes {pids[:10]} still alive after SIGKILL for {timeout:.0f} s")
        if kill_file.exists():  # v2, Linux 5.14+: the kernel kills all, forks included
            _write(kill_file, "1")
        else:
            # Killing one by one races with forks: loop until the cgroup stays empty.
            for pid in pids:
                _kill_member(cgroup, version, pid)
        time.sleep(0.02)


def _kill_member(cgroup: Path, version: int, pid: int) -> None:
    # Through a pidfd, after checking the pid is still in ``cgroup``: a recycled pid is never hit.
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # gone already
        return
    try:
        if str(cgroup).endswith(_cgroup_of(pid, version)):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(pidfd)


def _cgroup_of(pid: int, version: int) -> str:
    """The cgroup path of ``pid`` in the memory hierarchy of ``version``, as /proc/<pid>/cgroup shows it."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if (version == 1 and "memory" in controllers.split(",")) or (
                version == 2 and hierarchy == "0" and controllers == ""):
            return path
    return "\0"  # never a suffix of a path


class MemoryCgroup:
    """A child memory cgroup with a hard limit; a context manager that kills and removes it on exit.

    Create with ``MemoryCgroup.create(limit_bytes)``. ``version`` is 1 or 2, ``path`` the
    cgroup's directory, ``limit_bytes`` the limit set (swap included: nothing escapes it).
    """

    def __init__(self, version: int, path: Path, limit_bytes: int):
        self.version = version
        self.path = path
        self.limit_bytes = limit_bytes
        self.closed = False

    @classmethod
    def create(cls, limit_bytes: int, name_prefix: str = "bp-test") -> MemoryCgroup:
        """Make a new cgroup under this process's own memory cgroup, limited to ``limit_bytes``.

        Raises CgroupError (with the reason) when the machine cannot give one.
        """
        if not _PREFIX.match(name_prefix):
            raise ValueError(f"name_prefix {name_prefix!r}: letters, digits, '_', '.', '-' only")
        version, parent = own_cgroup()
        problem = v2_memory_problem(parent) if version == 2 else None
        if problem:
            raise CgroupError(problem)
        path = parent / f"{name_prefix}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            path.mkdir()
        except OSError as error:
            raise CgroupError(f"cannot create a cgroup under {parent}: {error}") from error
        cgroup = cls(version, path, int(limit_bytes))
        try:
            cgroup._set_limit()
        except OSError as error:
            cgroup.close()
            raise CgroupError(f"cannot set the memory limit of {path}: {error}") from error
        return cgroup

    def _set_limit(self) -> None:
        if self.version == 1:
            _write(self.path / "memory.limit_in_bytes", str(self.limit_bytes))
            # memory+swap must be >= memory, so it is set second; absent without swap accounting.
            memsw = self.path / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                _write(memsw, str(self.limit_bytes))
        else:
            _write(self.path / "memory.max", str(self.limit_bytes))
            swap = self.path / "memory.swap.max"
            if swap.exists():
                _write(swap, "0")

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` prefixed with the launcher that runs it inside this cgroup (see the module docstring)."""
        return ["/bin/sh", "-c", _LAUNCHER, "memkit-cgroup-launch", str(self.path), *argv]

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        """``subprocess.Popen`` of ``argv`` inside this cgroup; ``kwargs`` as for Popen."""
        return subprocess.Popen(self.wrap(argv), **kwargs)

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        """``subprocess.run`` of ``argv`` inside this cgroup; ``kwargs`` as for run."""
        return subprocess.run(self.wrap(argv), **kwargs)

    def adopt(self, pid: int) -> None:
        """Move ``pid``, a child (or grandchild) of this process, into this cgroup.

        For a process that must start outside; prefer ``wrap``. Refuses this process and
        anything that is not its descendant, so a test can never move pytest itself or a
        stranger. Its memory so far stays charged where it was; children it already forked
        stay where they are.
        """
        if pid == os.getpid() or not _is_descendant(pid, os.getpid()):
            raise ValueError(f"pid {pid} is not a child of this process ({os.getpid()}): not moving it")
        _write(self.path / "cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        """The processes in this cgroup now."""
        return _pids_of(self.path)

    def usage(self) -> int:
        """Bytes charged to this cgroup now."""
        return int(_read(self.path / ("memory.usage_in_bytes" if self.version == 1 else "memory.current")))

    def max_usage(self) -> int | None:
        """The most bytes ever charged to this cgroup, or None where the kernel does not record it (v2 < 5.19)."""
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            return int(_read(self.path / name))
        except FileNotFoundError:
            return None

    def oom_kills(self) -> int:
        """How many processes the OOM killer has killed in this cgroup."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        for line in _read(self.path / name).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        raise CgroupError(f"{self.path / name} has no oom_kill counter (kernel older than 4.13)")

    def kill_all(self, timeout: float = 10.0) -> None:
        """SIGKILL every process in this cgroup until none is left; CgroupError after ``timeout`` seconds."""
        _kill_all(self.path, self.version, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Kill every process left in the cgroup and remove it; CgroupError if that takes over ``timeout`` s."""
        if self.closed:
            return
        deadline = time.monotonic() + timeout
        # Cgroups that the code under test made inside this one go first, deepest first:
        # a cgroup with children cannot be removed, and v1 lists only direct members.
        nested = [Path(top) for top, _, _ in os.walk(self.path, topdown=False)]
        for cgroup in nested:
            if not cgroup.exists():
                continue
            _kill_all(cgroup, self.version, max(0.0, deadline - time.monotonic()))
            while True:
                try:
                    cgroup.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as error:  # EBUSY while the last exits are being accounted
                    if time.monotonic() > deadline:
                        raise CgroupError(f"cannot remove {cgroup}: {error}") from error
                    time.sleep(0.02)
        self.closed = True

    def __enter__(self) -> MemoryCgroup:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        try:
            self.close()
        except CgroupError as failure:
            if error is None:
                raise
            # Do not hide the exception that ended the block behind a cleanup failure.
            warnings.warn(str(failure), RuntimeWarning, stacklevel=2)


@functools.cache
def skip_reason() -> str | None:
    """Why no memory cgroup can be used on this machine, or None when one can.

    Decided by really creating a small cgroup, reading its OOM counter and removing it,
    once per process.
    """
    try:
        with MemoryCgroup.create(64 * 2**20, name_prefix="bp-probe") as cgroup:
            cgroup.oom_kills()
    except (CgroupError, OSError) as error:
        return str(error)
    return None
