"""Cache-key hygiene for a shared backend (DESIGN §12).

sccache hashes every ``CARGO_*`` variable its client sees (except
``CARGO_MAKEFLAGS``). Some of those are cargo's *own* settings, consumed by
cargo before rustc runs, that differ from machine to machine: ``CARGO_HOME``
(rustup sets it for every proxied command, and it is per user),
``CARGO_BUILD_JOBS`` (the job count buildpolicy decides from this machine's
memory), ``CARGO_TARGET_DIR``/``CARGO_BUILD_TARGET_DIR``/``CARGO_BUILD_BUILD_DIR``
and the linker variable. With a shared backend, ``RUSTC_WRAPPER`` is a
two-line script that removes exactly those before it ``exec``\\ s sccache: cargo
has already used them, rustc never reads them, and the job count stays in
force (cargo spawns the jobs). The script lives under the cache dir, named by
a hash of its content, and is rewritten when missing or changed.

``machine_inputs`` lists, for ``doctor``, every input of sccache's key that
would still differ between two machines.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# cargo's own settings: used by cargo, never read by rustc, differ per machine.
STRIPPED = ("CARGO_HOME", "CARGO_BUILD_JOBS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR", "CARGO_BUILD_BUILD_DIR")


def stripped_variables(triple: str | None) -> tuple[str, ...]:
    """The variables the wrapper removes (with the target's linker variable when the triple is known)."""
    if not triple:
        return STRIPPED
    return (*STRIPPED, f"CARGO_TARGET_{triple.upper().replace('-', '_').replace('.', '_')}_LINKER")


@dataclass(frozen=True)
class Fallback:
    """Where the wrapper sends a compilation once the backend is recorded down: while
    ``marker`` exists, without the backend's ``variables``, to the local server on ``socket``."""

    marker: str
    socket: str | None
    variables: tuple[str, ...]


def wrapper_text(sccache: str, triple: str | None, secrets: tuple[tuple[str, str], ...] = (),
                 fallback: Fallback | None = None) -> str:
    """The wrapper script for ``sccache``.

    ``secrets`` are ``(variable, reference)`` pairs: the script resolves each
    reference when it runs (``env:VAR`` from the build's environment,
    ``file:PATH`` the file's first line), so a secret never appears in what
    buildpolicy prints (``env``, ``explain``, ``exec --dry-run``) or records.
    With ``fallback``, a compilation that starts while the backend is recorded
    down goes to the local server: sccache 0.16 has no timeout setting for a
    backend that dies under a running server (each cache access then waits 30 s).
    """
    names = " ".join(stripped_variables(triple))
    lines = [
        "#!/bin/sh",
        "# Written by buildpolicy (shared sccache backend): cargo's machine-specific settings",
        "# are kept out of sccache's cache key; cargo has used them, rustc never reads them.",
        f"unset {names}",
    ]
    if fallback is not None:
        # A server stopped under a waiting compilation (the backend died): the client compiles it itself.
        lines.append("SCCACHE_IGNORE_SERVER_IO_ERROR=1; export SCCACHE_IGNORE_SERVER_IO_ERROR")
        lines.append(f"if [ -e {shlex.quote(fallback.marker)} ]; then")
        lines.append(f"  unset {' '.join(fallback.variables)}")
        if fallback.socket:
            lines.append(f"  SCCACHE_SERVER_UDS={shlex.quote(fallback.socket)}; export SCCACHE_SERVER_UDS")
        lines.append(f"  exec {shlex.quote(sccache)} \"$@\"")
        lines.append("fi")
    for variable, reference in secrets:
        kind, _, target = reference.partition(":")
        if kind == "env":
            lines.append(f'{variable}="${{{target}}}"; export {variable}')
        else:
            lines.append(f"read -r {variable} < {shlex.quote(target)}; export {variable}")
    lines.append(f"exec {shlex.quote(sccache)} \"$@\"")
    return "\n".join(lines) + "\n"


def ensure_wrapper(cache_dir, sccache: str, triple: str | None, secrets: tuple[tuple[str, str], ...] = (),
                   fallback: Fallback | None = None) -> Path:
    """Write the wrapper (0755, atomically) unless it is already there as it should be; return its path.

    Raises OSError when the cache dir is not safe to hold a program cargo runs.
    """
    from buildpolicy.filestate import atomic_write, unsafe_directory

    text = wrapper_text(sccache, triple, secrets, fallback)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    directory = Path(cache_dir) / "sccache" / "wrappers"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    problem = unsafe_directory(directory)
    if problem:
        raise OSError(problem)
    path = directory / f"sccache-{digest}"
    try:
        current = path.read_text(encoding="utf-8") if path.is_file() and not path.is_symlink() else None
        fresh = current == text and os.access(path, os.X_OK)
    except (OSError, UnicodeDecodeError):
        fresh = False
    if not fresh:
        atomic_write(path, text.encode(), mode=0o755)
    return path


def machine_inputs(env: Mapping[str, str], cwd: str, *, wrapped: bool, linker_args: Mapping[str, str] = {},  # noqa: B006
                   team_checkout: str | None = None, registry_dependencies: bool = False) -> list[str]:
    """What would make this machine's sccache keys differ from another's, one line each.

    ``env`` is the environment the build gets; ``wrapped`` whether the key
    wrapper removes :data:`STRIPPED` and the linker variable; ``linker_args``
    maps where a linker comes from (a variable, a config file) to the value
    cargo passes rustc as ``-C linker=``; ``team_checkout`` is the checkout path
    the team's policy declares; ``registry_dependencies`` whether Cargo.lock
    has crates.io (or other registry) packages.
    """
    found: list[str] = []
    home = env.get("HOME") or ""
    for name in sorted(env):
        if not name.startswith("CARGO_") or name == "CARGO_MAKEFLAGS" or name.endswith("RUSTFLAGS"):
            continue
        if name.startswith("CARGO_TARGET_") and name.endswith("_LINKER"):
            continue  # reported below, as the -C linker= argument cargo makes of it
        if wrapped and name in STRIPPED:
            continue
        value = env[name]
        if name in STRIPPED or _machine_specific(value, home):
            found.append(f"${name}={value}: sccache hashes every CARGO_* variable rustc sees")
    for name in ("CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", *sorted(n for n in env if n.endswith("_RUSTFLAGS"))):
        value = env.get(name)
        if value and (_machine_specific(value, home) or "-fuse-ld=/" in value or "-Zthreads=" in value):
            found.append(f"${name}={value}: rustflags are hashed byte for byte and these name this machine's "
                         "paths or thread count")
    for where, linker in sorted(linker_args.items()):
        if os.path.isabs(linker):
            found.append(f"-C linker={linker} (from {where}): cargo passes it to rustc, and sccache hashes it; "
                         "machines with the linker elsewhere miss")
    if registry_dependencies:
        cargo_home = env.get("CARGO_HOME") or os.path.join(home or "~", ".cargo")
        found.append(f"registry dependencies compile in {cargo_home}/registry/src: that path is in their keys, so "
                     "they hit across machines only where CARGO_HOME is the same path")
    if team_checkout and not _inside(cwd, team_checkout):
        found.append(f"checkout path {cwd}: the team builds from {team_checkout}; sccache hashes the working "
                     "directory (SCCACHE_BASEDIRS does not apply to Rust in sccache 0.16)")
    return found


def _inside(path: str, root: str) -> bool:
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def _machine_specific(value: str, home: str) -> bool:
    return bool(home and home != "/" and home in value) or "/tmp/" in value
