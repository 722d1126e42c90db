"""Where buildpolicy reads and writes: XDG config, state and cache directories."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import attrs


PROFILE_FILE = "buildpolicy.toml"


@attrs.frozen
class Paths:
    """The directories of one run, derived from the caller's environment."""

    user_dir: Path
    site_dir: Path
    state_dir: Path
    cache_dir: Path

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Paths:
        """Resolve the XDG directories (DESIGN §2) from ``environ``."""
        home = Path(environ.get("HOME") or os.path.expanduser("~"))

        def xdg(var: str, default: str) -> Path:
            value = environ.get(var)
            # XDG says relative values are invalid and must be ignored.
            return Path(value) if value and os.path.isabs(value) else home / default

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
            from buildpolicy.memo import stat_token

            looked_at.append((str(candidate), stat_token(candidate)))
        if candidate.is_file():
            return candidate
        if os.path.lexists(candidate):
            # A dangling symlink or a directory of that name: not silently skipped
            # (walking on would apply some other project's policies).
            from buildpolicy.errors import BuildpolicyError

            what = "a directory" if candidate.is_dir() else "a broken symbolic link" if candidate.is_symlink() else "not a file"
            raise BuildpolicyError(f"{candidate}: the profile file is {what}")
    return None


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, durable: bool = False) -> None:
    """Write ``data`` to ``path`` atomically: a temp file in the same directory, then rename.

    Readers see the old or the new file, never half of one; concurrent writers
    each use their own temp name. (No tempfile module: it is slow to import.)
    ``mode`` is set explicitly, so the umask cannot narrow a shared file;
    ``durable`` also syncs the data to disk before the rename (user-edited files).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
