"""The compiled-policy cache: one sealed pickle of a ``PolicySet`` per profile and set
of layer directories, with the inputs it was compiled from (every file and listed
directory by stat token, buildpolicy's version and the code of the pickled classes).

A warm run unpickles the set and only stats its inputs; a pickle is code, so only
a sealed regular file of this user's in directories no other user can write is
ever unpickled (``buildpolicy.filestate.read_state``).
"""

from __future__ import annotations

import contextlib
import gc
from pathlib import Path

from buildpolicy import __version__
from buildpolicy.filestate import stat_token

# Bumped when PolicySet's fields change, so an old pickle is never unpickled into the new class.
CACHE_FORMAT = "4"


def pickled_code() -> list[Path]:
    """Source files of the classes a PolicySet pickles: editing one (a new checkout,
    an upgrade that kept the version number) must not unpickle an old layout."""
    here = Path(__file__).parent  # buildpolicy/policy
    return [here.parent / "model.py", here.parent / "record.py", *(here / f"{name}.py" for name in ("loader", "expr/nodes", "knobs", "trust", "packs"))]


def inputs_of(files: list[tuple[str, Path]], dirs: list[Path], extra: str, entry_point_packs: bool,
            stats: dict[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """What a compiled PolicySet depends on: version, plugin facts, every file and listed directory.

    With ``pack:`` entries in ``extends``, also the state of ``sys.path``
    (installing or removing a pack distribution changes it). ``stats``: stat
    tokens already taken (before a file was read early, as the profile is).
    """
    stats = stats or {}
    from buildpolicy.filestate import sys_path_state

    return (
        ("version", __version__),
        ("format", CACHE_FORMAT),
        ("extra", extra),
        *((("syspath", sys_path_state()),) if entry_point_packs else ()),
        *((f"file:code:{path}", stat_token(path)) for path in pickled_code()),
        *((f"file:{layer}:{path}", stats.get(str(path)) or stat_token(path)) for layer, path in files),
        *((f"dir:{directory}", stat_token(directory)) for directory in dirs),
    )


def input_path(key: str) -> str | None:
    """The path of a ``file:<layer>:<path>`` or ``dir:<path>`` input key, else None."""
    if key.startswith("file:"):
        return key.split(":", 2)[-1]
    if key.startswith("dir:"):
        return key[4:]
    return None


def input_paths(inputs: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """``(path, stat token)`` of the files and directories among recorded inputs."""
    return [(path, token) for key, token in inputs if (path := input_path(key)) is not None]


def _current(key: str, extra: str) -> str | None:
    """The state of input ``key`` now (None for a key this code does not know)."""
    if key == "version":
        return __version__
    if key == "format":
        return CACHE_FORMAT
    if key == "extra":
        return extra
    if key == "syspath":
        from buildpolicy.filestate import sys_path_state

        return sys_path_state()
    path = input_path(key)
    return None if path is None else stat_token(path)


# What decides how files compile (rather than which files there are and what they hold).
_COMPILER_KEYS = ("version", "format", "extra")


def same_compiler(inputs: tuple[tuple[str, str], ...], extra: str) -> bool:
    """Whether a set with these inputs was compiled by this code, for the same plugin facts:
    then its compiled files may be reused for those whose bytes did not change."""
    return all(_current(key, extra) == token for key, token in inputs
               if key in _COMPILER_KEYS or key.startswith("file:code:"))


def unchanged(inputs: tuple[tuple[str, str], ...], extra: str) -> bool:
    """Whether every recorded input still has the recorded state (a warm run only stats files)."""
    return all(_current(key, extra) == token for key, token in inputs)


def cache_file_for(cache_dir: Path, profile: Path | None, *layer_dirs: Path) -> Path:
    """One cache file per profile and set of layer directories.

    The directories are part of the name because the recorded inputs only say
    whether what was read changed: a run with another site or user directory
    (``BUILDPOLICY_SITE_DIR``, policy tests' empty layers) must not reuse a set
    compiled from different ones, and alternating runs should not evict each other.
    """
    import zlib

    label = "\0".join(str(p) for p in (profile or "-", *layer_dirs))
    return cache_dir / "compiled" / f"{zlib.crc32(label.encode('utf-8', 'surrogateescape')):08x}-{len(label)}.pickle"


MAX_CACHE_BYTES = 64 << 20  # neither kept nor read past this (the shipped policies pickle to 3 KB)


def read_cache(cache_file: Path):
    """The unpickled content of ``cache_file``, or None when it is missing, unsafe or corrupt.

    A pickle is code: only a sealed regular file of this user's, in directories no other
    user can write to, is unpickled (``filestate.read_state``), never one planted at its name.
    """
    import pickle

    from buildpolicy.filestate import read_state, unseal

    try:
        return pickle.loads(unseal(read_state(cache_file, MAX_CACHE_BYTES)))  # damaged: never unpickled
    except Exception:  # noqa: BLE001 - any unreadable cache is rebuilt
        return None


def write_cache(cache_file: Path, content) -> None:
    """Pickle ``content`` into ``cache_file`` (atomically); a failure only costs the next run's speed."""
    import pickle

    from buildpolicy.filestate import seal, write_state

    try:
        data = seal(pickle.dumps(content, protocol=pickle.HIGHEST_PROTOCOL))
        if len(data) <= MAX_CACHE_BYTES:
            write_state(cache_file, data)
    except (OSError, pickle.PicklingError, RecursionError):
        pass


# Objects made by a build past which they are frozen (see collector_paused): about 1,000 rules.
FREEZE_ABOVE = 10_000


@contextlib.contextmanager
def collector_paused():
    """Compile or unpickle a policy set without the cyclic garbage collector.

    Either makes hundreds of thousands of objects for a large set, all of them kept for
    the whole run and none of them garbage, and the collector would walk them again and
    again as they pile up (a fifth of a first ``check`` of 10,000 rules). It is paused
    meanwhile; after a large set, what exists is moved out of its reach (``gc.freeze``:
    still freed when no longer referenced, only never walked again), else later
    collections in the run would walk it all the same. A small set is left alone: its
    few objects cost the collector nothing, and a long-lived process (a pytest session
    running policy tests) keeps its usual collector.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if gc.get_count()[0] > FREEZE_ABOVE:
            gc.freeze()
        gc.enable()
