"""Flag fingerprints: the flag-affecting variables of each local cargo build,
kept per (profile, target directory) in ``$XDG_STATE_HOME/buildpolicy/fingerprints/``.

``exec`` records them before a build runs; ``doctor``'s ``flags-changed``
check compares the next build's flags with the last ones, because a changed
flag makes cargo rebuild everything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from buildpolicy.facts.cargo_config import cargo_config_files, first_value, read_cargo_config

FINGERPRINT_VERSION = 1


def target_dir_for(result, cwd: Path | None = None) -> Path:
    """The target directory a cargo command of ``result`` builds into, as cargo resolves it.

    ``--target-dir`` in the cargo argv, else ``CARGO_TARGET_DIR``, else
    ``CARGO_BUILD_TARGET_DIR``, else ``[build] target-dir`` of the cargo
    configuration (relative to the directory holding ``.cargo/``), else
    ``target/`` beside the workspace root's ``Cargo.toml``.
    """
    from buildpolicy.facts.cargo_profiles import find_manifest, workspace_manifest

    cwd = Path(os.path.abspath(cwd or result.facts.ctx.cwd))
    argv = list(result.cargo_args or ())
    if "--" in argv:
        argv = argv[: argv.index("--")]
    for index, arg in enumerate(argv):
        if arg == "--target-dir" and index + 1 < len(argv):
            return Path(os.path.abspath(cwd / argv[index + 1]))
        if arg.startswith("--target-dir="):
            return Path(os.path.abspath(cwd / arg.split("=", 1)[1]))
    env = result.exec_env()
    for var in ("CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"):
        if env.get(var):
            return Path(os.path.abspath(cwd / env[var]))
    values, _ = read_cargo_config(cargo_config_files(cwd, env))
    configured = first_value(values, "build.target-dir")
    if configured is not None and isinstance(configured.value, str):
        return Path(os.path.abspath(Path(configured.file).parent.parent / configured.value))
    manifest = find_manifest(cwd)
    if manifest is None:
        return cwd / "target"
    try:
        root, _ = workspace_manifest(manifest)
    except Exception:  # noqa: BLE001 - an unreadable manifest: cargo will say so; use the nearest one
        root = manifest
    return root.parent / "target"


def _is_flag_variable(name: str, profile_env: str | None) -> bool:
    """Variables whose change makes cargo rebuild: rustflags, toolchain, compiler, the profile's settings."""
    if name in ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "RUSTDOCFLAGS",
                "CARGO_ENCODED_RUSTDOCFLAGS", "CARGO_BUILD_RUSTDOCFLAGS", "RUSTUP_TOOLCHAIN", "RUSTC",
                "CARGO_BUILD_RUSTC", "RUSTC_BOOTSTRAP", "CARGO_INCREMENTAL", "CARGO_BUILD_INCREMENTAL"):
        return True
    if name.startswith("CARGO_TARGET_") and name.endswith(("_RUSTFLAGS", "_LINKER", "_RUSTDOCFLAGS")):
        return True
    return bool(profile_env) and name.startswith(f"CARGO_PROFILE_{profile_env}_")


def build_flags(result) -> dict[str, str]:
    """The flag-affecting variables of the environment ``result`` gives a build, by name."""
    profile_env = result.facts.get("cargo.profile_env")
    return {name: value for name, value in sorted(result.exec_env().items()) if _is_flag_variable(name, profile_env)}


def fingerprint_path(state_dir: Path, profile: str, target_dir: Path | str) -> Path:
    """The flag-fingerprint file of (profile, target directory)."""
    import hashlib

    key = hashlib.sha256(f"{profile}\0{os.path.abspath(target_dir)}".encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return state_dir / "fingerprints" / f"{key}.json"


def record_build_flags(result, target_dir: Path | str | None = None) -> Path | None:
    """Record the flags of a build about to run, for ``doctor``'s ``flags-changed`` check.

    Call it from ``exec`` for a cargo command that builds (after evaluating,
    before running): ``record_build_flags(result)`` works out the target
    directory itself (:func:`target_dir_for`). Returns the file written, or
    None when it could not be written (never fatal: the state dir is a cache).
    """
    import time

    from buildpolicy.filestate import write_state

    target = Path(target_dir) if target_dir is not None else target_dir_for(result)
    path = fingerprint_path(result.paths.state_dir, result.profile, target)
    record = {
        "version": FINGERPRINT_VERSION,
        "profile": result.profile,
        "target_dir": os.path.abspath(target),
        "flags": build_flags(result),
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        write_state(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    except OSError:
        return None
    return path


def last_build_flags(state_dir: Path, profile: str, target_dir: Path | str) -> dict[str, str] | None:
    """The flags recorded for (profile, target dir), or None (no record, or an unreadable one)."""
    from buildpolicy.filestate import load_state_json

    data = load_state_json(fingerprint_path(state_dir, profile, target_dir))  # None: missing, unsafe or corrupt
    flags = data.get("flags") if isinstance(data, dict) and data.get("version") == FINGERPRINT_VERSION else None
    if not isinstance(flags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in flags.items()):
        return None
    return flags
