"""Probes of the machine's identity and CPUs: os, arch, host.triple, cpu.count."""

from __future__ import annotations

import os

from buildpolicy.facts.unknown import FactUnknown

_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "i386": "x86", "i686": "x86"}

# Rust's spelling of the architecture in a target triple, where it differs.
_TRIPLE_ARCH = {"x86": "i686", "armv7l": "armv7", "armv6l": "arm", "riscv64": "riscv64gc", "ppc64le": "powerpc64le"}


def os_name(platform: str) -> str:
    """Map a ``sys.platform`` value to the ``os`` fact: linux, macos, windows, freebsd…"""
    if platform.startswith("linux"):
        return "linux"
    if platform == "darwin":
        return "macos"
    if platform in ("win32", "cygwin", "msys"):
        return "windows"
    # freebsd14 → freebsd, openbsd7 → openbsd
    return platform.rstrip("0123456789") or platform


def normalise_arch(machine: str) -> str:
    """``amd64`` → ``x86_64``, ``arm64`` → ``aarch64``; others lower-cased as they are."""
    machine = machine.strip().lower()
    return _ARCH_ALIASES.get(machine, machine)


def machine() -> str:
    """This machine's hardware name (``uname -m``)."""
    if hasattr(os, "uname"):
        return os.uname().machine
    import platform  # slow to import; only Windows gets here

    return platform.machine()


def libc() -> str:
    """``gnu`` when this Python runs on glibc, else ``musl`` (Linux only)."""
    try:
        return "gnu" if os.confstr("CS_GNU_LIBC_VERSION") else "musl"
    except (AttributeError, ValueError, OSError):
        return "musl"


def host_triple(os_: str, arch: str, linux_libc: str = "gnu") -> str | None:
    """The Rust host triple for ``os_`` and ``arch``, or None for an unknown OS."""
    rust_arch = _TRIPLE_ARCH.get(arch, arch)
    if os_ == "linux":
        if rust_arch.startswith("arm"):
            return f"{rust_arch}-unknown-linux-{linux_libc}eabihf"
        return f"{rust_arch}-unknown-linux-{linux_libc}"
    if os_ == "macos":
        return f"{rust_arch}-apple-darwin"
    if os_ == "windows":
        return f"{rust_arch}-pc-windows-msvc"
    if os_ in ("freebsd", "netbsd", "openbsd"):
        return f"{rust_arch}-unknown-{os_}"
    return None


def machine_triple(ctx) -> str | None:
    """The host triple of the machine probed by ``ctx`` (no overrides, no rustc)."""
    os_ = os_name(ctx.sys_platform)
    return host_triple(os_, normalise_arch(machine()), libc() if os_ == "linux" and not ctx.platform else "gnu")


def probe_os(s) -> str:
    """The ``os`` fact from ``sys.platform`` (or the context's override)."""
    return os_name(s.ctx.sys_platform)


def probe_arch(s) -> str:
    """The ``arch`` fact, normalised (``amd64`` → ``x86_64``)."""
    return normalise_arch(machine())


def probe_host_triple(s) -> str:
    """The ``host.triple`` fact, derived without running rustc (it is on the hot path)."""
    os_, arch = s.fact("os"), s.fact("arch")
    if os_ is None or arch is None:
        raise FactUnknown("os or arch is unknown")
    triple = host_triple(os_, arch, libc() if os_ == "linux" and not s.ctx.platform else "gnu")
    if triple is None:
        raise FactUnknown(f"no known Rust host triple for os {os_!r}")
    return triple


def affinity_count() -> int | None:
    """CPUs this process may run on (affinity mask), or the CPU count where unsupported."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def probe_cpu_count(s) -> int:
    """The ``cpu.count`` fact: affinity, capped by the cgroup CPU quota on Linux."""
    count = affinity_count()
    if count is None:
        raise FactUnknown("the CPU count is not available")
    if s.ctx.is_linux:
        from buildpolicy.facts import cgroup

        quota = s.shared("cgroup.cpu", lambda: cgroup.cpu_quota(s.ctx.root))
        if quota is not None:
            count = min(count, quota)
    return max(1, count)
