"""Where a cargo invocation builds: its workspace root and target directory.

``exec`` needs these from a plan (argv and environment) without running
cargo: the action log records the target directory, ``doctor``'s flag
fingerprints are keyed by it, and a remote build brings its artifacts back
into it. The manifest and cargo-configuration readers are the ones the facts
and ``doctor`` use, so all three agree with each other (and with cargo).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path


def _before_separator(argv: Sequence[str]) -> Sequence[str]:
    return argv[: list(argv).index("--")] if "--" in argv else argv


def _option(argv: Sequence[str], name: str) -> tuple[str | None, tuple[int, ...]]:
    for index, arg in enumerate(_before_separator(argv)):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1], (index, index + 1)
        if arg.startswith(name + "="):
            return arg.partition("=")[2], (index,)
    return None, ()


def target_dir_arg(argv: Sequence[str]) -> tuple[str | None, tuple[int, ...]]:
    """The ``--target-dir`` value of a cargo argv (before ``--``) and the indices it spans."""
    return _option(argv, "--target-dir")


def manifest_path_arg(argv: Sequence[str]) -> str | None:
    """The ``--manifest-path`` value of a cargo argv (before ``--``), or None."""
    return _option(argv, "--manifest-path")[0]


def workspace_root(start: Path) -> Path | None:
    """The cargo workspace root for a build started in ``start``, or None without a manifest.

    Cargo's own search (``[workspace]``, ``package.workspace``, an ancestor's
    ``exclude``), as the ``cargo.*`` facts resolve it.
    """
    from buildpolicy.facts.cargo_profiles import find_manifest, workspace_manifest
    from buildpolicy.facts.context import FactUnknown

    manifest = find_manifest(start)
    if manifest is None:
        return None
    try:
        root, _ = workspace_manifest(manifest)
    except FactUnknown:  # invalid TOML: cargo will say so; the nearest manifest will do
        root = manifest
    return Path(os.path.abspath(root.parent))


def target_dir(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> Path:
    """Where cargo puts its output, resolved as cargo does.

    ``--target-dir``, else ``CARGO_TARGET_DIR``, else ``CARGO_BUILD_TARGET_DIR``
    (relative to ``cwd``), else ``[build] target-dir`` of the cargo configuration
    (relative to the directory holding ``.cargo/``), else ``<workspace root>/target``.
    """
    from buildpolicy.facts.cargo_config import cargo_config_files, read_cargo_config

    cwd = Path(os.path.abspath(cwd))
    value, _ = target_dir_arg(argv)
    value = value or env.get("CARGO_TARGET_DIR") or env.get("CARGO_BUILD_TARGET_DIR")
    if value:
        return Path(os.path.normpath(cwd / value))
    values, _notes = read_cargo_config(cargo_config_files(cwd, env))
    configured = next((v for v in values if v.key == "build.target-dir"), None)
    if configured is not None and isinstance(configured.value, str):
        return Path(os.path.normpath(Path(configured.file).parent.parent / configured.value))
    manifest = manifest_path_arg(argv)
    start = (cwd / manifest).parent if manifest else cwd
    return (workspace_root(start) or start) / "target"
