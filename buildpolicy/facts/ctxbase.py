"""What a probe context can answer beyond its fields, shared by ``ProbeContext``
and the warm replay's lightweight context (``buildpolicy.replay``), which must not
import attrs."""

from __future__ import annotations

import sys
from pathlib import Path


class ContextMethods:
    """Methods over the fields ``environ``, ``root`` and ``platform``."""

    __slots__ = ()

    @property
    def sys_platform(self) -> str:
        """``sys.platform``, or the override given for tests."""
        return self.platform or sys.platform

    @property
    def is_linux(self) -> bool:
        """True when probing a Linux machine (``/proc`` and ``/sys`` are readable)."""
        return self.sys_platform.startswith("linux")

    def host_path(self, absolute: str) -> Path:
        """Map an absolute machine path (``/proc/meminfo``) under ``root``."""
        return self.root / absolute.lstrip("/")

    def home(self) -> Path | None:
        """The caller's home directory from ``HOME``, or None when unset."""
        home = self.environ.get("HOME") or self.environ.get("USERPROFILE")
        return Path(home) if home else None
