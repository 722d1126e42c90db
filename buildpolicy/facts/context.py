"""What a probe may look at: the caller's invocation, never this process's globals."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from buildpolicy.record import field, frozen
from buildpolicy.facts.ctxbase import ContextMethods
from buildpolicy.facts.unknown import FactUnknown

__all__ = ["FactUnknown", "ProbeContext", "default_cache_dir"]


def _snapshot(environ: Mapping[str, str]) -> Mapping[str, str]:
    # A read-only copy: a later change to os.environ (or the caller's dict) must not
    # change facts that were already probed from it.
    return MappingProxyType(dict(environ))


def _optional_argv(argv) -> tuple[str, ...] | None:
    return None if argv is None else tuple(argv)


def _optional_path(path) -> Path | None:
    return None if path is None else Path(path)


@frozen(kw_only=True)
class ProbeContext(ContextMethods):
    """Everything probes need to know about one invocation.

    ``environ`` is the caller's environment; probes never read ``os.environ``.
    ``root`` is the filesystem root for ``/proc``, ``/sys`` and ``/etc`` reads and
    ``platform`` overrides ``sys.platform``: tests point both at fake machines.
    ``allowed_root`` is the project directory when the user allowed the project
    (``buildpolicy allow``): files there, such as its rust-toolchain file, may then
    choose the binaries probes run. Fields are keyword-only; ``cwd``, ``environ``
    and ``cache_dir`` are required.
    """

    cwd: Path = field(converter=Path)
    environ: Mapping[str, str] = field(converter=_snapshot)
    cargo_argv: tuple[str, ...] | None = field(default=None, converter=_optional_argv)
    profile_flag: str | None = None
    default_profile: str = "dev"
    project_root: Path | None = field(default=None, converter=_optional_path)
    allowed_root: Path | None = field(default=None, converter=_optional_path)
    cache_dir: Path = field(converter=Path)
    root: Path = field(default=Path("/"), converter=Path)
    platform: str | None = None

    @classmethod
    def from_process(cls, **overrides) -> ProbeContext:
        """Build a context for this process: current directory, ``os.environ``, XDG cache dir.

        Keyword arguments replace any field (``cargo_argv=...``, ``profile_flag=...``).
        """
        environ = overrides.pop("environ", os.environ)
        fields = {"cwd": Path.cwd(), "environ": environ, "cache_dir": default_cache_dir(environ)}
        fields.update(overrides)
        return cls(**fields)

def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/buildpolicy`` (default ``~/.cache/buildpolicy``) for ``environ``."""
    xdg = environ.get("XDG_CACHE_HOME")
    # XDG says relative values are invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "buildpolicy"
    home = environ.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".cache" / "buildpolicy"
