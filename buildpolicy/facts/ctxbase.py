"""What a probe context can answer beyond its fields, shared by ``ProbeContext``
and the warm replay's lightweight context (``buildpolicy.replay``), which must not
import attrs."""

from __future__ import annotations

import os
import sys


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

    # Paths as strings (os.path), not pathlib: the warm replay must not import pathlib
    # (with fnmatch, re and urllib.parse it costs a prompt milliseconds).
    def host_path(self, absolute: str) -> str:
        """Map an absolute machine path (``/proc/meminfo``) under ``root``."""
        return os.path.join(self.root, absolute.lstrip("/"))

    def home(self) -> str | None:
        """The caller's home directory from ``HOME``, or None when unset."""
        return self.environ.get("HOME") or self.environ.get("USERPROFILE") or None
