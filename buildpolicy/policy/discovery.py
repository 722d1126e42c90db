"""Which files a run loads, in which order: the builtin policies, the packs the profile
``extends``, the profile and the project's policy files, then the site and user layers
(refused when another user could write to them), with the directories listed to find
them (their stat tokens key the compiled-policy cache)."""

from __future__ import annotations

import os
from pathlib import Path

from buildpolicy.record import frozen
from buildpolicy.filestate import stat_token
from buildpolicy.policy.packs import Pack


def layer_files(profile: Path | None, site_dir: Path | None, user_dir: Path | None,
                builtin_dir: Path) -> tuple[list[tuple[str, Path]], list[Path]]:
    """Return ``(layer, file)`` pairs in load order, and the directories listed.

    Directories are listed in lexical order; a missing directory is fine, and so is
    None (a layer refused by ``refused_layers``).
    """
    files: list[tuple[str, Path]] = []
    dirs: list[Path] = []

    def add_dir(layer: str, directory: Path | None) -> None:
        if directory is None:
            return
        dirs.append(directory)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return
        files.extend((layer, directory / name) for name in names if name.endswith(".toml") and (directory / name).is_file())

    add_dir("builtin", builtin_dir)
    if profile is not None:
        files.append(("project", profile))
    add_dir("site", site_dir)
    add_dir("user", user_dir)
    return files, dirs


def refused_layers(site_dir: Path, user_dir: Path) -> dict[str, str]:
    """``{layer: why}`` for the site and user layers whose directory another user could
    write to (or plant files above): those layers are trusted to set any variable, so
    their files are not loaded at all (``filestate.writable_by_others``)."""
    from buildpolicy.filestate import writable_by_others

    refused = {}
    for layer, directory in (("site", site_dir), ("user", user_dir)):
        reason = writable_by_others(directory)
        if reason:
            refused[layer] = (f"{reason}, so another user could plant policy files there: the {layer} layer "
                              f"({directory}) is not loaded (fix: chown / chmod go-w it, or point "
                              f"{'BUILDPOLICY_SITE_DIR' if layer == 'site' else 'XDG_CONFIG_HOME'} elsewhere)")
    return refused


def project_policy_paths(profile: Path, data: dict) -> list[Path]:
    """The ``policies`` entries of a profile file, resolved against its directory."""
    base = profile.parent
    entries = data.get("policies")
    if entries is None:
        return [base / "policies"]
    if not isinstance(entries, list):
        return []  # the schema reports it
    return [base / entry for entry in entries if isinstance(entry, str)]


@frozen
class Discovered:
    """What ``discover`` found: files in load order, directories listed, packs, and the
    profile file's bytes with its stat token taken before reading them."""

    ordered: list
    dirs: list
    packs: list
    preread: dict  # path -> bytes: the profile, read once for discovery and compiling
    stats: dict  # path -> stat token taken before the read


def discover(profile, site_dir, user_dir, builtin_dir) -> Discovered:
    """Every file to load in layer order, the directories listed to find them, and the packs."""

    from buildpolicy.policy.tomlpos import read_toml_bytes, toml_parser

    base_files, dirs = layer_files(profile, site_dir, user_dir, builtin_dir)
    profile_data = None
    project_files: list[tuple[str, Path]] = []
    pack_files: list[tuple[str, Path]] = []
    packs: list[Pack] = []
    preread: dict[Path, bytes] = {}
    stats: dict[str, str] = {}
    if profile is not None:
        stats[str(profile)] = stat_token(profile)  # before reading: an edit from here on invalidates
        try:
            preread[profile] = read_toml_bytes(profile)
            profile_data = toml_parser.loads(preread[profile].decode("utf-8-sig"))
        except (OSError, ValueError, RecursionError):
            profile_data = None  # reported with its position by the full parse
        extends = (profile_data or {}).get("extends")
        if isinstance(extends, list):
            from buildpolicy.policy.packs import resolve_extends

            packs = resolve_extends(profile, extends)
            for pack in packs:
                if pack.directory is not None:
                    dirs.append(Path(pack.directory))  # a file added to a pack invalidates the cache
                if not pack.from_entry_point:
                    # As written: its stat follows symlinks, so pointing one at another
                    # directory (`shared -> shared-v2`) invalidates the cache too.
                    dirs.append(profile.parent / pack.name)
                pack_files.extend(("pack", Path(f)) for f in pack.files)
        for entry in project_policy_paths(profile, profile_data or {}):
            dirs.append(entry)  # listed even when missing: creating it invalidates the cache
            if entry.is_dir():
                project_files.extend(
                    ("project", entry / n) for n in sorted(os.listdir(entry)) if n.endswith(".toml") and (entry / n).is_file()
                )
            elif entry.is_file():
                project_files.append(("project", entry))
    # Load order: builtin, packs, profile, project policies, site, user.
    ordered = [f for f in base_files if f[0] == "builtin"] + pack_files
    ordered += [f for f in base_files if f[0] == "project"] + project_files
    ordered += [f for f in base_files if f[0] in ("site", "user")]
    return Discovered(ordered, dirs, packs, preread, stats)
