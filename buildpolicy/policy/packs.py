"""Policy packs: shared policy directories a profile ``extends`` (DESIGN §9).

``extends = [...]`` in ``buildpolicy.toml`` lists, in order:

- a **path** (relative to the profile file, or absolute): a directory whose
  ``*.toml`` files are loaded in lexical order, or a single policy file;
- ``pack:<name>``: the entry point ``<name>`` of the ``buildpolicy.packs`` group
  of an installed distribution. Its object is the pack's directory, written in
  one of two ways:

  * ``acme = "acme_buildpolicy"`` — a **package**: its directory holds the
    policy files (found with ``importlib.util.find_spec``; the package's own
    ``__init__`` does not run);
  * ``acme = "acme_buildpolicy:POLICIES"`` — a **module attribute holding a
    path** (``str`` or ``os.PathLike``); a relative path is resolved against
    the module's directory. The module is imported to read the attribute.

Pack files load in the ``pack`` layer: below the project's own files (a
project rule replaces a pack rule with the same id) and above the builtin
policies. When two packs define the same rule id, the one listed later in
``extends`` replaces the earlier one; ``explain`` shows both.

Resolution runs only when the policy cache is cold: the compiled policy set
records every pack file and directory (and, for ``pack:`` entries, the state
of ``sys.path``, which changes when a distribution is installed or removed).
"""

from __future__ import annotations

import os
from pathlib import Path

from buildpolicy.record import frozen

PACK_GROUP = "buildpolicy.packs"
PACK_PREFIX = "pack:"


@frozen
class Pack:
    """One ``extends`` entry, resolved.

    ``name`` is how provenance names it: ``pack:<name>`` or the path as written.
    ``directory`` is the directory (or single file) the policies come from, or
    None when the entry could not be resolved; ``problem`` then says why.
    ``files`` are the policy files in load order. ``index`` is the entry's
    position in ``extends`` (for ``file:line:col`` diagnostics).
    """

    name: str
    index: int
    directory: str | None = None
    files: tuple[str, ...] = ()
    problem: str | None = None

    @property
    def from_entry_point(self) -> bool:
        """Whether this pack came from the ``buildpolicy.packs`` entry-point group."""
        return self.name.startswith(PACK_PREFIX)


def policy_files(location: Path) -> list[Path]:
    """The ``*.toml`` files of a directory in lexical order, or ``[location]`` for a file."""
    if location.is_file():
        return [location]
    try:
        names = sorted(os.listdir(location))
    except OSError:
        return []
    return [location / name for name in names if name.endswith(".toml") and (location / name).is_file()]


def resolve_extends(profile: Path, entries: list) -> list[Pack]:
    """Resolve every ``extends`` entry of the profile file at ``profile``.

    Problems (a missing path, an unknown pack, an entry point that is not a
    directory) are returned in ``Pack.problem``, never raised: the loader
    reports them with the entry's position in the profile file.
    """
    packs: list[Pack] = []
    installed = None
    for index, entry in enumerate(entries):
        if not isinstance(entry, str):
            continue  # the schema reports it
        if entry.startswith(PACK_PREFIX):
            if installed is None:
                installed = installed_packs()
            packs.append(_resolve_entry_point(entry, index, installed))
            continue
        # Resolved, so provenance shows /repos/shared/x.toml rather than /repos/app/../shared/x.toml.
        location = (Path(entry) if os.path.isabs(entry) else profile.parent / entry).resolve()
        if not location.exists():
            packs.append(Pack(entry, index, problem=f"extends: {entry!r} does not exist ({location})"))
            continue
        packs.append(Pack(entry, index, str(location), tuple(str(p) for p in policy_files(location))))
    return packs


def installed_packs() -> dict[str, str]:
    """``{name: "module[:attr]"}`` for every entry point of the ``buildpolicy.packs`` group.

    The first distribution on ``sys.path`` wins when two declare one name
    (the same distribution can be visible twice: an editable install and a
    source tree), as Python's own import does.
    """
    from buildpolicy.policy.entrypoints import scan

    found: dict[str, str] = {}
    for name, value, _dist in scan(PACK_GROUP):
        found.setdefault(name, value)
    return found


def _resolve_entry_point(entry: str, index: int, installed: dict[str, str]) -> Pack:
    name = entry[len(PACK_PREFIX) :].strip()
    value = installed.get(name)
    if value is None:
        known = ", ".join(sorted(installed)) or "none"
        return Pack(entry, index, problem=f"extends: no pack named {name!r} is installed "
                    f"(entry-point group {PACK_GROUP}; installed: {known})")
    try:
        location = pack_location(value)
    except Exception as exc:  # noqa: BLE001 - a broken pack is reported, not a traceback
        return Pack(entry, index, problem=f"extends: pack {name!r} ({value}) cannot be loaded: {type(exc).__name__}: {exc}")
    location = location.resolve()
    if not location.is_dir():
        return Pack(entry, index, problem=f"extends: pack {name!r} ({value}) names {location}, which is not a directory")
    return Pack(entry, index, str(location), tuple(str(p) for p in policy_files(location)))


def pack_location(value: str) -> Path:
    """The directory an entry-point value names (see the module docstring for the two forms)."""
    import importlib
    import importlib.util

    module_name, _, attr = value.partition(":")
    module_name, attr = module_name.strip(), attr.strip()
    if not attr:
        spec = importlib.util.find_spec(module_name)
        if spec is None:
            raise ImportError(f"no module named {module_name!r}")
        if not spec.submodule_search_locations:
            raise ValueError(f"{module_name!r} is a module, not a package: name a package whose directory "
                             "holds the policy files, or a module attribute holding a path (module:ATTR)")
        return Path(list(spec.submodule_search_locations)[0])
    module = importlib.import_module(module_name)
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, (str, os.PathLike)):
        raise TypeError(f"{value} is a {type(obj).__name__}, not a path (str or os.PathLike)")
    path = Path(obj)
    if not path.is_absolute():
        base = Path(getattr(module, "__file__", None) or ".").parent
        path = base / path
    return path
