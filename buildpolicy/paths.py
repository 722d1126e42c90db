"""Where buildpolicy reads and writes: XDG config, state and cache directories, and the profile file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from buildpolicy.record import frozen
from buildpolicy.errors import BuildpolicyError
from buildpolicy.filestate import stat_token, xdg_dir

PROFILE_FILE = "buildpolicy.toml"


@frozen
class Paths:
    """The directories of one run, derived from the caller's environment."""

    user_dir: Path
    site_dir: Path
    state_dir: Path
    cache_dir: Path

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Paths:
        """Resolve the XDG directories (DESIGN §2) from ``environ``."""
        def xdg(var: str, default: str) -> Path:
            return Path(xdg_dir(environ, var, default))

        return cls(
            user_dir=xdg("XDG_CONFIG_HOME", ".config") / "buildpolicy",
            site_dir=Path(environ.get("BUILDPOLICY_SITE_DIR") or "/etc/buildpolicy"),
            state_dir=xdg("XDG_STATE_HOME", ".local/state") / "buildpolicy",
            cache_dir=xdg("XDG_CACHE_HOME", ".cache") / "buildpolicy",
        )


def find_profile(cwd: Path, looked_at: list[tuple[str, str]] | None = None) -> Path | None:
    """Return the nearest ``buildpolicy.toml`` walking up from ``cwd``, or None.

    ``looked_at``, when given, receives ``(path, stat token)`` of every candidate,
    stat'ed before it is looked at: one created later would change the answer.
    """
    current = cwd.resolve()
    for directory in (current, *current.parents):
        candidate = directory / PROFILE_FILE
        if looked_at is not None:
            looked_at.append((str(candidate), stat_token(candidate)))
        if candidate.is_file():
            return candidate
        if os.path.lexists(candidate):
            # A dangling symlink or a directory of that name: not silently skipped
            # (walking on would apply some other project's policies).
            if candidate.is_dir():
                what = "a directory"
            elif candidate.is_symlink() and not candidate.exists():
                what = "a broken symbolic link"
            else:
                what = "not a regular file"
            raise BuildpolicyError(f"{candidate}: the profile file is {what}")
    return None


def find_cargo_manifest(cwd: Path, looked_at: list[tuple[str, str]] | None = None) -> Path | None:
    """Return the nearest ``Cargo.toml`` walking up from ``cwd``, or None (a regular file only).

    ``looked_at`` receives every candidate's stat token, as in :func:`find_profile`:
    a manifest created or removed later changes whether a directory is a project.
    """
    current = cwd.resolve()
    for directory in (current, *current.parents):
        candidate = directory / "Cargo.toml"
        if looked_at is not None:
            looked_at.append((str(candidate), stat_token(candidate)))
        if candidate.is_file():
            return candidate
    return None
