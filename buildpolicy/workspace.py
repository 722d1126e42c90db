"""Where a cargo invocation builds: its workspace root and target directory.

``exec`` needs these without running cargo (``cargo locate-project`` costs a
process, and on a remote build the local cargo is not the one that builds):
the action log records the target directory, and a remote build brings its
artifacts back into it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

MANIFEST = "Cargo.toml"


def _read_manifest(path: Path) -> dict:
    import tomllib

    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, ValueError):
        return {}


def package_dir(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` holding a ``Cargo.toml``."""
    for directory in (start, *start.parents):
        if (directory / MANIFEST).is_file():
            return directory
    return None


def workspace_root(start: Path) -> Path | None:
    """The cargo workspace root for a build started in ``start``, or None without a manifest.

    Follows cargo's search as far as a build needs it: a manifest with a
    ``[workspace]`` table is its own root; ``package.workspace`` names the root
    explicitly; otherwise the nearest ancestor manifest with ``[workspace]`` is
    the root, else the package stands alone. (Cargo also checks ``members`` and
    ``exclude``; a package listed in an ancestor's ``exclude`` is rare enough
    that this does not parse globs for it.)
    """
    package = package_dir(start)
    if package is None:
        return None
    manifest = _read_manifest(package / MANIFEST)
    if "workspace" in manifest:
        return package
    explicit = manifest.get("package", {}).get("workspace") if isinstance(manifest.get("package"), dict) else None
    if isinstance(explicit, str):
        return (package / explicit).resolve()
    for directory in package.parents:
        candidate = directory / MANIFEST
        if candidate.is_file() and "workspace" in _read_manifest(candidate):
            return directory
    return package


def target_dir_arg(argv: Sequence[str]) -> tuple[str | None, tuple[int, ...]]:
    """The ``--target-dir`` value of a cargo argv (before ``--``) and the indices it spans."""
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--target-dir" and index + 1 < len(argv):
            return argv[index + 1], (index, index + 1)
        if arg.startswith("--target-dir="):
            return arg.partition("=")[2], (index,)
    return None, ()


def target_dir(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> Path:
    """Where cargo puts its output: ``--target-dir``, ``CARGO_TARGET_DIR``,
    ``CARGO_BUILD_TARGET_DIR``, else ``<workspace root>/target``.

    Relative values are relative to ``cwd``, as cargo takes them. A
    ``build.target-dir`` in ``.cargo/config.toml`` is not read.
    """
    value, _ = target_dir_arg(argv)
    value = value or env.get("CARGO_TARGET_DIR") or env.get("CARGO_BUILD_TARGET_DIR")
    if value:
        return Path(os.path.normpath(cwd / value))
    manifest = manifest_path_arg(argv)
    start = (cwd / manifest).parent if manifest else cwd
    return (workspace_root(start) or start) / "target"


def manifest_path_arg(argv: Sequence[str]) -> str | None:
    """The ``--manifest-path`` value of a cargo argv (before ``--``), or None."""
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--manifest-path" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--manifest-path="):
            return arg.partition("=")[2]
    return None
